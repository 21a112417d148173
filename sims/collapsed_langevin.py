"""Preconditioned Langevin (Metropolis-adjusted or not) with Stan-style warm-up for a collapsed target.

For a :class:`smtheory.sims.collapsed_base.CollapsedTarget` (docs/theory.md §8.1: the upper weights
with ``V⁰`` integrated out, or any other flat-position posterior), one transition proposes
one Euler–Maruyama step of the preconditioned Langevin diffusion with a diagonal mass
matrix ``M`` (``m = M⁻¹``, the *inverse* mass matrix, a vector):

    x' = x + (h/2) m ⊙ ∇log p(x) + √h · √m ⊙ ξ,      ξ ~ N(0, I),

so that ``x' | x ~ N(x + (h/2) m ⊙ ∇log p(x), h · diag(m))``.

- ``adjusted=True`` (default): Metropolis–Hastings accept/reject with the exact proposal
  density (MALA, Roberts & Tweedie 1996).  The target is exactly invariant; a proposal with a
  non-finite log density is rejected.
- ``adjusted=False``: every proposal is taken (unadjusted Langevin, ULA).  Its stationary law
  is *not* the target: the bias is O(h).  For a Gaussian coordinate of variance s² and
  ``m = 1`` it is known in closed form: the stationary variance is ``s² / (1 − h/(4 s²))``,
  i.e. a relative excess ``≈ h/(4 s²)`` (tested).  The MH acceptance probability is still
  computed (it is what the warm-up adapts on) but not applied.

Warm-up (Stan's windowed adaptation, Stan Reference Manual "HMC algorithm parameters"):
an initial fast window (step size only, 75 steps), a sequence of slow windows of doubling
length (25, 50, 100, …; the last one stretched to the final window) in which the diagonal
variance of the position is estimated with Welford's algorithm and regularised like Stan,
``m = n/(n+5) · var + 10⁻³ · 5/(n+5)``, then a final fast window.  The step size is adapted
throughout by dual averaging (Nesterov 2009; Hoffman & Gelman 2014, γ = 0.05, t0 = 10,
κ = 0.75) toward ``target_acceptance`` (default 0.574, the optimal MALA acceptance of Roberts
& Rosenthal 1998), restarted at ``μ = log(10 h)`` after every slow window; the warm-up returns
the averaged iterate.  The final fast window is 200 steps by default, not Stan's 50: MALA's
single-proposal acceptance is much noisier than NUTS' tree average, and after 50 steps the step
size came out systematically too large (Markov task, N = 100: sampling acceptance 0.25–0.31
instead of 0.574; with 200 steps 0.55–0.61).  Warm-ups shorter than the three buffers use
Stan's 15 % / 75 % / 10 % split; fewer than 20 steps adapt the step size only.

Two proposals (``build(proposal=...)``): the Euler–Maruyama step above, for any target, and — the default
for a target that gives its Gaussian prior apart, as the collapsed weight posterior does — the
prior-preserving Crank–Nicolson step of :mod:`smtheory.sims.crank_nicolson` (pCNL), with the same warm-up
(the inverse mass matrix then in whitened units ``x / s``).  Why: with the Euler step the adapted step
size falls like ``n_dims^(-1/3)``; on the 4-path Markov task at T = 0.01 (P = 100, 4 chains, float64)
h ≈ 0.016 at N = 1000 (4·10⁶ weights), the slowest U_1 entry's autocorrelation time grows to about 150
steps and R-hat ≤ 1.01 would need some 30 000 steps per chain.  The Crank–Nicolson step keeps h ≈ 0.9
there (acceptance 0.53–0.67) and the worst entry's ESS was 167 from 4 × 300 draws after a 300-step
warm-up; at N = 100, 500 + 1000 steps gave ESS 511 (R-hat 1.010) against 34 (R-hat 1.097) with the
Euler step.  With ``smtheory sample``'s defaults (500 warm-up + 1000 steps, extended while R-hat > 1.01)
it converged at N = 10 (R-hat 1.009 after two extensions, 59 s), N = 100 (1.004 after one, 52 s) and
N = 1000 (1.006, worst-entry ESS 1215, after one extension: 34 minutes on one core); the fixed-length
comparison with the other samplers is ``benchmarks/results/bench_collapsed.md``.  At N = 1000 a transition
costs about 0.15–0.2 s of CPU per chain, most of it drawing the 4·10⁶ float64 normals.

Cost: one gradient evaluation per transition (the gradient at the current point is carried in
the state), plus O(n_dims) elementwise work and ``n_dims`` standard normals.  Everything is
pure JAX and single-chain (the driver vmaps over chains); positions keep their dtype
(float32 stays float32).
"""
from __future__ import annotations

