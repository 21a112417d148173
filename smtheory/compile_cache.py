"""A persistent JAX compilation cache, on by default for the package's entry points (README "Fast start").

JIT compilation dominates a first call: the README's Python example spent about two thirds of its wall time
tracing, lowering and compiling (``benchmarks/results/bench_startup.md``).  JAX's persistent compilation cache keeps the compiled
executables on disk so that a second process (a rerun, a worker process of the experiment drivers, a
resumed run) reads them instead of compiling again.

When: the first call of a documented entry point (:func:`smtheory.solvers.solve`,
:func:`smtheory.solvers.continuation`, :func:`smtheory.sims.run.sample`,
:func:`smtheory.predictor_statistics`, the experiment drivers) or of the ``smtheory`` program calls
:func:`ensure_compilation_cache`, which turns the cache on once per process; importing :mod:`smtheory`
does not.  Where: ``SMTHEORY_JAX_CACHE`` if set, else ``~/.cache/smtheory/jax``.

How to control it:

* ``SMTHEORY_JAX_CACHE=/path`` or :func:`enable_compilation_cache` ``(path)``: another folder;
* ``SMTHEORY_JAX_CACHE=off``, :func:`disable_compilation_cache` or ``smtheory --no-compile-cache``: off for
  the process (and, through the environment variable, for the worker processes it starts afterwards);
* a ``jax_compilation_cache_dir`` that you configured yourself (``jax.config.update`` or
  ``JAX_COMPILATION_CACHE_DIR``) is left alone, with your other cache settings.

Every compilation is cached, however short (``jax_persistent_cache_min_compile_time_secs = 0``, see
:data:`MIN_COMPILE_TIME_SECS`); JAX 0.10 on a local disk has no minimum entry size
(``jax_persistent_cache_min_entry_size_bytes`` stays at its default 0).  A value of either setting that you
chose yourself (in ``jax.config`` or the ``JAX_…`` environment variable) is kept.  Cached code still has
to be traced and lowered in every process (the cache key is the lowered program); the cache saves the
XLA compilation.  See docs/theory.md §3 for what is compiled (the action, its derivatives and the
certificate, once per architecture: widths, variances and temperature are traced values).
"""
from __future__ import annotations

import os
import threading

__all__ = ["CACHE_ENV", "MIN_COMPILE_TIME_SECS", "cache_dir", "enable_compilation_cache",
           "ensure_compilation_cache", "disable_compilation_cache"]

#: The environment variable naming the cache folder (or ``off``).
CACHE_ENV = "SMTHEORY_JAX_CACHE"

#: Compilations shorter than this are not written to the cache.  JAX's default, 1 s, left ~50 of the 55
#: compilations of the README example (each 0.01–0.9 s, ~2 s together on 2 cores) to every new process;
#: 0 caches them all, and the next process compiles nothing (``benchmarks/bench_startup.py`` measures both).
MIN_COMPILE_TIME_SECS = 0.0

#: JAX's own default of ``jax_persistent_cache_min_compile_time_secs`` (a different value was set by the user).
_JAX_DEFAULT_MIN_COMPILE_TIME = 1.0
_MIN_COMPILE_TIME_ENV = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"
_OFF = ("off", "0", "none", "no", "false", "")

_lock = threading.Lock()
_state = {"checked": False, "disabled": False, "folder": None}


def cache_dir(path=None):
    """The cache folder that :func:`enable_compilation_cache` would use (None when turned off).

    Parameters
    ----------
    path : str or os.PathLike, optional
        An explicit folder (``"off"`` turns the cache off); default: ``SMTHEORY_JAX_CACHE``, else
        ``~/.cache/smtheory/jax``.
    """
    path = path or os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "smtheory", "jax")
    return None if str(path).strip().lower() in _OFF else os.fspath(path)


def ensure_compilation_cache():
    """Turn the persistent cache on once per process, unless it is off (see the module docstring).

    Idempotent: after the first call it only reads a flag.  The package's entry points call it.

    Returns
    -------
    str or None
        The cache folder in use (smtheory's or one the user configured in JAX), or None when off.
    """
    if _state["checked"]:
        return _state["folder"] or _user_cache_dir()
    with _lock:
        if not _state["checked"]:
            _state["checked"] = True
            _enable(None)
    return _state["folder"] or _user_cache_dir()


def enable_compilation_cache(path=None):
    """Turn on JAX's persistent compilation cache (see the module docstring).

    Parameters
    ----------
    path : str or os.PathLike, optional
        The folder (``"off"``: :func:`disable_compilation_cache`).  Given, it is used even after
        :func:`disable_compilation_cache` or over a folder configured in JAX, and it is exported as
        ``SMTHEORY_JAX_CACHE`` so that worker processes started afterwards use it too.  Without it the call is :func:`ensure_compilation_cache`'s work: nothing when
        turned off or when the user configured JAX's cache folder, else ``SMTHEORY_JAX_CACHE`` or
        ``~/.cache/smtheory/jax``.

    Returns
    -------
    str or None
        The folder used, or None when the cache is off or the folder cannot be created (then JAX
        simply compiles as usual).
    """
    if path is not None and cache_dir(path) is None:  # enable_compilation_cache("off")
        disable_compilation_cache()
        return None
    with _lock:
        _state["checked"] = True
        if path is None:
            return _enable(None) or _user_cache_dir()
        _state["disabled"] = False
        folder = _enable(path)
        if folder is not None:
            os.environ[CACHE_ENV] = folder
        return folder


def disable_compilation_cache():
    """Keep the persistent cache off in this process from now on (and in worker processes started later).

    Sets ``SMTHEORY_JAX_CACHE=off`` in ``os.environ``; if smtheory had already turned the cache on, JAX's
    cache is reset and its folder unset.  A cache folder you configured in JAX yourself is not touched.
    """
    with _lock:
        _state["checked"] = True
        _state["disabled"] = True
        os.environ[CACHE_ENV] = "off"
        folder, _state["folder"] = _state["folder"], None
        if folder is not None:
            import jax

            if jax.config.jax_compilation_cache_dir == folder:
                _set_jax_cache_dir(None)


def _user_cache_dir():
    """``jax_compilation_cache_dir`` when it is set and not by smtheory (the user's own), else None."""
    import jax

    current = jax.config.jax_compilation_cache_dir
    return current if current and current != _state["folder"] else None


def _set_jax_cache_dir(folder):
    """Point JAX's cache at ``folder`` (None: unset); a cache JAX already opened elsewhere is reset."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    previous = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", folder)
    if previous and previous != folder:
        compilation_cache.reset_cache()


def _enable(path):
    """Configure JAX's cache in ``cache_dir(path)`` (the lock is held); None when off or not possible.

    Without ``path`` nothing is done when smtheory's cache was switched off or the user configured a
    cache folder in JAX.
    """
    if path is None and (_state["disabled"] or _user_cache_dir() is not None):
        return None
    folder = cache_dir(path)
    if folder is None:
        return None
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None
    import jax

    _set_jax_cache_dir(folder)
    if (jax.config.jax_persistent_cache_min_compile_time_secs == _JAX_DEFAULT_MIN_COMPILE_TIME
            and _MIN_COMPILE_TIME_ENV not in os.environ):
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_SECS)
    _state["folder"] = folder
    return folder
