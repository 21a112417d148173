"""Float64 for the theory: stated, visible and under the user's control (README "Precision").

The saddle point, the kernels and the exact samplers are computed in float64: the train kernel
``T I + K`` is ill-conditioned at the paper's temperature (T = 0.01), and the certificate checks residuals
near 1e-9.  JAX computes in float32 unless ``jax_enable_x64`` is set, which is a process-wide switch.
So the package does not flip it when it is imported.  Instead:

* the theory's entry points (building a :class:`smtheory.KernelProblem`, the kernels, the path features,
  the network's forward pass, the predictor statistics, :func:`smtheory.solvers.solve`,
  :func:`smtheory.sims.run.sample`) call :func:`require_float64`;
* if float64 is already on (``jax.config.update("jax_enable_x64", True)``, ``JAX_ENABLE_X64=1`` or
  :func:`enable_float64`), nothing happens;
* otherwise, by default, the first such call turns it on and says so once with a :class:`PrecisionWarning`
  (call :func:`enable_float64` yourself first to make it explicit and silence the warning);
* with the environment variable ``SMTHEORY_FLOAT64=off`` it is never turned on: the call raises an
  :class:`~smtheory.checks.InputError` naming the switch instead.

The command line and the package's worker processes are the package's own processes: they call
:func:`configure_process` (float64 on, and asynchronous CPU dispatch off as a precaution against
jax-ml/jax#25861).  Every result record states its ``dtype``.
"""
from __future__ import annotations

import functools
import os
import warnings

from .checks import InputError

__all__ = ["PrecisionWarning", "PRECISION_ENV", "enable_float64", "float64_enabled", "require_float64",
           "needs_float64", "configure_process"]

#: The environment variable: ``auto`` (default: turn float64 on with a warning) or ``off`` (raise instead).
PRECISION_ENV = "SMTHEORY_FLOAT64"


class PrecisionWarning(UserWarning):
    """smtheory turned on JAX's float64 mode (``jax_enable_x64``) for the process."""


def float64_enabled():
    """True if JAX computes in float64 (``jax_enable_x64`` is on)."""
    import jax

    return bool(jax.config.jax_enable_x64)


def enable_float64():
    """Turn on JAX's float64 mode for the process (``jax.config.update("jax_enable_x64", True)``).

    Returns
    -------
    bool
        Whether it was already on.
    """
    import jax

    was = float64_enabled()
    jax.config.update("jax_enable_x64", True)
    return was


def require_float64(where):
    """Make sure float64 is on before the theory computes (see the module docstring).

    Parameters
    ----------
    where : str
        The entry point, for the messages (e.g. ``"smtheory.KernelProblem"``).

    Raises
    ------
    InputError
        If float64 is off and ``SMTHEORY_FLOAT64=off``.
    """
    if float64_enabled():
        return
    mode = os.environ.get(PRECISION_ENV, "auto").strip().lower()
    if mode in ("off", "0", "never", "false", "no"):
        raise InputError(f"{where} computes in float64, but JAX's float64 mode is off and {PRECISION_ENV}={mode} "
                         "forbids turning it on: call smtheory.enable_float64() (or jax.config.update("
                         "'jax_enable_x64', True)) first, or unset " + PRECISION_ENV)
    enable_float64()
    warnings.warn(f"{where} turned on JAX's float64 mode (jax_enable_x64=True) for this process: the theory is "
                  "computed in float64. Call smtheory.enable_float64() first to do this explicitly (no warning), "
                  f"or set {PRECISION_ENV}=off to get an error instead.", PrecisionWarning, stacklevel=3)


def needs_float64(fn):
    """Decorator: call :func:`require_float64` (named after ``fn``) before ``fn``."""
    where = f"{fn.__module__}.{fn.__qualname__}"

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not float64_enabled():
            require_float64(where)
        return fn(*args, **kwargs)

    return wrapper


def configure_process():
    """The settings of the package's own processes (the CLI, worker processes): float64 on, no warning, and
    asynchronous CPU dispatch off (a precaution against jax-ml/jax#25861; the deadlock traced in this
    package was batched LAPACK under ``vmap``, fixed in :mod:`smtheory.sims.chains`)."""
    import jax

    enable_float64()
    jax.config.update("jax_cpu_enable_async_dispatch", False)
