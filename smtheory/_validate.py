"""Input validation helpers shared across the package.

Every public entry point checks its input here so that bad input produces one
clear :class:`InputError` that names the parameter and what was expected,
rather than a NaN or a traceback from deep inside JAX.
"""
from __future__ import annotations

import numpy as np

#: Default memory budget (bytes) for the arrays a solve needs (see :func:`check_memory`).
DEFAULT_MEMORY_BUDGET = 8 * 2**30


class InputError(ValueError):
    """Bad user input. The message names the parameter and what was expected."""


def positive_int(name, value):
    """Return ``value`` as an int, or raise if it is not a positive integer."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer() and value > 0:
            return int(value)
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    if value <= 0:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def positive_float(name, value):
    """Return ``value`` as a finite positive float, or raise."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a positive number, got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise InputError(f"{name} must be a finite positive number, got {value!r}")
    return v


def finite_array(name, value, ndim=None, dtype=np.float64):
    """Convert to a float array, checking the number of dimensions and finiteness."""
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a numeric array, got {type(value).__name__}") from None
    if ndim is not None and arr.ndim != ndim:
        raise InputError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name} must not be empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise InputError(f"{name} contains {bad} NaN or infinite values")
    return arr


def check_memory(what, n_bytes, budget=DEFAULT_MEMORY_BUDGET):
    """Refuse a computation whose arrays would exceed the memory budget."""
    if n_bytes > budget:
        raise InputError(
            f"{what} would need {n_bytes / 2**30:.1f} GiB, more than the memory budget of "
            f"{budget / 2**30:.1f} GiB; reduce P, the number of paths D or the input width N0"
        )
