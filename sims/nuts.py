"""NUTS with Stan-style window adaptation for a collapsed target (BlackJAX; docs/theory.md §8.2).

The kernel of :mod:`smtheory.sims.collapsed_base`: ``warmup`` runs BlackJAX's
:func:`blackjax.window_adaptation` (dual-averaging step size toward ``target_acceptance``, a
diagonal inverse mass matrix from doubling slow windows) for one chain; ``step`` is one NUTS
transition (:func:`blackjax.mcmc.nuts.build_kernel`) with the adapted parameters passed as
arguments, so per-chain step sizes and mass matrices are ordinary arrays under ``jax.vmap`` and a
resumed run continues with exactly the parameters it had.

Cost of one transition: ``num_integration_steps`` gradient evaluations (at most
``2**max_num_doublings − 1``), reported as ``KernelInfo.num_grad_evals``.
"""
from __future__ import annotations

import blackjax
import jax
import jax.numpy as jnp

from smtheory.checks import InputError

from .collapsed_base import CollapsedTarget, Kernel, KernelInfo, KernelParams

__all__ = ["build"]


def build(target: CollapsedTarget, *, target_acceptance=0.8, max_num_doublings=10) -> Kernel:
    """NUTS for a :class:`~smtheory.sims.collapsed_base.CollapsedTarget`.

    Parameters
    ----------
    target : CollapsedTarget
    target_acceptance : float in (0, 1)
        Mean acceptance probability that warm-up aims for (default 0.8, as Stan).
    max_num_doublings : int
        Maximum tree depth (default 10: at most 1023 leapfrog steps per transition).

    Returns
    -------
    Kernel
        ``warmup(key, position, num_steps) -> (HMCState, KernelParams)`` and
        ``step(key, state, params) -> (HMCState, KernelInfo)``, one chain each.
    """
    if not isinstance(target, CollapsedTarget):
        raise InputError(f"target must be a smtheory.sims.collapsed_base.CollapsedTarget, got {type(target).__name__}")
    ta = float(target_acceptance)
    if not 0.0 < ta < 1.0:
        raise InputError(f"target_acceptance must be in (0, 1), got {target_acceptance!r}")
    depth = int(max_num_doublings)
    if not 1 <= depth <= 15:
        raise InputError(f"max_num_doublings must be an integer in 1..15, got {max_num_doublings!r}")
    logdensity = target.logdensity
    nuts_kernel = blackjax.mcmc.nuts.build_kernel()

    def warmup(key, position, num_steps):
        adapt = blackjax.window_adaptation(blackjax.nuts, logdensity, target_acceptance_rate=ta,
                                           adaptation_info_fn=lambda *a: None)
        (state, parameters), _ = adapt.run(key, position, num_steps=num_steps)
        imm = jnp.asarray(parameters["inverse_mass_matrix"], position.dtype)
        return state, KernelParams(jnp.asarray(parameters["step_size"], position.dtype), imm)

    def step(key, state, params: KernelParams):
        new_state, info = nuts_kernel(key, state, logdensity, params.step_size, params.inverse_mass_matrix,
                                      max_num_doublings=depth)
        finite = jnp.isfinite(new_state.logdensity) & jnp.all(jnp.isfinite(new_state.position))
        return new_state, KernelInfo(finite, info.acceptance_rate, info.num_integration_steps)

    return Kernel(warmup=warmup, step=step, name="nuts")
