"""Built-in tasks (THEORY.md §5)."""
from . import markov

__all__ = ["markov"]
