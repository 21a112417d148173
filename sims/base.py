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

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

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


def check_temperature(temperature):
    """A finite positive temperature ``T`` as a float, or a clear error."""
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise InputError(f"temperature must be a positive number, got {temperature!r}") from None
    if not (t > 0 and math.isfinite(t)):
        raise InputError(f"temperature must be a finite positive number, got {temperature!r}")
    return t


def all_finite(tree):
    """``True`` (a JAX boolean scalar) when every entry of every leaf of ``tree`` is finite.

    Pure and traceable; the samplers report it as ``info.is_finite``.
    """
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))