import math
from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from smtheory.checks import InputError

from . import crank_nicolson as cn
from .collapsed_base import CollapsedTarget, Kernel, KernelInfo, KernelParams

__all__ = ["LangevinState", "WarmupSchedule", "PROPOSALS", "warmup_schedule", "initial_state", "transition", "build"]

#: ``build(proposal=...)``: "auto" takes "crank-nicolson" for a target with its Gaussian prior apart.
PROPOSALS = ("auto", "crank-nicolson", "euler")

# dual averaging constants (Hoffman & Gelman 2014; Stan's defaults)
_DA_GAMMA, _DA_T0, _DA_KAPPA = 0.05, 10.0, 0.75
# Stan's regularisation of the diagonal variance estimate
_REG_COUNT, _REG_VALUE = 5.0, 1e-3


class LangevinState(NamedTuple):
    """One chain: the position and the log density and its gradient there."""

    position: jax.Array
    logdensity: jax.Array
    logdensity_grad: jax.Array


class WarmupSchedule(NamedTuple):
    """Per-step flags of the windowed warm-up (NumPy bool arrays of length ``num_steps``)."""

    slow: np.ndarray  # accumulate the variance estimate after this step
    window_end: np.ndarray  # update the mass matrix and restart dual averaging after this step


class _DualAveraging(NamedTuple):
    log_step: jax.Array
    log_step_avg: jax.Array
    h_bar: jax.Array
    mu: jax.Array
    count: jax.Array


class _Welford(NamedTuple):
    mean: jax.Array
    m2: jax.Array
    count: jax.Array


def warmup_schedule(num_steps, initial_buffer=75, final_buffer=50, first_window=25) -> WarmupSchedule:
    """Stan's windowed-adaptation schedule (docs/theory.md §8.1, collapsed sampling).

    Parameters
    ----------
    num_steps : int
        Number of warm-up steps (≥ 0).
    initial_buffer, final_buffer, first_window : int
        Stan's ``init_buffer``, ``term_buffer`` and ``window``.  When their sum exceeds
        ``num_steps`` Stan's 15 % / 75 % / 10 % split is used; below 20 steps there are no slow
        windows (step size only).

    Returns
    -------
    WarmupSchedule
    """
    n = _non_negative_int("num_steps", num_steps)
    slow = np.zeros(n, bool)
    end = np.zeros(n, bool)
    if n < 20:
        return WarmupSchedule(slow, end)
    init, term, size = int(initial_buffer), int(final_buffer), int(first_window)
    if init + term + size > n:
        init, term = int(0.15 * n), int(0.1 * n)
        size = n - init - term
    start, stop = init, n - term
    while start < stop:
        if start + 3 * size > stop:  # the next (doubled) window would not fit: stretch this one
            size = stop - start
        slow[start:start + size] = True
        end[start + size - 1] = True
        start += size
        size *= 2
    return WarmupSchedule(slow, end)


def initial_state(target: CollapsedTarget, position) -> LangevinState:
    """The Langevin state at ``position`` (log density and gradient evaluated once)."""
    position = jnp.asarray(position, target.dtype)
    ld, g = jax.value_and_grad(target.logdensity)(position)
    return LangevinState(position, ld.astype(position.dtype), g.astype(position.dtype))


