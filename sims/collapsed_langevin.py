"""Preconditioned Langevin (MALA / ULA) with Stan-style warm-up for a collapsed target.

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

Measured on the 4-path Markov task at T = 0.01 (P = 100, 4 chains, float64, one shared CPU
core; tests/test_collapsed.py): 1000 warm-up + 8000 steps give R-hat 1.0034 (worst U_1 entry,
bulk ESS 922) at N = 10, and 2000 + 8000 steps give 1.0066 (ESS 1169) at N = 100; the slowest
entry's integrated autocorrelation time is about 30–40 steps at both widths.  At N = 1000
(n_dims = 4·10⁶) a step costs about 0.35 s of CPU per chain, three quarters of it drawing the
float64 normals; the step size falls to h ≈ 0.016 (the d^(-1/3) scaling of MALA) and the
autocorrelation time grows to about 150 steps, so R-hat ≤ 1.01 needs some 30 000 steps per chain
(about 12 CPU hours).  There the short slow windows also underestimate the variances of the
slowly mixing coordinates (adapted m ≈ 0.08 where the posterior variance is ≈ 1);
``adapt_mass_matrix=False`` keeps the identity, which is the right scale at large N (at N = 100
it gave R-hat 1.0049, ESS 1318, as good as the adapted matrix).

Cost: one gradient evaluation per transition (the gradient at the current point is carried in
the state), plus O(n_dims) elementwise work and ``n_dims`` standard normals.  Everything is
pure JAX and single-chain (the driver vmaps over chains); positions keep their dtype
(float32 stays float32).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from smtheory.checks import InputError

from .collapsed_base import CollapsedTarget, Kernel, KernelInfo, KernelParams

__all__ = ["LangevinState", "WarmupSchedule", "warmup_schedule", "initial_state", "transition", "build"]

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


def _da_update(da: _DualAveraging, acceptance, target_acceptance):
    """Nesterov dual averaging on log h (Hoffman & Gelman 2014, Algorithm 5)."""
    t = da.count + 1.0
    w = 1.0 / (t + _DA_T0)
    acc = jnp.where(jnp.isfinite(acceptance), acceptance, 0.0).astype(jnp.float64)
    h_bar = (1.0 - w) * da.h_bar + w * (target_acceptance - acc)
    log_h = da.mu - jnp.sqrt(t) / _DA_GAMMA * h_bar
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


def _warmup(target, adjusted, target_acceptance, initial_step_size, windows, key, position, num_steps):
    """Windowed adaptation of one chain (see the module docstring); ``windows=None``: step size only."""
    if windows is None:
        sched = WarmupSchedule(np.zeros(num_steps, bool), np.zeros(num_steps, bool))
    else:
        sched = warmup_schedule(num_steps, *windows)
    state = initial_state(target, position)
    dt = state.position.dtype
    h0 = initial_step_size if initial_step_size is not None else target.n_dims ** (-1.0 / 3.0)
    carry0 = (state, jnp.ones_like(state.position), _da_init(h0), _welford_init(state.position))

    def one(carry, xs):
        state, m, da, wf = carry
        k, slow, end = xs
        state, info = transition(target, k, state, jnp.exp(da.log_step).astype(dt), m, adjusted)
        da = _da_update(da, info.acceptance_rate, target_acceptance)
        wf = jax.lax.cond(slow, lambda w: _welford_update(w, state.position), lambda w: w, wf)

        def close_window(args):
            m, da, wf = args
            return _regularised_variance(wf).astype(dt), _da_init(jnp.exp(da.log_step_avg)), \
                _welford_init(state.position)

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


def build(target: CollapsedTarget, *, adjusted=True, target_acceptance=0.574, initial_step_size=None,
          initial_buffer=75, first_window=25, final_buffer=200, adapt_mass_matrix=True) -> Kernel:
    """Preconditioned Langevin kernel with windowed warm-up for a collapsed target.

    See the module docstring and docs/theory.md §8.1.

    Parameters
    ----------
    target : CollapsedTarget
    adjusted : bool
        True: MALA (exact target).  False: ULA (every proposal taken; O(h) bias).
    target_acceptance : float in (0, 1)
        Mean MH acceptance probability the dual averaging aims at (default 0.574).
    initial_step_size : float, optional
        Starting step size ``h`` of the warm-up; default ``n_dims^(-1/3)`` (the MALA scaling
        of the optimal step in dimension n_dims for unit-variance coordinates).
    initial_buffer, first_window, final_buffer : int
        Warm-up windows (:func:`warmup_schedule`); Stan's 75 and 25, and a final window of
        200 steps instead of Stan's 50 (see the module docstring).
    adapt_mass_matrix : bool
        False: keep the identity mass matrix and adapt the step size only, over the whole
        warm-up (for targets already on unit scale, e.g. the collapsed posterior at large N,
        where short slow windows underestimate the variances of slowly mixing coordinates).

    Returns
    -------
    Kernel
        ``warmup(key, position, num_steps) -> (LangevinState, KernelParams)`` and
        ``step(key, state, params) -> (LangevinState, KernelInfo)``, one chain each;
        ``name`` is ``"mala"`` or ``"ula"``.
    """
    adjusted, ta, h0 = _check_build(target, adjusted, target_acceptance, initial_step_size)
    windows = tuple(_non_negative_int(n, v) for n, v in
                    [("initial_buffer", initial_buffer), ("final_buffer", final_buffer), ("first_window", first_window)])
    if windows[2] == 0:
        raise InputError("first_window must be a positive integer, got 0")
    if not isinstance(adapt_mass_matrix, (bool, np.bool_)):
        raise InputError(f"adapt_mass_matrix must be True or False, got {adapt_mass_matrix!r}")
    windows = windows if adapt_mass_matrix else None

    def warmup(key, position, num_steps):
        return _warmup(target, adjusted, ta, h0, windows, key, position, num_steps)

    def step(key, state, params):
        return transition(target, key, state, params.step_size, params.inverse_mass_matrix, adjusted)

    return Kernel(warmup, step, "mala" if adjusted else "ula")
