"""The energy term in feature space, from a factor of ``U_1`` (docs/theory.md §8.2, "Feature-space form").

With ``U_1 = F Fᵀ`` (``F`` of shape ``[D, m]``, e.g. the Bartlett factor of the order-parameter sampler), the
kernel of the training set is a Gram matrix of ``r = m·N0`` columns,

    K = Ξ (U_1 ⊗ I_{N0}) Ξᵀ = Ψ Ψᵀ,        Ψ = Ξ (F ⊗ I_{N0})  ∈ R^{P × r},

(``Ξ`` [P, D·N0] the scaled training features, column ``(π, i)``), so by the determinant identity and the
Woodbury identity the energy needs only the ``r × r`` matrix ``A = T I_r + Ψᵀ Ψ``:

    E = ln det(T I_P + K) + Yᵀ (T I_P + K)⁻¹ Y
      = (P − r) ln T + ln det A + (|Y − Ψ β|² + T |β|²) / T,        β = A⁻¹ Ψᵀ Y.

(The quadratic term ``(|Y|² − Yᵀ Ψ β)/T`` is written as a sum of two non-negative terms, so it has no
cancellation at small ``T``.)  ``Ψᵀ Ψ = (F ⊗ I)ᵀ (Ξᵀ Ξ) (F ⊗ I)`` and ``Ψᵀ Y = (F ⊗ I)ᵀ Ξᵀ Y`` come from the
feature Gram matrix ``Ξᵀ Ξ`` and ``Ξᵀ Y``, formed once (:func:`dual_data`), so an evaluation costs
``O(r³)`` for the factorisation of ``A`` plus ``O(D m (D N0)²)`` and ``O(P D N0)`` for the rest — no
``P × P`` matrix is formed.  It is cheaper than the ``P × P`` forms (:mod:`smtheory.pair_energy`) when
``r < P``: e.g. the digits task (P = 600, D = 16, N0 = 32, r ≤ 512), where the ``D(D+1)/2 = 136`` pair blocks
are also too large to stream quickly.

The JVP is closed-form from the same factorisation (no reverse pass through it): with ``G_A = A⁻¹`` and
``M = G_A + ββᵀ/T``,

    ∂E/∂F_{πj} = 2 Σ_{i,k,l} [Ξᵀ Ξ (F ⊗ I)]_{(π,i),(k,l)} M_{(k,l),(j,i)} − (2/T) Σ_i (Ξᵀ Y)_{(π,i)} β_{(j,i)},
    ∂E/∂T = (P − r)/T + Tr G_A − |Y − Ψ β|² / T².
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from .checks import InputError
from .spd_inverse import spd_inverse

__all__ = ["DualData", "dual_data", "dual_rank", "dual_is_cheaper", "dual_system", "dual_residual", "dual_energy"]


class DualData(NamedTuple):
    """Training data of :func:`dual_energy` (a pytree of arrays).

    Attributes
    ----------
    xi : array [P, D·N0]
        Scaled training features ``Ξ``, column ``(π, i)``.
    gram : array [D, N0, D, N0]
        ``Ξᵀ Ξ``.
    c : array [D, N0]
        ``Ξᵀ Y``.
    y : array [P]
    """

    xi: jax.Array
    gram: jax.Array
    c: jax.Array
    y: jax.Array


def dual_data(xi_scaled, y):
    """:class:`DualData` from the scaled training features ``[P, D, N0]`` and the labels ``[P]``.

    Cost ``P (D N0)²`` multiply-adds, once; memory ``8 (D N0)² + 8 P D N0`` bytes (float64).
    """
    xi = jnp.asarray(xi_scaled)
    if xi.ndim != 3:
        raise InputError(f"xi_scaled must be scaled path features [P, D, N0], got shape {xi.shape}")
    if xi.dtype not in (jnp.float64, jnp.float32):
        xi = xi.astype(jnp.float64)
    P, D, N0 = xi.shape
    y = jnp.asarray(y, dtype=xi.dtype)
    if y.shape != (P,):
        raise InputError(f"y must be a vector of the {P} training labels, got shape {y.shape}")
    X = xi.reshape(P, D * N0)
    return DualData(X, (X.T @ X).reshape(D, N0, D, N0), (X.T @ y).reshape(D, N0), y)


def dual_rank(rank_u1, n0):
    """``r = rank(U_1) · N0``: the size of the matrix :func:`dual_energy` factorises."""
    return int(rank_u1) * int(n0)


def dual_is_cheaper(n_train, rank_u1, n0):
    """True when the feature-space form factorises a smaller matrix than the ``P × P`` forms (``r < P``)."""
    return dual_rank(rank_u1, n0) < int(n_train)


def _parts(F, data, temperature):
    """``H = Ξᵀ Ξ (F ⊗ I)`` [D, N0, m, N0], ``A`` [r, r] and ``b = Ψᵀ Y`` [r]."""
    m, N0 = F.shape[1], data.c.shape[1]
    r = m * N0
    H = jnp.einsum("aibl,bk->aikl", data.gram, F)
    W = jnp.einsum("aj,aikl->jikl", F, H).reshape(r, r)
    b = jnp.einsum("aj,ai->ji", F, data.c).reshape(r)
    return H, W + temperature * jnp.eye(r, dtype=W.dtype), b


def dual_system(F, data, temperature):
    """``A = T I_r + Ψᵀ Ψ`` [r, r] and ``b = Ψᵀ Y`` [r] for ``Ψ = Ξ (F ⊗ I)`` (module docstring).

    Cost ``2 D m (D N0)²`` multiply-adds from the Gram matrix of :func:`dual_data`; no ``P × P`` matrix.
    """
    return _parts(F, data, temperature)[1:]


def dual_residual(F, data, beta):
    """``Y − Ψ β = Y − Ξ vec(F B)`` with ``B = β`` as ``[m, N0]`` (``O(P D N0)``)."""
    return data.y - data.xi @ (F @ beta.reshape(F.shape[1], -1)).reshape(-1)


def _value(F, data, temperature, logdet, beta):
    P, r = data.y.shape[0], F.shape[1] * data.c.shape[1]
    res = dual_residual(F, data, beta)
    quad = (jnp.dot(res, res) + temperature * jnp.dot(beta, beta)) / temperature
    return (P - r) * jnp.log(temperature) + logdet + quad, res


@jax.custom_jvp
def dual_energy(F, data, temperature):
    """``E = ln det(T I + K) + Yᵀ (T I + K)⁻¹ Y`` for ``K = Ξ (F Fᵀ ⊗ I) Ξᵀ``, in feature space.

    Equal to :func:`smtheory.pair_energy.pair_energy` and :func:`smtheory.action.energy_term` at
    ``U_1 = F Fᵀ`` (module docstring; docs/theory.md §8.2).

    Parameters
    ----------
    F : array [D, m]
        A factor of the order parameter, ``U_1 = F Fᵀ`` (any ``m``: square for a full-rank ``U_1``, ``m < D``
        for a singular one).
    data : DualData
        From :func:`dual_data`.
    temperature : float
        ``T > 0``.

    Returns
    -------
    scalar
        NaN where ``T I + Ψᵀ Ψ`` is not numerically positive definite.

    Notes
    -----
    Cost per evaluation: one Cholesky factorisation of an ``r × r`` matrix, ``r = m N0``, plus
    ``2 D m (D N0)²`` multiply-adds to form it; the derivative adds the explicit inverse
    (:func:`smtheory.spd_inverse.spd_inverse`, about ``r³``) and ``D m² N0²`` for the contraction.
    Differentiable in ``F`` and ``T`` (closed-form JVP); the data are constants.
    """
    _, A, b = _parts(F, data, temperature)
    L = jax.lax.linalg.cholesky(A, symmetrize_input=False)
    z = jax.lax.linalg.triangular_solve(L, b[:, None], left_side=True, lower=True)[:, 0]
    beta = jax.lax.linalg.triangular_solve(L, z[:, None], left_side=True, lower=True, transpose_a=True)[:, 0]
    return _value(F, data, temperature, 2.0 * jnp.sum(jnp.log(jnp.diag(L))), beta)[0]


def _dual_energy_jvp(primals, tangents):
    F, data, temperature = primals
    dF, d_data, dT = tangents
    if any(not isinstance(t, SymbolicZero) for t in jax.tree_util.tree_leaves(
            d_data, is_leaf=lambda t: isinstance(t, SymbolicZero))):
        raise InputError("dual_energy is differentiable in F and the temperature only (the data are constants)")
    H, A, b = _parts(F, data, temperature)
    L, GA = spd_inverse(A)
    beta = GA @ b
    value, res = _value(F, data, temperature, 2.0 * jnp.sum(jnp.log(jnp.diag(L))), beta)
    tangent = jnp.zeros_like(value)
    m, N0 = F.shape[1], data.c.shape[1]
    if not isinstance(dF, SymbolicZero):
        M = (GA + jnp.outer(beta, beta) / temperature).reshape(m, N0, m, N0)
        B = beta.reshape(m, N0)
        grad = 2.0 * jnp.einsum("aikl,klji->aj", H, M) - (2.0 / temperature) * (data.c @ B.T)
        tangent = tangent + jnp.sum(grad * dF)
    if not isinstance(dT, SymbolicZero):
        P, r = data.y.shape[0], m * N0
        dE_dT = (P - r) / temperature + jnp.trace(GA) - jnp.dot(res, res) / temperature**2
        tangent = tangent + dE_dT * dT
    return value, tangent


dual_energy.defjvp(_dual_energy_jvp, symbolic_zeros=True)
