"""LaTeX (and plain-text) export of the action and saddle-point equations for one architecture.

Three views, all produced from :mod:`smtheory.solvers.symbolic.action`:

- the action of docs/theory.md §3 in matrix form with the architecture's numbers filled in
  (:func:`action_matrix_latex`), and written out in the entries of the ``U_ℓ`` (:func:`action_latex`);
- the saddle-point equations entry by entry in terms of the entries of ``U_ℓ^{-1}``
  (:func:`equations_latex` with ``form="inverse"``), which is docs/theory.md §3's matrix form written per entry and
  is checked against the SymPy-derived gradient (:func:`smtheory.solvers.symbolic.action.check_theory_equations`);
- the same equations fully expanded in the entries of ``U_ℓ`` (``form="expanded"``, long for D = 4).
"""
from __future__ import annotations

import sympy as sp

from smtheory.checks import InputError

from .action import SaddlePointEquations, SymbolicAction, inverse_symbols, theory_matrix_gradient


def _ltx(sa, expr):
    return sp.latex(expr, symbol_names=sa.latex_names)


def _txt(expr):
    return sp.sstr(expr)


def action_matrix_latex(sa: SymbolicAction):
    """docs/theory.md §3's action in matrix form, with the architecture's heads, widths and variances filled in."""
    arch = sa.arch
    L, H, N, var = arch.n_layers, arch.heads, arch.widths, arch.variances
    lx = lambda e: sp.latex(e)  # noqa: E731
    parts = [rf"{lx(N[-1])}\left(\frac{{U_a}}{{{lx(var[-1])}}} - \ln U_a\right)"]
    for l in range(L):
        if l == L - 1:
            tr = rf"\frac{{\operatorname{{Tr}} U_{{{l + 1}}}}}{{{lx(var[l + 1])}\, U_a}}"
            nxt = r"\ln U_a"
        else:
            ptr = rf"\operatorname{{Tr}}_{{h_{{{l + 1}}}}} U_{{{l + 1}}}" if H[l] > 1 else f"U_{{{l + 1}}}"
            tr = rf"\frac{{\operatorname{{Tr}}\left(U_{{{l + 2}}}^{{-1}} {ptr}\right)}}{{{lx(var[l + 1])}}}"
            nxt = rf"\ln\det U_{{{l + 2}}}"
        coef = "" if H[l] == 1 else f"{H[l]}\\,"
        parts.append(rf"{lx(N[l])}\left[{tr} - \ln\det U_{{{l + 1}}} + {coef}{nxt}\right]")
    if sa.kernel_mode == "phi":
        parts.append(r"E(U_1)")
    else:
        P = sa.Y.shape[0]
        parts.append(rf"\ln\det(T I_{{{P}}} + K) + Y^\top (T I_{{{P}}} + K)^{{-1}} Y")
    return "S = " + r" \\ &\quad + ".join(parts)


def action_latex(sa: SymbolicAction, eliminate_readout=False):
    """The action written out in the entries of ``U_ℓ`` (prior part), plus the energy term."""
    expr = sa.prior.subs(sa.Ua, sa.readout_root) if eliminate_readout else sa.prior
    energy = r"E(U_1)" if sa.kernel_mode == "phi" else _ltx(sa, sa.energy)
    return "S = " + _ltx(sa, expr) + " + " + energy


def equations_latex(eq: SaddlePointEquations, form="inverse"):
    """One LaTeX line per saddle-point equation ``∂S/∂U^{(ℓ)}_{ij} = 0``, then the ``U_a`` quadratic.

    Parameters
    ----------
    eq : SaddlePointEquations
    form : {"inverse", "expanded"}
        ``"inverse"``: docs/theory.md §3's equations per entry, in the entries ``(U_ℓ^{-1})_{ij}`` (``"phi"`` mode only);
        ``"expanded"``: the SymPy-derived gradient in the entries of ``U_ℓ``.

    Returns
    -------
    list of str
    """
    if not isinstance(eq, SaddlePointEquations):
        raise InputError("eq must be a SaddlePointEquations (smtheory.solvers.symbolic.saddle_point_equations)")
    sa = eq.action
    exprs = _equation_exprs(eq, form)
    out = []
    for (l, i, j), e in zip(eq.labels(), exprs):
        lhs = rf"\frac{{\partial S}}{{\partial U^{{({l})}}_{{{i}{j}}}}}"
        out.append(rf"{lhs} = {_ltx(sa, e)} = 0")
    out.append(_ltx(sa, eq.readout_polynomial) + r" = 0 \quad\Rightarrow\quad U_a = " + _ltx(sa, sa.readout_root))
    return out


def equations_text(eq: SaddlePointEquations, form="inverse"):
    """Plain-text version of :func:`equations_latex` (SymPy ``sstr``)."""
    sa = eq.action
    exprs = _equation_exprs(eq, form)
    out = [f"dS/dU{l}[{i},{j}] = {_txt(e)} = 0" for (l, i, j), e in zip(eq.labels(), exprs)]
    out.append(f"{_txt(eq.readout_polynomial)} = 0   =>   U_a = {_txt(sa.readout_root)}")
    return out


def _equation_exprs(eq, form):
    sa = eq.action
    if form == "expanded":
        return eq.gradient
    if form != "inverse":
        raise InputError(f"form must be 'inverse' or 'expanded', got {form!r}")
    if sa.kernel_mode != "phi":
        raise InputError("form='inverse' needs an action built with kernels='phi'; use form='expanded'")
    return [sp.expand(e) for e in theory_matrix_gradient(sa, inverses=inverse_symbols(sa))]


def document(sa: SymbolicAction, eq: SaddlePointEquations, form="inverse", verified=None):
    """A Markdown block (``$$ ... $$``) with the matrix-form action, the entry-wise action and the equations."""
    lines = ["Action (docs/theory.md §3, matrix form):", "", "$$", r"\begin{aligned}",
             "&" + action_matrix_latex(sa), r"\end{aligned}", "$$", ""]
    lines += ["Prior part in the entries (paths flattened with $h_1$ most significant):", "", "$$",
              action_latex(sa), "$$", ""]
    if sa.kernel_mode == "phi":
        lines += [r"The data enter only through $dE = \sum_{\pi\pi'} \Phi_{\pi\pi'}\, dU_1[\pi,\pi']$, "
                  r"$\Phi_{\pi\pi'} = \operatorname{Tr}(G C_{\pi\pi'}) - Y^\top G C_{\pi\pi'} G Y$, "
                  r"$G = (T I + K)^{-1}$.", ""]
    lines += ["Saddle-point equations (gradient in the independent entries):", ""]
    for e in equations_latex(eq, form):
        lines += ["$$", e, "$$", ""]
    if verified is not None:
        lines.append(f"Matrix form checked against the SymPy-derived gradient: {'yes' if verified else 'NO'}.")
    return "\n".join(lines)