def _log_proposal_ratio(x, g, x_new, g_new, h, m):
    """``log q(x | x') − log q(x' | x)`` for the Gaussian proposal, in cancellation-free form.

    With Δ = x' − x: ``−½ (g + g')·Δ + (h/8) (g + g')·(m ⊙ (g − g'))``.
    """
    s = g + g_new
    return -0.5 * jnp.sum(s * (x_new - x)) + 0.125 * h * jnp.sum(s * m * (g - g_new))


def transition(target: CollapsedTarget, key, state: LangevinState, step_size, inverse_mass_matrix,
               adjusted=True):
    """One preconditioned Langevin transition (MALA if ``adjusted``, else ULA).

    Parameters
    ----------
    target : CollapsedTarget
    key : PRNG key
    state : LangevinState
    step_size : scalar h
    inverse_mass_matrix : array [n_dims], the diagonal m = M⁻¹
    adjusted : bool
        Apply the Metropolis–Hastings correction (static).

    Returns
    -------
    (LangevinState, KernelInfo)
        ``acceptance_rate`` is the MH acceptance probability ``min(1, r)`` (computed for ULA
        too, not applied).
    """
    x, g = state.position, state.logdensity_grad
    dt = x.dtype
    h = jnp.asarray(step_size, dt)
    m = jnp.asarray(inverse_mass_matrix, dt)
    k_noise, k_accept = jax.random.split(key)
    noise = jax.random.normal(k_noise, x.shape, dt)
    x_new = x + (0.5 * h) * m * g + jnp.sqrt(h * m) * noise
    ld_new, g_new = jax.value_and_grad(target.logdensity)(x_new)
    ld_new, g_new = ld_new.astype(dt), g_new.astype(dt)
    log_r = ld_new - state.logdensity + _log_proposal_ratio(x, g, x_new, g_new, h, m)
    finite = jnp.isfinite(log_r) & jnp.all(jnp.isfinite(g_new))
    log_r = jnp.where(finite, log_r, -jnp.inf)
    acc = jnp.exp(jnp.minimum(log_r, 0.0))
    proposed = LangevinState(x_new, ld_new, g_new)
    if adjusted:
        u = jax.random.uniform(k_accept, (), dt)
        take = jnp.log(u) < log_r
        new = jax.tree.map(lambda a, b: jnp.where(take, a, b), proposed, state)
    else:
        new = proposed
    is_finite = jnp.isfinite(new.logdensity) & jnp.all(jnp.isfinite(new.position))
    return new, KernelInfo(is_finite, acc, jnp.asarray(1, jnp.int32))


def _da_init(step_size):
    log_h = jnp.log(jnp.asarray(step_size, jnp.float64))
    z = jnp.zeros((), jnp.float64)
    return _DualAveraging(log_h, log_h, z, jnp.log(10.0) + log_h, z)


def _da_update(da: _DualAveraging, acceptance, target_acceptance, log_h_max=jnp.inf):
    """Nesterov dual averaging on log h (Hoffman & Gelman 2014, Algorithm 5), log h capped at ``log_h_max``."""
    t = da.count + 1.0
    w = 1.0 / (t + _DA_T0)
    acc = jnp.where(jnp.isfinite(acceptance), acceptance, 0.0).astype(jnp.float64)
    h_bar = (1.0 - w) * da.h_bar + w * (target_acceptance - acc)
    log_h = jnp.minimum(da.mu - jnp.sqrt(t) / _DA_GAMMA * h_bar, log_h_max)
    eta = t ** (-_DA_KAPPA)
    log_avg = eta * log_h + (1.0 - eta) * da.log_step_avg
    return _DualAveraging(log_h, log_avg, h_bar, da.mu, t)


def _welford_init(x):
    return _Welford(jnp.zeros_like(x), jnp.zeros_like(x), jnp.zeros((), x.dtype))


def _welford_update(wf: _Welford, x):
    n = wf.count + 1
    delta = x - wf.mean
    mean = wf.mean + delta / n
    return _Welford(mean, wf.m2 + delta * (x - mean), n)


def _regularised_variance(wf: _Welford):
    """Stan's regularised diagonal variance ``n/(n+5) var + 1e-3 · 5/(n+5)``."""
    n = wf.count
    var = wf.m2 / jnp.maximum(n - 1, 1)
    return (n / (n + _REG_COUNT)) * var + _REG_VALUE * (_REG_COUNT / (n + _REG_COUNT))


