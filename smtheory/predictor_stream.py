"""Predictor statistics and test kernels on test sets streamed in chunks (docs/theory.md §3, "Predictor
statistics" and "Metrics").

The training set is factored once (:class:`TrainFactor`: ``T I + K = L Lᵀ``, ``α = (T I + K)⁻¹ Y``); test
inputs then arrive in chunks (any iterable: arrays read from disk, or inputs generated and turned into path
features chunk by chunk with :func:`feature_chunks`) and only the per-input mean and variance are kept.
Memory stays ``O(P² + P·D·N0 + (D·N0)² + chunk·max(P, D·N0))`` however many test inputs there are.

Per test input ``x*`` with scaled features ``ξ̄*`` ([D·N0]) and ``W = U_1 ⊗ I``:

- mean ``⟨f⟩ = ξ̄*ᵀ v`` with ``v = W Ξᵀ α`` (``D·N0`` flops per input);
- variance ``k** − k*ᵀ (T I + K)⁻¹ k*``, either in feature space, ``ξ̄*ᵀ B ξ̄*`` with
  ``B = W Ξᵀ (T I + K)⁻¹ Ξ W`` (``(D N0)²`` flops per input; used when ``D·N0 ≤ P``), or in sample space,
  ``|L⁻¹ k*|²`` (``P²`` flops per input).  Both are exact; they differ by rounding only.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .attention import attention_matrices
from .checks import InputError, finite_array, label_task, positive_float, positive_int
from .kernels import kernel_diagonal, renormalized_kernel
from .paths import path_features, scaled_path_features
from .precision import needs_float64
from .predictor import PredictorStats, metrics, validated_u1

__all__ = ["TrainFactor", "streamed_moments", "streamed_statistics", "test_kernel_chunks", "feature_chunks"]


@jax.jit
def _train_parts(xi, y, U1, temperature):
    P, D, N0 = xi.shape
    K = renormalized_kernel(xi, U1)
    L = jnp.linalg.cholesky(K + temperature * jnp.eye(P))
    alpha = jax.scipy.linalg.cho_solve((L, True), y)
    W = lambda A: jnp.einsum("ab,pbi->pai", U1, A.reshape(-1, D, N0)).reshape(A.shape[0], D * N0)  # noqa: E731
    v = W((alpha @ xi.reshape(P, D * N0))[None])[0]
    X = jax.scipy.linalg.solve_triangular(L, xi.reshape(P, D * N0), lower=True)
    WM = W((X.T @ X))  # W (Ξᵀ G Ξ), then times W from the right
    B = W(WM.T).T
    return L, alpha, v, 0.5 * (B + B.T)


@jax.jit
def _moments_features(xi_test, U1, v, B):
    q = xi_test.shape[0]
    flat = xi_test.reshape(q, -1)
    kss = kernel_diagonal(xi_test, U1)
    return flat @ v, kss - jnp.sum((flat @ B) * flat, axis=1)


@jax.jit
def _moments_samples(xi_test, xi_train, U1, L, alpha):
    ks = renormalized_kernel(xi_test, U1, xi_train)
    sol = jax.scipy.linalg.solve_triangular(L, ks.T, lower=True)
    return ks @ alpha, kernel_diagonal(xi_test, U1) - jnp.sum(sol**2, axis=0)


class TrainFactor:
    """The training-set part of the predictor, factored once (module docstring).

    Parameters
    ----------
    xi_train : array [P, D, N0]
        Scaled training path features.
    y_train : array [P]
    U1 : array [D, D]
        Symmetric positive semi-definite order parameter (e.g. ``result.U1``).
    temperature : float

    Attributes
    ----------
    space : {"features", "samples"}
        Where the variance is computed (``"features"`` when ``D·N0 ≤ P``).
    """

    @needs_float64
    def __init__(self, xi_train, y_train, U1, temperature):
        temperature = positive_float("temperature", temperature)
        self.xi = jnp.asarray(finite_array("xi_train", xi_train, ndim=3))
        P, D, N0 = self.xi.shape
        y = finite_array("y_train", y_train, ndim=1)
        if y.shape[0] != P:
            raise InputError(f"y_train must have one label per training example: expected {P}, got {y.shape[0]}")
        self.U1 = jnp.asarray(validated_u1(U1, D))
        self.space = "features" if D * N0 <= P else "samples"
        self.L, self.alpha, self.v, self.B = _train_parts(self.xi, jnp.asarray(y), self.U1, temperature)
        if not bool(jnp.all(jnp.isfinite(jnp.diag(self.L)))):
            raise InputError(f"K + T I is not numerically positive definite (T = {temperature:.3g}): increase the "
                             "temperature or rescale the inputs")

    def moments(self, xi_test):
        """Predictor mean and variance (NumPy arrays ``[q]``, variance floored at 0) of one chunk ``[q, D, N0]``."""
        xi_test = jnp.asarray(finite_array("xi_test", xi_test, ndim=3))
        if xi_test.shape[1:] != self.xi.shape[1:]:
            raise InputError(f"test features must have shape [q, {self.xi.shape[1]}, {self.xi.shape[2]}], "
                             f"got {tuple(xi_test.shape)}")
        if self.space == "features":
            mean, var = _moments_features(xi_test, self.U1, self.v, self.B)
        else:
            mean, var = _moments_samples(xi_test, self.xi, self.U1, self.L, self.alpha)
        return np.asarray(mean), np.maximum(np.asarray(var), 0.0)


def streamed_moments(xi_train, y_train, U1, temperature, test_chunks):
    """Mean and variance of the predictor on every test input of ``test_chunks`` (an iterable of ``[q, D, N0]``).

    Returns
    -------
    mean, variance : arrays [Q]
    """
    factor = TrainFactor(xi_train, y_train, U1, temperature)
    parts = [factor.moments(chunk) for chunk in test_chunks]
    if not parts:
        raise InputError("test_chunks is empty")
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def streamed_statistics(xi_train, y_train, U1, temperature, test_batches, task=None):
    """:class:`~smtheory.predictor.PredictorStats` on a test set given as an iterable of ``(xi_chunk, y_chunk)``.

    ``task`` as in :func:`smtheory.predictor.metrics` (default from the test labels).
    """
    factor = TrainFactor(xi_train, y_train, U1, temperature)
    means, variances, labels = [], [], []
    for xi_chunk, y_chunk in test_batches:
        mean, var = factor.moments(xi_chunk)
        y_chunk = finite_array("y_test", y_chunk, ndim=1)
        if y_chunk.shape[0] != mean.shape[0]:
            raise InputError(f"a test chunk has {mean.shape[0]} inputs but {y_chunk.shape[0]} labels")
        means.append(mean), variances.append(var), labels.append(y_chunk)
    if not means:
        raise InputError("test_batches is empty")
    mean, var, y = np.concatenate(means), np.concatenate(variances), np.concatenate(labels)
    task = label_task("y_test", y) if task is None else task
    gen, acc, gauss = metrics(mean, var, y, task)
    return PredictorStats(mean, var, gen, acc, gauss, task)


@needs_float64
def test_kernel_chunks(xi_train, U1, test_chunks):
    """Yield ``k*`` ([q, P], ``K_{U_1}(x*, x_train)``) chunk by chunk for an iterable of test features."""
    xi_train = jnp.asarray(finite_array("xi_train", xi_train, ndim=3))
    U1 = jnp.asarray(validated_u1(U1, xi_train.shape[1]))
    for chunk in test_chunks:
        yield np.asarray(renormalized_kernel(jnp.asarray(chunk), U1, xi_train))


def feature_chunks(x, y, layers, sigma0_sq, readout="last", chunk=4096):
    """Yield ``(scaled path features [q, D, N0], labels [q])`` of the inputs ``x`` [Q, N0, T] chunk by chunk.

    ``x`` may be any array-like that slices lazily (e.g. a ``numpy.memmap``); only one chunk of attention
    matrices and features exists at a time.  ``sigma0_sq`` is ``spec.sigma0_sq``.
    """
    chunk = positive_int("chunk", chunk)
    for start in range(0, len(x), chunk):
        xs = np.asarray(x[start:start + chunk], dtype=np.float64)
        xi = path_features(xs, attention_matrices(xs, layers, name="x_test"), readout)
        yield scaled_path_features(xi, sigma0_sq), np.asarray(y[start:start + chunk])
