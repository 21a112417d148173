"""Unadjusted (overdamped) Langevin dynamics for the weight posterior (docs/theory.md §4).

Conventions
-----------
Let ``U(θ) = −log p(θ | data) + const`` be the dimensionless potential
(:meth:`smtheory.sims.posterior.Posterior.potential`, prior included) and ``T`` the
temperature of the posterior (the variance of the Gaussian observation noise,
docs/theory.md §1).  The physical energy is ``E = T·U = ½ Σ_μ (f − y)² + T Σ_b |θ_b|²/(2σ_b²)``
and the Langevin equation is

    dθ = −∇E(θ) dt + √(2T) dW        (W a standard Wiener process).

Its stationary law is ``∝ exp(−E/T) = exp(−U)``, i.e. exactly the posterior.
This module integrates it with the Euler–Maruyama scheme, one step of length
``ε = step_size`` in the time ``t`` of the equation above:

    θ' = θ − ε T ∇U(θ) + √(2 T ε) ξ,        ξ ~ N(0, I).

Meaning of the step size: ``ε`` is a time step of the dynamics whose drift is
``−∇E``.  Only the product ``h = ε T`` enters the update (``θ' = θ − h ∇U + √(2h) ξ``),
so at a low temperature the same ``ε`` is a proportionally smaller move in
weight space; ``h`` is the "step size" of the usual ULA / BlackJAX convention on
``log p`` (see :mod:`smtheory.sims.mala`).

Bias.  No Metropolis correction is applied, so the chain's stationary law is
``exp(−U)`` only up to an ``O(ε)`` bias.  For a Gaussian target
``U = ½ (θ−μ)ᵀ A (θ−μ)`` the discretised process is a linear AR(1) whose
stationary law is ``N(μ, A⁻¹ (I − h A / 2)⁻¹)``: the mean is exact, the variance
along a precision eigen-direction λ is inflated by ``1/(1 − hλ/2)``, and the
chain is unstable for ``h λ_max ≥ 2``.  Choose ``h λ_max ≪ 1`` (or use MALA).

API
---
``build(posterior, step_size)`` and ``build_for_potential(potential_fn,
step_size, temperature=1.0)`` return a :class:`smtheory.sims.base.SamplingAlgorithm`
``(init, step)`` for ONE chain:

- ``init(position) -> LangevinState(position, potential, grad)`` where ``grad`` is
  ``∇U`` (not ``∇E``);
- ``step(key, state) -> (LangevinState, LangevinInfo(is_finite))``.

Both are pure and jit / vmap / scan friendly.  Positions keep their dtype
(a float32 posterior gives float32 chains): the noise is drawn in the
position's dtype and the step size enters as a Python scalar (weakly typed).
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from smtheory.checks import InputError

from .base import SamplingAlgorithm, all_finite, check_step_size, check_temperature

__all__ = ["LangevinState", "LangevinInfo", "build", "build_for_potential"]


class LangevinState(NamedTuple):
    """One chain: position pytree, its potential ``U`` and gradient ``∇U``."""

    position: Any
    potential: jax.Array
    grad: Any


class LangevinInfo(NamedTuple):
    """Per-step diagnostics (scalars)."""

    is_finite: jax.Array


def build_for_potential(potential_fn: Callable, step_size, temperature=1.0) -> SamplingAlgorithm:
    """Euler–Maruyama Langevin sampler for an arbitrary potential ``U = −log π``.

    Parameters
    ----------
    potential_fn : callable
        ``U(position) -> scalar``, minus the log target density (any pytree position).
    step_size : float
        Time step ``ε`` of ``dθ = −T ∇U dt + √(2T) dW`` (finite, > 0).
    temperature : float
        ``T`` (finite, > 0).  It sets the time scale only: the stationary law is
        ``exp(−U)`` for every ``T`` (up to the O(εT) discretisation bias), and
        the update depends on ``ε T`` alone.

    Returns
    -------
    SamplingAlgorithm
        ``init(position) -> LangevinState``; ``step(key, state) -> (LangevinState, LangevinInfo)``.
    """
    if not callable(potential_fn):
        raise InputError(f"potential_fn must be callable, got {type(potential_fn).__name__}")
    eps = check_step_size(step_size)
    temp = check_temperature(temperature)
    h = eps * temp  # the only combination that enters the update
    noise_scale = math.sqrt(2.0 * h)
    value_and_grad = jax.jit(jax.value_and_grad(potential_fn))  # inlined when traced inside jit/vmap/scan

    def init(position) -> LangevinState:
        u, g = value_and_grad(position)
        return LangevinState(position, u, g)

    def step(key, state: LangevinState):
        # one normal draw for the whole (raveled) position; unravel restores each leaf's dtype
        flat, unravel = ravel_pytree(state.position)
        noise = unravel(jax.random.normal(key, flat.shape, dtype=flat.dtype))
        position = jax.tree_util.tree_map(
            lambda x, g, n: x - h * g.astype(jnp.result_type(x)) + noise_scale * n,
            state.position, state.grad, noise)
        u, g = value_and_grad(position)
        finite = jnp.isfinite(u) & all_finite(position) & all_finite(g)
        return LangevinState(position, u, g), LangevinInfo(is_finite=finite)

    return SamplingAlgorithm(init, step)


def build(posterior, step_size) -> SamplingAlgorithm:
    """Unadjusted Langevin sampler of a :class:`smtheory.sims.posterior.Posterior`.

    The update is ``θ' = θ − ε T ∇U(θ) + √(2 T ε) ξ`` with ``U = posterior.potential``
    and ``T = posterior.temperature`` (see the module docstring).  Start a chain
    with ``alg.init(posterior.init(key))``.
    """
    if not hasattr(posterior, "potential") or not hasattr(posterior, "temperature"):
        raise InputError(f"posterior must be a smtheory.sims.posterior.Posterior, got {type(posterior).__name__}")
    check_step_size(step_size)
    return build_for_potential(posterior.potential, step_size, temperature=posterior.temperature)
