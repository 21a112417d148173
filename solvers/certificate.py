"""The certificate of a saddle point from one factorisation (docs/theory.md §3, "Saddle-point equations").

Independent of the optimiser, at the solution ``U_1..U_L``: the explicit residuals of the saddle-point
equations (with ``Φ`` from the factor, :func:`smtheory.action.residuals_from_phi`), the gradient norm and
the smallest eigenvalue of the Hessian of ``S`` in the independent entries of the ``U_ℓ``.  The eigenvalue
comes from the dense closed-form Hessian where that is affordable, else from LOBPCG on exact
Hessian-vector products that reuse the factor, preconditioned by the inverse of the Hessian without its
energy part (cheap: matrices of size ``D``), which clusters the spectrum so that a few tens of products
suffice; Lanczos (:func:`scipy.sparse.linalg.eigsh`) is the fallback if LOBPCG does not converge.
"""
from __future__ import annotations

import warnings

import jax
import numpy as np
import scipy.sparse.linalg as spla

from smtheory.action import readout_scalar, residuals_from_phi

from . import parameterization as par

__all__ = ["smallest_eigenvalue", "certificate_fields"]

_residuals = jax.jit(residuals_from_phi)


def smallest_eigenvalue(matvec, n, preconditioner=None, rtol=1e-8, seed=0):
    """Smallest eigenvalue of a symmetric operator given by ``matvec`` (``n × n``).

    Parameters
    ----------
    matvec : callable(v) -> ndarray
    n : int
    preconditioner : ndarray [n, n], optional
        A symmetric matrix close to the operator.  LOBPCG (block size 1) starts from the eigenvector of its
        smallest eigenvalue and is preconditioned by its absolute-valued inverse; it stops when the residual
        ``‖A x − λ x‖`` is below ``rtol`` times the preconditioner's largest absolute eigenvalue (the error of
        ``λ`` is then of order the squared residual over the spectral gap).  Without a preconditioner, or if
        LOBPCG does not get there in 100 iterations, Lanczos (``eigsh``) with relative tolerance ``rtol``.
    rtol : float
    seed : int
        Start vector of the Lanczos fallback.

    Returns
    -------
    value : float
    n_products : int
        Operator applications used.
    """
    count = [0]

    def apply(V):
        V = np.asarray(V).reshape(n, -1)
        count[0] += V.shape[1]
        return np.column_stack([matvec(V[:, j]) for j in range(V.shape[1])])

    op = spla.LinearOperator((n, n), matvec=lambda v: apply(v)[:, 0], matmat=apply, dtype=np.float64)
    if preconditioner is not None:
        w, Q = np.linalg.eigh(0.5 * (preconditioner + preconditioner.T))
        x0 = Q[:, :1].copy()
        top = float(np.abs(w).max())
        w = np.maximum(np.abs(w), 1e-10 * top)
        M = spla.LinearOperator((n, n), matmat=lambda V: Q @ ((Q.T @ np.asarray(V).reshape(n, -1)) / w[:, None]),
                                matvec=lambda v: Q @ ((Q.T @ v.ravel()) / w), dtype=np.float64)
        tol = rtol * top
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "not reaching the requested tolerance": checked below
            vals, vecs = spla.lobpcg(op, x0, M=M, largest=False, tol=tol, maxiter=100)
        x = np.asarray(vecs).reshape(n)
        if np.linalg.norm(matvec(x) - vals[0] * x) <= tol * np.linalg.norm(x):
            return float(vals[0]), count[0]
    vals = spla.eigsh(op, k=1, which="SA", tol=rtol, return_eigenvectors=False, maxiter=20 * n,
                      v0=np.random.default_rng(seed).standard_normal(n))
    return float(vals[0]), count[0]


def _min_eig(obj, vec, dense):
    if dense:
        return float(np.linalg.eigvalsh(obj.hessian(vec))[0]), 0
    return smallest_eigenvalue(lambda v: obj.hvp(vec, v), vec.size, obj.hessian_without_energy(vec))


def certificate_fields(theta, sizes, obj_entries, c, tol, opt_message, dense):
    """The :class:`~smtheory.solvers.numeric.SaddlePointResult` fields ``U`` … ``message`` at ``theta``.

    Parameters
    ----------
    theta : ndarray
        Log-Cholesky parameters of the solution.
    sizes : tuple of int
        ``D_1, ..., D_L``.
    obj_entries : FactoredObjective
        The unscaled action in the independent entries (``entries=True``, ``scale=1``).
    c : ActionConstants
    tol : float
        Required relative residual.
    opt_message : str
    dense : bool
        Form the dense Hessian (else LOBPCG on Hessian-vector products).

    Returns
    -------
    dict
        Also ``n_hessian_products`` (products used by the eigenvalue; 0 when dense).
    """
    Us = [np.asarray(U) for U in par.unpack(jax.numpy.asarray(theta), sizes)]
    Us = [0.5 * (U + U.T) for U in Us]
    vec = par.pack_entries(Us)
    S = obj_entries.value(vec)
    finite = bool(np.isfinite(S) and all(np.all(np.isfinite(U)) for U in Us))
    products = 0
    if finite:
        phi = obj_entries.solved(vec)[0]
        residuals = [float(r) for r in _residuals([jax.numpy.asarray(U) for U in Us], phi, c)]
        grad_norm = float(np.linalg.norm(obj_entries.gradient(vec)))
        min_eig, products = _min_eig(obj_entries, vec, dense)
    else:
        residuals, grad_norm, min_eig = [np.inf] * (len(sizes) + 1), np.inf, np.nan
    converged = bool(finite and max(residuals) < tol and min_eig > 0)
    if converged:
        message = "converged: saddle-point equations hold and the Hessian is positive definite"
    elif not finite:
        message = "failed: the action became non-finite"
    elif not max(residuals) < tol:
        message = f"not converged: max relative residual {max(residuals):.2e} >= tol {tol:.0e} ({opt_message})"
    else:
        message = f"not a minimum: smallest Hessian eigenvalue {min_eig:.3e} <= 0"
    return dict(U=Us, U_a=float(readout_scalar(jax.numpy.asarray(Us[-1]), c)), action=float(S),
                grad_norm=grad_norm, hessian_min_eig=min_eig, residuals=residuals, converged=converged,
                message=message, n_hessian_products=products)
