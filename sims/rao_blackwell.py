"""Rao-Blackwellised predictor of the collapsed samplers (docs/theory.md §8.3).

Given ``U_1`` (a draw of the order parameter, or ``Û`` of the collapsed weights), the predictor on
any inputs is exactly Gaussian: on a test input ``x*``

    mean  m(x*) = k*ᵀ (K + T I)⁻¹ Y,        variance  v(x*) = k** − k*ᵀ (K + T I)⁻¹ k*,

with ``K, k*, k**`` the renormalised kernel of ``U_1`` (§2). Over draws, the posterior predictive
mean is the mean of ``m``; the predictive variance is ``E[v] + Var[m]``; the generalisation error
``mean((E m − y)²) + mean(E v + Var m)`` equals the mean over draws of the conditional test MSE
``mean((m − y)² + v)``, which is therefore traced per draw (its MCSE follows from its ESS). The
conditional train energy ``E[½ Σ (f − y)² | U_1] = ½ (T² |G Y|² + T P − T² tr G)``, ``G = (K + T I)⁻¹``.

Cost per draw: one P × P Cholesky factorisation with its inverse factor ``L⁻¹`` (``O(P³)`` in matrix products,
:func:`smtheory.spd_inverse.cholesky_and_inverse`), the train kernel from the ``D(D+1)/2`` symmetrised path-pair
blocks (``O(D² P²)``; formed once when ``P < D N0`` and they fit the budget, otherwise ``O(P² D N0)`` from the
features, :mod:`smtheory.pair_blocks`), the test kernel ``O(D² Q P)`` from the ``D(D+1)/2`` test–train blocks
(``8 D(D+1)/2 · Q P`` bytes) when they fit and ``O(Q P D N0)`` from the factored features otherwise
(:func:`predictor_data` decides), and the variances ``|L⁻¹ k*|²`` as matrix products with the triangular ``L⁻¹``
(:func:`smtheory.spd_inverse.lower_row_norms`, about 5/8 of ``Q P²``).

When ``r = D N0 < P`` the moments are computed in feature space instead (docs/theory.md §8.2–8.3,
"Feature-space form"; :mod:`smtheory.dual_energy`): with ``U_1 = F Fᵀ`` (``F`` from the eigendecomposition of
``U_1``), ``Ψ = Ξ (F ⊗ I)``, ``Ψ* = Ξ* (F ⊗ I)``, ``A = T I_r + Ψᵀ Ψ`` and ``β = A⁻¹ Ψᵀ Y``,

    m(x*) = Ψ*_q β,        v(x*) = T |L_A⁻¹ Ψ*_qᵀ|²,        E[½ Σ (f − y)² | U_1] = ½ (|Y − Ψβ|² + T r − T² Tr A⁻¹),

at a cost of one ``r × r`` factorisation with its inverse factor plus about 5/8 of ``Q r²`` — no ``P × P`` or
``Q × P`` matrix, and the variance is a norm, not a difference ``k** − |L⁻¹ k*|²``.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from smtheory.checks import InputError
from smtheory.dual_energy import DualData, dual_data, dual_is_cheaper, dual_residual, dual_system
from smtheory.pair_blocks import blocks_kernel, cross_pair_blocks, pair_block_nbytes, pair_blocks
from smtheory.spd_inverse import cholesky_and_inverse, lower_row_norms

__all__ = ["PredictorData", "predictor_data", "conditional_moments", "train_kernel", "BLOCK_BUDGET"]

#: Bytes allowed for the precomputed test–train path-pair blocks (default 256 MiB).
BLOCK_BUDGET = 256 * 2**20


class PredictorData(NamedTuple):
    """What :func:`conditional_moments` needs (a pytree; ``blocks`` is static)."""

    xi_train: jax.Array  # [P, D, N0] scaled
    xi_test: jax.Array  # [Q, D, N0] scaled (used when the blocks do not fit)
    c_train: jax.Array  # [D(D+1)/2, P, P] symmetrised train path-pair blocks, or a [0, 1, 1] placeholder
    c_test: jax.Array  # [D(D+1)/2, Q, P] test-train path-pair blocks, or a [0, 1, 1] placeholder
    c_diag: jax.Array  # [D, D, Q] C_{ππ'}(x*, x*)
    y: jax.Array  # [P]
    y_test: jax.Array  # [Q]
    temperature: jax.Array  # scalar
    dual: DualData | None = None  # feature-space data when D N0 < P (then the moments are computed there)


def predictor_data(problem, spec, dtype=jnp.float64, budget=BLOCK_BUDGET) -> PredictorData:
    """Scaled features and, when they fit ``budget`` bytes, the train and test–train pair blocks
    (each block set is formed when it is cheaper to contract than the features, ``P < D N0``); in feature
    space (``dual``, no blocks) when ``D N0 < P``."""
    if problem.xi_test is None:
        raise InputError("this problem has no test set (give x_test and y_test)")
    xtr = jnp.asarray(problem.scaled_train(spec), dtype)
    xte = jnp.asarray(problem.scaled_test(spec), dtype)
    P, D, _ = xtr.shape
    Q = xte.shape[0]
    N0 = xtr.shape[2]
    none, itemsize = jnp.zeros((0, 1, 1), dtype), np.dtype(dtype).itemsize
    y, y_test, T = (jnp.asarray(v, dtype) for v in (problem.y_train, problem.y_test, spec.temperature))
    c_diag = jnp.einsum("qdi,qei->deq", xte, xte)
    if dual_is_cheaper(P, D, N0):
        return PredictorData(xtr, xte, none, none, c_diag, y, y_test, T, dual_data(xtr, y))
    fits_test = pair_block_nbytes(P, D, itemsize, n_rows=Q) <= budget
    c_test = cross_pair_blocks(xte, xtr, budget) if fits_test else none
    fits_train = pair_block_nbytes(P, D, itemsize) <= budget and P < D * N0
    c_train = pair_blocks(xtr, budget) if fits_train else none
    return PredictorData(xtr, xte, c_train, c_test, c_diag, y, y_test, T)


def train_kernel(U1, data: PredictorData):
    """Train kernel [P, P] of ``U1`` (from the pair blocks when formed, else the features), exactly symmetric."""
    P, D, N0 = data.xi_train.shape
    if data.c_train.shape[0] > 0:
        return blocks_kernel(U1, data.c_train)
    Z = jnp.einsum("pdi,de->pei", data.xi_train, U1).reshape(P, D * N0)
    K = Z @ data.xi_train.reshape(P, D * N0).T
    return 0.5 * (K + K.T)


def _kernels(U1, data: PredictorData):
    """Train kernel [P, P] and test–train kernel [Q, P] of ``U1``."""
    P, D, N0 = data.xi_train.shape
    K = train_kernel(U1, data)
    if data.c_test.shape[0] > 0:
        return K, blocks_kernel(U1, data.c_test)
    Z = jnp.einsum("pdi,de->pei", data.xi_train, U1).reshape(P, D * N0)
    return K, data.xi_test.reshape(data.xi_test.shape[0], D * N0) @ Z.T


def conditional_moments(U1, data: PredictorData):
    """Conditional predictor moments given one ``U_1`` (pure JAX; vmap over draws or chains).

    Returns
    -------
    dict
        ``"f_mean"`` [Q] and ``"f_var"`` [Q] (conditional mean and variance on the test set),
        ``"test_mse"`` ``mean((m − y)² + v)``, ``"train_energy"`` ``E[½ Σ (f − y)² | U_1]``.
    """
    U1 = 0.5 * (U1 + U1.T)
    if data.dual is not None:
        return _dual_moments(U1, data)
    K, ks = _kernels(U1, data)
    T = data.temperature
    P = K.shape[0]
    _, Linv = cholesky_and_inverse(K + T * jnp.eye(P, dtype=K.dtype))
    alpha = Linv.T @ (Linv @ data.y)
    mean = ks @ alpha
    kss = jnp.einsum("de,deq->q", U1, data.c_diag)
    # |L⁻¹ k*|² by matrix products with the triangular L⁻¹ (faster than a triangular solve with Q columns)
    var = jnp.maximum(kss - lower_row_norms(ks, Linv), 0.0)
    tr_G = jnp.sum(Linv**2)
    energy = 0.5 * (T**2 * jnp.dot(alpha, alpha) + T * P - T**2 * tr_G)
    test_mse = jnp.mean((mean - data.y_test) ** 2 + var)
    return {"f_mean": mean, "f_var": var, "test_mse": test_mse, "train_energy": energy}


def _dual_moments(U1, data: PredictorData):
    """:func:`conditional_moments` in feature space (module docstring), for ``D N0 < P``."""
    lam, V = jnp.linalg.eigh(U1)
    F = V * jnp.sqrt(jnp.maximum(lam, 0.0))  # U_1 = F Fᵀ
    T = data.temperature
    A, b = dual_system(F, data.dual, T)
    r = A.shape[0]
    _, Linv = cholesky_and_inverse(A)
    beta = Linv.T @ (Linv @ b)
    Q = data.xi_test.shape[0]
    psi_test = jnp.einsum("qai,aj->qji", data.xi_test, F).reshape(Q, r)
    mean = psi_test @ beta
    var = T * lower_row_norms(psi_test, Linv)
    res = dual_residual(F, data.dual, beta)
    energy = 0.5 * (jnp.dot(res, res) + T * r - T**2 * jnp.sum(Linv**2))
    test_mse = jnp.mean((mean - data.y_test) ** 2 + var)
    return {"f_mean": mean, "f_var": var, "test_mse": test_mse, "train_energy": energy}


def predictive_summary(f_mean_moments, f_var_mean):
    """Predictive mean and variance from the moments of the conditional means over draws.

    Parameters
    ----------
    f_mean_moments : (mean, variance) over draws of the conditional mean, arrays [Q]
    f_var_mean : array [Q], mean over draws of the conditional variance
    """
    m, var_m = (np.asarray(a) for a in f_mean_moments)
    return m, np.asarray(f_var_mean) + np.nan_to_num(var_m)
