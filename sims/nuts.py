"""NUTS with Stan-style window adaptation for a collapsed target (BlackJAX; docs/theory.md §8.2).

The kernel of :mod:`smtheory.sims.collapsed_base`: ``warmup`` runs BlackJAX's
:func:`blackjax.window_adaptation` (dual-averaging step size toward ``target_acceptance``, a
diagonal or dense inverse mass matrix from doubling slow windows) for one chain; ``step`` is one NUTS
transition (:func:`blackjax.mcmc.nuts.build_kernel`) with the adapted parameters passed as
arguments, so per-chain step sizes and mass matrices are ordinary arrays under ``jax.vmap`` and a
resumed run continues with exactly the parameters it had.

Cost of one transition: ``num_integration_steps`` gradient evaluations (at most
``2**max_num_doublings − 1``), reported as ``KernelInfo.num_grad_evals``.

Dense or diagonal mass matrix (:func:`dense_mass_estimable`): a dense inverse mass matrix (the posterior
covariance estimated in the last slow window) removes the correlations between the coordinates that a
diagonal one leaves; on the order-parameter posterior of the 4-path Markov task at N = 10 (P = 100,
T = 0.01) it halves the leapfrog steps per transition (7.9 instead of 14–15) and raises the ESS per
gradient of the worst ``U_1`` entry 1.6× (``benchmarks/results/bench_collapsed.md``).  It needs enough
warm-up draws to be estimated: with the 50 draws of the last window of a 200-step warm-up it was worse
than the diagonal one there, so ``auto`` uses it only when that window holds at least
:data:`DENSE_DRAWS_PER_DIM` draws per coordinate.
"""
from __future__ import annotations

import blackjax
import jax
import jax.numpy as jnp
import numpy as np

from smtheory.checks import InputError

from .collapsed_base import CollapsedTarget, Kernel, KernelInfo, KernelParams

__all__ = ["build", "dense_mass_estimable", "last_window_length", "DENSE_DRAWS_PER_DIM"]

#: Draws per coordinate that the last slow warm-up window must hold for ``mass_matrix="auto"`` to adapt a dense
#: inverse mass matrix (the window's sample covariance, regularised as in Stan, has ``n(n+1)/2`` entries).
DENSE_DRAWS_PER_DIM = 10


def last_window_length(num_steps):
    """Draws in the last slow window of BlackJAX's (Stan's) warm-up schedule of ``num_steps`` steps
    (the window whose sample covariance becomes the inverse mass matrix; 0 when there is none)."""
    from blackjax.adaptation.window_adaptation import build_schedule

    schedule = np.asarray(build_schedule(int(num_steps)), dtype=bool).reshape(-1, 2)  # (slow step?, window end?)
    ends = np.flatnonzero(schedule[:, 1])
    if ends.size == 0:
        return 0
    start = ends[-2] + 1 if ends.size >= 2 else 0
    return int(schedule[start:ends[-1] + 1, 0].sum())


def dense_mass_estimable(num_steps, n_dims):
    """Whether a warm-up of ``num_steps`` estimates a dense ``n_dims × n_dims`` inverse mass matrix well enough:
    its last slow window holds at least :data:`DENSE_DRAWS_PER_DIM` ``· n_dims`` draws (e.g. 500 warm-up steps:
    a 200-draw window, dense up to 20 coordinates; 200 steps: 50 draws, diagonal for the 14 of the 4-path network)."""
    return last_window_length(num_steps) >= DENSE_DRAWS_PER_DIM * int(n_dims)


def build(target: CollapsedTarget, *, target_acceptance=0.8, max_num_doublings=10, dense_mass=False) -> Kernel:
    """NUTS for a :class:`~smtheory.sims.collapsed_base.CollapsedTarget`.

    Parameters
    ----------
    target : CollapsedTarget
    target_acceptance : float in (0, 1)
        Mean acceptance probability that warm-up aims for (default 0.8, as Stan).
    max_num_doublings : int
        Maximum tree depth (default 10: at most 1023 leapfrog steps per transition).
    dense_mass : bool
        Adapt a dense inverse mass matrix ``[n_dims, n_dims]`` (default False: diagonal, ``[n_dims]``); see the
        module docstring and :func:`dense_mass_estimable`.

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
    if not isinstance(dense_mass, (bool, np.bool_)):
        raise InputError(f"dense_mass must be True or False, got {dense_mass!r}")
    logdensity = target.logdensity
    nuts_kernel = blackjax.mcmc.nuts.build_kernel()

    def warmup(key, position, num_steps):
        adapt = blackjax.window_adaptation(blackjax.nuts, logdensity, is_mass_matrix_diagonal=not dense_mass,
                                           target_acceptance_rate=ta, adaptation_info_fn=lambda *a: None)
        (state, parameters), _ = adapt.run(key, position, num_steps=num_steps)
        imm = jnp.asarray(parameters["inverse_mass_matrix"], position.dtype)
        return state, KernelParams(jnp.asarray(parameters["step_size"], position.dtype), imm)

    def step(key, state, params: KernelParams):
        new_state, info = nuts_kernel(key, state, logdensity, params.step_size, params.inverse_mass_matrix,
                                      max_num_doublings=depth)
        finite = jnp.isfinite(new_state.logdensity) & jnp.all(jnp.isfinite(new_state.position))
        return new_state, KernelInfo(finite, info.acceptance_rate, info.num_integration_steps)

    return Kernel(warmup=warmup, step=step, name="nuts")
