"""The D(D+1)/2 symmetrised path-pair blocks of the training set, formed once (docs/theory.md §2–3).

``K_U = Σ_{ππ'} U_{ππ'} C_{ππ'}`` is linear in ``U``, and on one set of inputs ``C_{π'π} = C_{ππ'}ᵀ``.  For
symmetric ``U`` the ``D(D+1)/2`` symmetrised blocks (pairs ``π ≤ π'`` in the order of
:func:`numpy.triu_indices`)

    S_{ππ} = C_{ππ},        S_{ππ'} = C_{ππ'} + C_{ππ'}ᵀ  (π < π'),        K_U = Σ_{π≤π'} U_{ππ'} S_{ππ'},

suffice, and each ``S`` is exactly symmetric, so ``K_U`` is exactly symmetric with no transpose per kernel.
Formed once (``D(D+1)/2 · 2 P² N0`` flops), every later kernel costs ``D(D+1) P²`` flops, independent of the
input width ``N0``, instead of ``2 P² D N0`` in the factored form ``K_U = Ξ (U ⊗ I) Ξᵀ``
(:func:`smtheory.kernels.renormalized_kernel`).  The matching contraction of a symmetric ``P × P`` matrix
``M`` with every ``C_{ππ'}``, ``⟨M, C_{ππ'}⟩`` (the energy's gradient ``Φ``), is :func:`blocks_contract`.
Between two input sets (test × train) the blocks are not symmetric; :func:`cross_pair_blocks` sums
``C_{ππ'} + C_{π'π}`` the same way.  The blocks take ``8 · D(D+1)/2 · P²`` bytes, so they are formed only
within a memory budget (:func:`pair_block_nbytes`, :func:`pair_blocks`).
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .checks import InputError, check_memory

__all__ = ["n_pairs", "pair_block_nbytes", "pair_blocks", "cross_pair_blocks", "pair_weights", "blocks_kernel",
           "blocks_contract"]


def n_pairs(n_paths):
    """``D(D+1)/2``: the number of independent entries of a symmetric ``D × D`` matrix."""
    return int(n_paths) * (int(n_paths) + 1) // 2


def pair_block_nbytes(n_train, n_paths, itemsize=8, n_rows=None):
    """Bytes of the block array ``[D(D+1)/2, Q, P]``: ``itemsize · D(D+1)/2 · Q · P`` (``Q = P`` by default)."""
    rows = int(n_train) if n_rows is None else int(n_rows)
    return int(itemsize) * n_pairs(n_paths) * rows * int(n_train)


def _features(xi, name):
    xi = jnp.asarray(xi)
    if xi.ndim != 3:
        raise InputError(f"{name} must be scaled path features [P, D, N0], got shape {xi.shape}")
    return xi if xi.dtype in (jnp.float64, jnp.float32) else xi.astype(jnp.float64)


@partial(jax.jit, static_argnames=("n_paths", "same"))
def _form_blocks(xa, xb, n_paths, same):
    rows, cols = (jnp.asarray(v) for v in np.triu_indices(n_paths))
    pa, pb = jnp.transpose(xa, (1, 0, 2)), jnp.transpose(xb, (1, 0, 2))  # [D, Q|P, N0], contiguous per path

    def block(k):
        r, c = rows[k], cols[k]
        C = pa[r] @ pb[c].T
        if same:  # S = C + Cᵀ off the diagonal, C symmetrised on it: exactly symmetric either way
            return jnp.where(r == c, 0.5, 1.0) * (C + C.T)
        return jnp.where(r == c, C, C + pa[c] @ pb[r].T)

    return jax.lax.map(block, jnp.arange(rows.size))


def pair_blocks(xi_scaled, memory_budget):
    """The symmetrised blocks ``S_{ππ'}``, ``π ≤ π'``, of the scaled training features, within ``memory_budget``.

    Parameters
    ----------
    xi_scaled : array [P, D, N0]
        Scaled path features ``ξ̃`` of the training set (docs/theory.md §2); float64 or float32 (the blocks
        keep its dtype; anything else is converted to float64).
    memory_budget : int
        Bytes.  A block array larger than this is refused with an
        :class:`~smtheory.checks.InputError` that names the budget.

    Returns
    -------
    array [D(D+1)/2, P, P]
        ``S_{ππ'}`` (module docstring) for the entries ``(π, π')`` of :func:`numpy.triu_indices` ``(D)``,
        each exactly symmetric.
    """
    xi = _features(xi_scaled, "xi_scaled")
    P, D, _ = xi.shape
    check_memory(f"the {n_pairs(D)} path-pair blocks [D(D+1)/2, P, P] (P = {P}, D = {D})",
                 pair_block_nbytes(P, D, xi.dtype.itemsize), memory_budget,
                 hint="raise memory_budget, or let the solver use the factored route (route='auto')")
    return _form_blocks(xi, xi, D, True)


def cross_pair_blocks(xi_rows, xi_cols, memory_budget):
    """Blocks between two input sets: ``C_{ππ}`` and ``C_{ππ'} + C_{π'π}`` (``π < π'``), ``[D(D+1)/2, Q, P]``.

    ``C_{ππ'}[q, p] = ξ̃^π(x_q) · ξ̃^{π'}(x_p)`` with ``x_q`` from ``xi_rows`` [Q, D, N0] and ``x_p`` from
    ``xi_cols`` [P, D, N0]; the kernel between the sets is ``Σ_{π≤π'} U_{ππ'} B_{ππ'}`` for symmetric ``U``
    (:func:`blocks_kernel`).  Refused beyond ``memory_budget`` bytes.
    """
    xa, xb = _features(xi_rows, "xi_rows"), _features(xi_cols, "xi_cols")
    (Q, D, N0), (P, Db, N0b) = xa.shape, xb.shape
    if (D, N0) != (Db, N0b):
        raise InputError(f"xi_rows and xi_cols must share paths and width [*, D, N0], got {xa.shape} and {xb.shape}")
    check_memory(f"the {n_pairs(D)} cross path-pair blocks [D(D+1)/2, Q, P] (Q = {Q}, P = {P}, D = {D})",
                 pair_block_nbytes(P, D, xa.dtype.itemsize, n_rows=Q), memory_budget)
    return _form_blocks(xa, xb.astype(xa.dtype), D, False)


def pair_weights(U1):
    """``U_{ππ'}``, ``π ≤ π'``, in the order of :func:`numpy.triu_indices` ``(D)``: the weights of the blocks
    (of the symmetric part ``(U + Uᵀ)/2``, so that derivatives follow the symmetric convention of
    docs/theory.md §3: ``∂K/∂U_{ππ'} = C_{ππ'}`` for every ordered pair)."""
    D = U1.shape[0]
    rows, cols = np.triu_indices(D)
    return 0.5 * (U1[rows, cols] + U1[cols, rows])


#: Up to this many blocks :func:`blocks_kernel` sums them as one fused elementwise loop, beyond it as one
#: matrix-vector product (measured on one core: the sum 1.2–1.4× faster at 10 blocks, equal at 36, 2.3× slower at 136).
SUM_MAX_BLOCKS = 21


def blocks_kernel(U1, blocks):
    """``K_U = Σ_{π≤π'} U_{ππ'} S_{ππ'}`` (``[Q, P]``; exactly symmetric for :func:`pair_blocks`)."""
    n, Q, P = blocks.shape
    w = pair_weights(U1)
    if n <= SUM_MAX_BLOCKS:
        K = w[0] * blocks[0]
        for m in range(1, n):
            K = K + w[m] * blocks[m]
        return K
    return (w @ blocks.reshape(n, Q * P)).reshape(Q, P)


def blocks_contract(M, blocks):
    """``Ψ_{ππ'} = ⟨M, C_{ππ'}⟩ = Σ_{μν} M_{μν} C_{ππ'}[μ, ν]`` for a symmetric ``M`` [P, P], as a ``D × D``
    symmetric matrix, from the blocks of :func:`pair_blocks` (one pass over them, ``D(D+1) P²/2`` flops).

    With ``M = G − ααᵀ`` this is the energy's gradient ``Φ`` (docs/theory.md §3).
    """
    n, P, _ = blocks.shape
    D = int(round((np.sqrt(8 * n + 1) - 1) / 2))
    rows, cols = np.triu_indices(D)
    v = (blocks.reshape(n, P * P) @ M.reshape(P * P)) * jnp.asarray(np.where(rows == cols, 1.0, 0.5), M.dtype)
    upper = jnp.zeros((D, D), M.dtype).at[rows, cols].set(v)
    return upper + jnp.triu(upper, 1).T
