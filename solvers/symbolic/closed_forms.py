"""Closed-form and exactly reduced saddle points of the action of docs/theory.md §3.

- :func:`readout_closed_form`: ``∂S/∂U_a = 0`` is the quadratic ``U_a² + β U_a − γ = 0``; exactly one
  root is positive (the product of the roots is ``−γ < 0``).
- :func:`gp_solution`: without data (``Φ = 0``) the isotropic ansatz ``U_ℓ = c_ℓ I`` solves every
  equation with ``c_ℓ = σℓ² ⋯ σL² σa²``, ``U_a = σa²`` (the GP limit of docs/theory.md §3).
- :func:`deep_linear_solution`: one path (``H_ℓ = 1``; the deep linear network of Li & Sompolinsky 2021
  when there is one token).  With ``m = N_1 (U_1/(σ1² U_2) − 1)`` every layer equation gives
  ``U_ℓ/(σℓ² U_{ℓ+1}) = 1 + m/N_ℓ`` and ``U_a = σa² (1 + m/N_a)``, so
  ``U_1 = s Π_{k=1..L,a} (1 + m/N_k)`` (``s = σ1²⋯σL²σa²``) and the bottom equation becomes the single
  scalar equation ``m + U_1 Φ(U_1) = 0``.  With the eigen-decomposition ``C = Σ_k λ_k v_k v_kᵀ`` of the
  train kernel, ``Φ(u) = Σ_k [λ_k/(T + uλ_k) − λ_k ỹ_k²/(T + uλ_k)²]`` (``ỹ = Vᵀ Y``); clearing the
  denominators gives a polynomial in ``m`` whose roots are computed to ``digits`` significant digits.
- :func:`commuting_kernel_solution`: orthogonal paths (``C_{ππ'} = 0`` for ``π ≠ π'``) whose same-path
  kernels commute (common eigenvectors ``v_k``): every ``U_ℓ`` is diagonal at the saddle point, the energy
  is ``Σ_k [ln(T + κ_k) + ỹ_k²/(T + κ_k)]`` with one scalar ``κ_k = Σ_π U_1[π,π] λ^π_k`` per
  eigen-direction, and the matrix equations reduce to scalar equations in the diagonal entries, solved
  by Newton's method in ``digits``-digit arithmetic (mpmath).

Every result records what was done and why a root was chosen; inputs without the required structure
raise :class:`smtheory.InputError` naming what is missing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp

from smtheory.checks import InputError, finite_array, positive_int
from smtheory.model import ModelSpec
from smtheory.problem import KernelProblem

from .action import SymbolicArchitecture, architecture, build_action, from_spec, saddle_point_equations
from .lambdify import lambdify

#: Largest degree of the deep-linear polynomial in ``m`` (``1 + 2 n (L + 1)`` for ``n`` kernel eigenvalues).
MAX_POLYNOMIAL_DEGREE = 200
#: Largest number of unknowns of the reduced commuting-kernel system.
MAX_REDUCED_UNKNOWNS = 40


def _arch(arch):
    if isinstance(arch, ModelSpec):
        return from_spec(arch)
    if isinstance(arch, SymbolicArchitecture):
        return arch
    raise InputError("arch must be a ModelSpec or a SymbolicArchitecture")


# --------------------------------------------------------------------------------------------- U_a

@dataclass
class ReadoutClosedForm:
    """``U_a`` from ``∂S/∂U_a = 0`` (docs/theory.md §3).

    Attributes
    ----------
    polynomial : sympy.Expr
        ``(σa² U_a²/N_a) ∂S/∂U_a``, derived by SymPy.
    beta, gamma : sympy.Expr
        Its coefficients: ``U_a² + β U_a − γ``.
    roots : tuple of sympy.Expr
        ``(−β + √(β² + 4γ))/2`` and ``(−β − √(β² + 4γ))/2``.
    root : sympy.Expr
        The physical (positive) root.
    reason : str
    matches_theory : bool
        β and γ equal docs/theory.md §3's ``σa²(H_L N_L/N_a − 1)`` and ``Tr(U_L) N_L σa²/(N_a σL²)`` identically.
    """

    polynomial: sp.Expr
    beta: sp.Expr
    gamma: sp.Expr
    roots: tuple
    root: sp.Expr
    reason: str
    matches_theory: bool
    Ua: sp.Symbol = None
    U_L: sp.Matrix = None

    def evaluate(self, U_L):
        """Numeric ``U_a`` for a numeric ``U_L`` (only for numeric architectures)."""
        U_L = np.asarray(U_L, dtype=np.float64)
        if U_L.shape != self.U_L.shape:
            raise InputError(f"U_L must be {self.U_L.shape[0]}x{self.U_L.shape[1]}, got shape {U_L.shape}")
        subs = {self.U_L[i, j]: sp.Float(U_L[i, j], 17) for i in range(U_L.shape[0]) for j in range(U_L.shape[1])}
        val = self.root.xreplace(subs)
        if val.free_symbols:
            raise InputError("the architecture has symbolic parameters: "
                             + ", ".join(sorted(s.name for s in val.free_symbols)))
        return float(val)


def readout_closed_form(arch):
    """Derive the ``U_a`` quadratic and its physical root for ``arch`` (docs/theory.md §3).

    Parameters
    ----------
    arch : SymbolicArchitecture or ModelSpec

    Returns
    -------
    ReadoutClosedForm
    """
    arch = _arch(arch)
    sa = build_action(arch)
    Ua = sa.Ua
    poly = saddle_point_equations(sa, simplify="none").readout_polynomial
    coeffs = sp.Poly(poly, Ua).all_coeffs()
    if len(coeffs) != 3 or sp.simplify(coeffs[0] - 1) != 0:
        raise RuntimeError(f"unexpected U_a equation {poly}")  # cannot happen for the action of docs/theory.md §3
    beta, gamma = sp.simplify(coeffs[1]), sp.simplify(-coeffs[2])
    disc = sp.sqrt(beta**2 + 4 * gamma)
    plus, minus = (-beta + disc) / 2, (-beta - disc) / 2
    for r in (plus, minus):
        if sp.simplify(sp.expand(poly.subs(Ua, r))) != 0:
            raise RuntimeError("root does not solve the U_a quadratic")
    heads, N, var = arch.heads, arch.widths, arch.variances
    beta_th = var[-1] * (heads[-1] * N[-2] / N[-1] - 1)
    gamma_th = sa.U[-1].trace() * N[-2] * var[-1] / (N[-1] * var[-2])
    matches = sp.simplify(beta - beta_th) == 0 and sp.simplify(gamma - gamma_th) == 0
    reason = ("the product of the roots is −γ < 0 (γ > 0 because Tr U_L > 0 and all widths and variances are "
              "positive), so exactly one root is positive: (−β + √(β² + 4γ))/2")
    return ReadoutClosedForm(poly, beta, gamma, (plus, minus), plus, reason, bool(matches), Ua, sa.U[-1])


# --------------------------------------------------------------------------------------------- GP

@dataclass
class GPSolution:
    """The data-free (GP) saddle point (docs/theory.md §3).

    Attributes
    ----------
    scales : tuple of sympy.Expr
        ``c_ℓ`` with ``U_ℓ = c_ℓ I`` for ℓ = 1..L.
    Ua : sympy.Expr
    U : list of sympy.Matrix
    verified : bool
        Every saddle-point equation (all entries, ``Φ = 0``) vanishes identically at the solution.
    discarded : list of dict
        Other solutions of the isotropic equations and why they were discarded.
    """

    scales: tuple
    Ua: sp.Expr
    U: list
    verified: bool
    discarded: list = field(default_factory=list)

    def numeric(self):
        """``([U_1, ..., U_L] as float arrays, U_a)`` (numeric architectures only)."""
        try:
            return [np.array(M.evalf(17).tolist(), dtype=np.float64) for M in self.U], float(self.Ua)
        except TypeError:
            raise InputError("the architecture has symbolic parameters; give numbers to evaluate") from None


def gp_solution(arch):
    """Solve the saddle-point equations without data (``Φ = 0``) with the ansatz ``U_ℓ = c_ℓ I``.

    SymPy solves the isotropic equations for ``c_1..c_L, U_a``; solutions with a non-positive
    component are discarded (an order parameter is positive definite); the remaining one is substituted
    into every entry equation of the full action to verify that all vanish identically.
    """
    arch = _arch(arch)
    sa = build_action(arch)
    eq = saddle_point_equations(sa, simplify="none")
    L = arch.n_layers
    cs = sp.symbols(f"c1:{L + 1}", positive=True)
    zero_phi = {s: 0 for s in sa.phi}
    ansatz = {}
    for l, M in enumerate(sa.U):
        d = M.shape[0]
        for i in range(d):
            for j in range(i, d):
                ansatz[M[i, j]] = cs[l] if i == j else 0
    ca = sp.Symbol("c_a", positive=True)
    ansatz[sa.Ua] = ca
    idx = [sa.entry_index(l + 1, 1, 1) for l in range(L)]
    system = [sp.together(eq.gradient[k].xreplace(zero_phi).xreplace(ansatz)) for k in idx]
    system.append(eq.readout_polynomial.xreplace(ansatz))
    system = [sp.numer(sp.together(e)) for e in system]
    sols = sp.solve(system, [*cs, ca], dict=True)
    good, discarded = [], []
    for s in sols:
        vals = [s.get(c, c) for c in (*cs, ca)]
        if all(sp.simplify(v).is_positive for v in vals):
            good.append(vals)
        else:
            discarded.append(dict(solution={str(k): v for k, v in s.items()},
                                  reason="a component is not positive (an order parameter is positive definite)"))
    if len(good) != 1:
        raise RuntimeError(f"expected one positive isotropic solution, found {len(good)}: {good}")
    vals = good[0]
    full = {**{k: (v.xreplace(dict(zip(cs, vals[:-1]))) if isinstance(v, sp.Basic) else v)
               for k, v in ansatz.items()}, sa.Ua: vals[-1]}
    full = {k: v.xreplace({ca: vals[-1]}) if isinstance(v, sp.Basic) else v for k, v in full.items()}
    verified = all(sp.simplify(g.xreplace(zero_phi).xreplace(full)) == 0 for g in eq.gradient)
    verified = verified and sp.simplify(eq.readout.xreplace(full)) == 0
    U = [vals[l] * sp.eye(M.shape[0]) for l, M in enumerate(sa.U)]
    return GPSolution(tuple(sp.simplify(v) for v in vals[:-1]), sp.simplify(vals[-1]), U, bool(verified), discarded)


# --------------------------------------------------------------------------------------------- deep linear

@dataclass
class DeepLinearSolution:
    """Exact saddle point of a single-path model (deep linear network, Li & Sompolinsky 2021).

    Attributes
    ----------
    U : list of ndarray
        ``[U_1, ..., U_L]`` as 1×1 arrays.
    U_a : float
    m : mpmath.mpf
        The root ``m = N_1 (U_1/(σ1² U_2) − 1)`` (``U_2 ≡ U_a`` for L = 1).
    polynomial : sympy.Poly
        The polynomial in ``m`` whose roots are the stationary points (exact rational coefficients).
    roots : list
        All its roots (mpmath numbers, ``digits`` significant digits).
    physical : list of dict
        Real roots with ``m > −min(N)`` (every order parameter positive), with their action values.
    reason : str
        Why the chosen root was picked.
    reduction_verified : bool
        The parameterisation by ``m`` solves every layer equation and the ``U_a`` equation identically,
        and turns the bottom equation into ``m + U_1 Φ = 0`` (checked by SymPy).
    eigenvalues : ndarray
        The non-zero kernel eigenvalues used.
    """

    U: list
    U_a: float
    m: object
    polynomial: sp.Poly
    roots: list
    physical: list
    reason: str
    reduction_verified: bool
    eigenvalues: np.ndarray

    @property
    def degree(self):
        return self.polynomial.degree()


def _kernel_and_labels(spec, problem, kernel, y, n_paths):
    if (problem is None) == (kernel is None):
        raise InputError("give exactly one of problem (a KernelProblem) or kernel (train kernels) with y")
    if problem is not None:
        if not isinstance(problem, KernelProblem):
            raise InputError("problem must be a smtheory.KernelProblem")
        xi = np.asarray(problem.scaled_train(spec))
        return np.einsum("pai,qbi->abpq", xi, xi), np.asarray(problem.y_train, dtype=np.float64)
    C = finite_array("kernel", kernel)
    if C.ndim == 2 and n_paths == 1:
        C = C[None, None]
    if C.ndim != 4 or C.shape[:2] != (n_paths, n_paths) or C.shape[2] != C.shape[3]:
        raise InputError(f"kernel must have shape [D={n_paths}, D={n_paths}, P, P]"
                         + (" or [P, P]" if n_paths == 1 else "") + f", got {np.shape(kernel)}")
    if y is None:
        raise InputError("y (the training labels) is required with kernel")
    y = finite_array("y", y, ndim=1)
    if y.shape[0] != C.shape[2]:
        raise InputError(f"y must have P = {C.shape[2]} labels, got {y.shape[0]}")
    return C, y


def _eig(C, y, tol=1e-12):
    lam, V = np.linalg.eigh(0.5 * (C + C.T))
    yt = V.T @ y
    keep = lam > tol * max(lam.max(), 0.0)
    if np.any(lam < -tol * max(abs(lam).max(), 1e-300)):
        raise InputError("the train kernel must be positive semi-definite")
    return lam[keep], yt[keep]


def deep_linear_solution(spec: ModelSpec, problem=None, *, kernel=None, y=None, digits=30):
    """Exact saddle point for one attention path (every ``H_ℓ = 1``), docs/theory.md §3 last paragraph.

    Parameters
    ----------
    spec : ModelSpec
        Must have ``heads = (1, ..., 1)``.
    problem : KernelProblem, optional
        Path features (D = 1); or give ``kernel`` (``[P, P]`` scaled train kernel) and ``y``.
    digits : int
        Working precision of the polynomial roots (default 30 significant digits).

    Returns
    -------
    DeepLinearSolution

    Raises
    ------
    InputError
        More than one path (no scalar reduction), or a polynomial above :data:`MAX_POLYNOMIAL_DEGREE`.
    """
    if not isinstance(spec, ModelSpec):
        raise InputError("spec must be a smtheory.ModelSpec")
    if any(h != 1 for h in spec.heads):
        raise InputError(f"deep_linear_solution needs one path (every H_ℓ = 1), got heads {spec.heads}; "
                         "use commuting_kernel_solution for orthogonal paths or the numeric solver")
    digits = positive_int("digits", digits)
    C, yv = _kernel_and_labels(spec, problem, kernel, y, 1)
    lam, yt = _eig(C[0, 0], yv)
    L = spec.n_layers
    degree = 1 + 2 * len(lam) * (L + 1)
    if degree > MAX_POLYNOMIAL_DEGREE:
        raise InputError(f"the deep-linear polynomial would have degree {degree} ({len(lam)} non-zero kernel "
                         f"eigenvalues, L = {L}); the limit is {MAX_POLYNOMIAL_DEGREE}: use fewer training points "
                         "or the numeric solver")
    arch = from_spec(spec)
    m, Us, Ua_m, sa, ok = _deep_linear_reduction(arch)
    u, E, poly = _deep_linear_polynomial(arch, lam, yt, m, Us)
    roots = poly.nroots(n=digits, maxsteps=400)

    def action_at(mval):
        uv = [e.xreplace({m: mval}) for e in Us]
        S = sa.prior.xreplace({**{sa.U[l][0, 0]: uv[l] for l in range(L)}, sa.Ua: Ua_m.xreplace({m: mval})})
        return sp.N(S + E.xreplace({u: uv[0]}), digits)

    mval, physical, reason = _physical_root(roots, action_at, min(int(w) for w in arch.widths))
    U_vals = [np.array([[float(e.xreplace({m: mval}))]]) for e in Us]
    return DeepLinearSolution(U_vals, float(Ua_m.xreplace({m: mval})), mval, poly, list(roots), physical, reason,
                              bool(ok), lam)


def _deep_linear_reduction(arch):
    """The parameterisation by ``m`` (module docstring) and its symbolic verification, docs/theory.md §3.

    Returns ``(m, [U_1(m)..U_L(m)], U_a(m), action, verified)``: ``verified`` says that every layer equation
    and the ``U_a`` equation hold identically and that the bottom equation becomes ``m + U_1 Φ = 0``.
    """
    L = arch.n_layers
    N, var = arch.widths, arch.variances
    m = sp.Symbol("m", real=True)
    factors = [1 + m / N[l] for l in range(L)] + [1 + m / N[-1]]
    Us = [sp.Mul(*[var[k + 1] for k in range(l, L + 1)]) * sp.Mul(*factors[l:]) for l in range(L)]
    Ua_m = var[-1] * factors[-1]
    sa = build_action(arch)
    eq = saddle_point_equations(sa, simplify="none")
    sub = {sa.U[l][0, 0]: Us[l] for l in range(L)}
    sub[sa.Ua] = Ua_m
    phi = sa.phi[0, 0]
    ok = all(sp.simplify(eq.gradient[l].xreplace(sub)) == 0 for l in range(1, L))
    ok = ok and sp.simplify(eq.readout.xreplace(sub)) == 0
    ok = ok and sp.simplify(eq.gradient[0].xreplace(sub) * Us[0] - (m + Us[0] * phi)) == 0
    return m, Us, Ua_m, sa, ok


def _deep_linear_polynomial(arch, lam, yt, m, Us):
    """``(u, E(u), poly)``: the energy in ``u = U_1`` with exact rational eigen-data, and the numerator
    polynomial in ``m`` of ``m + U_1(m) Φ(U_1(m))`` whose roots are the stationary points."""
    u = sp.Symbol("u", positive=True)
    T = arch.temperature
    lam_q = [sp.Rational(float(v)) for v in lam]
    y2_q = [sp.Rational(float(v)) ** 2 for v in yt]
    E = sp.Add(*[sp.log(T + u * lk) + yk / (T + u * lk) for lk, yk in zip(lam_q, y2_q)])
    Phi = sp.diff(E, u)
    F = sp.together((m + u * Phi).xreplace({u: Us[0]}))
    num, _ = sp.fraction(F)
    return u, E, sp.Poly(sp.expand(num), m)


def _physical_root(roots, action_at, n_min):
    """The real root with ``m > −min N`` of smallest action: ``(m, physical roots with actions, reason)``."""
    physical = []
    for r in roots:
        if not r.is_real:
            continue
        if r <= -n_min:
            continue
        physical.append(dict(m=r, action=action_at(r)))
    if not physical:
        raise RuntimeError("no physical root: no real m > −min(N) solves the deep-linear polynomial")
    best = min(physical, key=lambda d: d["action"])
    reason = (f"{len(roots)} roots, {sum(1 for r in roots if r.is_real)} real, {len(physical)} physical "
              f"(real and m > −min N = {-n_min}, so every order parameter is positive)")
    if len(physical) > 1:
        reason += "; picked the one with the smallest action"
    else:
        reason += "; the physical root is unique"
    return best["m"], physical, reason


# --------------------------------------------------------------------------------------------- commuting kernels

@dataclass
class CommutingKernelSolution:
    """Saddle point for orthogonal paths with commuting same-path kernels.

    Attributes
    ----------
    U : list of ndarray
        ``[U_1, ..., U_L]`` (diagonal).
    U_a : float
    lambdas : ndarray [n, D]
        ``λ^π_k``: eigenvalue of ``C_ππ`` along the common eigenvector ``v_k`` (directions with all
        ``λ = 0`` dropped).
    y_tilde : ndarray [n]
        ``v_k · Y``.
    equations : list of sympy.Expr
        The reduced scalar equations (gradient in the diagonal entries, then ``∂S/∂U_a``).
    unknowns : list of sympy.Symbol
    residual : float
        Largest absolute residual of the reduced equations at the solution (``digits`` precision).
    offdiagonal_verified : bool
        At diagonal ``U_ℓ`` every off-diagonal equation of the full action vanishes identically
        (prior part, checked by SymPy; the energy part vanishes because ``C_{ππ'} = 0``).
    iterations : int
    """

    U: list
    U_a: float
    lambdas: np.ndarray
    y_tilde: np.ndarray
    equations: list
    unknowns: list
    residual: float
    offdiagonal_verified: bool
    iterations: int


def common_eigenbasis(C, tol=1e-10, seed=0):
    """Check that ``C[π, π']`` vanish for ``π ≠ π'`` and that the ``C[π, π]`` commute; return the eigenbasis.

    Returns
    -------
    V : ndarray [P, P]
        Orthonormal common eigenvectors (columns).
    lambdas : ndarray [P, D]
        ``λ^π_k = v_kᵀ C_ππ v_k``.

    Raises
    ------
    InputError
        Cross-path kernels that are not zero, or same-path kernels that do not commute (no closed form).
    """
    D = C.shape[0]
    scale = max(float(np.abs(C).max()), 1e-300)
    for a in range(D):
        for b in range(D):
            if a != b and np.abs(C[a, b]).max() > tol * scale:
                raise InputError(f"no closed form: the cross-path kernel C[{a}, {b}] is not zero "
                                 f"(max |C| = {np.abs(C[a, b]).max():.3g}); commuting_kernel_solution needs "
                                 "orthogonal path features")
    for a in range(D):
        for b in range(a + 1, D):
            comm = C[a, a] @ C[b, b] - C[b, b] @ C[a, a]
            if np.abs(comm).max() > tol * scale**2 * C.shape[2]:
                raise InputError(f"no closed form: the same-path kernels C[{a}, {a}] and C[{b}, {b}] do not commute "
                                 f"(max |[C_aa, C_bb]| = {np.abs(comm).max():.3g})")
    rng = np.random.default_rng(seed)
    w = rng.uniform(1.0, 2.0, D)
    M = sum(w[a] * C[a, a] for a in range(D))
    _, V = np.linalg.eigh(0.5 * (M + M.T))
    lambdas = np.stack([np.einsum("pk,pq,qk->k", V, C[a, a], V) for a in range(D)], axis=1)
    for a in range(D):
        R = V.T @ C[a, a] @ V - np.diag(lambdas[:, a])
        if np.abs(R).max() > 1e3 * tol * scale * C.shape[2]:
            raise InputError("no closed form: the same-path kernels have no common eigenbasis within tolerance "
                             f"(off-diagonal {np.abs(R).max():.3g})")
    return V, lambdas


def commuting_kernel_solution(spec: ModelSpec, problem=None, *, kernel=None, y=None, digits=30, max_iter=100):
    """Saddle point for orthogonal paths whose same-path train kernels commute (module docstring).

    Parameters
    ----------
    spec : ModelSpec
    problem : KernelProblem, optional
        Or ``kernel`` ``[D, D, P, P]`` (scaled train kernels) and ``y``.
    digits : int
        Working precision of Newton's method on the reduced scalar equations.
    max_iter : int

    Returns
    -------
    CommutingKernelSolution

    Raises
    ------
    InputError
        Kernels without the structure (cross-path kernels non-zero, or non-commuting same-path kernels),
        or too many unknowns (:data:`MAX_REDUCED_UNKNOWNS`).
    RuntimeError
        Newton's method does not converge from the GP point, or the solution is not positive.
    """
    if not isinstance(spec, ModelSpec):
        raise InputError("spec must be a smtheory.ModelSpec")
    digits = positive_int("digits", digits)
    max_iter = positive_int("max_iter", max_iter)
    arch = from_spec(spec)
    C, yv = _kernel_and_labels(spec, problem, kernel, y, arch.n_paths)
    V, lambdas = common_eigenbasis(C)
    yt = V.T @ yv
    keep = np.abs(lambdas).max(axis=1) > 1e-12 * max(np.abs(lambdas).max(), 1e-300)
    lambdas, yt = lambdas[keep], yt[keep]
    n_unknowns = sum(arch.partial_paths) + 1
    if n_unknowns > MAX_REDUCED_UNKNOWNS:
        raise InputError(f"the reduced system would have {n_unknowns} unknowns, more than {MAX_REDUCED_UNKNOWNS}")

    sa = build_action(arch)
    diag_sub, diag_vars, off_ok = _diagonal_reduction(sa)
    S = sa.prior.xreplace(diag_sub) + _reduced_energy(sa, arch, lambdas, yt)
    unknowns = diag_vars + [sa.Ua]
    equations = [sp.diff(S, v) for v in unknowns]
    gp_U, gp_a = spec.gp_order_parameters()
    x0 = [float(np.diag(U)[i]) for U in gp_U for i in range(U.shape[0])] + [gp_a]
    vals, it, res = _positive_newton(unknowns, equations, x0, digits, max_iter)
    U, k = [], 0
    for d in arch.partial_paths:
        U.append(np.diag(vals[k:k + d]))
        k += d
    return CommutingKernelSolution(U, vals[-1], lambdas, yt, equations, unknowns, res, bool(off_ok), it)


def _diagonal_reduction(sa):
    """Diagonal ``U_ℓ``: ``(substitution of the off-diagonal entries by 0, diagonal symbols, verified)``.

    ``verified``: every off-diagonal equation of the full action vanishes identically at diagonal ``U_ℓ``
    (prior part by SymPy; energy part at ``Φ = 0``, the cross-path kernels being zero).
    """
    eq = saddle_point_equations(sa, simplify="none")
    diag_sub = {}
    diag_vars, diag_idx = [], []
    for l, M in enumerate(sa.U):
        d = M.shape[0]
        for i in range(d):
            for j in range(i + 1, d):
                diag_sub[M[i, j]] = 0
            diag_vars.append(M[i, i])
            diag_idx.append(sa.entry_index(l + 1, i + 1, i + 1))
    zero_phi = {s: 0 for s in sa.phi}
    off_idx = [k for k in range(len(sa.entries)) if k not in diag_idx]
    off_ok = all(sp.simplify(eq.prior_part[k].xreplace(diag_sub)) == 0 for k in off_idx)
    off_ok = off_ok and all(eq.energy_part[k].xreplace(zero_phi) == 0 for k in off_idx if k < len(eq.energy_part)
                            and sa.entries[k] in sa.U[0])
    return diag_sub, diag_vars, off_ok


def _reduced_energy(sa, arch, lambdas, yt):
    """``Σ_k ln(T + κ_k) + ỹ_k²/(T + κ_k)`` with one scalar ``κ_k = Σ_π λ^π_k U_1[π, π]`` per eigen-direction."""
    T = arch.temperature
    D = arch.n_paths
    u1 = [sa.U[0][a, a] for a in range(D)]
    E = 0
    for k in range(lambdas.shape[0]):
        kappa = sp.Add(*[sp.Float(lambdas[k, a], 17) * u1[a] for a in range(D)])
        E += sp.log(T + kappa) + sp.Float(yt[k] ** 2, 17) / (T + kappa)
    return E


def _positive_newton(unknowns, equations, x0, digits, max_iter):
    """Damped Newton in mpmath on the reduced equations, kept in the positive orthant.

    Returns ``(solution as floats, iterations, largest absolute residual)``.
    """
    f = lambdify(unknowns, equations, backend="mpmath")
    n_u = len(unknowns)
    jac_flat = lambdify(unknowns, [sp.diff(e, v) for e in equations for v in unknowns], backend="mpmath")

    def jac(*x):
        vals = jac_flat(*x)
        return [vals[i * n_u:(i + 1) * n_u] for i in range(n_u)]
    with mpmath.workdps(digits + 10):
        x = mpmath.matrix([mpmath.mpf(v) for v in x0])
        it = 0
        for it in range(1, max_iter + 1):
            F = mpmath.matrix(f(*x))
            J = mpmath.matrix(jac(*x))
            step = mpmath.lu_solve(J, F)
            t = mpmath.mpf(1)
            # damped Newton: stay in the positive orthant and reduce |F|
            while True:
                cand = x - t * step
                if all(c > 0 for c in cand):
                    Fc = mpmath.matrix(f(*cand))
                    if mpmath.norm(Fc) < mpmath.norm(F) or t < mpmath.mpf(2) ** -30:
                        break
                t /= 2
                if t < mpmath.mpf(2) ** -60:
                    raise RuntimeError("Newton's method on the reduced equations stalled (no positive step)")
            x = cand
            if mpmath.norm(step) * t < mpmath.mpf(10) ** (-digits) * (1 + mpmath.norm(x)):
                break
        else:
            raise RuntimeError(f"Newton's method on the reduced equations did not converge in {max_iter} iterations")
        res = float(mpmath.norm(mpmath.matrix(f(*x)), mpmath.inf))
    vals = [float(v) for v in x]
    if any(v <= 0 for v in vals):
        raise RuntimeError("the reduced solution is not positive")
    return vals, it, res


def deep_linear_scalar_equation(L, widths=None, variances=None):
    """The Li–Sompolinsky reduction in symbols: ``(U_1(m), ..., U_L(m), U_a(m))`` and ``m + U_1 Φ = 0``.

    Returns the parameterisation and the scalar equation for a symbolic architecture with ``L`` single-head
    layers (for the docs and the CLI).
    """
    L = positive_int("L", L)
    arch = architecture((1,) * L, widths, variances)
    N, var = arch.widths, arch.variances
    m, phi = sp.Symbol("m", real=True), sp.Symbol("Phi", real=True)
    factors = [1 + m / N[l] for l in range(L)] + [1 + m / N[-1]]
    Us = [sp.Mul(*[var[k + 1] for k in range(l, L + 1)]) * sp.Mul(*factors[l:]) for l in range(L)]
    return Us, var[-1] * factors[-1], sp.Eq(m + Us[0] * phi, 0)


__all__ = ["ReadoutClosedForm", "readout_closed_form", "GPSolution", "gp_solution", "DeepLinearSolution",
           "deep_linear_solution", "CommutingKernelSolution", "commuting_kernel_solution", "common_eigenbasis",
           "deep_linear_scalar_equation", "MAX_POLYNOMIAL_DEGREE", "MAX_REDUCED_UNKNOWNS"]
