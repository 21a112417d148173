"""Predictor statistics of the renormalised kernel regression (docs/theory.md §3).

With ``K``, ``k*``, ``k**`` built from ``U_1``:

- mean ``⟨f(x*)⟩ = k*^T (K + T I)^{-1} Y``;
- variance ``⟨δf(x*)²⟩ = k** − k*^T (K + T I)^{-1} k*``;
- generalisation error ``mean((⟨f⟩ − y)²) + mean(⟨δf²⟩)``;
- mean-predictor accuracy ``mean(sign⟨f⟩ = y)``;
- Gaussian accuracy ``mean(½ erfc(−y⟨f⟩ / √(2⟨δf²⟩)))``;
- kernel–task alignment ``|φ_k · Y| / √P`` for the top principal components of the train kernel.

The two accuracies are defined for classification problems (every target ±1; see
:attr:`smtheory.problem.KernelProblem.task`); for regression targets they are NaN (``null`` in
JSON) and the generalisation error is the result.

Test inputs are processed in chunks, so memory stays ``O(P² + chunk·P)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.special

from .checks import CLASSIFICATION, REGRESSION, InputError, finite_array, label_task, positive_float
from .compile_cache import ensure_compilation_cache
from .kernels import kernel_diagonal, renormalized_kernel, subnetwork_gp_u
from .model import ModelSpec
from .problem import KernelProblem
from .records import array_from_json, finite_or_none, float_from_json, json_array
from .precision import needs_float64


@dataclass(frozen=True, eq=False)
class PredictorStats:
    """Predictor statistics on a test set (docs/theory.md §3).

    ``accuracy`` and ``gaussian_accuracy`` are NaN for a regression problem (``task ==
    "regression"``); :meth:`to_record` writes them as ``None``.  Immutable.
    """

    mean: np.ndarray
    variance: np.ndarray
    generalization_error: float
    accuracy: float
    gaussian_accuracy: float
    task: str = CLASSIFICATION

    def to_record(self):
        """JSON-ready record (non-finite numbers as ``None``).

        Keys: ``predictor_mean``, ``predictor_variance`` (lists, as in a sampling record),
        ``generalization_error``, ``test_accuracy`` (the attribute :attr:`accuracy`),
        ``gaussian_accuracy``, ``task``, ``dtype`` (of the predictor mean: the precision it was computed in).
        """
        return dict(predictor_mean=json_array(self.mean), predictor_variance=json_array(self.variance),
                    generalization_error=finite_or_none(self.generalization_error),
                    test_accuracy=finite_or_none(self.accuracy),
                    gaussian_accuracy=finite_or_none(self.gaussian_accuracy), task=self.task,
                    dtype=str(np.asarray(self.mean).dtype))

    def to_dict(self):
        """Alias of :meth:`to_record`."""
        return self.to_record()

    @classmethod
    def from_record(cls, d):
        """The statistics written by :meth:`to_record` (``None`` read back as NaN)."""
        return cls(mean=array_from_json(d["predictor_mean"]), variance=array_from_json(d["predictor_variance"]),
                   generalization_error=float_from_json(d["generalization_error"]),
                   accuracy=float_from_json(d["test_accuracy"]),
                   gaussian_accuracy=float_from_json(d["gaussian_accuracy"]), task=d.get("task", CLASSIFICATION))


#: Relative tolerance of the symmetry and positive-semi-definiteness checks of U_1.
U1_TOLERANCE = 1e-8


def _as_u1(U1, D):
    """``U1`` validated: finite, D × D, symmetric and positive semi-definite (within a relative tolerance)."""
    U1 = finite_array("U1", U1, ndim=2)
    if U1.shape != (D, D):
        raise InputError(f"U1 must be {D}x{D}, got {U1.shape}")
    scale = max(float(np.max(np.abs(U1))), np.finfo(float).tiny)
    asym = float(np.max(np.abs(U1 - U1.T)))
    if asym > U1_TOLERANCE * scale:
        raise InputError(f"U1 must be symmetric: max |U1 - U1^T| = {asym:.3g} (relative {asym / scale:.3g})")
    U1 = 0.5 * (U1 + U1.T)
    low = float(np.linalg.eigvalsh(U1)[0])
    if low < -U1_TOLERANCE * scale * D:
        raise InputError(f"U1 must be positive semi-definite (an order parameter <w w^T>/N): its smallest "
                         f"eigenvalue is {low:.3g}")
    return U1


def validated_u1(U1, D):
    """``U1`` checked as the predictor needs it (finite, ``D × D``, symmetric and positive semi-definite within
    :data:`U1_TOLERANCE`) and exactly symmetrised; raises :class:`~smtheory.checks.InputError` otherwise."""
    return _as_u1(U1, D)


@needs_float64
def predictor_moments(xi_train, y_train, xi_test, U1, temperature, chunk=2048):
    """Posterior mean and variance of the predictor on test inputs.

    Parameters
    ----------
    xi_train : array [P, D, N0]   scaled training features
    y_train : array [P]
    xi_test : array [Q, D, N0]   scaled test features
    U1 : array [D, D]
    temperature : float
    chunk : int
        Test inputs per block (for test sets streamed from an iterable of chunks, see
        :mod:`smtheory.predictor_stream`).

    Returns
    -------
    mean, variance : arrays [Q]
    """
    temperature = positive_float("temperature", temperature)
    P, D, _ = xi_train.shape
    U1 = _as_u1(U1, D)
    K = np.asarray(renormalized_kernel(xi_train, U1))
    try:
        cf = scipy.linalg.cho_factor(K + temperature * np.eye(P), lower=True)
    except np.linalg.LinAlgError:
        raise InputError(f"K + T I is not numerically positive definite (T = {temperature:.3g}, largest kernel "
                         f"entry {float(np.max(np.abs(K))):.3g}): increase the temperature or rescale the "
                         "inputs") from None
    alpha = scipy.linalg.cho_solve(cf, y_train)
    Q = xi_test.shape[0]
    mean = np.empty(Q)
    var = np.empty(Q)
    for start in range(0, Q, chunk):
        sl = slice(start, min(Q, start + chunk))
        ks = np.asarray(renormalized_kernel(xi_test[sl], U1, xi_train))  # [q, P]
        kss = np.asarray(kernel_diagonal(xi_test[sl], U1))
        mean[sl] = ks @ alpha
        sol = scipy.linalg.solve_triangular(cf[0], ks.T, lower=True)
        var[sl] = kss - np.sum(sol**2, axis=0)
    return mean, np.maximum(var, 0.0)


def metrics(mean, variance, y, task=None):
    """Generalisation error, mean-predictor accuracy and Gaussian accuracy (docs/theory.md §3).

    Parameters
    ----------
    mean, variance : arrays [Q]
        Predictor mean and variance on the test inputs.
    y : array [Q]
        Test targets.
    task : {"classification", "regression"}, optional
        Default: classification if every target is ±1, else regression (0/1 labels are refused,
        see :func:`smtheory.checks.label_task`).

    Returns
    -------
    gen, acc, gauss : float
        ``acc`` and ``gauss`` are NaN for regression (accuracy is not defined for real targets).
    """
    mean = np.asarray(mean)
    variance = np.asarray(variance)
    y = np.asarray(y)
    gen = float(np.mean((mean - y) ** 2) + np.mean(variance))
    task = label_task("y_test", y) if task is None else task
    if task == REGRESSION:
        return gen, float("nan"), float("nan")
    if task != CLASSIFICATION:
        raise InputError(f"task must be 'classification' or 'regression', got {task!r}")
    acc = float(np.mean(np.sign(mean) == y))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = -y * mean / np.sqrt(2.0 * variance)
    gauss = np.where(variance > 0, 0.5 * scipy.special.erfc(z), (np.sign(mean) == y).astype(float))
    return gen, acc, float(np.mean(gauss))


@needs_float64
def predictor_statistics(problem: KernelProblem, spec: ModelSpec, U1=None, *, gp=False, subnetwork=None):
    """Predictor statistics on the problem's test set.

    Parameters
    ----------
    problem : KernelProblem (with a test set)
    spec : ModelSpec
    U1 : array [D, D], optional
        The order parameter (e.g. ``result.U1``). Required unless ``gp`` is set.
    gp : bool
        Use the GP (infinite-width) value of ``U_1`` instead.
    subnetwork : list of path indices, optional
        With ``gp=True``: the GP of the sub-network made of these paths
        (see :func:`smtheory.kernels.subnetwork_gp_u`).

    Returns
    -------
    PredictorStats
        Accuracies are NaN for a regression problem (``problem.task == "regression"``).

    Raises
    ------
    InputError
        ``U1`` not finite, of the wrong size, not symmetric or not positive semi-definite (it is
        checked before any linear algebra), or the problem has no test set.
    """
    ensure_compilation_cache()  # once per process (smtheory.compile_cache)
    if gp:
        paths = range(spec.n_paths) if subnetwork is None else subnetwork
        U1 = subnetwork_gp_u(spec, paths)
    elif U1 is None:
        raise InputError("give U1 (e.g. result.U1) or set gp=True")
    xi_tr = problem.scaled_train(spec)
    xi_te = problem.scaled_test(spec)
    mean, var = predictor_moments(xi_tr, problem.y_train, xi_te, U1, spec.temperature)
    task = problem.task
    gen, acc, gacc = metrics(mean, var, problem.y_test, task)
    return PredictorStats(mean, var, gen, acc, gacc, task)


@needs_float64
def kernel_task_alignment(xi_train, y_train, U1, top=30):
    """``|φ_k · Y| / √P`` for the ``top`` principal components of the train kernel (no T added)."""
    P, D, _ = xi_train.shape
    U1 = _as_u1(U1, D)
    K = np.asarray(renormalized_kernel(xi_train, U1))
    w, V = np.linalg.eigh(0.5 * (K + K.T))
    order = np.argsort(w)[::-1][:top]
    return np.abs(V[:, order].T @ y_train) / np.sqrt(P), w[order]
