"""Built-in tasks (docs/theory.md §5)."""
from . import markov

__all__ = ["markov"]
