"""The sampler interface shared by every sampler in :mod:`sims` (BlackJAX style).

A sampler is a pair of pure functions bundled in :class:`SamplingAlgorithm`:

- ``init(position) -> state`` where ``position`` is the weight pytree
  ``{"V0", "V", "a"}`` of one chain and ``state.position`` gives it back;
- ``step(key, state) -> (state, info)`` advances one chain by one step.

Both are written for a single chain; the driver vectorises over chains with
``jax.vmap`` and iterates with ``jax.lax.scan``.  ``info`` is a NamedTuple of
scalars (e.g. ``acceptance_rate`` for MALA; ``is_finite`` for every sampler), so
that a NaN during sampling can be detected and reported.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from smtheory.checks import InputError


class SamplingAlgorithm(NamedTuple):
    init: Callable
    step: Callable


def check_step_size(step_size):
    """A finite positive step size, or a clear error."""
    try:
        s = float(step_size)
    except (TypeError, ValueError):
        raise InputError(f"step_size must be a positive number, got {step_size!r}") from None
    if not s > 0 or s != s or s == float("inf"):
        raise InputError(f"step_size must be a finite positive number, got {step_size!r}")
    return s
