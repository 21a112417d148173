"""Turn the symbolic action and saddle-point equations into NumPy, JAX or mpmath functions.

``sympy.lambdify`` is called with an explicit module map (:data:`NUMPY_MODULE`,
:data:`JAX_MODULE`, :data:`MPMATH_MODULE`): every function that may appear in the
action of docs/theory.md §3 (``log``, ``sqrt``, ...) is bound to one implementation, and an
expression that uses anything else is refused with a clear error instead of failing
later inside generated code.  Numbers are printed as Python literals, so the JAX
functions are traceable (``jax.jit``, ``jax.grad``) and keep float64.
"""
from __future__ import annotations

import mpmath
import numpy as np
import sympy as sp

from smtheory.checks import InputError

from .action import SaddlePointEquations, SymbolicAction, saddle_point_equations

NUMPY_MODULE = {"log": np.log, "exp": np.exp, "sqrt": np.sqrt, "Abs": np.abs, "sign": np.sign, "pi": np.pi,
                "E": np.e}
MPMATH_MODULE = {"log": mpmath.log, "exp": mpmath.exp, "sqrt": mpmath.sqrt, "Abs": mpmath.fabs,
                 "sign": mpmath.sign, "pi": mpmath.pi, "E": mpmath.e}


def _jax_module():
    import jax.numpy as jnp

    from smtheory.precision import require_float64

    require_float64("smtheory.solvers.symbolic.lambdify (jax backend)")

    return {"log": jnp.log, "exp": jnp.exp, "sqrt": jnp.sqrt, "Abs": jnp.abs, "sign": jnp.sign, "pi": np.pi,
            "E": np.e}


#: The JAX map is built on first use (importing JAX is slow); see :func:`module_map`.
JAX_MODULE = None


def module_map(backend):
    """The explicit name → implementation map for ``backend`` in {"numpy", "jax", "mpmath"}."""
    global JAX_MODULE
    if backend == "numpy":
        return NUMPY_MODULE
    if backend == "mpmath":
        return MPMATH_MODULE
    if backend == "jax":
        if JAX_MODULE is None:
            JAX_MODULE = _jax_module()
        return JAX_MODULE
    raise InputError(f"backend must be 'numpy', 'jax' or 'mpmath', got {backend!r}")


def lambdify(args, exprs, backend="numpy", cse=True):
    """``sympy.lambdify(args, exprs)`` with the explicit module map of ``backend``.

    Parameters
    ----------
    args : sequence of sympy.Symbol
    exprs : sympy.Expr or list of sympy.Expr
    backend : {"numpy", "jax", "mpmath"}
    cse : bool
        Common-subexpression elimination in the generated code (default on).

    Raises
    ------
    InputError
        If an expression has free symbols not in ``args`` or uses a function the map does not bind.
    """
    mapping = module_map(backend)
    items = exprs if isinstance(exprs, (list, tuple)) else [exprs]
    items = [sp.sympify(e) for e in items]
    free = set().union(*[e.free_symbols for e in items]) - set(args)
    if free:
        raise InputError("these symbols have no value: " + ", ".join(sorted(s.name for s in free))
                         + " (give them in params, or build the action with numbers)")
    funcs = set()
    for e in items:
        funcs |= {type(f).__name__ for f in e.atoms(sp.Function)}
    missing = funcs - set(mapping)
    if missing:
        raise InputError(f"the {backend} module map has no implementation of: {', '.join(sorted(missing))}")
    return sp.lambdify(list(args), exprs, modules=[mapping], cse=cse)


def _terms(expr):
    return list(expr.args) if isinstance(expr, sp.Add) else [expr]


def substitute_parameters(sa: SymbolicAction, params=None):
    """Substitution dict for the free parameters of ``sa`` from ``params``.

    ``params`` maps symbol names (``"N_1"``, ``"sigma_a^2"``, ``"T"``, ``"Phi[1,2]"``, ...) or
    symbols to numbers; the key ``"Phi"`` may hold the whole ``D × D`` matrix ``Φ``.
    """
    params = dict(params or {})
    subs = {}
    by_name = {s.name: s for s in sa.parameters}
    if "Phi" in params:
        if sa.phi is None:
            raise InputError("params['Phi'] is only meaningful for an action built with kernels='phi'")
        phi = np.asarray(params.pop("Phi"), dtype=np.float64)
        D = sa.phi.shape[0]
        if phi.shape != (D, D):
            raise InputError(f"params['Phi'] must be a {D}x{D} matrix, got shape {phi.shape}")
        for i in range(D):
            for j in range(i, D):
                subs[sa.phi[i, j]] = sp.Float(0.5 * (phi[i, j] + phi[j, i]), 17)
    for k, v in params.items():
        name = k.name if isinstance(k, sp.Symbol) else str(k)
        if name not in by_name:
            raise InputError(f"params: {name!r} is not a parameter of this action; parameters are "
                             + ", ".join(sorted(by_name)))
        subs[by_name[name]] = sp.Float(float(v), 17)
    return subs