class _Proposal(NamedTuple):
    """What the warm-up needs of a proposal: its state, its transition, the coordinates in which the
    inverse mass matrix is estimated, the default initial step and the largest useful step."""

    initial_state: Callable
    transition: Callable
    unit: Callable
    initial_step: Callable
    log_step_max: Callable


def _proposal(target, name):
    """The Euler (:func:`transition`) or Crank–Nicolson (:mod:`.crank_nicolson`) proposal."""
    if name == "euler":
        return _Proposal(initial_state, partial(transition, target), lambda x: x,
                         lambda: target.n_dims ** (-1.0 / 3.0),
                         lambda m: jnp.inf)
    # Crank–Nicolson: δ = h m / 2 is capped at DELTA_MAX, so h beyond 2 DELTA_MAX / min(m) changes nothing
    return _Proposal(cn.initial_state, partial(cn.transition, target), partial(cn.unit_coordinates, target),
                     lambda: 1.0, lambda m: jnp.log(2.0 * cn.DELTA_MAX / jnp.min(m)).astype(jnp.float64))


def _warmup(target, adjusted, target_acceptance, initial_step_size, windows, proposal, key, position, num_steps):
    """Windowed adaptation of one chain (see the module docstring); ``windows=None``: step size only."""
    if windows is None:
        sched = WarmupSchedule(np.zeros(num_steps, bool), np.zeros(num_steps, bool))
    else:
        sched = warmup_schedule(num_steps, *windows)
    prop = _proposal(target, proposal)
    state = prop.initial_state(target, position)
    dt = state.position.dtype
    h0 = initial_step_size if initial_step_size is not None else prop.initial_step()
    unit0 = prop.unit(state.position)
    carry0 = (state, jnp.ones_like(state.position), _da_init(h0), _welford_init(unit0))

    def one(carry, xs):
        state, m, da, wf = carry
        k, slow, end = xs
        state, info = prop.transition(k, state, jnp.exp(da.log_step).astype(dt), m, adjusted)
        da = _da_update(da, info.acceptance_rate, target_acceptance, prop.log_step_max(m))
        wf = jax.lax.cond(slow, lambda w: _welford_update(w, prop.unit(state.position)), lambda w: w, wf)

        def close_window(args):
            m, da, wf = args
            return _regularised_variance(wf).astype(dt), _da_init(jnp.exp(da.log_step_avg)), \
                _welford_init(unit0)

        m, da, wf = jax.lax.cond(end, close_window, lambda args: args, (m, da, wf))
        return (state, m, da, wf), None

    if num_steps > 0:
        keys = jax.random.split(key, num_steps)
        xs = (keys, jnp.asarray(sched.slow), jnp.asarray(sched.window_end))
        (state, m, da, _), _ = jax.lax.scan(one, carry0, xs)
    else:
        state, m, da, _ = carry0
    return state, KernelParams(jnp.exp(da.log_step_avg).astype(dt), m)


