"""Numeric saddle-point solver for the order-parameter action (docs/theory.md §3).

The action is minimised over ``U_1 ... U_L`` (``U_a`` eliminated in closed form) in
a log-Cholesky parameterisation that keeps every ``U_ℓ`` positive definite.  The
optimiser is a trust-region Newton method from :func:`scipy.optimize.minimize`
with exact JAX gradients and exact Hessians (``trust-exact``, dense Hessian from
batched Hessian-vector products) or, for many parameters, exact Hessian-vector
products (``trust-krylov``).  The result is certified afterwards, independently of
the optimiser: the saddle-point equations of docs/theory.md §3 are evaluated explicitly and
the smallest eigenvalue of the Hessian of ``S`` in the independent entries of the
``U_ℓ`` is computed.  ``converged`` is True only if both pass.
"""
from __future__ import annotations

import time
from functools import partial
import warnings
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse.linalg

from smtheory.checks import InputError, positive_float, positive_int
from smtheory.compile_cache import ensure_compilation_cache
from smtheory.compile_timer import CompileClock
from smtheory.action import (ActionConstants, action, energy_hessian, energy_term, phi_matrix, prior_action,
                             readout_scalar, saddle_point_residuals)
from smtheory.model import ModelSpec
from smtheory.problem import KernelProblem
from smtheory.records import array_from_json, finite_or_none, float_from_json, json_array

from . import parameterization as par
from .scaled import SCALED_MIN_P, solve_scaled
from smtheory.precision import needs_float64

DENSE_HESSIAN_MAX = 300  # parameters up to which the optimiser uses dense Newton steps
DENSE_CERTIFICATE_MAX = 600  # entries up to which the certificate Hessian is formed densely
ANALYTIC_HESSIAN_BYTES = 512 * 2**20  # memory allowed for the intermediate of the closed-form Hessian