class NumericSaddlePoint:
    """Lambdified action, gradients and saddle-point residuals of one :class:`SymbolicAction`.

    Every method takes the order parameters as a list of matrices ``[U_1, ..., U_L]`` (and
    ``U_a`` where it is free).  ``backend`` is ``"numpy"`` or ``"jax"`` (jitted, traceable).
    Each function is derived and lambdified on first use, so one that is never called costs nothing.

    Methods
    -------
    action(Us, Ua) : ``S`` with ``U_a`` free.
    action_eliminated(Us) : ``S`` with ``U_a`` at its closed-form root (as :func:`smtheory.action.action`).
    gradient(Us, Ua) : ``∂S/∂u`` in the independent entries at fixed ``U_a`` (the saddle-point equations).
    gradient_eliminated(Us) : total derivative of ``action_eliminated``, differentiated separately by SymPy
        through the square root of the ``U_a`` closed form (equal to ``gradient`` at the root by the
        envelope theorem, which the tests check).
    readout(Us, Ua) : ``∂S/∂U_a``.
    readout_root(Us) : the closed-form ``U_a``.
    residuals(Us, Ua) : relative residuals per layer and for ``U_a``.
    """

    _WITH_UA = {"action", "gradient", "readout", "scale", "readout_polynomial", "readout_scale"}
    _VECTOR = {"gradient", "gradient_eliminated", "scale"}

    def __init__(self, sa, backend, equations, subs):
        self.sa = sa
        self.backend = backend
        self.equations = equations
        self._subs = subs
        self._f = {}

    # ------------------------------------------------------------------ expressions, built on demand
    def _expr(self, name):
        sa, eq = self.sa, self.equations
        if name == "action":
            self._energy_known()
            return [sa.prior + sa.energy]
        if name == "action_eliminated":
            self._energy_known()
            return [sa.prior.subs(sa.Ua, sa.readout_root) + sa.energy]
        if name == "gradient":
            return list(eq.gradient)
        if name == "gradient_eliminated":
            prior_el = sa.prior.subs(sa.Ua, sa.readout_root)
            return [sp.diff(prior_el, s) + e for s, e in zip(sa.entries, eq.energy_part)]
        if name == "readout":
            return [eq.readout]
        if name == "readout_root":
            return [sa.readout_root]
        if name == "scale":
            raw = [sp.diff(sa.prior, s) for s in sa.entries]
            return [sp.Add(*[sp.Abs(t) for t in _terms(p)]) + sp.Abs(e) for p, e in zip(raw, eq.energy_part)]
        if name == "readout_polynomial":
            return [eq.readout_polynomial]
        if name == "readout_scale":
            return [sp.Add(*[sp.Abs(t) for t in _terms(eq.readout_polynomial)])]
        raise KeyError(name)

    def function(self, name):
        """The compiled function ``name`` (see the class docstring), lambdified on first use."""
        if name not in self._f:
            exprs = [e.xreplace(self._subs) if self._subs else e for e in self._expr(name)]
            with_ua = name in self._WITH_UA
            args = list(self.sa.entries) + ([self.sa.Ua] if with_ua else [])
            f = lambdify(args, exprs, self.backend)
            self._f[name] = _wrap(f, self.backend, with_ua, name not in self._VECTOR, len(self.sa.entries))
        return self._f[name]

    def _energy_known(self):
        if self.sa.kernel_mode == "phi":
            raise InputError("the action was built with kernels='phi': the energy E is abstract (only its gradient "
                             "Φ is known), so S cannot be evaluated; build it with given or generic kernels")

    def _vec(self, Us):
        xp = np
        if self.backend == "jax":
            import jax.numpy as jnp
            xp = jnp
        Us = list(Us)
        if len(Us) != len(self.sa.U):
            raise InputError(f"expected {len(self.sa.U)} matrices U_1..U_L, got {len(Us)}")
        parts = []
        for l, (U, M) in enumerate(zip(Us, self.sa.U)):
            U = xp.asarray(U, dtype=xp.float64)
            d = M.shape[0]
            if U.shape != (d, d):
                raise InputError(f"U_{l + 1} must be {d}x{d}, got shape {U.shape}")
            parts.append(U[np.triu_indices(d)])
        return xp.concatenate(parts)

    # ------------------------------------------------------------------ public evaluation
    def action(self, Us, Ua):
        return self.function("action")(self._vec(Us), Ua)

    def action_eliminated(self, Us):
        return self.function("action_eliminated")(self._vec(Us))

    def gradient(self, Us, Ua):
        return self.function("gradient")(self._vec(Us), Ua)

    def gradient_eliminated(self, Us):
        return self.function("gradient_eliminated")(self._vec(Us))

    def readout(self, Us, Ua):
        return self.function("readout")(self._vec(Us), Ua)

    def readout_root(self, Us):
        return self.function("readout_root")(self._vec(Us))

    def residuals(self, Us, Ua):
        """Relative residuals of the saddle-point equations, one per layer, then the ``U_a`` equation.

        For layer ℓ: ``max_k |∂S/∂u_k| / max_k (Σ|terms of ∂S_prior/∂u_k| + |∂E/∂u_k|)`` over the
        entries of ``U_ℓ`` (terms of the raw, unsimplified derivative), i.e. relative to the size of
        the terms that must cancel.  ``U_a``: ``|U_a² + βU_a − γ|`` over the sum of the absolute
        values of its terms.
        """
        vec = self._vec(Us)
        g = np.asarray(self.function("gradient")(vec, Ua), dtype=np.float64)
        scale = np.asarray(self.function("scale")(vec, Ua), dtype=np.float64)
        out, k = [], 0
        for M in self.sa.U:
            d = M.shape[0]
            m = d * (d + 1) // 2
            out.append(float(np.max(np.abs(g[k:k + m])) / np.max(scale[k:k + m])))
            k += m
        poly = float(self.function("readout_polynomial")(vec, Ua))
        poly_scale = float(self.function("readout_scale")(vec, Ua))
        out.append(abs(poly) / poly_scale)
        return out


