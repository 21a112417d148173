"""Cholesky factor, inverse factor and explicit inverse of an SPD matrix from matrix products (docs/theory.md §3, §8.2).

The derivative of the energy ``E(U_1) = ln det(T I + K) + Yᵀ (T I + K)⁻¹ Y`` needs the explicit inverse
``G = (T I + K)⁻¹`` (``Φ_{ππ'} = Tr(G C_{ππ'}) − (GY)ᵀ C_{ππ'} (GY)``, docs/theory.md §3), and the
Rao-Blackwellised predictor needs ``L⁻¹`` (§8.3).  The textbook route, ``cho_solve(cho_factor(A), I)``,
spends most of its time in two triangular solves with ``P`` right-hand sides, which XLA:CPU runs several
times slower per flop than a matrix product (P = 100: about 170 µs for the solves against 40 µs for the
factorisation, one core).  Here the factor and its inverse come from one recursion on 2 × 2 blocks,

    A = [[A₁₁, A₂₁ᵀ], [A₂₁, A₂₂]],   L₁₁ = chol(A₁₁),   L₂₁ = A₂₁ L₁₁⁻ᵀ,   L₂₂ = chol(A₂₂ − L₂₁ L₂₁ᵀ),
    L⁻¹ = [[L₁₁⁻¹, 0], [−L₂₂⁻¹ L₂₁ L₁₁⁻¹, L₂₂⁻¹]],

with LAPACK only on blocks of at most :data:`LEAF` rows, and ``G = L⁻ᵀ L⁻¹`` from products of the
triangular blocks (:func:`lower_gram`).  It costs about ``P³`` multiply-adds (``2P³/3`` + ``P³/3``), twice
LAPACK's ``P³/2``, but all in matrix products, so it is faster at every size measured (P = 50 … 2000, one
core, ``benchmarks/bench_spd_inverse.py``); beyond :data:`DIRECT_MAX` rows (not measured) LAPACK is used.
The triangular solves become products with an explicit triangular inverse: forward errors ``O(κ(L) ε)``,
``κ(L) = κ(A)^{1/2}``, as LAPACK's to the digits checked in ``tests/test_spd_inverse.py`` (up to κ(A) = 10⁸).
Block elimination with the plain inverse ``A₁₁⁻¹`` instead of the factor (``2P³/3`` in all) was tried and
rejected: its Schur complement loses digits as ``κ(A)² ε`` (10⁻⁶ relative at κ(A) = 10⁸).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["LEAF", "DIRECT_MAX", "cholesky_and_inverse", "lower_gram", "spd_inverse", "lower_row_norms"]

#: Largest block factorised by LAPACK inside the recursion.
LEAF = 32
#: Up to this size the recursion is used; above it LAPACK's factorisation and triangular solves.
DIRECT_MAX = 2048


def _leaf(A):
    L = jax.lax.linalg.cholesky(A, symmetrize_input=False)
    eye = jnp.eye(A.shape[0], dtype=A.dtype)
    return L, jax.lax.linalg.triangular_solve(L, eye, left_side=False, lower=True)


def cholesky_and_inverse(A, direct_max=DIRECT_MAX):
    """Lower Cholesky factor ``L`` of an SPD matrix and ``L⁻¹`` (module docstring).

    Parameters
    ----------
    A : array [n, n]
        Symmetric positive definite; only its lower triangle is read.
    direct_max : int
        Largest ``n`` done by the recursion (default :data:`DIRECT_MAX`); larger by LAPACK.

    Returns
    -------
    L, Linv : arrays [n, n]
        Lower triangular, ``L Lᵀ = A`` and ``Linv L = I``.  NaN where ``A`` is not numerically positive
        definite (as LAPACK's factorisation).
    """
    n = A.shape[0]
    if n <= LEAF or n > direct_max:
        return _leaf(A)
    h = n // 2
    L11, I11 = cholesky_and_inverse(A[:h, :h], direct_max)
    L21 = A[h:, :h] @ I11.T
    L22, I22 = cholesky_and_inverse(A[h:, h:] - L21 @ L21.T, direct_max)
    I21 = -(I22 @ (L21 @ I11))
    zero = jnp.zeros((h, n - h), A.dtype)
    return jnp.block([[L11, zero], [L21, L22]]), jnp.block([[I11, zero], [I21, I22]])


def lower_gram(M):
    """``Mᵀ M`` of a lower-triangular ``M`` from products of its triangular blocks (half the flops of one product).

    Parameters
    ----------
    M : array [n, n]
        Lower triangular (entries above the diagonal must be zero).

    Returns
    -------
    array [n, n]
        ``Mᵀ M`` (symmetric up to rounding in its diagonal blocks).
    """
    n = M.shape[0]
    if n <= 2 * LEAF:
        return M.T @ M
    h = n // 2
    A, X, D = M[:h, :h], M[h:, :h], M[h:, h:]
    top = lower_gram(A) + X.T @ X
    off = D.T @ X
    return jnp.block([[top, off.T], [off, lower_gram(D)]])


def spd_inverse(A, direct_max=DIRECT_MAX):
    """``(L, A⁻¹)`` for an SPD ``A`` (lower triangle read): the Cholesky factor and the explicit inverse.

    Parameters
    ----------
    A : array [n, n]
        Symmetric positive definite.
    direct_max : int
        Up to this ``n`` (default :data:`DIRECT_MAX`) by :func:`cholesky_and_inverse` and :func:`lower_gram`;
        above it by LAPACK (``cho_solve`` with the identity).

    Returns
    -------
    L : array [n, n]
        Lower Cholesky factor (``ln det A = 2 Σ ln L_ii``).
    G : array [n, n]
        ``A⁻¹``, symmetrised exactly.  Both NaN where ``A`` is not numerically positive definite.
    """
    n = A.shape[0]
    if n > direct_max:
        L = jax.lax.linalg.cholesky(A, symmetrize_input=False)
        G = jax.scipy.linalg.cho_solve((L, True), jnp.eye(n, dtype=A.dtype))
    else:
        L, Linv = cholesky_and_inverse(A, direct_max)
        G = lower_gram(Linv)
    return L, 0.5 * (G + G.T)


def lower_row_norms(X, M):
    """``|M x_q|²`` for every row ``x_q`` of ``X`` [Q, n], ``M`` [n, n] lower triangular: ``Σ_p ((X Mᵀ)_{qp})²``.

    The products skip the zero upper triangle of ``M`` block by block (about 5/8 of the ``Q n²`` flops of
    ``X @ M.T`` at two levels); e.g. the predictive variances ``k** − |L⁻¹ k*|²`` (docs/theory.md §8.3).
    """
    n = M.shape[0]
    if n <= LEAF:
        return jnp.sum((X @ M.T) ** 2, axis=1)
    h = n // 2
    return lower_row_norms(X[:, :h], M[:h, :h]) + jnp.sum((X @ M[h:, :].T) ** 2, axis=1)
