"""Input validation shared across the package: the one home of the error policy.

Every public entry point checks its input here so that bad input produces one clear
:class:`InputError` that names the parameter and what was expected, rather than a NaN, a
silently wrong number or a traceback from deep inside NumPy, SciPy or JAX.  The validators
*return the converted value* (``positive_int("chains", 2.0)`` gives ``2``); callers must keep
it.

Labels (:func:`labels`, :func:`label_task`): targets that are all ``±1`` define a
*classification* problem (accuracy is reported); other real targets a *regression* problem
(accuracy is not defined and reported as NaN / ``null``); ``0/1`` labels are refused with the
hint to use ``±1`` (an accuracy against ``sign(f) == 0`` would be silently wrong); complex, NaN,
infinite or non-numeric labels are refused.
"""
from __future__ import annotations

import math

import numpy as np

#: Default memory budget (bytes) for the arrays a solve needs (see :func:`check_memory`).
DEFAULT_MEMORY_BUDGET = 8 * 2**30
#: Largest width N accepted (beyond it the finite-width corrections are below float64 resolution;
#: use the GP limit, ``gp=True``, for N → ∞).
MAX_WIDTH = 10**7
#: Seeds must lie in ``[0, SEED_LIMIT)``: what ``numpy.random.default_rng`` and ``jax.random.PRNGKey`` accept.
SEED_LIMIT = 2**32

CLASSIFICATION = "classification"
REGRESSION = "regression"


class InputError(ValueError):
    """Bad user input. The message names the parameter and what was expected."""


def integer(name, value, minimum=None, maximum=None, what=None):
    """Return ``value`` as an ``int`` within ``[minimum, maximum]``, or raise :class:`InputError`.

    Parameters
    ----------
    name : str
        The parameter, as the user wrote it (used in the message).
    value : object
        Python or NumPy integers are accepted, and floats with an integral value (``20.0``, as
        TOML or JSON may give); bools, strings, ``20.5``, NaN and infinities are refused.
    minimum, maximum : int, optional
        Inclusive bounds.
    what : str, optional
        What was expected, for the message (default built from the bounds).

    Returns
    -------
    int
    """
    if what is None:
        if minimum is not None and maximum is not None:
            what = f"an integer in [{minimum}, {maximum}]"
        elif minimum == 1:
            what = "a positive integer"
        elif minimum == 0:
            what = "a non-negative integer"
        else:
            what = "an integer" + (f" >= {minimum}" if minimum is not None else "")
    if isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be {what}, got {value!r}")
    if isinstance(value, (int, np.integer)):
        v = int(value)
    elif isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        v = int(value)
    else:
        raise InputError(f"{name} must be {what}, got {value!r}")
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise InputError(f"{name} must be {what}, got {value!r}")
    return v


def positive_int(name, value):
    """Return ``value`` as an int ≥ 1, or raise (bools, strings and non-integral floats are refused)."""
    return integer(name, value, minimum=1)


def non_negative_int(name, value):
    """Return ``value`` as an int ≥ 0, or raise."""
    return integer(name, value, minimum=0)


def seed(name, value, span=1):
    """Return a seed as an int in ``[0, 2**32 - span]``, or raise.

    Parameters
    ----------
    name : str
    value : int
    span : int
        How many consecutive seeds the caller derives from ``value`` (the Markov task uses
        ``seed`` and ``seed + 1``), so that every one of them stays below ``2**32``.
    """
    return integer(name, value, minimum=0, maximum=SEED_LIMIT - span,
                   what=f"an integer in [0, 2**32{' - ' + str(span - 1) if span > 1 else ''}) "
                        "(the seeds NumPy and JAX accept)")


def width(name, value):
    """Return a width ``N`` as an int in ``[1, MAX_WIDTH]``, or raise."""
    return integer(name, value, minimum=1, maximum=MAX_WIDTH,
                   what=f"a positive integer of at most {MAX_WIDTH:.0e} (use the GP limit, gp=True, for "
                        "N -> infinity)")


def positive_float(name, value):
    """Return ``value`` as a finite positive float, or raise (strings and bools are refused)."""
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise InputError(f"{name} must be a finite positive number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a finite positive number, got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise InputError(f"{name} must be a finite positive number, got {value!r}")
    return v


def finite_array(name, value, ndim=None, dtype=np.float64):
    """Convert to a real float array, checking the number of dimensions, emptiness and finiteness.

    Complex values, strings and other non-numeric entries are refused (never cast with a warning).
    """
    raw = value if isinstance(value, np.ndarray) else None
    if raw is None:
        try:
            raw = np.asarray(value)
        except (TypeError, ValueError):
            raise InputError(f"{name} must be a numeric array, got {type(value).__name__}") from None
    if np.iscomplexobj(raw):
        raise InputError(f"{name} must hold real numbers, got a complex array (dtype {raw.dtype})")
    if raw.dtype.kind in "USV" or (raw.dtype.kind == "O" and not _all_real_numbers(raw)):
        raise InputError(f"{name} must be a numeric array, got entries of type "
                         f"{type(raw.flat[0]).__name__ if raw.size else raw.dtype}")
    try:
        arr = np.asarray(raw, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{name} must be a numeric array, got {type(value).__name__}") from None
    if ndim is not None and arr.ndim != ndim:
        raise InputError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name} must not be empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise InputError(f"{name} contains {bad} NaN or infinite values")
    return arr


def _all_real_numbers(arr):
    """No strings or complex numbers among the entries of an object array (other numbers are converted)."""
    return not any(isinstance(v, (str, bytes, complex, np.complexfloating)) for v in arr.flat)


def label_task(name, y):
    """``"classification"`` if every target is ±1, else ``"regression"``; 0/1 labels are refused.

    Parameters
    ----------
    name : str
        ``"y_train"`` or ``"y_test"`` (for the message).
    y : array
        Finite real targets (see :func:`labels`).

    Returns
    -------
    str
    """
    values = np.unique(np.asarray(y))
    if np.all(np.abs(values) == 1.0):
        return CLASSIFICATION
    if np.all((values == 0.0) | (values == 1.0)):
        raise InputError(f"{name} holds 0/1 labels: use ±1 labels for classification (y = 2*y - 1), "
                         "or real-valued targets for regression")
    return REGRESSION


def labels(name, value, n=None):
    """Validated targets: a finite real 1-d array (of length ``n`` if given) with a known task.

    See :func:`label_task` for the classification / regression rule.

    Returns
    -------
    array [n]
    """
    y = finite_array(name, value, ndim=1)
    if n is not None and y.shape[0] != n:
        raise InputError(f"{name} must have one label per example: expected {n}, got {y.shape[0]}")
    label_task(name, y)
    return y


def check_memory(what, n_bytes, budget=DEFAULT_MEMORY_BUDGET, hint="reduce P, the number of paths D or the "
                                                                   "input width N0"):
    """Refuse a computation whose arrays would exceed the memory budget (the estimate is in the message)."""
    if n_bytes > budget:
        raise InputError(
            f"{what} would need about {n_bytes / 2**30:.1f} GiB, more than the memory budget of "
            f"{budget / 2**30:.1f} GiB; {hint}"
        )
