"""Metropolis-adjusted Langevin (MALA) for the weight posterior, via BlackJAX.

Step-size convention (same as :mod:`smtheory.sims.langevin`)
------------------------------------------------------------
The proposal is one Euler–Maruyama step of ``dθ = −∇E dt + √(2T) dW`` with
``E = T·U``, ``U = −log p`` (prior included), ``T`` the posterior temperature:

    θ* = θ − ε T ∇U(θ) + √(2 T ε) ξ,

followed by a Metropolis–Hastings accept/reject step that makes ``exp(−U)``
exactly invariant (no O(ε) bias, unlike unadjusted Langevin).

BlackJAX's ``blackjax.mala(logdensity_fn, step_size=h)`` proposes
``θ* = θ + h ∇log p(θ) + √(2h) ξ``.  Hence

    BlackJAX step_size  h = ε · T        (ε = our ``step_size``, T = temperature).

For :func:`build_for_logdensity` the temperature defaults to 1, so ``h = ε``.

API
---
``build(posterior, step_size)`` / ``build_for_logdensity(logdensity_fn, step_size,
temperature=1.0)`` return a :class:`smtheory.sims.base.SamplingAlgorithm` for ONE chain:

- ``init(position) -> MALAState(position, logdensity, logdensity_grad)``
  (BlackJAX's state; ``logdensity = −U``);
- ``step(key, state) -> (MALAState, MALAInfo(acceptance_rate, is_accepted, is_finite))``.

``acceptance_rate`` is the Metropolis acceptance probability ``min(1, r)`` of
this step's proposal; ``is_finite`` says whether the returned state is finite.
A proposal with a NaN energy is rejected by BlackJAX, so the chain itself stays
finite; a non-finite state can only come from a non-finite start.

float32 chains (BlackJAX caveat)
--------------------------------
With ``jax_enable_x64`` on (this project always enables it), BlackJAX 1.7's
``overdamped_langevin`` draws its noise through ``linear_map(1.0, sample)``,
which promotes a float32 position to float64; the accept/reject ``lax.cond``
then fails on mismatched branch dtypes.  Float64 chains therefore run the stock
``blackjax.mala`` kernel; any other dtype runs :func:`_dtype_preserving_kernel`,
the same algorithm written with BlackJAX's own proposal utilities
(``compute_asymmetric_acceptance_ratio``, ``static_binomial_sampling``) and the
same random-key usage, so that in float64 it reproduces ``blackjax.mala``
bit for bit (tested).
"""
from __future__ import annotations

import math
import operator
from typing import Callable, NamedTuple

import blackjax
import blackjax.mcmc.mala  # noqa: F401
import blackjax.mcmc.proposal as bj_proposal
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from smtheory.checks import InputError

from .base import SamplingAlgorithm, all_finite, check_step_size, check_temperature

__all__ = ["MALAState", "MALAInfo", "build", "build_for_logdensity"]

MALAState = blackjax.mcmc.mala.MALAState


class MALAInfo(NamedTuple):
    """Per-step diagnostics (scalars)."""

    acceptance_rate: jax.Array
    is_accepted: jax.Array
    is_finite: jax.Array


def _transition_energy(state, new_state, step_size):
    """BlackJAX's MALA transition energy −log π(x') − log q(x | x') (up to a constant)."""
    theta = jax.tree.map(lambda x, new_x, g: x - new_x - step_size * g,
                         state.position, new_state.position, new_state.logdensity_grad)
    theta_dot = jax.tree.reduce(operator.add, jax.tree.map(lambda x: jnp.sum(x * x), theta))
    return -new_state.logdensity + 0.25 * (1.0 / step_size) * theta_dot


_acceptance_ratio = bj_proposal.compute_asymmetric_acceptance_ratio(_transition_energy)


def _dtype_preserving_kernel(rng_key, state, logdensity_fn, step_size: float):
    """``blackjax.mala``'s kernel with the proposal noise drawn in the position's dtype.

    Same key splitting and arithmetic as BlackJAX 1.7 (``step_size`` is BlackJAX's h).
    """
    key_integrator, key_rmh = jax.random.split(rng_key)
    flat, unravel = ravel_pytree(state.position)
    noise = unravel(jax.random.normal(key_integrator, flat.shape, dtype=flat.dtype))
    scale = math.sqrt(2.0 * step_size)
    position = jax.tree.map(lambda p, g, n: p + step_size * g + scale * n,
                            state.position, state.logdensity_grad, noise)
    logdensity, grad = jax.value_and_grad(logdensity_fn)(position)
    proposal = MALAState(position, logdensity, grad)
    log_p_accept = _acceptance_ratio(state, proposal, step_size=step_size)
    new_state, (do_accept, p_accept, _) = bj_proposal.static_binomial_sampling(key_rmh, log_p_accept, state,
                                                                                proposal)
    return new_state, blackjax.mcmc.mala.MALAInfo(p_accept, do_accept)


def build_for_logdensity(logdensity_fn: Callable, step_size, temperature=1.0) -> SamplingAlgorithm:
    """MALA for an arbitrary log density ``log π = −U``.

    Parameters
    ----------
    logdensity_fn : callable
        ``log π(position)`` up to a constant.
    step_size : float
        ``ε`` (finite, > 0), the Langevin time step; BlackJAX gets ``h = ε · temperature``.
    temperature : float
        ``T`` (finite, > 0); sets the time scale only, the target is ``π`` for every T.

    Returns
    -------
    SamplingAlgorithm
        ``init(position) -> MALAState``; ``step(key, state) -> (MALAState, MALAInfo)``.
    """
    if not callable(logdensity_fn):
        raise InputError(f"logdensity_fn must be callable, got {type(logdensity_fn).__name__}")
    eps = check_step_size(step_size)
    temp = check_temperature(temperature)
    bj_kernel = blackjax.mcmc.mala.build_kernel()
    bj_step = eps * temp  # BlackJAX's step size h (a Python float: weakly typed)

    @jax.jit  # inlined when traced inside jit/vmap/scan
    def init(position) -> MALAState:
        return blackjax.mcmc.mala.init(position, logdensity_fn)

    def step(key, state: MALAState):
        dtypes = {jnp.result_type(x) for x in jax.tree_util.tree_leaves(state.position)}
        kernel = bj_kernel if dtypes == {jnp.dtype(jnp.float64)} else _dtype_preserving_kernel
        new_state, bj_info = kernel(key, state, logdensity_fn, bj_step)
        finite = jnp.isfinite(new_state.logdensity) & all_finite(new_state.position)
        info = MALAInfo(acceptance_rate=bj_info.acceptance_rate, is_accepted=bj_info.is_accepted,
                        is_finite=finite)
        return new_state, info

    return SamplingAlgorithm(init, step)


def build(posterior, step_size) -> SamplingAlgorithm:
    """MALA sampler of a :class:`smtheory.sims.posterior.Posterior` (``posterior.logdensity``).

    BlackJAX's step size is ``step_size · posterior.temperature`` (module docstring).
    Start a chain with ``alg.init(posterior.init(key))``.
    """
    if not hasattr(posterior, "logdensity") or not hasattr(posterior, "temperature"):
        raise InputError(f"posterior must be a smtheory.sims.posterior.Posterior, got {type(posterior).__name__}")
    check_step_size(step_size)
    return build_for_logdensity(posterior.logdensity, step_size, temperature=posterior.temperature)
