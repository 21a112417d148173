"""MCMC convergence diagnostics: rank-normalised split R-hat, bulk ESS, MCSE of the mean.

Implemented in NumPy after Vehtari, Gelman, Simpson, Carpenter & Bürkner, "Rank-normalization,
folding, and localization: an improved R-hat for assessing convergence of MCMC",
Bayesian Analysis 16 (2021), reproducing ArviZ's conventions exactly
(``arviz.rhat(method="rank")``, ``arviz.ess(method="bulk")``, ``arviz.mcse(method="mean")``):

* chains are split in halves (the middle draw of an odd-length chain is dropped);
* rank normalisation: average ranks over all (split) draws, Blom offset ``(r − 3/8)/(S + 1/4)``,
  then the standard-normal quantile;
* R-hat is ``max(R̂_bulk, R̂_tail)``, the tail version on ``|θ − median|``;
* ESS uses the FFT autocovariance of every chain, the combined-chain variance estimate
  ``var⁺`` and Geyer's initial positive + initial monotone sequence, with ArviZ's
  truncation and the floor ``τ ≥ 1/log10(S)``;
* MCSE of the mean is ``sd(all draws) / sqrt(ESS_mean)`` with the split-chain (not rank
  normalised) ESS.

Every function takes an array ``[chains, draws, ...]`` and is vectorised over trailing
dimensions.  Entries whose draws contain NaN or ±inf give NaN.  A constant entry gives
R-hat NaN (0/0, as in ArviZ) and ESS equal to the number of split draws.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.fft import next_fast_len
from scipy.special import ndtri
from scipy.stats import rankdata

from smtheory.checks import InputError

__all__ = ["ConvergenceWarning", "rhat", "ess_bulk", "ess_mean", "mcse_mean", "jackknife_mcse", "summarize", "RHAT_THRESHOLD"]

#: R-hat above which :func:`summarize` warns (Vehtari et al. 2021 recommend 1.01).
RHAT_THRESHOLD = 1.01


class ConvergenceWarning(UserWarning):
    """Chains have not mixed (R-hat above threshold) or contain non-finite draws."""


# --------------------------------------------------------------------------- input handling
def _as_draws(x, name, min_chains):
    """``x`` as float64 ``[chains, draws, K]`` plus the trailing shape."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a numeric array [chains, draws, ...], got {type(x).__name__}") from None
    if arr.ndim < 2:
        raise InputError(f"{name} must have shape [chains, draws, ...] (at least 2 dimensions), "
                         f"got shape {arr.shape}")
    if arr.shape[0] < min_chains:
        raise InputError(f"{name} must have at least {min_chains} chains (axis 0), got shape {arr.shape}")
    if arr.shape[1] < 4:
        raise InputError(f"{name} must have at least 4 draws (axis 1), got shape {arr.shape}")
    trailing = arr.shape[2:]
    return arr.reshape(arr.shape[0], arr.shape[1], -1), trailing


def _split_chains(a):
    """[C, N, K] -> [2C, N//2, K]: first and last halves of every chain."""
    half = a.shape[1] // 2
    return np.concatenate([a[:, :half], a[:, a.shape[1] - half:]], axis=0)


def _z_scale(a):
    """Rank-normalise [C, N, K] over all C·N draws of every trailing entry."""
    C, N, K = a.shape
    flat = a.reshape(C * N, K)
    ranks = rankdata(flat, method="average", axis=0)
    S = C * N
    return ndtri((ranks - 0.375) / (S + 0.25)).reshape(C, N, K)


def _finite_mask(a):
    """[K] — True where every draw is finite."""
    return np.all(np.isfinite(a), axis=(0, 1))


# --------------------------------------------------------------------------- R-hat
def _rhat_classic(a):
    """Potential scale reduction of [C, N, K] (already split)."""
    N = a.shape[1]
    chain_mean = a.mean(axis=1)
    chain_var = a.var(axis=1, ddof=1)
    B = N * chain_mean.var(axis=0, ddof=1)
    W = chain_var.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((B / W + N - 1) / N)


def _rhat_rank(a):
    split = _split_chains(a)
    bulk = _rhat_classic(_z_scale(split))
    med = np.median(split.reshape(-1, split.shape[2]), axis=0)
    tail = _rhat_classic(_z_scale(np.abs(split - med)))
    return np.maximum(bulk, tail)  # NaN propagates


