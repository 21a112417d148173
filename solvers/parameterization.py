"""Log-Cholesky parameterisation of the order parameters.

``U_ℓ = L_ℓ L_ℓ^T`` with ``L_ℓ`` lower triangular and ``diag L_ℓ = exp(θ_diag)``: every
real vector θ gives symmetric positive-definite ``U_1, ..., U_L``, so the solver
never leaves the domain of the action (docs/theory.md §3).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def n_params(sizes):
    """Number of free parameters for matrices of the given sizes."""
    return sum(d * (d + 1) // 2 for d in sizes)


def unpack(theta, sizes):
    """θ → ``[U_1, ..., U_L]`` (JAX-traceable)."""
    Us, k = [], 0
    for d in sizes:
        m = d * (d + 1) // 2
        rows, cols = np.tril_indices(d)
        vals = theta[k:k + m]
        vals = jnp.where(jnp.asarray(rows == cols), jnp.exp(vals), vals)
        Lmat = jnp.zeros((d, d), dtype=theta.dtype).at[rows, cols].set(vals)
        Us.append(Lmat @ Lmat.T)
        k += m
    return Us


def pack(Us):
    """``[U_1, ..., U_L]`` (SPD) → θ, through the Cholesky factors."""
    parts = []
    for U in Us:
        U = np.asarray(U, dtype=np.float64)
        Lmat = np.linalg.cholesky(0.5 * (U + U.T))
        rows, cols = np.tril_indices(U.shape[0])
        vals = Lmat[rows, cols].copy()
        diag = rows == cols
        vals[diag] = np.log(vals[diag])
        parts.append(vals)
    return np.concatenate(parts)


def unpack_entries(vec, sizes):
    """Independent entries (upper triangles, row-major) → symmetric ``[U_1, ..., U_L]``."""
    Us, k = [], 0
    for d in sizes:
        m = d * (d + 1) // 2
        iu = np.triu_indices(d)
        M = jnp.zeros((d, d), dtype=vec.dtype).at[iu].set(vec[k:k + m])
        Us.append(M + M.T - jnp.diag(jnp.diag(M)))
        k += m
    return Us


def pack_entries(Us):
    """Symmetric ``[U_1, ..., U_L]`` → independent entries (upper triangles)."""
    return np.concatenate([np.asarray(U)[np.triu_indices(U.shape[0])] for U in Us])
