"""Predictor statistics of the renormalised kernel regression (THEORY.md §3).

With ``K``, ``k*``, ``k**`` built from ``U_1``:

- mean ``⟨f(x*)⟩ = k*^T (K + T I)^{-1} Y``;
- variance ``⟨δf(x*)²⟩ = k** − k*^T (K + T I)^{-1} k*``;
- generalisation error ``mean((⟨f⟩ − y)²) + mean(⟨δf²⟩)``;
- mean-predictor accuracy ``mean(sign⟨f⟩ = y)``;
- Gaussian accuracy ``mean(½ erfc(−y⟨f⟩ / √(2⟨δf²⟩)))``;
- kernel–task alignment ``|φ_k · Y| / √P`` for the top principal components of the train kernel.

Test inputs are processed in chunks, so memory stays ``O(P² + chunk·P)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.special

from ._validate import InputError, finite_array, positive_float
from .kernels import kernel_diagonal, renormalized_kernel, subnetwork_gp_u
from .model import ModelSpec
from .problem import KernelProblem


@dataclass
class PredictorStats:
    """Predictor statistics on a test set."""

    mean: np.ndarray
    variance: np.ndarray
    generalization_error: float
    accuracy: float
    gaussian_accuracy: float

    def to_dict(self):
        return dict(generalization_error=self.generalization_error, accuracy=self.accuracy,
                    gaussian_accuracy=self.gaussian_accuracy)


def _as_u1(U1, D):
    U1 = finite_array("U1", U1, ndim=2)
    if U1.shape != (D, D):
        raise InputError(f"U1 must be {D}x{D}, got {U1.shape}")
    return 0.5 * (U1 + U1.T)


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
        Test inputs per block.

    Returns
    -------
    mean, variance : arrays [Q]
    """
    temperature = positive_float("temperature", temperature)
    P, D, _ = xi_train.shape
    U1 = _as_u1(U1, D)
    K = np.asarray(renormalized_kernel(xi_train, U1))
    cf = scipy.linalg.cho_factor(K + temperature * np.eye(P), lower=True)
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


def metrics(mean, variance, y):
    """Generalisation error, mean-predictor accuracy and Gaussian accuracy (THEORY §3)."""
    mean = np.asarray(mean)
    variance = np.asarray(variance)
    y = np.asarray(y)
    gen = float(np.mean((mean - y) ** 2) + np.mean(variance))
    acc = float(np.mean(np.sign(mean) == y))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = -y * mean / np.sqrt(2.0 * variance)
    gauss = np.where(variance > 0, 0.5 * scipy.special.erfc(z), (np.sign(mean) == y).astype(float))
    return gen, acc, float(np.mean(gauss))


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
    """
    if gp:
        paths = range(spec.n_paths) if subnetwork is None else subnetwork
        U1 = subnetwork_gp_u(spec, paths)
    elif U1 is None:
        raise InputError("give U1 (e.g. result.U1) or set gp=True")
    xi_tr = problem.scaled_train(spec)
    xi_te = problem.scaled_test(spec)
    mean, var = predictor_moments(xi_tr, problem.y_train, xi_te, U1, spec.temperature)
    gen, acc, gacc = metrics(mean, var, problem.y_test)
    return PredictorStats(mean, var, gen, acc, gacc)


def kernel_task_alignment(xi_train, y_train, U1, top=30):
    """``|φ_k · Y| / √P`` for the ``top`` principal components of the train kernel (no T added)."""
    P, D, _ = xi_train.shape
    U1 = _as_u1(U1, D)
    K = np.asarray(renormalized_kernel(xi_train, U1))
    w, V = np.linalg.eigh(0.5 * (K + K.T))
    order = np.argsort(w)[::-1][:top]
    return np.abs(V[:, order].T @ y_train) / np.sqrt(P), w[order]
