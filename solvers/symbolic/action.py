"""The order-parameter action of docs/theory.md §3 in SymPy, and its saddle-point equations.

For a given architecture (heads per layer, widths, prior variances, temperature) the
action::

    S = N_a (U_a/σa² − ln U_a)
      + Σ_ℓ N_ℓ [Tr((I_{H_ℓ} ⊗ U_{ℓ+1})^{-1} U_ℓ)/σℓ² − ln det U_ℓ + H_ℓ ln det U_{ℓ+1}]
      + ln det(T I_P + K) + Y^T (T I_P + K)^{-1} Y,   K = Σ_{ππ'} U_1[π,π'] C_{ππ'}

is built entry by entry: every ``U_ℓ`` is a symmetric matrix of symbols ``U^{(ℓ)}_{ij}``
(``i ≤ j`` independent, 1-based, paths flattened with ``h_1`` most significant, docs/theory.md §2),
``U_{L+1} ≡ U_a`` is a positive symbol, the trace term uses the partial trace over the most
significant index (docs/theory.md §3) and matrix inverses are adjugate / determinant.

The data term (the "energy") comes in three forms (``kernels=``):

``"phi"`` (default)
    kept abstract: a symbol ``E`` whose differential is ``dE = Σ_{ππ'} Φ_{ππ'} dU_1[π,π']``
    with a symmetric matrix of symbols ``Φ`` (docs/theory.md §3, bottom-layer equation).  This is the
    form printed by ``smtheory equations``; every data set enters only through ``Φ``.
``"generic"``
    ``n_train`` training points with generic symbolic kernels ``C^{(ππ')}_{μν}`` (with
    ``C_{π'π} = C_{ππ'}^T``) and labels ``y_μ``; the energy is explicit and differentiated by SymPy.
an array ``[D, D, P, P]``
    given train kernels (e.g. :func:`kernels_from_problem`) and labels ``y``; explicit as well.

The saddle-point equations are the gradient of ``S`` in the independent entries (upper
triangles, row-major, ``U_1`` first: the order of :func:`smtheory.solvers.parameterization.pack_entries`)
at fixed ``U_a``, together with ``∂S/∂U_a = 0``.  Because ``U_a`` sits at a stationary point,
this equals the gradient of the action with ``U_a`` eliminated (envelope theorem), which is
:attr:`SymbolicAction.action_eliminated`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from smtheory.checks import InputError, finite_array, positive_float, positive_int
from smtheory.model import ModelSpec

#: Largest order-parameter matrix ``D_ℓ × D_ℓ`` built explicitly (its determinant has up to ``D_ℓ!`` terms).
MAX_MATRIX_SIZE = 4
#: Largest number of attention layers.
MAX_LAYERS = 4
#: Largest number of training points with generic symbolic kernels (``kernels="generic"``).
MAX_GENERIC_TRAIN = 2
#: Largest number of training points with given numeric kernels (explicit ``P × P`` determinant).
MAX_EXPLICIT_TRAIN = 4
#: Largest operation count (``sympy.count_ops``) of a raw prior derivative that ``simplify="cancel"/"factor"``
#: accepts; above it (e.g. heads (1, 2, 2) or (1, 4), two 4 x 4 layers) rational simplification takes minutes.
SIMPLIFY_MAX_OPS = 300


# --------------------------------------------------------------------------------------------- architecture

def _number(name, value, positive=True):
    """A user number as an exact SymPy number (``0.7 → 7/10``), validated."""
    if isinstance(value, sp.Basic):
        if value.is_number and not (value.is_positive if positive else value.is_real):
            raise InputError(f"{name} must be a positive number, got {value}")
        return value
    v = positive_float(name, value) if positive else float(value)
    if float(v).is_integer():
        return sp.Integer(int(v))
    return sp.Rational(repr(float(v)))


@dataclass(frozen=True)
class SymbolicArchitecture:
    """Architecture and hyper-parameters as SymPy objects (docs/theory.md §1, §3).

    Attributes
    ----------
    heads : tuple of int
        ``(H_1, ..., H_L)``.
    widths : tuple of sympy.Expr
        ``(N_1, ..., N_L, N_a)``: numbers, or positive symbols ``N_1, ..., N_a`` where not given.
    variances : tuple of sympy.Expr
        ``(σ0², σ1², ..., σL², σa²)``: numbers or positive symbols.
    temperature : sympy.Expr
        ``T``: a number or the positive symbol ``T``.
    """

    heads: tuple
    widths: tuple
    variances: tuple
    temperature: sp.Expr

    @property
    def n_layers(self):
        return len(self.heads)

    @property
    def partial_paths(self):
        """``D_ℓ = Π_{k≥ℓ} H_k`` for ℓ = 1..L."""
        return tuple(math.prod(self.heads[l:]) for l in range(len(self.heads)))

    @property
    def n_paths(self):
        return self.partial_paths[0]

    @property
    def n_entries(self):
        """Number of independent order-parameter entries (``U_a`` excluded)."""
        return sum(d * (d + 1) // 2 for d in self.partial_paths)

    @property
    def is_numeric(self):
        """True when widths, variances and temperature are all numbers."""
        return all(v.is_number for v in (*self.widths, *self.variances, self.temperature))


def architecture(heads, widths=None, variances=None, temperature=None):
    """Build a :class:`SymbolicArchitecture`, checking that it is small enough to expand.

    Parameters
    ----------
    heads : sequence of int
        Heads per layer ``(H_1, ..., H_L)``.
    widths : None, number, or sequence of L + 1 numbers/None
        ``(N_1, ..., N_L, N_a)``; ``None`` (or a ``None`` entry) keeps the symbol ``N_ℓ`` / ``N_a``.
    variances : None, number, or sequence of L + 2 numbers/None
        ``(σ0², ..., σL², σa²)``; ``None`` keeps the symbols.
    temperature : None or number
        ``T``; ``None`` keeps the symbol.

    Raises
    ------
    InputError
        Bad values, or an architecture above the size limits (:data:`MAX_LAYERS` layers,
        :data:`MAX_MATRIX_SIZE` partial paths per layer).
    """
    if isinstance(heads, (int, np.integer)):
        heads = (heads,)
    try:
        heads = tuple(heads)
    except TypeError:
        raise InputError(f"heads must be a sequence of positive integers, got {heads!r}") from None
    if not heads:
        raise InputError("heads must name at least one attention layer, got an empty sequence")
    heads = tuple(positive_int(f"heads[{i}]", h) for i, h in enumerate(heads))
    L = len(heads)
    if L > MAX_LAYERS:
        raise InputError(f"heads: the symbolic action is limited to {MAX_LAYERS} layers, got {L}")
    sizes = tuple(math.prod(heads[l:]) for l in range(L))
    if max(sizes) > MAX_MATRIX_SIZE:
        raise InputError(
            f"heads {heads}: U_ℓ would be {max(sizes)}x{max(sizes)}; the symbolic action expands determinants "
            f"and is limited to partial-path counts D_ℓ = Π_(k≥ℓ) H_k ≤ {MAX_MATRIX_SIZE} (use the numeric solver)")
    width_names = [f"N_{l + 1}" for l in range(L)] + ["N_a"]
    var_names = [f"sigma_{l}^2" for l in range(L + 1)] + ["sigma_a^2"]

    def seq(name, value, names):
        if value is None:
            value = [None] * len(names)
        elif isinstance(value, (int, float, np.number, sp.Basic)):
            value = [value] * len(names)
        value = list(value)
        if len(value) == 1:
            value = value * len(names)
        if len(value) != len(names):
            raise InputError(f"{name} must be one value or {len(names)} values ({', '.join(names)}), got {len(value)}")
        return tuple(sp.Symbol(n, positive=True) if v is None else _number(f"{name}[{i}]", v)
                     for i, (n, v) in enumerate(zip(names, value)))

    widths_t = seq("widths", widths, width_names)
    for i, w in enumerate(widths_t):
        if w.is_number and not w.is_integer:
            raise InputError(f"widths[{i}] must be a positive integer, got {w}")
    variances_t = seq("variances", variances, var_names)
    temp = sp.Symbol("T", positive=True) if temperature is None else _number("temperature", temperature)
    return SymbolicArchitecture(heads, widths_t, variances_t, temp)


def from_spec(spec: ModelSpec, symbolic=()):
    """A numeric :class:`SymbolicArchitecture` from a :class:`smtheory.ModelSpec`.

    ``symbolic`` may name ``"widths"``, ``"variances"`` and/or ``"temperature"`` to keep those as symbols.
    """
    if not isinstance(spec, ModelSpec):
        raise InputError("spec must be a smtheory.ModelSpec")
    bad = set(symbolic) - {"widths", "variances", "temperature"}
    if bad:
        raise InputError(f"symbolic may name 'widths', 'variances', 'temperature', got {sorted(bad)}")
    return architecture(spec.heads,
                        None if "widths" in symbolic else spec.widths,
                        None if "variances" in symbolic else spec.variances,
                        None if "temperature" in symbolic else spec.temperature)


def kernels_from_problem(problem, spec):
    """Train path-pair kernels ``C_{ππ'} = Ξ̃_π Ξ̃_{π'}^T`` as an array ``[D, D, P, P]`` (docs/theory.md §2)."""
    xi = np.asarray(problem.scaled_train(spec))
    return np.einsum("pai,qbi->abpq", xi, xi), np.asarray(problem.y_train, dtype=np.float64)


# --------------------------------------------------------------------------------------------- the action

def partial_trace(U, n_heads):
    """``[Tr_h U]_{η,η'} = Σ_h U[(h, η), (h, η')]`` (docs/theory.md §3), for a SymPy matrix."""
    d = U.shape[0] // n_heads
    return sp.Matrix(d, d, lambda i, j: sp.Add(*[U[h * d + i, h * d + j] for h in range(n_heads)]))


def _det(M):
    if M.shape[0] == 1:
        return M[0, 0]
    return sp.expand(M.det(method="berkowitz"))


def _sym_matrix(prefix, d, latex_base, names, positive_diagonal=True):
    """A symmetric ``d × d`` matrix of symbols ``prefix[i,j]`` (i ≤ j) and the list of its independent entries."""
    entries = []
    M = sp.zeros(d, d)
    for i in range(d):
        for j in range(i, d):
            s = sp.Symbol(f"{prefix}[{i + 1},{j + 1}]", positive=True if (i == j and positive_diagonal) else None,
                          real=True)
            names[s] = latex_base.format(i=i + 1, j=j + 1)
            M[i, j] = M[j, i] = s
            entries.append(s)
    return M, entries


@dataclass
class SymbolicAction:
    """The action of docs/theory.md §3 for one architecture, as SymPy expressions.

    Attributes
    ----------
    arch : SymbolicArchitecture
    U : list of sympy.Matrix
        ``[U_1, ..., U_L]``, symmetric matrices of entry symbols.
    Ua : sympy.Symbol
        The readout order parameter ``U_a`` (free; see :attr:`readout_root`).
    entries : tuple of sympy.Symbol
        Independent entries in the order of ``pack_entries`` (upper triangles, row-major, ``U_1`` first).
    prior : sympy.Expr
        The entropic part (all but the last line of docs/theory.md §3), in the entries and ``U_a``.
    energy : sympy.Expr
        ``ln det(T I + K) + Y^T (T I + K)^{-1} Y``, or the symbol ``E`` in ``"phi"`` mode.
    energy_gradient : list of sympy.Expr
        ``∂E/∂u`` for every entry ``u`` (zero beyond ``U_1``): derived by SymPy in the explicit modes,
        ``(2 − δ_ij) Φ_ij`` in ``"phi"`` mode.
    readout_root : sympy.Expr
        ``U_a`` as the positive root of its quadratic (docs/theory.md §3), a function of ``Tr U_L``.
    kernel_mode : {"phi", "generic", "matrices"}
    phi : sympy.Matrix or None
        The ``Φ`` symbols (``"phi"`` mode).
    C : list of list of sympy.Matrix or None
        Train kernels ``C[π][π']`` (explicit modes).
    Y : sympy.Matrix or None
        Labels (explicit modes).
    latex_names : dict
        LaTeX for every symbol created here (used by :mod:`smtheory.solvers.symbolic.latex`).
    """

    arch: SymbolicArchitecture
    U: list
    Ua: sp.Symbol
    entries: tuple
    prior: sp.Expr
    energy: sp.Expr
    energy_gradient: list
    readout_root: sp.Expr
    kernel_mode: str
    phi: sp.Matrix = None
    C: list = None
    Y: sp.Matrix = None
    latex_names: dict = field(default_factory=dict)

    @property
    def action(self):
        """``S`` with ``U_a`` free."""
        return self.prior + self.energy

    @property
    def action_eliminated(self):
        """``S`` with ``U_a`` replaced by its closed-form root: the function :func:`smtheory.action.action` computes."""
        return self.action.subs(self.Ua, self.readout_root)

    @property
    def parameters(self):
        """Free symbols other than the order parameters (widths, variances, T, Φ, generic kernels, labels)."""
        own = set(self.entries) | {self.Ua}
        if self.kernel_mode == "phi":
            own.add(_ENERGY)
        free = set()
        for e in [self.prior, *self.energy_gradient, self.readout_root]:
            free |= e.free_symbols
        return tuple(sorted(free - own, key=lambda s: s.name))

    def entry_index(self, layer, i, j):
        """Position of ``U_layer[i, j]`` (1-based layer and indices) in :attr:`entries`."""
        s = self.U[layer - 1][i - 1, j - 1]
        return self.entries.index(s)


_ENERGY = sp.Symbol("E", real=True)


def build_action(arch, kernels="phi", *, n_train=None, y=None):
    """Build the symbolic action of docs/theory.md §3.

    Parameters
    ----------
    arch : SymbolicArchitecture or smtheory.ModelSpec
    kernels : "phi", "generic" or array [D, D, P, P]
        How the data term is represented (see the module docstring).
    n_train : int, optional
        Number of training points for ``kernels="generic"`` (≤ :data:`MAX_GENERIC_TRAIN`).
    y : array [P], optional
        Labels for given kernels (required with an array).

    Returns
    -------
    SymbolicAction
    """
    if isinstance(arch, ModelSpec):
        arch = from_spec(arch)
    if not isinstance(arch, SymbolicArchitecture):
        raise InputError("arch must be a SymbolicArchitecture (smtheory.solvers.symbolic.architecture) or a ModelSpec")
    names = {}
    U, entries, Ua = _order_parameters(arch, names)
    prior = _prior_action(arch, U, Ua)
    root = _readout_root(arch, U)
    mode, phi, C, Y, energy, egrad = _data_term(arch, U, entries, names, kernels, n_train, y)
    n1 = arch.n_paths * (arch.n_paths + 1) // 2
    egrad = egrad + [sp.Integer(0)] * (len(entries) - n1)
    return SymbolicAction(arch=arch, U=U, Ua=Ua, entries=tuple(entries), prior=prior, energy=energy,
                          energy_gradient=egrad, readout_root=root, kernel_mode=mode, phi=phi, C=C, Y=Y,
                          latex_names=names)


def _order_parameters(arch, names):
    """Symmetric symbol matrices ``U_1..U_L``, their independent entries and ``U_a`` (names added to ``names``)."""
    U, entries = [], []
    for l, d in enumerate(arch.partial_paths):
        M, e = _sym_matrix(f"U{l + 1}", d, "U^{{(" + str(l + 1) + ")}}_{{{i}{j}}}", names)
        U.append(M)
        entries += e
    Ua = sp.Symbol("U_a", positive=True)
    names[Ua] = "U_a"
    return U, entries, Ua


def _prior_action(arch, U, Ua):
    """The entropic part of the action, docs/theory.md §3 (``U_a`` kept as a symbol)."""
    heads, L = arch.heads, arch.n_layers
    N, var = arch.widths, arch.variances
    prior = N[-1] * (Ua / var[-1] - sp.log(Ua))
    for l in range(L):
        H = heads[l]
        if l == L - 1:
            trace = U[l].trace() / Ua
            logdet_next = sp.log(Ua)
        else:
            nxt = U[l + 1]
            det_next = _det(nxt)
            trace = (nxt.adjugate() * partial_trace(U[l], H)).trace() / det_next
            logdet_next = sp.log(det_next)
        prior += N[l] * (trace / var[l + 1] - sp.log(_det(U[l])) + H * logdet_next)
    return prior


def _readout_root(arch, U):
    """The positive root of ``U_a² + β U_a − γ = 0`` (``U_a`` in closed form, docs/theory.md §3)."""
    N, var = arch.widths, arch.variances
    H_L, N_L, N_a = arch.heads[-1], N[-2], N[-1]
    beta = var[-1] * (H_L * N_L / N_a - 1)
    gamma = U[-1].trace() * N_L * var[-1] / (N_a * var[-2])
    return (-beta + sp.sqrt(beta**2 + 4 * gamma)) / 2


def _data_term(arch, U, entries, names, kernels, n_train, y):
    """``(mode, Φ, C, Y, energy, ∂energy/∂U_1 entries)`` of the data term (module docstring, docs/theory.md §3)."""
    D = arch.n_paths
    phi = C = Y = None
    if isinstance(kernels, str) and kernels == "phi":
        phi, _ = _sym_matrix("Phi", D, r"\Phi_{{{i}{j}}}", names, positive_diagonal=False)
        names[_ENERGY] = "E"
        egrad = [phi[i, j] if i == j else 2 * phi[i, j] for i in range(D) for j in range(i, D)]
        return "phi", phi, C, Y, _ENERGY, egrad
    if isinstance(kernels, str) and kernels == "generic":
        mode = "generic"
        C, Y = _generic_kernels(D, n_train, names)
    else:
        mode = "matrices"
        C, Y = _given_kernels(D, kernels, y)
    energy, egrad = _explicit_energy(U[0], C, Y, arch.temperature, entries[:D * (D + 1) // 2])
    return mode, phi, C, Y, energy, egrad


def _generic_kernels(D, n_train, names):
    """Symbolic path-pair kernels ``C^{ππ'}`` (``C^{ππ}`` symmetric, ``C^{π'π} = C^{ππ'ᵀ}``) and labels ``y``."""
    if n_train is None:
        raise InputError("n_train is required with kernels='generic'")
    P = positive_int("n_train", n_train)
    if P > MAX_GENERIC_TRAIN:
        raise InputError(f"n_train: generic symbolic kernels are limited to {MAX_GENERIC_TRAIN} training "
                         f"points (the energy is a P x P determinant in D²P² symbols), got {P}")
    C = [[None] * D for _ in range(D)]
    for a in range(D):
        for b in range(a, D):
            M = sp.zeros(P, P)
            for mu in range(P):
                for nu in range(P):
                    if a == b and nu < mu:
                        M[mu, nu] = M[nu, mu]
                        continue
                    s = sp.Symbol(f"C{a + 1}{b + 1}[{mu + 1},{nu + 1}]", real=True)
                    names[s] = f"C^{{({a + 1}{b + 1})}}_{{{mu + 1}{nu + 1}}}"
                    M[mu, nu] = s
            C[a][b] = M
            C[b][a] = M.T
    ys = [sp.Symbol(f"y_{mu + 1}", real=True) for mu in range(P)]
    for mu, s in enumerate(ys):
        names[s] = f"y_{{{mu + 1}}}"
    return C, sp.Matrix(ys)


def _given_kernels(D, kernels, y):
    """Numeric kernels ``[D, D, P, P]`` and labels as SymPy floats (17 digits), validated."""
    arr = finite_array("kernels", kernels, ndim=4)
    if arr.shape[:2] != (D, D) or arr.shape[2] != arr.shape[3]:
        raise InputError(f"kernels must have shape [D={D}, D={D}, P, P], got {arr.shape}")
    P = arr.shape[2]
    if P > MAX_EXPLICIT_TRAIN:
        raise InputError(f"kernels: explicit symbolic energies are limited to P ≤ {MAX_EXPLICIT_TRAIN} training "
                         f"points (a P x P symbolic determinant), got P = {P}")
    if not np.allclose(arr, np.transpose(arr, (1, 0, 3, 2)), rtol=1e-12, atol=1e-14 * np.abs(arr).max()):
        raise InputError("kernels must satisfy C[π, π'] = C[π', π]^T (path-pair kernels of one feature map)")
    if y is None:
        raise InputError("y (the P training labels) is required with given kernels")
    yv = finite_array("y", y, ndim=1)
    if yv.shape[0] != P:
        raise InputError(f"y must have P = {P} labels, got {yv.shape[0]}")
    C = [[sp.Matrix(P, P, lambda i, j, a=a, b=b: sp.Float(arr[a, b, i, j], 17)) for b in range(D)]
         for a in range(D)]
    return C, sp.Matrix([sp.Float(v, 17) for v in yv])


def _explicit_energy(U1, C, Y, T, gens):
    """``E = ln p + q/p`` with ``p = det(T I + K)``, ``q = Y^T adj(T I + K) Y`` as expanded polynomials.

    The determinant and adjugate are computed over a polynomial ring (``DomainMatrix``), much faster
    than on general expressions; ``∂E/∂u = (p_u + q_u)/p − q p_u/p²`` with the polynomial
    derivatives ``p_u = ∂p/∂u``, ``q_u = ∂q/∂u`` taken by SymPy.
    """
    from sympy.polys.matrices import DomainMatrix

    D, P = U1.shape[0], Y.shape[0]
    K = sp.zeros(P, P)
    for a in range(D):
        for b in range(D):
            K += U1[a, b] * C[a][b]
    A, Yd = DomainMatrix.from_Matrix(T * sp.eye(P) + K).unify(DomainMatrix.from_Matrix(Y))
    adj, det = A.adj_det()
    p = sp.Poly(A.domain.to_sympy(det), *gens)
    q = sp.Poly((Yd.transpose() * adj * Yd).to_Matrix()[0, 0], *gens)
    pe, qe = p.as_expr(), q.as_expr()
    energy = sp.log(pe) + qe / pe
    grad = []
    for s in gens:
        dp, dq = p.diff(s).as_expr(), q.diff(s).as_expr()
        grad.append((dp + dq) / pe - qe * dp / pe**2)
    return energy, grad


# --------------------------------------------------------------------------------------------- equations

@dataclass
class SaddlePointEquations:
    """The saddle-point equations ``∂S/∂u = 0`` of docs/theory.md §3, derived by SymPy.

    Attributes
    ----------
    action : SymbolicAction
    entries : tuple of sympy.Symbol
        The variables, in :attr:`SymbolicAction.entries` order.
    prior_part, energy_part : list of sympy.Expr
        ``∂S_prior/∂u`` and ``∂E/∂u`` per entry (at fixed ``U_a``).
    gradient : list of sympy.Expr
        Their sum: the equations are ``gradient[k] = 0``.
    readout : sympy.Expr
        ``∂S/∂U_a``.
    readout_polynomial : sympy.Expr
        ``(σa² U_a² / N_a) ∂S/∂U_a``: the quadratic ``U_a² + β U_a − γ``.
    simplified : str
        The simplification applied (``"none"``, ``"cancel"`` or ``"factor"``).
    """

    action: SymbolicAction
    entries: tuple
    prior_part: list
    energy_part: list
    gradient: list
    readout: sp.Expr
    readout_polynomial: sp.Expr
    simplified: str

    def labels(self):
        """``(layer, i, j)`` (1-based) for every equation."""
        out = []
        for l, M in enumerate(self.action.U):
            d = M.shape[0]
            out += [(l + 1, i + 1, j + 1) for i in range(d) for j in range(i, d)]
        return out


def saddle_point_equations(sa: SymbolicAction, simplify="cancel"):
    """Differentiate the action in every independent entry and in ``U_a`` (docs/theory.md §3).

    Parameters
    ----------
    sa : SymbolicAction
    simplify : {"none", "cancel", "factor"} or bool
        ``"cancel"`` (default, ``True``) writes each prior part as one fraction in lowest terms;
        ``"factor"`` also factors numerator and denominator (slower); ``"none"`` (``False``) keeps
        the raw derivative.  The explicit energy part is never rewritten (it can be large).
        Simplification is refused (``InputError``) above :data:`SIMPLIFY_MAX_OPS` operations.

    Returns
    -------
    SaddlePointEquations
    """
    if not isinstance(sa, SymbolicAction):
        raise InputError("sa must be a SymbolicAction (smtheory.solvers.symbolic.build_action)")
    if simplify is True:
        simplify = "cancel"
    elif simplify is False:
        simplify = "none"
    if simplify not in ("none", "cancel", "factor"):
        raise InputError(f"simplify must be 'none', 'cancel' or 'factor', got {simplify!r}")
    prior = [sp.diff(sa.prior, s) for s in sa.entries]
    if simplify != "none":
        ops = max(sp.count_ops(p) for p in prior)
        if ops > SIMPLIFY_MAX_OPS:
            raise InputError(f"simplify={simplify!r}: the raw equations of heads {sa.arch.heads} have up to {ops} "
                             f"operations, above the limit SIMPLIFY_MAX_OPS = {SIMPLIFY_MAX_OPS} for rational "
                             "simplification; use simplify='none' (or the matrix form printed by default)")
    if simplify == "cancel":
        prior = [sp.cancel(p) for p in prior]
    elif simplify == "factor":
        prior = [sp.factor(sp.cancel(p)) for p in prior]
    energy = list(sa.energy_gradient)
    grad = [p + e for p, e in zip(prior, energy)]
    dUa = sp.diff(sa.action, sa.Ua)
    var_a, N_a = sa.arch.variances[-1], sa.arch.widths[-1]
    poly = sp.expand(sp.cancel(dUa * var_a * sa.Ua**2 / N_a))
    return SaddlePointEquations(sa, sa.entries, prior, energy, grad, dUa, poly, simplify)


def theory_matrix_gradient(sa: SymbolicAction, inverses=None):
    """docs/theory.md §3's matrix form of the saddle-point equations, entry by entry, as stated there.

    Layer ℓ ≥ 2: ``G_ℓ = N_ℓ[(I⊗U_{ℓ+1})^{-1}/σℓ² − U_ℓ^{-1}] + N_{ℓ−1}[H_{ℓ−1} U_ℓ^{-1}
    − U_ℓ^{-1}(Tr_h U_{ℓ−1}) U_ℓ^{-1}/σ_{ℓ−1}²]``; bottom layer ``G_1 = N_1[(I⊗U_2)^{-1}/σ1² − U_1^{-1}] + Φ``
    (``U_{L+1} ≡ U_a``).  The gradient in the independent entries is ``(2 − δ_ij) G_ij``.
    Used to check the SymPy derivation against the equations written in docs/theory.md.
    Only for ``"phi"`` mode (where ``Φ`` is a symbol).

    ``inverses`` may give ``[U_1^{-1}, ..., U_L^{-1}]`` (e.g. matrices of display symbols, see
    :func:`inverse_symbols`); by default they are computed (adjugate / determinant).
    """
    if sa.kernel_mode != "phi":
        raise InputError("theory_matrix_gradient needs an action built with kernels='phi'")
    arch = sa.arch
    N, var, heads = arch.widths, arch.variances, arch.heads
    L = arch.n_layers
    if inverses is None:
        inv = [M.inv(method="ADJ") if M.shape[0] > 1 else sp.Matrix([[1 / M[0, 0]]]) for M in sa.U]
    else:
        inv = list(inverses)

    def inv_next(l):
        if l == L - 1:
            return sp.eye(sa.U[l].shape[0]) / sa.Ua
        return sp.kronecker_product(sp.eye(heads[l]), inv[l + 1])

    out = []
    for l in range(L):
        G = N[l] * (inv_next(l) / var[l + 1] - inv[l])
        if l == 0:
            G += sa.phi
        else:
            G += N[l - 1] * (heads[l - 1] * inv[l] - inv[l] * partial_trace(sa.U[l - 1], heads[l - 1]) * inv[l]
                             / var[l])
        d = G.shape[0]
        out += [G[i, j] if i == j else 2 * G[i, j] for i in range(d) for j in range(i, d)]
    return out


def inverse_symbols(sa: SymbolicAction):
    """Symmetric matrices of display symbols ``(U_ℓ^{-1})_{ij}`` (registered in ``sa.latex_names``)."""
    out = []
    for l, M in enumerate(sa.U):
        d = M.shape[0]
        if d == 1:
            out.append(sp.Matrix([[1 / M[0, 0]]]))
            continue
        V, _ = _sym_matrix(f"Uinv{l + 1}", d, "(U_{{" + str(l + 1) + "}}^{{-1}})_{{{i}{j}}}", sa.latex_names,
                           positive_diagonal=True)
        out.append(V)
    return out


def check_theory_equations(sa: SymbolicAction, eq: SaddlePointEquations, method="random", n_points=3, seed=0):
    """Check that the SymPy-derived gradient equals docs/theory.md §3's matrix equations (:func:`theory_matrix_gradient`).

    ``method="exact"`` cancels ``derived − stated`` to zero as rational functions (slow for D = 4);
    ``"random"`` evaluates both exactly (rational arithmetic) at ``n_points`` random rational points with
    positive-definite ``U_ℓ`` and random rational parameters (a non-zero rational function vanishes at such a
    point with probability zero).  Returns True when they agree.
    """
    stated = theory_matrix_gradient(sa)
    if method == "exact":
        return all(sp.cancel(a - b) == 0 for a, b in zip(eq.gradient, stated))
    if method != "random":
        raise InputError(f"method must be 'exact' or 'random', got {method!r}")
    rng = np.random.default_rng(seed)
    free = set()
    for e in [*eq.gradient, *stated]:
        free |= e.free_symbols
    for _ in range(n_points):
        sub = {}
        for M in sa.U:
            d = M.shape[0]
            A = rng.integers(-3, 4, (d, d))
            S = A @ A.T + d * np.eye(d, dtype=int)
            for i in range(d):
                for j in range(i, d):
                    sub[M[i, j]] = sp.Rational(int(S[i, j]), 2)
        for s in free - set(sub):
            sub[s] = sp.Rational(int(rng.integers(1, 50)), int(rng.integers(1, 20)))
        for a, b in zip(eq.gradient, stated):
            if sp.nsimplify(a.xreplace(sub) - b.xreplace(sub)) != 0:
                return False
    return True