@dataclass(frozen=True, eq=False)
class SaddlePointResult:
    """Outcome of a saddle-point solve (docs/theory.md §3), with an honest convergence report.

    Immutable; :meth:`to_record` writes the JSON-ready record that the command line, the experiment
    drivers and the sweep store share, and :meth:`from_record` reads it back.

    Attributes
    ----------
    U : list of ndarray
        ``[U_1, ..., U_L]``; ``U[0]`` is the path–path order parameter ``U_1`` (D × D).
    U_a : float
        Readout order parameter.
    action : float
        ``S`` at the solution (docs/theory.md §3, unscaled).
    grad_norm : float
        Euclidean norm of ``∂S`` with respect to the independent entries of the ``U_ℓ``.
    hessian_min_eig : float
        Smallest eigenvalue of the Hessian of ``S`` in the independent entries (> 0 certifies a minimum).
    residuals : list of float
        Relative residuals of the saddle-point equations (one per layer, then ``U_a``).
    iterations : int
    n_evaluations : int
        Number of action/gradient evaluations.
    solve_time : float
        Wall seconds of the optimiser and the certificate, JIT compilation excluded.
    compile_time : float
        Seconds of JIT compilation that this solve paid (tracing, lowering, compiling; 0.0 when every
        compiled function was reused from an earlier solve of the same shapes).
    converged : bool
        True only if ``max(residuals) < tol`` and ``hessian_min_eig > 0``.
    message : str
    spec : ModelSpec
    method : str
    theta : ndarray
        Log-Cholesky parameters of the solution (warm starts).
    route : str
        How the energy was evaluated: ``"blocks"`` (precomputed path-pair blocks) or ``"factored"`` for
        ``method="scaled-…"`` (:mod:`smtheory.solvers.scaled`), ``"autodiff"`` for the other methods.
    profile : dict or None
        ``method="scaled-…"`` only: seconds of the setup (forming the blocks), the optimiser and the
        certificate, and the counts of factorisations, gradients, dense Hessians and Hessian-vector products.
    """

    U: list
    U_a: float
    action: float
    grad_norm: float
    hessian_min_eig: float
    residuals: list
    iterations: int
    n_evaluations: int
    solve_time: float
    compile_time: float
    converged: bool
    message: str
    spec: ModelSpec
    method: str
    theta: np.ndarray = field(default=None, repr=False)
    route: str = "autodiff"
    profile: dict = field(default=None, repr=False)

    @property
    def U1(self):
        """The path–path order parameter ``U_1`` (D × D)."""
        return self.U[0]

    @property
    def max_residual(self):
        return max(self.residuals)

    @property
    def time(self):
        """Alias of :attr:`solve_time` (compilation excluded) for older callers."""
        return self.solve_time

    def __repr__(self):
        lines = [
            f"SaddlePointResult(converged={self.converged}, message={self.message!r})",
            f"  widths={self.spec.widths}  T={self.spec.temperature}  method={self.method}",
            f"  action={self.action:.12g}  grad_norm={self.grad_norm:.3e}  max_residual={self.max_residual:.3e}",
            f"  hessian_min_eig={self.hessian_min_eig:.6g}  iterations={self.iterations}  "
            f"solve_time={self.solve_time:.3f}s  compile_time={self.compile_time:.3f}s",
            f"  U_a={self.U_a:.6g}  diag(U_1)={np.array2string(np.diag(self.U1), precision=5)}",
        ]
        return "\n".join(lines)

    def to_record(self):
        """JSON-ready record: lists, floats, ``None`` for a non-finite number.

        Keys: the fields (``spec`` as :meth:`ModelSpec.to_dict`, ``theta`` as a list or ``None``) and,
        derived for readers, ``U1``, ``max_residual`` and ``dtype`` (of U_1: the precision of the solve)
        (ignored by :meth:`from_record`).
        """
        return dict(
            U=[json_array(u) for u in self.U], U1=json_array(self.U1), U_a=finite_or_none(self.U_a),
            action=finite_or_none(self.action), grad_norm=finite_or_none(self.grad_norm),
            hessian_min_eig=finite_or_none(self.hessian_min_eig),
            residuals=[finite_or_none(r) for r in self.residuals], max_residual=finite_or_none(self.max_residual),
            iterations=int(self.iterations), n_evaluations=int(self.n_evaluations),
            solve_time=float(self.solve_time), compile_time=float(self.compile_time), converged=bool(self.converged),
            message=self.message, method=self.method, spec=self.spec.to_dict(),
            theta=None if self.theta is None else json_array(self.theta), dtype=str(np.asarray(self.U1).dtype),
            route=self.route, profile=self.profile,
        )

    def to_dict(self):
        """Alias of :meth:`to_record`."""
        return self.to_record()

    @classmethod
    def from_record(cls, d):
        """The result written by :meth:`to_record` (``None`` read back as NaN)."""
        return cls(
            U=[array_from_json(u) for u in d["U"]], U_a=float_from_json(d["U_a"]), action=float_from_json(d["action"]),
            grad_norm=float_from_json(d["grad_norm"]), hessian_min_eig=float_from_json(d["hessian_min_eig"]),
            residuals=[float_from_json(r) for r in d["residuals"]], iterations=int(d["iterations"]),
            n_evaluations=int(d["n_evaluations"]), solve_time=float(d["solve_time"]),
            compile_time=float(d["compile_time"]), converged=bool(d["converged"]), message=d["message"],
            spec=ModelSpec(**d["spec"]), method=d["method"],
            theta=None if d.get("theta") is None else array_from_json(d["theta"]),
            route=d.get("route", "autodiff"), profile=d.get("profile"),
        )


# ---------------------------------------------------------------------------------------------
# jitted building blocks (compiled once per heads/shape; widths, variances, T are traced)

def _objective(theta, xi, y, c, scale):
    Us = par.unpack(theta, _sizes(c.heads))
    return action(Us, xi, y, c) / scale


def _sizes(heads):
    return tuple(int(np.prod(heads[l:])) for l in range(len(heads)))


_value_and_grad = jax.jit(jax.value_and_grad(_objective))


@jax.jit
def _hvp(theta, v, xi, y, c, scale):
    g = lambda t: jax.grad(_objective)(t, xi, y, c, scale)  # noqa: E731
    return jax.jvp(g, (theta,), (v,))[1]


@partial(jax.jit, static_argnames=("batch",))
def _hessian(theta, xi, y, c, scale, batch):
    eye = jnp.eye(theta.shape[0])
    H = jax.lax.map(lambda v: _hvp(theta, v, xi, y, c, scale), eye, batch_size=batch)
    return 0.5 * (H + H.T)


def _full_entries(theta, heads):
    return jnp.concatenate([U.ravel() for U in par.unpack(theta, _sizes(heads))])


