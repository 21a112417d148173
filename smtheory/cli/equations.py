"""``smtheory equations``: print the action and saddle-point equations (docs/theory.md §3).

Examples
--------
``smtheory equations --heads 2 2``
``smtheory equations --heads 2 2 --latex``
``smtheory equations --heads 1 1 --widths 50 --variances 1 1 1 1 --expanded``
"""
from __future__ import annotations

import time


def register(subparsers):
    """Add the ``equations`` sub-command."""
    p = subparsers.add_parser(
        "equations", help="print the symbolic action and saddle-point equations for an architecture",
        description="Derive the order-parameter action and its saddle-point equations (docs/theory.md §3) with SymPy for "
                    "a small architecture and print them (plain text or LaTeX). Widths, variances and the "
                    "temperature stay symbols unless given; the data enter through the matrix Phi.")
    p.add_argument("--heads", type=int, nargs="+", required=True, metavar="H",
                   help="heads per layer H_1 .. H_L (partial-path counts D_l = H_l..H_L at most 4)")
    p.add_argument("--widths", type=int, nargs="+", default=None, metavar="N",
                   help="one N, or N_1 .. N_L N_a (default: symbols)")
    p.add_argument("--variances", type=float, nargs="+", default=None, metavar="S",
                   help="one value, or s0 s1 .. sL sa (default: symbols)")
    p.add_argument("--temperature", type=float, default=None, help="T (default: the symbol T)")
    p.add_argument("--latex", action="store_true", help="print LaTeX (a Markdown block with $$ ... $$)")
    p.add_argument("--expanded", action="store_true",
                   help="write the equations fully in the entries of U_l (default: in the entries of U_l^-1)")
    p.add_argument("--simplify", choices=["none", "cancel", "factor"], default="cancel",
                   help="simplification of the expanded equations (default cancel)")
    p.add_argument("--check", choices=["random", "exact", "none"], default="random",
                   help="check the printed matrix-form equations against the SymPy-derived gradient: at random "
                        "rational points (default), by exact cancellation (slow for 4 paths), or not at all")
    p.set_defaults(func=cmd_equations)


def cmd_equations(args):
    """Print the action and equations; returns the exit status (1 when the check fails)."""
    from smtheory.solvers.symbolic.action import (architecture, build_action, check_theory_equations,
                                                  saddle_point_equations)
    from smtheory.solvers.symbolic.latex import action_matrix_latex, document, equations_text

    t0 = time.perf_counter()
    arch = architecture(args.heads, args.widths, args.variances, args.temperature)
    sa = build_action(arch)
    eq = saddle_point_equations(sa, simplify=args.simplify if args.expanded else "none")
    verified = None if args.check == "none" else check_theory_equations(sa, eq, method=args.check)
    form = "expanded" if args.expanded else "inverse"
    if args.latex:
        print(document(sa, eq, form=form, verified=verified))
    else:
        print(f"architecture: heads={arch.heads}, partial paths D_l={arch.partial_paths}, "
              f"{arch.n_entries} independent entries + U_a")
        print("action (matrix form, LaTeX):")
        print("  " + action_matrix_latex(sa).replace(r" \\ &\quad", "\n   "))
        print("action (prior part in the entries):")
        print("  S = " + str(sa.prior) + " + E(U_1)")
        print("data term: dE = sum_{pi,pi'} Phi[pi,pi'] dU1[pi,pi'],  Phi = Tr(G C) - Y^T G C G Y,  G = (T I + K)^-1")
        print("saddle-point equations" + (" (in the entries of U_l^-1, written Uinv):" if form == "inverse" else ":"))
        for line in equations_text(eq, form):
            print("  " + line)
        if verified is not None:
            print(f"matrix form == SymPy-derived gradient ({args.check} check): {'yes' if verified else 'NO'}")
        print(f"derived in {time.perf_counter() - t0:.2f}s")
    return 0 if verified in (None, True) else 1
