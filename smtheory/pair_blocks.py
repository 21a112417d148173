"""The D(D+1)/2 path-pair blocks of the training set, formed once (docs/theory.md §2–3).

``K_U = Σ_{ππ'} U_{ππ'} C_{ππ'}`` is linear in ``U``, and ``C_{π'π} = C_{ππ'}ᵀ``.  For symmetric ``U`` the
``D(D+1)/2`` blocks ``C_{ππ'}`` with ``π ≤ π'`` (upper triangle, row-major, as :func:`numpy.triu_indices`)
suffice:

    K_U = M + Mᵀ,        M = Σ_{π<π'} U_{ππ'} C_{ππ'} + ½ Σ_π U_{ππ} C_{ππ},

which is exactly symmetric.  Formed once (``D(D+1)/2 · 2 P² N0`` flops), every later kernel costs
``D(D+1) P²`` flops and one transpose, independent of the input width ``N0``, instead of ``2 P² D N0`` in
the factored form ``K_U = Ξ (U ⊗ I) Ξᵀ`` (:func:`smtheory.kernels.renormalized_kernel`).  They take
``8 · D(D+1)/2 · P²`` bytes, so they are formed only within a memory budget (:func:`pair_block_nbytes`,
:func:`pair_blocks`).
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .checks import check_memory

__all__ = ["n_pairs", "pair_block_nbytes", "pair_blocks", "blocks_kernel", "pair_weights"]


def n_pairs(n_paths):
    """``D(D+1)/2``: the number of independent entries of a symmetric ``D × D`` matrix."""
    return int(n_paths) * (int(n_paths) + 1) // 2


def pair_block_nbytes(n_train, n_paths, itemsize=8):
    """Bytes of the block array ``[D(D+1)/2, P, P]``: ``itemsize · D(D+1)/2 · P²`` (float64: 8)."""
    return int(itemsize) * n_pairs(n_paths) * int(n_train) ** 2


@partial(jax.jit, static_argnames=("n_paths",))
def _form_blocks(xi, n_paths):
    rows, cols = (jnp.asarray(v) for v in np.triu_indices(n_paths))
    paths = jnp.transpose(xi, (1, 0, 2))  # [D, P, N0], contiguous per path
    return jax.lax.map(lambda k: paths[rows[k]] @ paths[cols[k]].T, jnp.arange(rows.size))


def pair_blocks(xi_scaled, memory_budget):
    """The blocks ``C_{ππ'}``, ``π ≤ π'``, of the scaled training features, within ``memory_budget``.

    Parameters
    ----------
    xi_scaled : array [P, D, N0]
        Scaled path features ``ξ̃`` of the training set (docs/theory.md §2).
    memory_budget : int
        Bytes.  A block array larger than this is refused with an
        :class:`~smtheory.checks.InputError` that names the budget.

    Returns
    -------
    array [D(D+1)/2, P, P]
        ``C_{ππ'}`` for the entries ``(π, π')`` of :func:`numpy.triu_indices` ``(D)``.
    """
    xi = jnp.asarray(xi_scaled, dtype=jnp.float64)
    P, D, _ = xi.shape
    check_memory(f"the {n_pairs(D)} path-pair blocks [D(D+1)/2, P, P] (P = {P}, D = {D})",
                 pair_block_nbytes(P, D), memory_budget,
                 hint="raise memory_budget, or let the solver use the factored route (route='auto')")
    return _form_blocks(xi, D)


def pair_weights(U1):
    """The weights of the blocks in ``M`` (module docstring): ``U_{ππ'}`` for ``π < π'``, ``U_{ππ}/2`` on the
    diagonal, in the order of :func:`numpy.triu_indices` ``(D)``."""
    D = U1.shape[0]
    rows, cols = np.triu_indices(D)
    return jnp.where(jnp.asarray(rows == cols), 0.5, 1.0) * U1[rows, cols]


def blocks_kernel(U1, blocks):
    """``K_U = M + Mᵀ`` (``[P, P]``, exactly symmetric) from the blocks of :func:`pair_blocks`."""
    n, P, _ = blocks.shape
    M = (pair_weights(U1) @ blocks.reshape(n, P * P)).reshape(P, P)
    return M + M.T