def numeric_saddle_point(sa: SymbolicAction, backend="numpy", params=None, equations=None):
    """Lambdify the action, its gradients and residuals of ``sa`` (docs/theory.md §3).

    Parameters
    ----------
    sa : SymbolicAction
    backend : {"numpy", "jax"}
    params : dict, optional
        Values of the remaining free parameters (see :func:`substitute_parameters`).
    equations : SaddlePointEquations, optional
        Reuse already derived equations (default: derive with ``simplify="none"``).

    Returns
    -------
    NumericSaddlePoint
    """
    if not isinstance(sa, SymbolicAction):
        raise InputError("sa must be a SymbolicAction (smtheory.solvers.symbolic.build_action)")
    if backend not in ("numpy", "jax"):
        raise InputError(f"backend must be 'numpy' or 'jax', got {backend!r}")
    if equations is None:
        equations = saddle_point_equations(sa, simplify="none")
    elif not isinstance(equations, SaddlePointEquations) or equations.action is not sa:
        raise InputError("equations must be the SaddlePointEquations of this action")
    subs = substitute_parameters(sa, params)
    missing = set(sa.parameters) - set(subs)
    if missing:
        raise InputError("these parameters have no value: " + ", ".join(sorted(s.name for s in missing))
                         + " (give them in params, or build the action with numbers)")
    return NumericSaddlePoint(sa, backend, equations, subs)


def _wrap(f, backend, with_ua, scalar, n):
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        def stack(out):
            return out[0] if scalar else jnp.stack([jnp.asarray(o, dtype=jnp.float64) for o in out])

        if with_ua:
            return jax.jit(lambda v, ua: stack(f(*[v[i] for i in range(n)], ua)))
        return jax.jit(lambda v: stack(f(*[v[i] for i in range(n)])))

    def stack_np(out):
        return float(out[0]) if scalar else np.array(out, dtype=np.float64)

    if with_ua:
        return lambda v, ua: stack_np(f(*[float(x) for x in v], float(ua)))
    return lambda v: stack_np(f(*[float(x) for x in v]))