def _non_negative_int(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InputError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _check_build(target, adjusted, target_acceptance, initial_step_size):
    if not isinstance(target, CollapsedTarget):
        raise InputError(f"target must be a smtheory.sims.collapsed_base.CollapsedTarget, got {type(target).__name__}")
    if not isinstance(adjusted, (bool, np.bool_)):
        raise InputError(f"adjusted must be True (MALA) or False (ULA), got {adjusted!r}")
    try:
        ta = float(target_acceptance)
    except (TypeError, ValueError):
        raise InputError(f"target_acceptance must be a number in (0, 1), got {target_acceptance!r}") from None
    if not 0.0 < ta < 1.0:
        raise InputError(f"target_acceptance must be in (0, 1), got {target_acceptance!r}")
    if initial_step_size is not None:
        try:
            h0 = float(initial_step_size)
        except (TypeError, ValueError):
            raise InputError(f"initial_step_size must be a positive number or None, "
                             f"got {initial_step_size!r}") from None
        if not (h0 > 0 and math.isfinite(h0)):
            raise InputError(f"initial_step_size must be a finite positive number, got {initial_step_size!r}")
        initial_step_size = h0
    return bool(adjusted), ta, initial_step_size


def build(target: CollapsedTarget, *, adjusted=True, proposal="auto", target_acceptance=0.574,
          initial_step_size=None, initial_buffer=75, first_window=25, final_buffer=200,
          adapt_mass_matrix=True) -> Kernel:
    """Preconditioned Langevin kernel with windowed warm-up for a collapsed target.

    See the module docstring, :mod:`smtheory.sims.crank_nicolson` and docs/theory.md §8.1.

    Parameters
    ----------
    target : CollapsedTarget
    adjusted : bool
        True: Metropolis-adjusted (exact target).  False: every proposal taken (O(h) bias).
    proposal : {"auto", "crank-nicolson", "euler"}
        ``"crank-nicolson"``: the prior-preserving pCNL proposal, whose acceptance does not fall with the
        dimension (needs ``target.log_likelihood`` and ``target.prior_std``, as the collapsed weight posterior
        has); ``"euler"``: the Euler–Maruyama proposal (MALA / ULA), for any target.  ``"auto"`` (default):
        Crank–Nicolson where the target allows it.
    target_acceptance : float in (0, 1)
        Mean MH acceptance probability the dual averaging aims at (default 0.574).
    initial_step_size : float, optional
        Starting step size ``h`` of the warm-up; default ``n_dims^(-1/3)`` for the Euler proposal (the
        MALA scaling of the optimal step in dimension n_dims for unit-variance coordinates) and 1 for
        Crank–Nicolson (``δ = ½``).
    initial_buffer, first_window, final_buffer : int
        Warm-up windows (:func:`warmup_schedule`); Stan's 75 and 25, and a final window of
        200 steps instead of Stan's 50 (see the module docstring).
    adapt_mass_matrix : bool
        False: keep the identity inverse mass matrix (Crank–Nicolson: the prior covariance) and adapt the
        step size only, over the whole warm-up.

    Returns
    -------
    Kernel
        ``warmup(key, position, num_steps) -> (state, KernelParams)`` and
        ``step(key, state, params) -> (state, KernelInfo)``, one chain each; ``name`` is ``"mala"`` or
        ``"ula"`` (Euler), ``"pcnl"`` or ``"pcn-ula"`` (Crank–Nicolson).
    """
    adjusted, ta, h0 = _check_build(target, adjusted, target_acceptance, initial_step_size)
    windows = tuple(_non_negative_int(n, v) for n, v in
                    [("initial_buffer", initial_buffer), ("final_buffer", final_buffer), ("first_window", first_window)])
    if windows[2] == 0:
        raise InputError("first_window must be a positive integer, got 0")
    if not isinstance(adapt_mass_matrix, (bool, np.bool_)):
        raise InputError(f"adapt_mass_matrix must be True or False, got {adapt_mass_matrix!r}")
    if proposal not in PROPOSALS:
        raise InputError(f"proposal must be one of {', '.join(map(repr, PROPOSALS))}, got {proposal!r}")
    if proposal == "auto":
        proposal = "crank-nicolson" if cn.supports(target) else "euler"
    elif proposal == "crank-nicolson" and not cn.supports(target):
        raise InputError(f"proposal='crank-nicolson' needs a target with its Gaussian prior apart "
                         f"(log_likelihood and prior_std); target {target.name!r} has none: use 'euler'")
    windows = windows if adapt_mass_matrix else None
    prop = _proposal(target, proposal)

    def warmup(key, position, num_steps):
        return _warmup(target, adjusted, ta, h0, windows, proposal, key, position, num_steps)

    def step(key, state, params):
        return prop.transition(key, state, params.step_size, params.inverse_mass_matrix, adjusted)

    names = {"euler": ("mala", "ula"), "crank-nicolson": ("pcnl", "pcn-ula")}[proposal]
    return Kernel(warmup, step, names[0] if adjusted else names[1])
