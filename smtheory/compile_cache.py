"""A persistent JAX compilation cache for the command line and the experiment drivers.

Compiling the samplers' NUTS and Langevin kernels takes tens of seconds on a small CPU; the cache
keeps the compiled executables on disk so that a second process (a rerun, a worker process of
:func:`smtheory.validation.markov.run_experiments`, a resumed run) reads them instead of compiling again.
Where: the ``SMTHEORY_JAX_CACHE`` environment variable, else ``~/.cache/smtheory/jax``; set
``SMTHEORY_JAX_CACHE=off`` to turn it off. Importing :mod:`smtheory` does not enable it: the CLI and
the experiment drivers call :func:`enable_compilation_cache`, and a Python user may do the same.
"""
from __future__ import annotations

import os

__all__ = ["enable_compilation_cache", "cache_dir"]


def cache_dir(path=None):
    """The cache folder that :func:`enable_compilation_cache` would use (None when turned off)."""
    path = path or os.environ.get("SMTHEORY_JAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                        "smtheory", "jax")
    return None if str(path).lower() in ("off", "0", "none", "") else os.fspath(path)


def enable_compilation_cache(path=None):
    """Turn on JAX's persistent compilation cache in ``path`` (see the module docstring).

    Returns the folder used, or None when the cache is turned off or the folder cannot be created
    (then JAX simply compiles as usual).
    """
    folder = cache_dir(path)
    if folder is None:
        return None
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    return folder