def _prior_of_full(u, c):
    Us, k = [], 0
    for d in _sizes(c.heads):
        Us.append(u[k:k + d * d].reshape(d, d))
        k += d * d
    return prior_action(Us, c)


@jax.jit
def _hessian_analytic(theta, xi, y, c, scale):
    """Exact Hessian in θ by the chain rule: ``Jᵀ (H_prior + H_energy) J + Σ_k g_k ∇²u_k``.

    ``u(θ)`` are the full entries of ``U_1..U_L``; ``H_energy`` is the closed form of
    :func:`smtheory.action.energy_hessian`, the prior part is small and differentiated by JAX.
    """
    u = _full_entries(theta, c.heads)
    D = _sizes(c.heads)[0]
    J = jax.jacfwd(_full_entries)(theta, c.heads)
    U1 = u[:D * D].reshape(D, D)
    H_u = jax.hessian(_prior_of_full)(u, c)
    H_u = H_u.at[:D * D, :D * D].add(energy_hessian(U1, xi, y, c.temperature))
    g_u = jax.grad(_prior_of_full)(u, c)
    g_u = g_u.at[:D * D].add(phi_matrix(U1, xi, y, c.temperature).ravel())
    curvature = jax.hessian(lambda t: jnp.dot(g_u, _full_entries(t, c.heads)))(theta)
    H = (J.T @ H_u @ J + curvature) / scale
    return 0.5 * (H + H.T)


def _entries_action(vec, xi, y, c):
    return action(par.unpack_entries(vec, _sizes(c.heads)), xi, y, c)


_entries_grad = jax.jit(jax.grad(_entries_action))


@jax.jit
def _entries_hvp(vec, v, xi, y, c):
    return jax.jvp(lambda t: jax.grad(_entries_action)(t, xi, y, c), (vec,), (v,))[1]


@partial(jax.jit, static_argnames=("batch",))
def _entries_hessian(vec, xi, y, c, batch):
    eye = jnp.eye(vec.shape[0])
    H = jax.lax.map(lambda v: _entries_hvp(vec, v, xi, y, c), eye, batch_size=batch)
    return 0.5 * (H + H.T)


#: θ → [U_1..U_L] and the energy term, compiled once per shape: run op by op (the certificate, the
#: continuation's starts) they cost ~50 small compilations per process; the results are the same bits.
_unpack = jax.jit(par.unpack, static_argnums=1)
_energy_term = jax.jit(energy_term)


