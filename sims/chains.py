"""Running one function per chain: sequentially over chains (``jax.lax.map``), not batched (``jax.vmap``).

Why not ``vmap``: on the CPU, jaxlib 0.10 runs a *batched* LAPACK call (Cholesky, triangular solve — what
``vmap`` makes of a per-chain ``cho_solve``) by spreading the batch over XLA's intra-op thread pool and
waiting for it.  When XLA executes two such calls concurrently on a pool with no spare thread (two
threads on a 2-core machine), both wait for work that no thread is left to run: the process hangs forever
with every thread idle.  Measured here (jaxlib 0.10.2, 2 cores): three independent batched
``solve_triangular`` calls inside a jitted loop hang within a minute at batch 4 and never at batch 1; the
demo's finite-size point N = 50, P = 50 (NUTS on the overlap target, 4 chains) hung in every run.  Mapping
over chains keeps every LAPACK call unbatched.  It costs little: the chains' work is the same, and a
sequential map lets each chain's NUTS trajectory end on its own instead of waiting for the longest one.
"""
from __future__ import annotations

import jax

__all__ = ["over_chains"]


def over_chains(fn, *args):
    """``fn`` applied to each chain's slice of ``args`` (leading axis), one chain after the other.

    Parameters
    ----------
    fn : callable
        Per-chain function of the per-chain slices of ``args``; its outputs are stacked on a new leading axis.
    *args : pytrees of arrays
        Each with the chains on the leading axis.

    Returns
    -------
    pytree
        ``fn``'s outputs, chains on the leading axis (as ``jax.vmap(fn)(*args)`` would return them).
    """
    return jax.lax.map(lambda a: fn(*a), args)
