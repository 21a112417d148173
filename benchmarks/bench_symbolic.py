"""Benchmark: the symbolic solver (smtheory.solvers.symbolic) — derivation cost, lambdified residuals, closed forms.

1. Derivation time vs architecture size: ``build_action`` ("phi" mode, symbolic widths/variances/T),
   ``saddle_point_equations(simplify="none")``, the random-point check against docs/theory.md's matrix form, and
   ``simplify="cancel"`` where it is allowed (refused above ``SIMPLIFY_MAX_OPS``); SymPy operation count.
2. Residual evaluation, measured side by side in one run on the same point: the lambdified symbolic residuals
   (NumPy and jitted JAX; explicit energy with given train kernels, heads (2, 2), P = 3) against the numeric
   code's ``smtheory.action.saddle_point_residuals`` (JAX, jitted).  Best of 5 blocks of ≥ 0.2 s each.
3. Closed form vs numeric solver (``smtheory.solvers.solve``): largest relative difference of ``U_1..U_L, U_a`` and the
   wall time of each (closed form: SymPy derivation + roots / reduced Newton; numeric: ``res.time``, which
   excludes JIT compilation).

Run: ``python3 benchmarks/bench_symbolic.py [--out DIR]`` → ``benchmarks/results/bench_symbolic.{json,md}``.
The process is pinned to one CPU (``_common.pin_single_cpu``) before JAX is imported.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import RESULTS, environment, fmt, load_average, pin_single_cpu, write_json, write_text  # noqa: E402

NAME = "bench_symbolic"
ARCHS = [(1,), (2,), (1, 1), (3,), (1, 1, 1), (2, 2), (4,), (1, 2, 2), (2, 1, 2)]


def best_time(f, min_time=0.2, blocks=5):
    f()
    out = []
    for _ in range(blocks):
        n, t0 = 0, time.perf_counter()
        while True:
            f()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= min_time:
                break
        out.append(dt / n)
    return min(out)


def rel(a, b):
    import numpy as np
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(np.asarray(b))), 1e-300))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=RESULTS, help="folder of the results files (default benchmarks/results)")
    out = ap.parse_args(argv).out
    cpu = pin_single_cpu()
    import jax.numpy as jnp
    import numpy as np
    import sympy as sp

    import smtheory as smt
    import smtheory.solvers
    from smtheory.action import ActionConstants, saddle_point_residuals
    from smtheory.solvers.symbolic import (architecture, build_action, check_theory_equations, commuting_kernel_solution, deep_linear_solution,
                                  from_spec, gp_solution, kernels_from_problem, numeric_saddle_point,
                                  saddle_point_equations)
    from tests.conftest import random_problem

    env = environment()
    env["pinned_cpu"] = cpu
    derivation = []
    for heads in ARCHS:
        t0 = time.perf_counter()
        sa = build_action(architecture(heads))
        t1 = time.perf_counter()
        eq = saddle_point_equations(sa, simplify="none")
        t2 = time.perf_counter()
        ok = check_theory_equations(sa, eq)
        t3 = time.perf_counter()
        try:
            saddle_point_equations(sa, simplify="cancel")
            t_cancel = time.perf_counter() - t3
        except smt.InputError:
            t_cancel = None  # refused: above SIMPLIFY_MAX_OPS
        derivation.append(dict(heads=list(heads), partial_paths=list(sa.arch.partial_paths),
                               entries=len(sa.entries), build_s=t1 - t0, equations_s=t2 - t1,
                               matrix_form_check_s=t3 - t2, matrix_form_agrees=ok, cancel_s=t_cancel,
                               ops=int(sum(sp.count_ops(g) for g in eq.gradient))))
        print("derive", heads, f"{t2 - t0:.2f}s")

    # residuals side by side
    prob = random_problem(heads=(2, 2), P=3, seed=7)
    spec = smt.ModelSpec(heads=(2, 2), widths=(6, 9, 5), temperature=0.05, variances=(1.2, 0.7, 1.0, 1.3))
    res = smtheory.solvers.solve(prob, spec)
    C, y = kernels_from_problem(prob, spec)
    t0 = time.perf_counter()
    sa = build_action(from_spec(spec), C, y=y)
    ns_np = numeric_saddle_point(sa, "numpy")
    ns_jx = numeric_saddle_point(sa, "jax", equations=ns_np.equations)
    r_np = ns_np.residuals(res.U, res.U_a)
    t_setup_np = time.perf_counter() - t0
    t0 = time.perf_counter()
    r_jx = ns_jx.residuals(res.U, res.U_a)
    t_setup_jx = time.perf_counter() - t0
    xi, yy, c = jnp.asarray(prob.scaled_train(spec)), jnp.asarray(prob.y_train), ActionConstants.from_spec(spec)
    Uj = [jnp.asarray(U) for U in res.U]
    r_num = saddle_point_residuals(Uj, xi, yy, c)
    grad_np = ns_np.function("gradient")
    grad_jx = ns_jx.function("gradient")
    vec_np = ns_np._vec(res.U)
    vec_jx = ns_jx._vec(res.U)
    timing = dict(
        symbolic_numpy_residuals_s=best_time(lambda: ns_np.residuals(res.U, res.U_a)),
        symbolic_jax_residuals_s=best_time(lambda: ns_jx.residuals(res.U, res.U_a)),
        symbolic_numpy_gradient_s=best_time(lambda: grad_np(vec_np, res.U_a)),
        symbolic_jax_gradient_s=best_time(lambda: grad_jx(vec_jx, res.U_a).block_until_ready()),
        numeric_jax_residuals_s=best_time(lambda: saddle_point_residuals(Uj, xi, yy, c)),
        setup_numpy_s=t_setup_np, setup_jax_s=t_setup_jx,
        residuals_symbolic_numpy=r_np, residuals_symbolic_jax=r_jx, residuals_numeric=r_num,
        numeric_solver_converged=res.converged)
    print("residual timing", timing)

    # closed forms vs the numeric solver
    closed = []
    for L in (1, 2, 3):
        rng = np.random.default_rng(4)
        P, N0 = 6, 4
        x = rng.standard_normal((P, N0, 1))
        yv = np.sign(x[:, :, 0] @ rng.standard_normal(N0))
        s = smt.ModelSpec(heads=(1,) * L, widths=tuple(range(5, 5 + L)) + (7,),
                          variances=(1.3,) + (1.1,) * L + (0.9,), temperature=0.2)
        pr = smt.KernelProblem.from_inputs(x, yv, [smt.AttentionLayer(W=np.zeros((1, N0, N0))) for _ in range(L)])
        t0 = time.perf_counter()
        ex = deep_linear_solution(s, pr)
        tc = time.perf_counter() - t0
        r = smtheory.solvers.solve(pr, s)
        closed.append(dict(case=f"deep linear L={L}", heads=list(s.heads), closed_form_s=tc, numeric_s=r.time,
                           numeric_converged=r.converged, degree=ex.degree, reason=ex.reason,
                           max_rel_diff=max([rel(a, b) for a, b in zip(ex.U, r.U)] + [rel(ex.U_a, r.U_a)])))
    for heads, widths in (((2,), (4, 3)), ((2, 2), (6, 9, 5))):
        rng = np.random.default_rng(0)
        D, P, b = int(np.prod(heads)), 8, 3
        Q, _ = np.linalg.qr(rng.standard_normal((P, b)))
        xi_o = np.zeros((P, D, D * b))
        for a in range(D):
            xi_o[:, a, a * b:(a + 1) * b] = 3 * Q * np.sqrt(rng.uniform(0.5, 2.0, b))
        pr = smt.KernelProblem(xi_o, np.sign(rng.standard_normal(P)), heads)
        s = smt.ModelSpec(heads=heads, widths=widths, temperature=0.05,
                          variances=(1.0,) + tuple(np.linspace(0.7, 1.3, len(heads) + 1)))
        t0 = time.perf_counter()
        ex = commuting_kernel_solution(s, pr)
        tc = time.perf_counter() - t0
        r = smtheory.solvers.solve(pr, s)
        closed.append(dict(case=f"orthogonal commuting paths {heads}", heads=list(heads), closed_form_s=tc,
                           numeric_s=r.time, numeric_converged=r.converged, newton_iterations=ex.iterations,
                           max_rel_diff=max([rel(a, b) for a, b in zip(ex.U, r.U)] + [rel(ex.U_a, r.U_a)])))
    s = smt.ModelSpec(heads=(2, 2), widths=(6, 9, 5), variances=(1.0, 0.8, 1.1, 1.3), temperature=0.1)
    t0 = time.perf_counter()
    Us, Ua = gp_solution(s).numeric()
    tc = time.perf_counter() - t0
    r = smtheory.solvers.solve(smt.KernelProblem(np.zeros((5, 4, 3)), np.ones(5), (2, 2)), s)
    closed.append(dict(case="GP (Φ = 0) (2, 2)", heads=[2, 2], closed_form_s=tc, numeric_s=r.time,
                       numeric_converged=r.converged,
                       max_rel_diff=max([rel(a, b) for a, b in zip(Us, r.U)] + [rel(Ua, r.U_a)])))
    for row in closed:
        print(row["case"], row["max_rel_diff"])

    data = dict(environment=env, load_average_at_end=load_average(), derivation=derivation,
                residual_timing=timing, closed_forms=closed)
    write_json(os.path.join(out, NAME + ".json"), data)
    md = [f"# {NAME}", "", f"Machine: {env['cpu_model']}, pinned to CPU {cpu}; load average at start "
          f"{env['load_average_at_start']}; {env['date_utc']}.", "",
          "## Derivation time (phi mode, all parameters symbolic)", "",
          "| heads | D_ℓ | entries | build [s] | equations [s] | matrix-form check [s] | agrees | cancel [s] | ops |",
          "|---|---|---|---|---|---|---|---|---|"]
    for d in derivation:
        cancel = "refused (> SIMPLIFY_MAX_OPS)" if d["cancel_s"] is None else fmt(d["cancel_s"])
        md.append(f"| {tuple(d['heads'])} | {tuple(d['partial_paths'])} | {d['entries']} | {fmt(d['build_s'])} | "
                  f"{fmt(d['equations_s'])} | {fmt(d['matrix_form_check_s'])} | {fmt(d['matrix_form_agrees'])} | "
                  f"{cancel} | {d['ops']} |")
    md += ["", "## Residual evaluation at the numeric solution, heads (2, 2), P = 3 (one run, side by side)", "",
           "| function | time per call | residuals |", "|---|---|---|",
           f"| symbolic residuals, NumPy lambdify | {fmt(timing['symbolic_numpy_residuals_s'] * 1e6)} µs | "
           f"{', '.join(fmt(v) for v in r_np)} |",
           f"| symbolic residuals, JAX lambdify (jit) | {fmt(timing['symbolic_jax_residuals_s'] * 1e6)} µs | "
           f"{', '.join(fmt(v) for v in r_jx)} |",
           f"| numeric `saddle_point_residuals` (JAX jit) | {fmt(timing['numeric_jax_residuals_s'] * 1e6)} µs | "
           f"{', '.join(fmt(v) for v in r_num)} |",
           f"| symbolic gradient only, NumPy | {fmt(timing['symbolic_numpy_gradient_s'] * 1e6)} µs | |",
           f"| symbolic gradient only, JAX (jit) | {fmt(timing['symbolic_jax_gradient_s'] * 1e6)} µs | |",
           "", f"One-off setup (derive + lambdify + first call): NumPy {fmt(t_setup_np)} s, JAX "
           f"{fmt(t_setup_jx)} s (includes compilation).", "",
           "## Closed form vs numeric solver", "",
           "| case | max rel. difference | closed form [s] | numeric [s] | numeric converged |", "|---|---|---|---|---|"]
    for c_ in closed:
        md.append(f"| {c_['case']} | {fmt(c_['max_rel_diff'])} | {fmt(c_['closed_form_s'])} | "
                  f"{fmt(c_['numeric_s'])} | {fmt(c_['numeric_converged'])} |")
    write_text(os.path.join(out, NAME + ".md"), "\n".join(md) + "\n")
    print("wrote", os.path.join(out, NAME + ".{json,md}"))


if __name__ == "__main__":
    main()