def _hvp_batch(n, P, D, N0, budget=1 * 2**30):
    per_tangent = 8 * (6 * P * P + 4 * P * D * N0)
    return int(max(1, min(n, budget // max(per_tangent, 1))))


# ---------------------------------------------------------------------------------------------

@jax.jit
def _entries_hessian_analytic(vec, xi, y, c):
    """Hessian in the independent entries: ``J_eᵀ (H_prior + H_energy) J_e`` (entries → full is linear)."""
    sizes = _sizes(c.heads)
    D = sizes[0]
    to_full = lambda v: jnp.concatenate([U.ravel() for U in par.unpack_entries(v, sizes)])  # noqa: E731
    J = jax.jacfwd(to_full)(vec)
    u = to_full(vec)
    H_u = jax.hessian(_prior_of_full)(u, c)
    H_u = H_u.at[:D * D, :D * D].add(energy_hessian(u[:D * D].reshape(D, D), xi, y, c.temperature))
    H = J.T @ H_u @ J
    return 0.5 * (H + H.T)


def hessian_certificate(Us, xi, y, c, dense_max=DENSE_CERTIFICATE_MAX):
    """Smallest eigenvalue of the Hessian of ``S`` in the independent entries of ``U_1..U_L``.

    Dense eigendecomposition up to ``dense_max`` entries, Lanczos (``eigsh``) on exact
    Hessian-vector products above.
    """
    vec = jnp.asarray(par.pack_entries(Us))
    n = vec.shape[0]
    P, D, N0 = xi.shape
    if n <= dense_max and (D * N0) ** 2 * 8 <= ANALYTIC_HESSIAN_BYTES:
        H = np.asarray(_entries_hessian_analytic(vec, xi, y, c))
        return float(np.linalg.eigvalsh(H)[0])
    if n <= dense_max:
        H = np.asarray(_entries_hessian(vec, xi, y, c, batch=_hvp_batch(n, P, D, N0)))
        return float(np.linalg.eigvalsh(H)[0])
    op = scipy.sparse.linalg.LinearOperator(
        (n, n), matvec=lambda v: np.asarray(_entries_hvp(vec, jnp.asarray(v.ravel(), dtype=jnp.float64), xi, y, c)),
        dtype=np.float64)
    vals = scipy.sparse.linalg.eigsh(op, k=1, which="SA", tol=1e-8, return_eigenvectors=False, maxiter=20 * n)
    return float(vals[0])


def _newton(theta, fun, hess, max_iter, gtol=1e-11):
    """Damped Newton iteration with the exact Hessian.

    Each step solves ``(H + λI) p = −g`` with ``λ = 0`` when ``H`` is positive definite
    (Cholesky succeeds) and ``λ`` just above ``−λ_min(H)`` otherwise, then backtracks
    until the action decreases.  Close to the minimum, where action differences reach
    rounding level, a full step is also accepted when it reduces the gradient norm.
    Stops when ``max |g| < gtol`` (objective scaled to O(1)) or the gradient stagnates.

    Returns
    -------
    theta, iterations, evaluations, message
    """
    f, g = fun(theta)
    n_eval, it = 1, 0
    if not np.isfinite(f):
        return theta, it, n_eval, "the action is not finite at the initial point"
    while it < max_iter:
        gmax = np.max(np.abs(g))
        if gmax < gtol:
            return theta, it, n_eval, "gradient below tolerance"
        H = hess(theta)
        try:
            cho = scipy.linalg.cho_factor(H)
            p = -scipy.linalg.cho_solve(cho, g)
        except np.linalg.LinAlgError:
            lam = max(-np.linalg.eigvalsh(H)[0], 0.0) * 1.1 + 1e-8 * max(1.0, np.abs(H).max())
            p = -np.linalg.solve(H + lam * np.eye(H.shape[0]), g)
        it += 1
        step, accepted = 1.0, False
        gnorm = np.linalg.norm(g)
        for _ in range(40):
            f_new, g_new = fun(theta + step * p)
            n_eval += 1
            # Armijo decrease, or (where action differences drown in rounding error) a smaller gradient
            # without a meaningful increase of the action
            if np.isfinite(f_new) and (f_new < f + 1e-4 * step * np.dot(g, p)
                                       or (f_new - f <= 1e-10 * max(1.0, abs(f))
                                           and np.linalg.norm(g_new) < gnorm)):
                accepted = True
                break
            step *= 0.5
        if not accepted:
            return theta, it, n_eval, "line search failed: no decrease of the action or of its gradient"
        theta, f, g = theta + step * p, f_new, g_new
    return theta, it, n_eval, "maximum number of iterations reached"


def _polish(theta, fun, hess=None, hessp=None, max_steps=6):
    """Plain Newton steps on the gradient after the trust-region run.

    Close to the minimum the trust region's acceptance test compares action values
    that differ by less than their rounding error and stops early; Newton steps
    accepted on the gradient norm alone recover the last digits.
    """
    f, g = fun(theta)
    gnorm = np.linalg.norm(g)
    n = 0
    for _ in range(max_steps):
        if not np.isfinite(f) or gnorm == 0:
            break
        if hess is not None:
            try:
                step = scipy.linalg.solve(hess(theta), g, assume_a="pos")
            except (np.linalg.LinAlgError, ValueError):
                break
        else:
            op = scipy.sparse.linalg.LinearOperator((theta.size, theta.size), matvec=lambda v: hessp(theta, v.ravel()))
            step, info = scipy.sparse.linalg.cg(op, g, rtol=1e-12, maxiter=10 * theta.size)
            if info != 0:
                break
        f_new, g_new = fun(theta - step)
        n += 1
        g_new_norm = np.linalg.norm(g_new)
        if not np.isfinite(f_new) or not g_new_norm < gnorm:
            break
        theta, f, g, gnorm = theta - step, f_new, g_new, g_new_norm
    return theta, n


def _initial_theta(spec, init):
    if init is None:
        Us, _ = spec.gp_order_parameters()
        return par.pack(Us)
    if isinstance(init, SaddlePointResult):
        if tuple(init.spec.heads) != tuple(spec.heads):
            raise InputError("init comes from a model with different heads")
        return np.asarray(init.theta if init.theta is not None else par.pack(init.U), dtype=np.float64)
    Us = list(init)
    sizes = spec.partial_paths
    if len(Us) != len(sizes) or any(np.shape(U) != (d, d) for U, d in zip(Us, sizes)):
        raise InputError(f"init must be a list of {len(sizes)} matrices of sizes {sizes}")
    for i, U in enumerate(Us):
        U = np.asarray(U, dtype=np.float64)
        if not np.all(np.isfinite(U)) or not np.allclose(U, U.T) or np.linalg.eigvalsh(0.5 * (U + U.T))[0] <= 0:
            raise InputError(f"init[{i}] (U_{i + 1}) must be symmetric positive definite")
    return par.pack(Us)


@needs_float64
def solve(problem: KernelProblem, spec: ModelSpec, init=None, *, tol=1e-9, max_iter=500,
          method="auto", raise_on_failure=False, memory_budget=None, route="auto", hessian="auto"):
    """Minimise the action of docs/theory.md §3 and certify the saddle point.

    Parameters
    ----------
    problem : KernelProblem
        Training path features and labels.
    spec : ModelSpec
        Architecture, widths, variances and temperature.
    init : SaddlePointResult or list of arrays, optional
        Warm start (default: the GP value ``U_ℓ = σℓ²⋯σL²σa² I``).
    tol : float
        Required relative residual of the saddle-point equations.
    max_iter : int
        Maximum optimiser iterations.
    method : {"auto", "newton", "trust-exact", "trust-krylov", "scaled"}
        ``auto``: ``scaled`` from 500 training examples on (:data:`~smtheory.solvers.scaled.SCALED_MIN_P`),
        below it damped Newton on the exact dense Hessian (``newton``) up to 300 parameters and the Krylov
        trust region on exact Hessian-vector products above.  ``scaled`` factorises ``T I + K`` once per
        iteration and reuses the factor (:mod:`smtheory.solvers.scaled`).
    raise_on_failure : bool
        Raise :class:`RuntimeError` instead of returning an unconverged result.
    memory_budget, route, hessian
        Of ``method="scaled"`` (:func:`smtheory.solvers.scaled.scaled_plan`): the budget in bytes (default
        8 GiB, :data:`smtheory.checks.DEFAULT_MEMORY_BUDGET`) that picks the path-pair blocks when they fit
        and refuses, naming it, a problem too large even for the factored form; ``route`` (``"auto"``,
        ``"blocks"``, ``"factored"``; ``result.route`` reports it) and the curvature mode ``hessian``.

    Returns
    -------
    SaddlePointResult
        ``solve_time`` is the wall time of the optimiser and the certificate without JIT compilation;
        ``compile_time`` the compilation this call paid (0.0 when the compiled functions were reused).
    """
    tol, max_iter = _check_solve_arguments(problem, spec, tol, max_iter, method)
    ensure_compilation_cache()  # once per process, before the first compilation (smtheory.compile_cache)
    xi = jnp.asarray(problem.scaled_train(spec))
    y = jnp.asarray(problem.y_train)
    c = ActionConstants.from_spec(spec)
    n = par.n_params(spec.partial_paths)
    if method == "auto":
        method = "scaled" if problem.n_train >= SCALED_MIN_P else "newton" if n <= DENSE_HESSIAN_MAX \
            else "trust-krylov"
    scale = float(max(spec.widths) + problem.n_train)
    theta0 = _initial_theta(spec, init)
    if method == "scaled":
        fields = solve_scaled(problem, spec, theta0, tol, max_iter, memory_budget, route, hessian)
        return _finish(SaddlePointResult(**fields, spec=spec), raise_on_failure)
    with CompileClock() as clock:
        fun, callbacks = _compiled_objective(theta0, xi, y, c, scale, method, n)
        warm_compile = clock.seconds
        t0 = time.perf_counter()
        theta, n_iter, opt_message = _optimise(method, theta0, fun, callbacks, max_iter)
        cert = _certify(theta, spec.partial_paths, xi, y, c, tol, opt_message)
        elapsed = time.perf_counter() - t0
    res = SaddlePointResult(
        **cert, iterations=n_iter, n_evaluations=fun.n_eval, solve_time=elapsed - (clock.seconds - warm_compile),
        compile_time=clock.seconds, spec=spec, method=method, theta=theta,
    )
    return _finish(res, raise_on_failure)


def _finish(res, raise_on_failure):
    """``res``, or :class:`RuntimeError` when it did not converge and ``raise_on_failure`` is set."""
    if raise_on_failure and not res.converged:
        raise RuntimeError(f"saddle-point solve did not converge: {res.message}")
    return res


def _check_solve_arguments(problem, spec, tol, max_iter, method):
    """Validated ``(tol, max_iter)`` of :func:`solve`; refuses a wrong problem, spec or method."""
    if not isinstance(problem, KernelProblem):
        raise InputError("problem must be a smtheory.KernelProblem")
    if not isinstance(spec, ModelSpec):
        raise InputError("spec must be a smtheory.ModelSpec")
    problem.check_spec(spec)
    tol = positive_float("tol", tol)
    max_iter = positive_int("max_iter", max_iter)
    if method not in ("auto", "newton", "trust-exact", "trust-krylov", "scaled"):
        raise InputError(f"method must be 'auto', 'newton', 'trust-exact', 'trust-krylov' or 'scaled', "
                         f"got {method!r}")
    return tol, max_iter


class _CountedObjective:
    """``θ ↦ (S(θ)/scale, ∇)`` as NumPy (``(inf, 0)`` where not finite), counting its evaluations."""

    def __init__(self, xi, y, c, scale):
        self.xi, self.y, self.c, self.scale = xi, y, c, scale
        self.n_eval = 0

    def __call__(self, t):
        self.n_eval += 1
        v, g = _value_and_grad(jnp.asarray(t), self.xi, self.y, self.c, self.scale)
        v = float(v)
        if not np.isfinite(v):
            return np.inf, np.zeros_like(t)
        return v, np.asarray(g)


def _compiled_objective(theta0, xi, y, c, scale, method, n):
    """The objective and the optimiser's Hessian callbacks, their compiled code built at ``theta0``.

    Returns ``(fun, callbacks)``: a :class:`_CountedObjective` and ``{"hess": ...}`` for the dense
    methods or ``{"hessp": ...}`` for ``trust-krylov`` (keyword arguments of :func:`scipy.optimize.minimize`).
    The closed-form energy Hessian needs a ``(D N0)²`` matrix; above :data:`ANALYTIC_HESSIAN_BYTES`
    the dense Hessian comes from batched Hessian-vector products.
    """
    P, D, N0 = xi.shape
    batch = _hvp_batch(n, P, D, N0)
    _value_and_grad(jnp.asarray(theta0), xi, y, c, scale)[0].block_until_ready()
    analytic = (D * N0) ** 2 * 8 <= ANALYTIC_HESSIAN_BYTES
    if method in ("newton", "trust-exact"):
        if analytic:
            _hessian_analytic(jnp.asarray(theta0), xi, y, c, scale).block_until_ready()
        else:
            _hessian(jnp.asarray(theta0), xi, y, c, scale, batch=batch).block_until_ready()
    callbacks = {}
    if method in ("newton", "trust-exact"):
        if analytic:
            callbacks["hess"] = lambda t: np.asarray(_hessian_analytic(jnp.asarray(t), xi, y, c, scale))
        else:
            callbacks["hess"] = lambda t: np.asarray(_hessian(jnp.asarray(t), xi, y, c, scale, batch=batch))
    else:
        callbacks["hessp"] = lambda t, v: np.asarray(
            _hvp(jnp.asarray(t, dtype=jnp.float64), jnp.asarray(v, dtype=jnp.float64), xi, y, c, scale))
    return _CountedObjective(xi, y, c, scale), callbacks


def _optimise(method, theta0, fun, callbacks, max_iter):
    """Damped Newton (``newton``) or a SciPy trust region followed by :func:`_polish`.

    Returns ``(theta, iterations, optimiser message)``.
    """
    if method == "newton":
        theta, n_iter, _, opt_message = _newton(np.asarray(theta0, dtype=np.float64), fun, callbacks["hess"],
                                                max_iter)
        return theta, n_iter, opt_message
    kwargs = dict(jac=True, options=dict(maxiter=max_iter, gtol=1e-13), method=method, **callbacks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        opt = scipy.optimize.minimize(fun, theta0, **kwargs)
    theta, _ = _polish(np.asarray(opt.x), fun, kwargs.get("hess"), kwargs.get("hessp"))
    return theta, int(opt.get("nit", 0)), str(opt.message)


def _certify(theta, sizes, xi, y, c, tol, opt_message):
    """The certificate of docs/theory.md §3 at ``theta``, independent of the optimiser.

    Evaluates the saddle-point equations explicitly and the smallest Hessian eigenvalue in the
    independent entries; returns the matching :class:`SaddlePointResult` fields (``U`` … ``message``).
    """
    Us = [np.asarray(U) for U in _unpack(jnp.asarray(theta), tuple(sizes))]
    Us = [0.5 * (U + U.T) for U in Us]
    Us_j = [jnp.asarray(U) for U in Us]
    S = float(prior_action(Us_j, c) + _energy_term(Us_j[0], xi, y, c.temperature))  # action(Us_j, xi, y, c)
    finite = np.isfinite(S) and all(np.all(np.isfinite(U)) for U in Us)
    if finite:
        residuals = saddle_point_residuals(Us_j, xi, y, c)
        grad_norm = float(jnp.linalg.norm(_entries_grad(jnp.asarray(par.pack_entries(Us)), xi, y, c)))
        min_eig = hessian_certificate(Us_j, xi, y, c)
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
    return dict(U=Us, U_a=float(readout_scalar(Us_j[-1], c)), action=S, grad_norm=grad_norm,
                hessian_min_eig=min_eig, residuals=residuals, converged=converged, message=message)


@needs_float64
def continuation(problem: KernelProblem, spec: ModelSpec, *, widths=None, temperatures=None, init=None,
                 progress=None, **solve_kwargs):
    """Solve along a grid of widths (or temperatures), warm-starting each point from its neighbour.

    Widths are visited from the largest down (the largest is closest to the GP value,
    which is the first initial point); temperatures from the largest down.  From the
    third point on, the start is a secant prediction in ``log N`` (or ``log T``) from the
    two previous solutions (predictor–corrector continuation).

    Parameters
    ----------
    problem, spec : as in :func:`solve`
    widths : sequence of int or of width tuples, optional
    temperatures : sequence of float, optional
        Exactly one of ``widths`` and ``temperatures`` must be given.
    init : optional warm start for the first point.
    progress : callable(i, n, result), optional
        Called after each point.
    **solve_kwargs
        Of :func:`solve`, e.g. ``tol``, ``method``, ``memory_budget`` (bytes; default 8 GiB), ``route``.

    Returns
    -------
    list of SaddlePointResult, in the order of the given grid.
    """
    if (widths is None) == (temperatures is None):
        raise InputError("give exactly one of widths or temperatures")
    ensure_compilation_cache()
    for name, grid in (("widths", widths), ("temperatures", temperatures)):
        if grid is not None and (isinstance(grid, (str, bytes, dict)) or not hasattr(grid, "__len__")):
            raise InputError(f"{name} must be a sequence (e.g. [10, 100]), got {type(grid).__name__}")
    if widths is not None:
        if len(widths) == 0:
            raise InputError("widths must not be empty")
        specs = [spec.replace(widths=w) for w in widths]
        keys = [max(s.widths) for s in specs]
    else:
        if len(temperatures) == 0:
            raise InputError("temperatures must not be empty")
        specs = [spec.replace(temperature=t) for t in temperatures]
        keys = [s.temperature for s in specs]
    order = sorted(range(len(specs)), key=lambda i: -keys[i])
    results = [None] * len(specs)
    done = []  # (log key, theta) of converged points, in visiting order
    for k, i in enumerate(order):
        start = init
        if len(done) >= 2 and keys[i] != np.exp(done[-1][0]):
            # secant predictor in log(N) (or log T) on the log-Cholesky parameters
            (s0, t0), (s1, t1) = done[-2], done[-1]
            theta = t1 + (t1 - t0) * (np.log(keys[i]) - s1) / (s1 - s0)
            start = [np.asarray(U) for U in _unpack(jnp.asarray(theta), tuple(specs[i].partial_paths))]
        elif done:
            start = [np.asarray(U) for U in _unpack(jnp.asarray(done[-1][1]), tuple(specs[i].partial_paths))]
        res = solve(problem, specs[i], init=start, **solve_kwargs)
        results[i] = res
        if res.converged and (not done or np.log(keys[i]) != done[-1][0]):
            done.append((np.log(keys[i]), res.theta))
        if progress is not None:
            progress(k + 1, len(specs), res)
    return results
