"""JSON-ready records of results: numbers, arrays and nested diagnostics, with NaN as ``None``.

The solve result (:class:`smtheory.solvers.numeric.SaddlePointResult`), the predictor statistics
(:class:`smtheory.predictor.PredictorStats`) and the sampling result
(:class:`smtheory.sims.config.SampleResult`) each write one record (``to_record()``) and read it back
(``from_record()``) with these helpers, so that the command line's JSON, the experiment drivers and the
sweep store see one key set.  Strict JSON has no NaN or infinity: a non-finite number is written as
``None`` and read back as NaN.
"""
from __future__ import annotations

import math

import numpy as np

#: Version of the record key set.  Experiment stage files and sweep task files carry it in their keys, so
#: files written with another key set are recomputed, never misread.
RECORD_SCHEMA = 3  # 3: every record states its dtype

__all__ = ["RECORD_SCHEMA", "finite_or_none", "json_array", "float_from_json", "array_from_json", "json_tree", "tree_from_json"]


def finite_or_none(x):
    """``float(x)``, or ``None`` when it is NaN or infinite."""
    x = float(x)
    return x if math.isfinite(x) else None


def json_array(a):
    """A 2-d array as nested lists, anything else flattened to one list; non-finite entries as ``None``."""
    if np.ndim(a) == 2:
        return [[finite_or_none(v) for v in row] for row in np.asarray(a)]
    return [finite_or_none(v) for v in np.ravel(a)]


def float_from_json(v):
    """The inverse of :func:`finite_or_none`: ``None`` → NaN."""
    return float("nan") if v is None else float(v)


def array_from_json(v, shape=None):
    """Nested lists (``None`` for NaN) → float64 array, reshaped to ``shape`` when given."""
    a = np.array(v, dtype=object)
    a = np.where(np.equal(a, None), np.nan, a).astype(np.float64)
    return a if shape is None else a.reshape(shape)


def json_tree(x):
    """Dicts, lists and numbers (NumPy scalars and arrays included) as JSON-ready values.

    Strings and booleans are kept; a number becomes a float (``None`` when not finite); an array of
    one or more dimensions becomes nested lists.
    """
    if isinstance(x, dict):
        return {str(k): json_tree(v) for k, v in x.items()}
    if isinstance(x, (str, bool, np.bool_)) or x is None:
        return bool(x) if isinstance(x, np.bool_) else x
    if isinstance(x, (list, tuple)):
        return [json_tree(v) for v in x]
    if np.ndim(x) == 0:
        return finite_or_none(np.asarray(x))
    return [json_tree(v) for v in np.asarray(x)]


def tree_from_json(x):
    """The inverse of :func:`json_tree` for numbers: ``None`` → NaN inside dicts and lists of numbers."""
    if isinstance(x, dict):
        return {k: tree_from_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [tree_from_json(v) for v in x]
    return float("nan") if x is None else x
