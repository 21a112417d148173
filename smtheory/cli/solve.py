"""``smtheory solve``: the saddle-point (kernel) equations across widths (docs/theory.md §3, §5).

Examples
--------
``smtheory solve --task markov --paths 4 --width 10 100 1000 --json out.json``
``smtheory solve --data mydata.npz --width 50 --temperature 0.1 --variances 1 1 1 1``
"""
from __future__ import annotations

import time

from .options import (check_model_options, check_output_file, data_options, fmt, gp_baselines, model_spec,
                      problem_from_args, width_text, write_json)


def register(subparsers):
    """Add the ``solve`` sub-command."""
    s = subparsers.add_parser("solve", help="solve the saddle-point (kernel) equations across widths",
                              description="Solve the order-parameter saddle point (docs/theory.md §3) for each width "
                                          "and report U_1, test accuracy and generalisation error.")
    data_options(s)
    s.add_argument("--tol", type=float, default=1e-9, help="relative residual required of the saddle point")
    s.add_argument("--json", metavar="PATH", help="write per-width results to this JSON file")
    s.set_defaults(func=cmd_solve)


def cmd_solve(args):
    """Solve at every ``--width`` and print the table; returns 0, or 3 when a width did not converge."""
    import smtheory.solvers
    from smtheory.predictor import predictor_statistics

    check_model_options(args)
    check_output_file(args.json, "--json")
    t0 = time.perf_counter()
    problem, heads = problem_from_args(args)
    spec = model_spec(args, heads)
    print(f"problem: P={problem.n_train}, Q={problem.xi_test.shape[0]}, D={problem.n_paths} paths, "
          f"N0={problem.input_dim}, heads={heads}, {problem.task}  (features built in {time.perf_counter() - t0:.2f}s)")
    if problem.task != "classification":
        print("regression targets (not all ±1): accuracies are not defined and shown as n/a")
    for name, paths in gp_baselines(args, problem, spec).items():
        st = predictor_statistics(problem, spec, gp=True, subnetwork=paths)
        print(f"GP({name}): accuracy={fmt(st.accuracy, '.4f')}  generalisation error={st.generalization_error:.4f}")
    results = smtheory.solvers.continuation(problem, spec, widths=args.width, tol=args.tol)
    rows, n_bad = _print_table(args, problem, results)
    compile_time = sum(getattr(res, "compile_time", 0.0) for res in results)
    if compile_time > 0:
        print(f"compile time (JIT, first call per shape): {compile_time:.1f} s; solve times above exclude it")
    if n_bad:
        print(f"WARNING: {n_bad} width(s) did not converge; their numbers (in parentheses) are not results.")
    write_json(args, spec, problem, rows)
    return 0 if n_bad == 0 else 3


def _print_table(args, problem, results):
    """Print one row per width; returns the JSON rows and the number of unconverged widths."""
    import numpy as np

    from smtheory.predictor import predictor_statistics

    header = f"{'width':>14} {'diag U_1':<40} {'accuracy':>9} {'gen.err':>9} {'iters':>6} {'time[s]':>8} {'converged':>9}"
    print(header)
    print("-" * len(header))
    rows = []
    n_bad = 0
    for w, res in zip(args.width, results):
        st = predictor_statistics(problem, res.spec, res.U1)
        diag = np.array2string(np.diag(res.U1), precision=3, max_line_width=1000, separator=" ")
        acc = fmt(st.accuracy) if res.converged else f"{'(' + fmt(st.accuracy, '.4f').strip() + ')':>9}"
        print(f"{width_text(w):>14} {diag:<40} {acc} {st.generalization_error:9.4f} {res.iterations:6d} "
              f"{getattr(res, 'solve_time', res.time):8.3f} {str(res.converged):>9}")
        if not res.converged:
            n_bad += 1
            print(f"{'':>14} WARNING: {res.message}")
        rows.append({"width": w if isinstance(w, int) else list(w), **res.to_record(), **st.to_record()})
    return rows, n_bad
