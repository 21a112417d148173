"""Worker processes for the package's parallel stages: spawned, one core each, XLA single-threaded.

The experiment drivers run one sampling or solving stage per worker process, one worker per core. Two
settings make that safe and fast:

* **spawn, not fork** — JAX (its XLA runtime threads) is not fork-safe;
* **XLA's CPU intra-op pool off** (``--xla_cpu_multi_thread_eigen=false``) — each worker owns one core, so
  an intra-op thread pool per worker would only oversubscribe the cores (the benchmarks run the same way).

XLA reads ``XLA_FLAGS`` once, when a process creates its CPU backend, so the flag is placed in the
environment the workers inherit; the parent process (whose backend already exists) is not affected, and the
parent's environment is restored when the pool closes.  Set ``SMTHEORY_WORKER_XLA_FLAGS`` to override the
flags given to workers (an empty value passes the parent's ``XLA_FLAGS`` through unchanged).
"""
from __future__ import annotations

import contextlib
import os

__all__ = ["WORKER_XLA_FLAGS", "worker_environment", "worker_pool", "worker_xla_flags"]

#: Flags added to ``XLA_FLAGS`` in worker processes.
WORKER_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false"


def worker_xla_flags(parent=None):
    """``XLA_FLAGS`` for a worker: the parent's flags plus :data:`WORKER_XLA_FLAGS` (or the override)."""
    parent = os.environ.get("XLA_FLAGS", "") if parent is None else parent
    extra = os.environ.get("SMTHEORY_WORKER_XLA_FLAGS", WORKER_XLA_FLAGS)
    if not extra or extra in parent:
        return parent
    return f"{parent} {extra}".strip()


@contextlib.contextmanager
def worker_environment():
    """Context manager: ``XLA_FLAGS`` set for workers started inside the block, restored after."""
    saved = os.environ.get("XLA_FLAGS")
    os.environ["XLA_FLAGS"] = worker_xla_flags(saved or "")
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = saved


@contextlib.contextmanager
def worker_pool(max_workers):
    """A ``ProcessPoolExecutor`` of ``max_workers`` spawned workers with the worker XLA flags.

    Parameters
    ----------
    max_workers : int
        Number of worker processes (one per core is the intended use).

    Yields
    ------
    concurrent.futures.ProcessPoolExecutor
        On normal exit the pool waits for its calls; on an exception (e.g. ``KeyboardInterrupt``) pending calls
        are cancelled and running workers terminated at once.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # the executor may start workers at any submit, so the environment is kept for the pool's lifetime
    with worker_environment():
        pool = ProcessPoolExecutor(max_workers=max_workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            yield pool
        except BaseException:
            _stop_now(pool)
            raise
        pool.shutdown(wait=True)


def _stop_now(pool):
    """Cancel pending calls and terminate running workers (an interrupt must not wait for a running stage).

    The stages write their checkpoints and results atomically, so a terminated worker loses at most the
    work since its last checkpoint; the rerun resumes from there.  (Python 3.11's executor has no public
    ``terminate_workers``: its process table is read directly.)
    """
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.terminate()
    pool.shutdown(wait=True, cancel_futures=True)
