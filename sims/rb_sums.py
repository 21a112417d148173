"""Rao-Blackwellised predictor summed over draws in path-pair space (docs/theory.md §8.3).

The same estimates as :func:`smtheory.sims.rao_blackwell.conditional_moments` applied draw by draw, at a cost
per draw that does not grow with the number of test points ``Q``.  With ``w = U_{ππ'}`` (``π ≤ π'``,
:func:`smtheory.pair_blocks.pair_weights`) the test–train kernel is ``k*(x_q) = Σ_p w_p c_p(q)`` (``c_p(q)`` a
row of the pair block ``p``), so with ``G = (K + T I)⁻¹``, ``α = G Y`` and ``W = α αᵀ − G``

    m(x_q) = k*ᵀ α,        m(x_q)² + v(x_q) = k** + k*ᵀ W k* = k** + Σ_{p,p'} w_p w_p' c_p(q)ᵀ W c_p'(q).

Per draw only ``P``-sized quantities are formed: ``K``, ``G`` (one ``P × P`` factorisation), the conditional test
MSE ``(1/Q) Σ_q [(m − y)² + v]`` from the precomputed ``M_pp' = Σ_q c_p(q) c_p'(q)ᵀ`` and ``z_p = Σ_q y_q c_p(q)``,
and two running sums, ``A_p = Σ w_p α`` and ``S_pp' = Σ w_p w_p' W`` (``p ≤ p'``).  The per-point predictive mean
``E m = Σ_p c_p · A_p / n`` and variance ``E[m² + v] − (E m)²`` (law of total variance over the draws) are
formed once from the sums (:func:`finalize`), and block sums of ``m`` (for the jackknife error of the accuracy)
from differences of ``A`` (:func:`block_f_sums`).

Cost per draw: ``O(P³)`` for ``G`` and ``2 n_q P²`` (``n_q = n_p(n_p + 1)/2``, ``n_p = D(D + 1)/2``) for the
MSE and ``S``, against ``Q (5/8 P² + n_p P)`` for the per-point variances of the draw-by-draw route;
:func:`sums_data` chooses this route only when it is cheaper and its arrays fit :data:`SUMS_BUDGET` (4-path
network, ``P = 100``, ``Q = 1000``: 0.20 instead of 0.66 ms per draw and chain in a scan on one core; docs/sampling.md,
"Speed").
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from smtheory.pair_blocks import blocks_kernel, pair_weights
from smtheory.spd_inverse import spd_inverse

from .observables import N_TRACE_TEST_POINTS
from .rao_blackwell import PredictorData, train_kernel

__all__ = ["SumsData", "PairSums", "SUMS_BUDGET", "sums_data", "sums_init", "draw_terms", "sums_add", "block_f_sums",
           "finalize"]

#: Bytes allowed for ``M`` and every chain's ``S`` together (``(chains + 1) · n_q · P² · itemsize``; 64 MiB).
SUMS_BUDGET = 64 * 2**20


class SumsData(NamedTuple):
    """Precomputed test-set contractions (a pytree)."""

    M: jax.Array  # [n_q, P(P+1)/2]: (2 − δ_pp') Σ_q c_p(q) c_p'(q)ᵀ symmetrised, packed (:func:`pack`), p ≤ p'
    #               (pairs of pairs in numpy.triu_indices(n_p) order)
    z: jax.Array  # [n_p, P]: Σ_q y_q c_p(q)
    kss_sum: jax.Array  # [D, D]: Σ_q C_{ππ'}(x_q, x_q)
    yy: jax.Array  # Σ_q y_q²
    c_head: jax.Array  # [n_p, 8, P]: the pair blocks of the first traced test points


class PairSums(NamedTuple):
    """Running sums of one chain (a pytree): ``A`` [n_p, P] = Σ w α; ``S`` [n_q, P(P+1)/2] = Σ w_p w_p' (α αᵀ − G),
    each symmetric ``P × P`` matrix stored as its packed upper triangle (:func:`pack`; half the memory traffic)."""

    A: jax.Array
    S: jax.Array


def pack(X):
    """Upper triangle (``numpy.triu_indices`` order) of the symmetric ``X`` [..., P, P] → [..., P(P+1)/2]."""
    r, c = np.triu_indices(X.shape[-1])
    return X[..., r, c]


def _unpack(x, P):
    r, c = np.triu_indices(P)
    U = jnp.zeros((P, P), x.dtype).at[r, c].set(x)
    return U + jnp.triu(U, 1).T


def _pack_weights(P, dtype):
    """1 on the diagonal, 2 off it, in ``numpy.triu_indices(P)`` order: ``⟨X, Y⟩ = Σ pack(X) · (weights · pack(Y))``
    for symmetric X, Y, and likewise a sum over ordered pairs of pairs ``(p, p')`` from the pairs ``p ≤ p'``."""
    r, c = np.triu_indices(P)
    return jnp.asarray(np.where(r == c, 1.0, 2.0), dtype)


def sums_data(data: PredictorData, chains, budget=SUMS_BUDGET):
    """:class:`SumsData` when this route applies and is cheaper, else None (use the draw-by-draw route).

    It applies when the test–train pair blocks are formed (not the feature-space or the factored route of
    :func:`smtheory.sims.rao_blackwell.predictor_data`).
    """
    if data.dual is not None or data.c_test.shape[0] == 0:
        return None
    n_p, Q, P = data.c_test.shape
    n_q = n_p * (n_p + 1) // 2
    itemsize = np.dtype(data.c_test.dtype).itemsize
    if 2 * n_q * P * P >= Q * (0.625 * P * P + n_p * P) or (int(chains) + 1) * n_q * P * P * itemsize > budget:
        return None
    r, c = np.triu_indices(n_p)
    rj, cj = jnp.asarray(r), jnp.asarray(c)
    dt = data.c_test.dtype
    factor, entry_weights = _pack_weights(n_p, dt), _pack_weights(P, dt)

    def block(k):
        Mk = data.c_test[rj[k]].T @ data.c_test[cj[k]]
        return pack(0.5 * (Mk + Mk.T)) * entry_weights

    M = jax.lax.map(block, jnp.arange(r.size))
    z = jnp.einsum("pqi,q->pi", data.c_test, data.y_test)
    head = min(N_TRACE_TEST_POINTS, Q)
    return SumsData(factor[:, None] * M, z, jnp.sum(data.c_diag, axis=2), jnp.dot(data.y_test, data.y_test),
                    data.c_test[:, :head])


def sums_init(data: PredictorData) -> PairSums:
    """Empty sums of one chain."""
    n_p, _, P = data.c_test.shape
    dt = data.c_test.dtype
    return PairSums(jnp.zeros((n_p, P), dt), jnp.zeros((n_p * (n_p + 1) // 2, P * (P + 1) // 2), dt))


def draw_terms(U1, data: PredictorData, sd: SumsData):
    """Per-draw quantities given one ``U_1``: the traced scalars and what :func:`sums_add` accumulates.

    Returns
    -------
    dict
        ``"train_energy"``, ``"test_mse"`` (as :func:`~smtheory.sims.rao_blackwell.conditional_moments`),
        ``"f_head"`` [8] (conditional means of the first test points), ``"w"`` [n_p], ``"alpha"`` [P],
        ``"W"`` [P(P+1)/2]: ``α αᵀ − G`` packed (:func:`pack`).
    """
    U1 = 0.5 * (U1 + U1.T)
    K = train_kernel(U1, data)
    T, P = data.temperature, K.shape[0]
    _, G = spd_inverse(K + T * jnp.eye(P, dtype=K.dtype))
    alpha = G @ data.y
    W = pack(jnp.outer(alpha, alpha) - G)
    w = pair_weights(U1)
    r, c = np.triu_indices(w.shape[0])
    quad = jnp.dot(w[r] * w[c], sd.M @ W)  # Σ_q k*ᵀ W k*
    kss = jnp.sum(U1 * sd.kss_sum)
    Q = data.y_test.shape[0]
    test_mse = (kss + quad - 2.0 * jnp.dot(w, sd.z @ alpha) + sd.yy) / Q
    energy = 0.5 * (T**2 * jnp.dot(alpha, alpha) + T * P - T**2 * jnp.trace(G))
    f_head = blocks_kernel(U1, sd.c_head) @ alpha
    return {"train_energy": energy, "test_mse": test_mse, "f_head": f_head, "w": w, "alpha": alpha, "W": W}


def sums_add(sums: PairSums, w, alpha, W) -> PairSums:
    """Add one draw (leading chain axes allowed on every argument: an elementwise, in-place update)."""
    n_p = w.shape[-1]
    r, c = np.triu_indices(n_p)
    ww = w[..., r] * w[..., c]
    return PairSums(sums.A + w[..., :, None] * alpha[..., None, :], sums.S + ww[..., :, None] * W[..., None, :])


def block_f_sums(A_delta, data: PredictorData):
    """``Σ m(x_q)`` over the draws whose ``A`` sums to ``A_delta`` [..., n_p, P] → [..., Q] (numpy)."""
    return np.einsum("...pi,pqi->...q", np.asarray(A_delta), np.asarray(data.c_test))


@jax.jit
def _finalize(A, S, count, U1_mean, c_test, c_diag):
    n = jnp.maximum(count, 1).astype(A.dtype)
    mean = jnp.einsum("pi,pqi->q", A, c_test) / n
    n_p = A.shape[0]
    r, c = np.triu_indices(n_p)
    factor = _pack_weights(n_p, A.dtype)
    rj, cj = jnp.asarray(r), jnp.asarray(c)

    def pair(carry, k):  # c_r(q)ᵀ S_k c_c(q) for every q, one pair of pairs at a time
        Sk = _unpack(S[k], c_test.shape[2])
        return carry + factor[k] * jnp.sum((c_test[rj[k]] @ Sk) * c_test[cj[k]], axis=1), None

    quad, _ = jax.lax.scan(pair, jnp.zeros(c_test.shape[1], A.dtype), jnp.arange(r.size))
    second = jnp.einsum("de,deq->q", U1_mean, c_diag) + quad / n  # E[m² + v]
    return mean, jnp.maximum(second - mean**2, 0.0)


def finalize(sums: PairSums, count, U1_mean, data: PredictorData):
    """Predictive mean and variance ``E[v] + Var m = E[m² + v] − (E m)²`` per test point from pooled sums.

    Parameters
    ----------
    sums : PairSums
        Summed over chains.
    count : int
        Draws behind the sums.
    U1_mean : array [D, D]
        Mean of ``U_1`` over the same draws (``E k** = Σ E[U_{ππ'}] C_{ππ'}(x, x)``).
    data : PredictorData

    Returns
    -------
    mean, variance : numpy arrays [Q]
        The variance is the population variance over the draws plus the mean conditional variance (the law of
        total variance applied to the draws' mixture).
    """
    m, v = _finalize(sums.A, sums.S, jnp.asarray(count), jnp.asarray(U1_mean, sums.A.dtype), data.c_test,
                     data.c_diag)
    return np.asarray(m), np.asarray(v)
