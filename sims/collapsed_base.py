"""The interface shared by the collapsed samplers (docs/theory.md §8; docs/theory.md §8).

A *collapsed target* is a posterior whose draws determine the path-path order parameter
``U_1`` without the input projection ``V⁰``: the order-parameter hierarchy of
:mod:`smtheory.sims.overlap` (cost independent of N) or the upper weights of :mod:`smtheory.sims.collapsed`
(``V⁰`` integrated out).  A *kernel* is an MCMC algorithm for such a target in the BlackJAX
style, split into an adaptive warm-up and a fixed step:

- ``warmup(key, position, num_steps) -> (state, KernelParams)`` — one chain; adapts the step
  size and an inverse mass matrix, diagonal or dense (``num_steps`` is static);
- ``step(key, state, params) -> (state, KernelInfo)`` — one chain, one transition, with the
  adapted parameters held fixed (so the chain is a time-homogeneous Markov chain).

Positions are flat 1-D arrays (targets unravel them themselves), so a diagonal mass matrix is a
vector of the same length.  Everything is pure JAX: the driver (:mod:`smtheory.sims.collapsed_run`)
vectorises over chains with ``jax.vmap`` and iterates with ``jax.lax.scan``.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax

__all__ = ["CollapsedTarget", "KernelParams", "KernelInfo", "Kernel"]


class CollapsedTarget(NamedTuple):
    """A posterior over a flat position that determines ``U_1``.

    Attributes
    ----------
    logdensity : callable
        ``position [n_dims] -> log p`` up to a constant (pure; jit, vmap and grad).
    init : callable
        ``key -> position``: a chain's start (an exact prior draw: over-dispersed).
    order_parameter : callable
        ``position -> U_1 [D, D]`` (symmetric positive semi-definite).
    n_dims : int
        Length of the position vector.
    dtype : jnp.float64 or jnp.float32
    name : str
    log_likelihood : callable, optional
        ``position -> ℓ`` with ``logdensity = ℓ − ½ Σ (position / prior_std)²``: given (with
        ``prior_std``) when the prior is Gaussian, so that the Langevin kernel can use the
        prior-preserving Crank–Nicolson proposal (:mod:`smtheory.sims.crank_nicolson`).
    prior_std : array [n_dims], optional
        Standard deviations of that Gaussian prior.
    """

    logdensity: Callable
    init: Callable
    order_parameter: Callable
    n_dims: int
    dtype: Any
    name: str
    log_likelihood: Callable = None
    prior_std: Any = None


class KernelParams(NamedTuple):
    """Parameters adapted during warm-up (one chain; leading chain axis under ``vmap``)."""

    step_size: jax.Array  # scalar
    inverse_mass_matrix: jax.Array  # [n_dims] diagonal, or [n_dims, n_dims] dense (NUTS)


class KernelInfo(NamedTuple):
    """Per-transition information (one chain)."""

    is_finite: jax.Array  # bool: log density and position finite
    acceptance_rate: jax.Array  # Metropolis acceptance probability (NUTS: mean over the tree)
    num_grad_evals: jax.Array  # gradient evaluations spent on this transition


class Kernel(NamedTuple):
    """An adaptive MCMC algorithm for a :class:`CollapsedTarget` (see the module docstring)."""

    warmup: Callable
    step: Callable
    name: str