def rhat(x, name="x"):
    """Rank-normalised split R-hat (Vehtari et al. 2021), ``max(bulk, tail)``.

    Parameters
    ----------
    x : array [chains, draws, ...]
        At least 2 chains and 4 draws.
    name : str
        Parameter name used in error messages.

    Returns
    -------
    float or array of the trailing shape
    """
    a, trailing = _as_draws(x, name, min_chains=2)
    ok = _finite_mask(a)
    safe = np.where(ok, a, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(ok, _rhat_rank(safe), np.nan)
    return _shape_out(out, trailing)


# --------------------------------------------------------------------------- ESS
def _autocov(a):
    """FFT autocovariance along axis 1 of [C, N, K], biased (divided by N), lags 0..N-1."""
    N = a.shape[1]
    m = next_fast_len(2 * N, real=True)  # zero padding ≥ 2N − 1: no circular wrap-around
    c = a - a.mean(axis=1, keepdims=True)
    f = np.fft.rfft(c, n=m, axis=1)
    acov = np.fft.irfft(f * np.conjugate(f), n=m, axis=1)[:, :N]
    return acov / N


def _ess_raw(a):
    """ESS of [C, N, K] (chains already split / transformed), Geyer initial monotone sequence."""
    C, N, K = a.shape
    acov = _autocov(a)  # [C, N, K]
    chain_mean = a.mean(axis=1)  # [C, K]
    mean_var = acov[:, 0].mean(axis=0) * N / (N - 1.0)  # [K]
    var_plus = mean_var * (N - 1.0) / N
    if C > 1:
        var_plus = var_plus + chain_mean.var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var - acov.mean(axis=0)) / var_plus  # [N, K]
    rho[0] = 1.0

    # Geyer's initial positive sequence on pair sums S_k = ρ_{2k} + ρ_{2k+1}, k = 0..k_max,
    # where k_max is the last pair ArviZ's loop can reach (t < N − 3).
    k_max = max(0, (N - 3) // 2)
    n_pairs = k_max + 1
    S = rho[0:2 * n_pairs:2] + rho[1:2 * n_pairs:2]  # [n_pairs, K]
    nonpos = ~(S > 0)
    first_nonpos = np.where(nonpos.any(axis=0), np.argmax(nonpos, axis=0), n_pairs)
    k_star = np.minimum(k_max, first_nonpos)  # pairs 0..k*-1 accepted
    # Pairs 0..k*-1 are all positive; the initial monotone sequence is their running minimum.
    S_mono = np.minimum.accumulate(S, axis=0)
    idx = np.arange(n_pairs)[:, None]
    head = np.sum(np.where(idx < k_star, S_mono, 0.0), axis=0)
    # ArviZ adds ρ_{2k*} once more when it was kept (pair sum ≥ 0) or is positive.
    cols = np.arange(K)
    rho_last = rho[2 * k_star, cols]
    S_last = S[k_star, cols]
    last = np.where((k_star == 0) | (S_last >= 0) | (rho_last > 0), rho_last, 0.0)
    tau = -1.0 + 2.0 * head + last
    total = C * N
    tau = np.maximum(tau, 1.0 / np.log10(total))
    ess = total / tau
    ess = np.where(np.isnan(rho).any(axis=0), np.nan, ess)
    # ArviZ: a (numerically) constant chain set has ESS = number of draws.
    const = (a.max(axis=(0, 1)) - a.min(axis=(0, 1))) < np.finfo(float).resolution
    return np.where(const, float(total), ess)


def _shape_out(v, trailing):
    v = np.asarray(v, dtype=np.float64).reshape(trailing)
    return float(v) if v.ndim == 0 else v


def ess_bulk(x, name="x"):
    """Bulk effective sample size: ESS of the rank-normalised split chains.

    Parameters
    ----------
    x : array [chains, draws, ...]
        At least 1 chain and 4 draws.

    Returns
    -------
    float or array of the trailing shape
    """
    a, trailing = _as_draws(x, name, min_chains=1)
    ok = _finite_mask(a)
    safe = np.where(ok, a, 0.0)
    out = np.where(ok, _ess_raw(_z_scale(_split_chains(safe))), np.nan)
    return _shape_out(out, trailing)


def ess_mean(x, name="x"):
    """ESS for the mean: ESS of the split chains without rank normalisation."""
    a, trailing = _as_draws(x, name, min_chains=1)
    ok = _finite_mask(a)
    safe = np.where(ok, a, 0.0)
    out = np.where(ok, _ess_raw(_split_chains(safe)), np.nan)
    return _shape_out(out, trailing)


def mcse_mean(x, name="x"):
    """Monte-Carlo standard error of the mean, ``sd(all draws, ddof=1) / sqrt(ESS_mean)``."""
    a, trailing = _as_draws(x, name, min_chains=1)
    ok = _finite_mask(a)
    safe = np.where(ok, a, 0.0)
    sd = safe.reshape(-1, safe.shape[2]).std(axis=0, ddof=1)
    out = np.where(ok, sd / np.sqrt(_ess_raw(_split_chains(safe))), np.nan)
    return _shape_out(out, trailing)


def jackknife_mcse(batch_sums, batch_counts, functional, groups_per_chain=10):
    """Monte-Carlo error of a nonlinear functional of a posterior mean, by a batch-means jackknife.

    For functionals of the mean predictor that are not themselves per-draw averages (e.g. the
    accuracy ``mean(sign⟨f⟩ = y)``), consecutive draws of each chain are grouped into
    ``groups_per_chain`` batches; the functional is recomputed with each batch left out, and
    ``se² = (B − 1)/B Σ_b (F_(−b) − F̄)²`` over the ``B = chains × groups`` batches.  Valid when a
    batch is much longer than the autocorrelation time (check the ESS of the traced scalars).

    Parameters
    ----------
    batch_sums : array [n_batches, chains, ...]
        Sums of the observable over consecutive blocks of draws, in time order.
    batch_counts : array [n_batches]
        Draws in each block (the same for every chain).
    functional : callable
        ``functional(mean) -> float``, applied to a mean of the observable.
    groups_per_chain : int
        Jackknife batches per chain (consecutive blocks are merged; at most ``n_batches``).

    Returns
    -------
    (float, float)
        The functional of the overall mean and its jackknife standard error (NaN with fewer
        than 2 batches in all).
    """
    sums = np.asarray(batch_sums, dtype=np.float64)
    counts = np.asarray(batch_counts, dtype=np.float64)
    if sums.ndim < 2 or sums.shape[0] != counts.shape[0]:
        raise InputError(f"batch_sums must be [n_batches, chains, ...] with n_batches = len(batch_counts) "
                         f"= {counts.shape[0]}, got shape {sums.shape}")
    n_b, chains = sums.shape[:2]
    total, n_total = sums.sum(axis=(0, 1)), counts.sum() * chains
    estimate = float(functional(total / n_total))
    g = max(1, min(int(groups_per_chain), n_b))
    edges = np.linspace(0, n_b, g + 1).round().astype(int)
    units = []  # (sum, count) of each (group, chain)
    for lo, hi in zip(edges[:-1], edges[1:]):
        for c in range(chains):
            units.append((sums[lo:hi, c].sum(axis=0), counts[lo:hi].sum()))
    B = len(units)
    if B < 2:
        return estimate, float("nan")
    loo = np.array([functional((total - s) / (n_total - n)) for s, n in units], dtype=np.float64)
    se = math.sqrt((B - 1) / B * np.sum((loo - loo.mean()) ** 2))
    return estimate, se


# --------------------------------------------------------------------------- summary
def summarize(traces, threshold=RHAT_THRESHOLD, warn=True):
    """Diagnostics of every traced observable.

    Parameters
    ----------
    traces : dict name -> array [chains, draws, ...]
        At least 2 chains and 4 draws each (e.g. :func:`smtheory.sims.observables.trace_scalars`
        stacked over draws and chains, chain axis first).
    threshold : float
        R-hat above which an observable is reported as not converged (default 1.01).
    warn : bool
        Emit a :class:`ConvergenceWarning` naming the observables with R-hat above
        ``threshold`` or with non-finite draws.

    Returns
    -------
    dict
        ``{name: {"rhat", "ess_bulk", "mcse"}}`` (floats or arrays of the trailing shape), plus
        ``"rhat_max"`` and ``"ess_min"`` over all entries (NaN-ignoring), ``"not_converged"``
        (sorted list of flagged names) and ``"nonfinite"`` (names with non-finite draws).
    """
    if not isinstance(traces, dict) or not traces:
        raise InputError(f"traces must be a non-empty dict name -> array [chains, draws, ...], got {traces!r:.80}")
    out = {}
    flagged, nonfinite = [], []
    rmax, emin = [], []
    for key, x in traces.items():
        pname = f"traces[{key!r}]"
        r = rhat(x, name=pname)
        e = ess_bulk(x, name=pname)
        m = mcse_mean(x, name=pname)
        out[key] = {"rhat": r, "ess_bulk": e, "mcse": m}
        r_arr, e_arr = np.atleast_1d(r), np.atleast_1d(e)
        if not np.all(np.isfinite(np.asarray(x, dtype=np.float64))):
            nonfinite.append(str(key))
        if np.any(r_arr > threshold):
            flagged.append(str(key))
        rmax.append(r_arr)
        emin.append(e_arr)
    r_all, e_all = np.concatenate(rmax), np.concatenate(emin)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        out["rhat_max"] = float(np.nanmax(r_all)) if np.any(~np.isnan(r_all)) else float("nan")
        out["ess_min"] = float(np.nanmin(e_all)) if np.any(~np.isnan(e_all)) else float("nan")
    out["not_converged"] = sorted(flagged)
    out["nonfinite"] = sorted(nonfinite)
    if warn and (flagged or nonfinite):
        parts = []
        if flagged:
            parts.append(f"R-hat > {threshold} for {', '.join(sorted(flagged))} "
                         f"(max R-hat {out['rhat_max']:.4g}): chains have not mixed; run longer or check the sampler")
        if nonfinite:
            parts.append(f"non-finite draws in {', '.join(sorted(nonfinite))}")
        warnings.warn("; ".join(parts), ConvergenceWarning, stacklevel=2)
    return out
