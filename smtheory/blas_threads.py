"""One BLAS thread for JAX's CPU linear algebra while the package computes.

On the CPU, jaxlib runs its LAPACK calls (Cholesky, triangular solves) through the OpenBLAS that
ships with SciPy. OpenBLAS's own thread pool competes with XLA's threads on small and medium
matrices: measured on the 2-core CI machine, a 100 × 100 triangular solve with 100 right-hand
sides took 13 ms with the default pool and 0.8–1.2 ms with one thread. :func:`single_blas_thread`
limits the pool for the duration of a ``with`` block (``threadpoolctl``) and restores it after, so
a user's own NumPy settings are untouched outside the package's calls.
"""
from __future__ import annotations

import contextlib

__all__ = ["single_blas_thread"]


@contextlib.contextmanager
def single_blas_thread():
    """Context manager: BLAS/LAPACK libraries limited to one thread inside the block."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a declared dependency
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
