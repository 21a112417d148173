"""Newton-type minimisation of the action on one Cholesky factor per iterate (docs/theory.md §3).

Every iteration factorises ``T I + K`` at the new point once (:class:`.factored_objective.FactoredObjective`);
the gradient and the curvature information reuse that factor.  Three ways to get the step, chosen by
:func:`choose_hessian`:

- ``"newton"``: the exact Hessian (closed-form energy Hessian, ``2 P (D N0)² + 2 D⁴ N0²`` flops) at every
  iterate — quadratic convergence, for problems where that Hessian is cheap next to the factorisation;
- ``"secant"``: the exact Hessian of the prior part at every iterate (cheap: matrices of size ``D``) plus a
  symmetric rank-one (SR1) model of the energy Hessian in the entries of ``U_1``, started from the exact
  energy Hessian at the first iterate and updated with the secant pairs ``(ΔU_1, ΔΦ)`` — each later
  iteration costs one value and one gradient;
- ``"newton-cg"``: a truncated Newton step by conjugate gradients on exact Hessian-vector products,
  preconditioned by the Hessian without its energy part at the first iterate — for many paths, where no
  dense energy Hessian can be formed.

Steps are damped by a backtracking line search on the value alone (one factorisation per trial point).
Close to the minimum, where action differences drown in rounding, a step is also accepted when it does
not raise the action meaningfully and lowers the gradient norm.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse.linalg as spla

from smtheory.checks import InputError

__all__ = ["HESSIAN_MODES", "hessian_flops", "iteration_flops", "choose_hessian", "minimise"]

HESSIAN_MODES = ("auto", "newton", "secant", "newton-cg")
#: ``auto`` uses Newton while the dense Hessian costs at most this many times the rest of an iteration
#: (Newton needs about 5 iterations from the GP start, the secant method about 10–25).
NEWTON_HESSIAN_RATIO = 2.5


def hessian_flops(P, D, N0):
    """Flops of the closed-form energy Hessian from ``X = L⁻¹ Ξ``: the Gram matrix and the 4-index contraction."""
    m = D * N0
    gram = 2.0 * P * m * m if P >= N0 else 2.0 * D * D * P * P * N0
    return gram + 2.0 * D**4 * (N0 * N0 if P >= N0 else P * P)


def iteration_flops(P, D, N0, route):
    """Flops of one value and gradient: kernel (blocks or factored), Cholesky, ``L⁻¹ Ξ`` and ``Φ``."""
    m = D * N0
    kernel = D * (D + 1) * P * P if route == "blocks" else 0.625 * 2.0 * P * P * m
    return kernel + P**3 / 3.0 + P * P * m + 2.0 * P * D * m


def choose_hessian(hessian, P, D, N0, route, dense_ok):
    """The curvature mode of :func:`minimise` (module docstring); ``dense_ok``: the energy Hessian can be formed."""
    if hessian not in HESSIAN_MODES:
        raise InputError(f"hessian must be one of {', '.join(map(repr, HESSIAN_MODES))}, got {hessian!r}")
    if hessian in ("newton", "secant") and not dense_ok:
        raise InputError(f"hessian={hessian!r} needs the dense energy Hessian, which is too large here "
                         f"(D = {D} paths, N0 = {N0}); use 'newton-cg' or 'auto'")
    if hessian != "auto":
        return hessian
    if not dense_ok:
        return "newton-cg"
    ratio = hessian_flops(P, D, N0) / iteration_flops(P, D, N0, route)
    return "newton" if ratio <= NEWTON_HESSIAN_RATIO else "secant"


def _descent_direction(B, g):
    """``−B⁻¹ g`` with the eigenvalues of ``B`` replaced by their absolute values (floored) if not positive."""
    w, V = np.linalg.eigh(0.5 * (B + B.T))
    if w[0] <= 0:
        w = np.maximum(np.abs(w), 1e-10 * max(np.abs(w).max(), 1e-300))
    return -(V @ ((V.T @ g) / w))


def _line_search(obj, theta, f, g, p):
    """Backtracking on the value; returns ``(step, f_new)`` or ``(None, f)``."""
    step, slope, gnorm = 1.0, float(np.dot(g, p)), float(np.linalg.norm(g))
    for _ in range(40):
        trial = theta + step * p
        f_new = obj.value(trial)
        if np.isfinite(f_new):
            if f_new < f + 1e-4 * step * slope:
                return step, f_new
            if f_new - f <= 1e-10 * max(1.0, abs(f)) and np.linalg.norm(obj.gradient(trial)) < gnorm:
                return step, f_new
        step *= 0.5
    return None, f


class _SecantModel:
    """``B(θ) = ∇²(prior + ⟨Φ, U_1⟩)(θ) + J_1ᵀ A J_1`` with an SR1-updated energy Hessian ``A`` (entries of U_1)."""

    def __init__(self, obj, theta):
        self.obj = obj
        self.A = obj.energy_hessian(theta)
        self.u, self.phi = obj.u1_and_phi(theta)

    def matrix(self, theta):
        J = self.obj.u1_jacobian(theta)
        return self.obj.hessian_without_energy(theta) + J.T @ self.A @ J

    def update(self, theta):
        u, phi = self.obj.u1_and_phi(theta)
        s, r = u - self.u, phi - self.phi - self.A @ (u - self.u)
        self.u, self.phi = u, phi
        rs = float(np.dot(r, s))
        if abs(rs) > 1e-8 * np.linalg.norm(r) * np.linalg.norm(s):
            self.A = self.A + np.outer(r, r) / rs


class _Preconditioner:
    """``|H₀|⁻¹`` of the Hessian without its energy part at the first iterate, as a LinearOperator."""

    def __init__(self, obj, theta):
        w, self.V = np.linalg.eigh(obj.hessian_without_energy(theta))
        self.w = np.maximum(np.abs(w), 1e-10 * np.abs(w).max())
        n = w.size
        self.op = spla.LinearOperator((n, n), matvec=lambda v: self.V @ ((self.V.T @ v.ravel()) / self.w),
                                      dtype=np.float64)


def _cg_direction(obj, theta, g, pre):
    """Truncated Newton step: preconditioned CG on exact Hessian-vector products (Eisenstat–Walker tolerance)."""
    n = g.size
    op = spla.LinearOperator((n, n), matvec=lambda v: obj.hvp(theta, v.ravel()), dtype=np.float64)
    rtol = min(0.1, float(np.sqrt(np.linalg.norm(g))))
    p, _ = spla.cg(op, -g, rtol=rtol, maxiter=min(n, 100), M=pre.op)
    return p if np.dot(g, p) < 0 else -pre.op.matvec(g)


def minimise(obj, theta0, max_iter, hessian, gtol=1e-11):
    """Minimise ``obj`` (a :class:`.factored_objective.FactoredObjective` in θ) from ``theta0``.

    Parameters
    ----------
    obj : FactoredObjective
    theta0 : ndarray
    max_iter : int
    hessian : {"newton", "secant", "newton-cg"}
        See the module docstring.
    gtol : float
        Stop when ``max |∇(S/scale)| < gtol``.

    Returns
    -------
    theta, iterations, message
        ``iterations`` counts accepted steps.
    """
    theta = np.asarray(theta0, dtype=np.float64)
    f = obj.value(theta)
    if not np.isfinite(f):
        return theta, 0, "the action is not finite at the initial point"
    g = obj.gradient(theta)
    model = _SecantModel(obj, theta) if hessian == "secant" else None
    pre = _Preconditioner(obj, theta) if hessian == "newton-cg" else None
    below = 0  # iterations started below gtol: the superlinear modes take up to two more, for the last digits
    for it in range(max_iter):
        gmax = np.max(np.abs(g))
        if gmax < gtol:
            below += 1
            if hessian == "newton" or gmax < 1e-2 * gtol or below > 2:
                return theta, it, "gradient below tolerance"
        if hessian == "newton":
            p = _descent_direction(obj.hessian(theta), g)
        elif hessian == "secant":
            p = _descent_direction(model.matrix(theta), g)
        else:
            p = _cg_direction(obj, theta, g, pre)
        step, f = _line_search(obj, theta, f, g, p)
        if step is None:
            return theta, it, ("gradient below tolerance" if below else
                               "line search failed: no decrease of the action or of its gradient")
        theta = theta + step * p
        g = obj.gradient(theta)
        if model is not None:
            model.update(theta)
    if np.max(np.abs(g)) < gtol:
        return theta, max_iter, "gradient below tolerance"
    return theta, max_iter, "maximum number of iterations reached"
