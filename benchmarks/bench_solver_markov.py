"""Benchmark: our Newton saddle-point solver against the authors' Adam protocol on the 4-path Markov task.

Task (docs/theory.md §5): 4-path network, P = 100 training sequences, T = 0.01, all σ² = 1,
equal widths N ∈ {10, 30, 50, 100, 300, 500, 1000}.

Our side
    ``smtheory.solvers.continuation(problem, spec, widths=...)`` (largest N first, each point warm-started
    from its neighbour).  Per N: ``result.solve_time`` (optimiser and certificate, JIT compilation excluded;
    ``result.compile_time`` is reported apart) and the wall time of the whole point (residuals + Hessian eigenvalue), measured by
    the continuation's progress callback.  Repeated ``--repeats`` times; the minimum is reported.
    For reference also a cold ``smtheory.solvers.solve`` from the GP value (the same start Adam gets).
Authors' side
    ``smtheory.solvers.adam.solve_adam`` independently per N from the GP value: Adam lr 0.1, stop at
    ``max|grad| < 1e-5`` or 50 000 steps (``.time`` excludes JIT).  For reference also the same Adam
    with a tighter gradient tolerance (``--tight-gtol``, default 1e-7), to show what Adam costs when
    it is asked for a U_1 that agrees with ours to better than 1e-5.

Goal checked per N: ours ≥ 100× faster than Adam (authors' protocol) at the same U_1, i.e.
``max|U1_adam − U1_ours| / max|U1_ours| < 1e-5``.

Run: ``python3 benchmarks/bench_solver_markov.py`` → ``benchmarks/results/bench_solver_markov.{json,md}``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from _common import (RESULTS, configure_threads, environment, fmt, load_average, # noqa: E402
                     write_json, write_text)

NAME = "bench_solver_markov"
WIDTHS = [10, 30, 50, 100, 300, 500, 1000]
SPEEDUP_GOAL = 100.0
REL_DIFF_GOAL = 1e-5


def rel_diff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


def run_ours(problem, spec, widths, repeats, log):
    import smtheory.solvers
    runs = []
    for r in range(repeats):
        marks = []  # (wall, cpu) after each point, in visiting order
        t0, c0 = time.perf_counter(), time.process_time()
        results = smtheory.solvers.continuation(problem, spec, widths=widths,
                                       progress=lambda i, n, res: marks.append((time.perf_counter(), time.process_time(),
                                                                                max(res.spec.widths))))
        total_wall, total_cpu = time.perf_counter() - t0, time.process_time() - c0
        point_wall, point_cpu = {}, {}
        prev_w, prev_c = t0, c0
        for w, c, N in marks:
            point_wall[N], point_cpu[N] = w - prev_w, c - prev_c
            prev_w, prev_c = w, c
        per_n = {}
        for N, res in zip(widths, results):
            per_n[N] = dict(time=res.solve_time, wall=point_wall[N], cpu=point_cpu[N], iterations=res.iterations,
                            n_evaluations=res.n_evaluations, converged=res.converged, max_residual=res.max_residual,
                            hessian_min_eig=res.hessian_min_eig, grad_norm=res.grad_norm, action=res.action,
                            method=res.method, message=res.message, U1=np.asarray(res.U1))
        runs.append(dict(total_wall=total_wall, total_cpu=total_cpu, per_n=per_n))
        log(f"  ours repeat {r + 1}/{repeats}: total wall {total_wall:.3f}s, "
            f"sum result.solve_time {sum(p['time'] for p in per_n.values()):.3f}s, "
            f"all converged: {all(p['converged'] for p in per_n.values())}")
    return runs


def run_ours_cold(problem, spec, widths, log):
    import smtheory.solvers
    out = {}
    for N in widths:
        t0 = time.perf_counter()
        res = smtheory.solvers.solve(problem, spec.replace(widths=N))
        out[N] = dict(time=res.solve_time, wall=time.perf_counter() - t0, iterations=res.iterations,
                      converged=res.converged, max_residual=res.max_residual, hessian_min_eig=res.hessian_min_eig,
                      action=res.action, message=res.message, U1=np.asarray(res.U1))
        log(f"  ours cold N={N}: time {res.solve_time:.3f}s, {res.iterations} it, converged {res.converged}")
    return out


def run_adam(problem, spec, widths, repeats, gtol, log, label):
    from smtheory.solvers.adam import solve_adam
    out = {}
    for N in widths:
        reps = []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            a = solve_adam(problem, spec.replace(widths=N), gtol=gtol)
            reps.append(dict(time=a.time, wall=time.perf_counter() - t0, cpu=time.process_time() - c0,
                             steps=a.steps, converged=a.converged, max_abs_grad=a.max_abs_grad, action=a.action,
                             U1=np.asarray(a.U1)))
        best = min(reps, key=lambda d: d["time"])
        out[N] = dict(best, times=[d["time"] for d in reps], load_average=load_average())
        log(f"  {label} N={N}: time {best['time']:.3f}s, {best['steps']} steps, converged {best['converged']}, "
            f"max|grad| {best['max_abs_grad']:.2e}")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", type=int, nargs="+", default=WIDTHS)
    ap.add_argument("--repeats", type=int, default=3, help="repeats of our continuation (min reported)")
    ap.add_argument("--adam-repeats", type=int, default=3, help="repeats of each Adam run (min reported)")
    ap.add_argument("--tight-gtol", type=float, default=1e-7,
                    help="gradient tolerance of the extra, tighter Adam run (0 disables it)")
    ap.add_argument("--no-cold", action="store_true", help="skip our cold-start (GP init) reference solves")
    ap.add_argument("--seed", type=int, default=0, help="data seed of markov_problem")
    ap.add_argument("--head-seed", type=int, default=0, help="seed of the random heads")
    ap.add_argument("--threads", choices=["1", "all"], default="1",
                    help="1 (default): single-threaded XLA and BLAS on both sides, reproducible on a shared "
                         "machine; all: library defaults")
    ap.add_argument("--out", default=RESULTS)
    args = ap.parse_args(argv)
    threads = configure_threads(args.threads)

    def log(msg):
        print(msg, flush=True)

    t_start = time.perf_counter()
    env = environment()
    env["threads"] = threads
    from smtheory.model import ModelSpec
    from smtheory.tasks.markov import markov_problem
    import smtheory.solvers
    from smtheory.solvers.adam import solve_adam

    t0 = time.perf_counter()
    problem = markov_problem(paths=4, n_train=100, n_test=1000, seed=args.seed, head_seed=args.head_seed)
    build_time = time.perf_counter() - t0
    spec = ModelSpec(heads=(2, 2), widths=max(args.widths), variances=None, temperature=0.01)
    widths = sorted(args.widths)
    log(f"problem built in {build_time:.2f}s: xi_train {problem.xi_train.shape}")

    # --- warm-up (JIT compilation of every jitted function on both sides; widths are traced, so one width suffices)
    t0 = time.perf_counter()
    smtheory.solvers.solve(problem, spec)
    smtheory.solvers.continuation(problem, spec, widths=[max(widths)])
    solve_adam(problem, spec, max_steps=1)
    if args.tight_gtol > 0:
        solve_adam(problem, spec, gtol=args.tight_gtol, max_steps=1)
    warmup_time = time.perf_counter() - t0
    log(f"warm-up (compilation) {warmup_time:.2f}s")

    loads = {"before_ours": load_average()}
    log("ours (continuation):")
    ours_runs = run_ours(problem, spec, widths, args.repeats, log)
    loads["after_ours"] = load_average()
    ours_cold = {} if args.no_cold else run_ours_cold(problem, spec, widths, log)
    log("authors' Adam protocol (gtol 1e-5):")
    adam = run_adam(problem, spec, widths, args.adam_repeats, 1e-5, log, "adam")
    loads["after_adam"] = load_average()
    adam_tight = {}
    if args.tight_gtol > 0:
        log(f"Adam with gtol {args.tight_gtol:g} (reference):")
        adam_tight = run_adam(problem, spec, widths, args.adam_repeats, args.tight_gtol, log, "adam-tight")
    loads["after_adam_tight"] = load_average()

    # --- per-N summary
    rows = []
    for N in widths:
        reps = [run["per_n"][N] for run in ours_runs]
        best = min(reps, key=lambda d: d["time"])
        ours_time = best["time"]
        ours_wall = min(d["wall"] for d in reps)
        a = adam[N]
        row = dict(
            N=N, alpha=problem.n_train / N,
            ours_time=ours_time, ours_time_median=float(np.median([d["time"] for d in reps])),
            ours_wall=ours_wall, ours_cpu=min(d["cpu"] for d in reps), ours_iterations=best["iterations"],
            ours_n_evaluations=best["n_evaluations"], ours_converged=all(d["converged"] for d in reps),
            ours_max_residual=max(d["max_residual"] for d in reps), ours_hessian_min_eig=best["hessian_min_eig"],
            ours_grad_norm=best["grad_norm"], ours_action=best["action"], ours_method=best["method"],
            ours_repeat_consistency=max(rel_diff(d["U1"], best["U1"]) for d in reps),
            ours_U1=best["U1"],
            adam_time=a["time"], adam_wall=a["wall"], adam_cpu=a["cpu"], adam_steps=a["steps"],
            adam_converged=a["converged"], adam_max_abs_grad=a["max_abs_grad"], adam_action=a["action"],
            adam_U1=a["U1"],
        )
        row["speed_ratio"] = a["time"] / ours_time
        row["speed_ratio_vs_wall"] = a["time"] / ours_wall
        row["rel_diff_U1"] = rel_diff(a["U1"], best["U1"])
        row["action_excess_adam"] = a["action"] - best["action"]
        row["goal_speed"] = bool(row["speed_ratio"] >= SPEEDUP_GOAL)
        row["goal_same_U1"] = bool(row["rel_diff_U1"] < REL_DIFF_GOAL)
        row["goal_met"] = bool(row["goal_speed"] and row["goal_same_U1"] and row["ours_converged"])
        if N in ours_cold:
            oc = ours_cold[N]
            row.update(cold_time=oc["time"], cold_wall=oc["wall"], cold_iterations=oc["iterations"],
                       cold_converged=oc["converged"], cold_max_residual=oc["max_residual"],
                       cold_message=oc["message"], cold_rel_diff_vs_continuation=rel_diff(oc["U1"], best["U1"]))
        if N in adam_tight:
            t = adam_tight[N]
            row.update(tight_time=t["time"], tight_steps=t["steps"], tight_converged=t["converged"],
                       tight_max_abs_grad=t["max_abs_grad"], tight_rel_diff_U1=rel_diff(t["U1"], best["U1"]),
                       tight_action_excess=t["action"] - best["action"], tight_speed_ratio=t["time"] / ours_time)
            row["tight_goal_met"] = bool(row["tight_speed_ratio"] >= SPEEDUP_GOAL
                                         and row["tight_rel_diff_U1"] < REL_DIFF_GOAL and row["ours_converged"])
        rows.append(row)

    tot = dict(
        ours_time=sum(r["ours_time"] for r in rows), ours_wall=sum(r["ours_wall"] for r in rows),
        ours_continuation_wall_min=min(run["total_wall"] for run in ours_runs),
        adam_time=sum(r["adam_time"] for r in rows),
    )
    tot["speed_ratio"] = tot["adam_time"] / tot["ours_time"]
    tot["speed_ratio_vs_wall"] = tot["adam_time"] / tot["ours_wall"]
    tot["goal_met_all_N"] = all(r["goal_met"] for r in rows)
    tot["goal_speed_all_N"] = all(r["goal_speed"] for r in rows)
    tot["goal_same_U1_all_N"] = all(r["goal_same_U1"] for r in rows)
    if adam_tight:
        tot["tight_time"] = sum(r["tight_time"] for r in rows)
        tot["tight_speed_ratio"] = tot["tight_time"] / tot["ours_time"]
        tot["tight_goal_met_all_N"] = all(r["tight_goal_met"] for r in rows)

    config = dict(task="markov", paths=4, n_train=100, n_test=1000, seed=args.seed, head_seed=args.head_seed,
                  heads=[2, 2], temperature=0.01, variances="all 1", widths=widths, repeats=args.repeats,
                  adam_repeats=args.adam_repeats, adam=dict(lr=0.1, gtol=1e-5, max_steps=50_000, init="GP"),
                  adam_tight_gtol=args.tight_gtol or None, ours="smtheory.solvers.continuation (default tol 1e-9)",
                  threads=args.threads, speedup_goal=SPEEDUP_GOAL, rel_diff_goal=REL_DIFF_GOAL,
                  timing="min over repeats; result.solve_time (optimiser + certificate) / AdamResult.time exclude JIT "
                         "compilation; "
                         "ours_wall = wall time of the point inside continuation incl. certificate")
    data = dict(benchmark=NAME, config=config, environment=env, build_time=build_time, warmup_time=warmup_time,
                load_average=loads, rows=rows, totals=tot,
                ours_repeats=[dict(total_wall=r["total_wall"], total_cpu=r["total_cpu"],
                                   per_n={N: {k: v for k, v in p.items() if k != "U1"} for N, p in r["per_n"].items()})
                              for r in ours_runs],
                script_wall_time=time.perf_counter() - t_start)
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, NAME + ".json"), data)
    write_text(os.path.join(args.out, NAME + ".md"), markdown(data))
    log(markdown(data))
    return data


def markdown(d):
    c, e, rows, tot = d["config"], d["environment"], d["rows"], d["totals"]
    L = []
    L.append("# Saddle-point solver vs the authors' Adam protocol — 4-path Markov task\n")
    L.append(f"P = {c['n_train']}, T = {c['temperature']}, all σ² = 1, heads (2, 2); data seed {c['seed']}, "
             f"head seed {c['head_seed']}. Machine: {e['cpu_count']} CPUs ({e['cpu_model']}), {e['platform']}; "
             f"numpy {e['numpy']}, scipy {e['scipy']}, jax {e['jax']}; commit {e['git_commit'] or 'n/a'}; "
             f"{e['date_utc']}.\n")
    L.append(f"Ours: `smtheory.solvers.continuation` (N from large to small, warm-started), best of {c['repeats']} repeats. "
             f"`time` = optimiser only (no JIT, no certificate); `wall` = the whole point including the "
             f"certificate (saddle-point residuals + Hessian eigenvalue). Adam: lr 0.1 on raw symmetrised "
             f"matrices, stop at max|grad| < 1e-5 (≤ 50 000 steps), GP init, best of {c['adam_repeats']}. "
             f"`ratio` = Adam time / our time. `rel diff` = max|U1_adam − U1_ours| / max|U1_ours|. "
             f"Goal: ratio ≥ {c['speedup_goal']:g} **and** rel diff < {c['rel_diff_goal']:g}.\n")
    L.append("| N | ours time [s] | ours wall [s] | it | conv | max resid | Hess min eig | Adam time [s] | "
             "Adam steps | Adam conv | ratio | ratio vs wall | rel diff U1 | goal met |")
    L.append("|---:|---:|---:|---:|:---:|---:|---:|---:|---:|:---:|---:|---:|---:|:---:|")
    for r in rows:
        L.append(f"| {r['N']} | {fmt(r['ours_time'])} | {fmt(r['ours_wall'])} | {r['ours_iterations']} | "
                 f"{fmt(r['ours_converged'])} | {fmt(r['ours_max_residual'], '.1e')} | "
                 f"{fmt(r['ours_hessian_min_eig'])} | {fmt(r['adam_time'])} | {r['adam_steps']} | "
                 f"{fmt(r['adam_converged'])} | {fmt(r['speed_ratio'])} | {fmt(r['speed_ratio_vs_wall'])} | "
                 f"{fmt(r['rel_diff_U1'], '.1e')} | {fmt(r['goal_met'])} |")
    L.append(f"| **total** | {fmt(tot['ours_time'])} | {fmt(tot['ours_wall'])} | | | | | {fmt(tot['adam_time'])} | "
             f"| | {fmt(tot['speed_ratio'])} | {fmt(tot['speed_ratio_vs_wall'])} | | "
             f"{fmt(tot['goal_met_all_N'])} |\n")
    if "tight_time" in tot:
        L.append(f"Reference — Adam with gtol {c['adam_tight_gtol']:g} (same lr, init and step limit):\n")
        L.append("| N | Adam time [s] | steps | conv | rel diff U1 | S_adam − S_ours | ratio vs our time | "
                 "goal met |")
        L.append("|---:|---:|---:|:---:|---:|---:|---:|:---:|")
        for r in rows:
            L.append(f"| {r['N']} | {fmt(r['tight_time'])} | {r['tight_steps']} | {fmt(r['tight_converged'])} | "
                     f"{fmt(r['tight_rel_diff_U1'], '.1e')} | {fmt(r['tight_action_excess'], '.1e')} | "
                     f"{fmt(r['tight_speed_ratio'])} | {fmt(r['tight_goal_met'])} |")
        L.append(f"| **total** | {fmt(tot['tight_time'])} | | | | | {fmt(tot['tight_speed_ratio'])} | "
                 f"{fmt(tot['tight_goal_met_all_N'])} |\n")
    if rows and "cold_time" in rows[0]:
        L.append("Reference — our `smtheory.solvers.solve` cold from the GP value (Adam's start), per N:\n")
        L.append("| N | time [s] | wall [s] | it | conv | max resid | rel diff vs continuation |")
        L.append("|---:|---:|---:|---:|:---:|---:|---:|")
        for r in rows:
            L.append(f"| {r['N']} | {fmt(r['cold_time'])} | {fmt(r['cold_wall'])} | {r['cold_iterations']} | "
                     f"{fmt(r['cold_converged'])} | {fmt(r['cold_max_residual'], '.1e')} | "
                     f"{fmt(r['cold_rel_diff_vs_continuation'], '.1e')} |")
        L.append("")
    # honest verdict
    adam_above = ("and Adam's action is never below ours" if all(
        r["action_excess_adam"] >= -1e-10 * abs(r["ours_action"]) for r in rows)
        else "but Adam's action is below ours at some N — check")
    n_speed = sum(r["goal_speed"] for r in rows)
    n_same = sum(r["goal_same_U1"] for r in rows)
    n_met = sum(r["goal_met"] for r in rows)
    L.append("## Verdict\n")
    L.append(f"- Goal (≥ {c['speedup_goal']:g}× faster **at the same U_1**, rel diff < {c['rel_diff_goal']:g}) "
             f"met at {n_met} of {len(rows)} widths. Speed criterion alone (ratio of optimiser times) met at "
             f"{n_speed} of {len(rows)}; total ratio over the grid {tot['speed_ratio']:.3g}× "
             f"({tot['speed_ratio_vs_wall']:.3g}× against our wall time including the certificate).")
    L.append(f"- Same-U_1 criterion met at {n_same} of {len(rows)} widths. Adam's own stopping rule "
             f"(max|∂(S/N)/∂M| < 1e-5) limits its precision: where the criterion fails, the difference is Adam's "
             f"error, not ours — our points are certified (saddle-point residual < 1e-9, positive-definite Hessian) "
             f"{adam_above}: S_adam − S_ours = "
             f"{', '.join(fmt(r['action_excess_adam'], '.1e') for r in rows)}.")
    if "tight_time" in tot:
        n_t = sum(r["tight_goal_met"] for r in rows)
        L.append(f"- With Adam asked for gtol {c['adam_tight_gtol']:g} (so that its U_1 does agree with ours), the "
                 f"goal is met at {n_t} of {len(rows)} widths; total ratio {tot['tight_speed_ratio']:.3g}×.")
    la = d["load_average"]
    L.append(f"- Threads: {c.get('threads')} (1 = XLA and BLAS single-threaded on both sides). "
             f"Timings are wall-clock on a shared {e['cpu_count']}-core machine; load averages (1 min) during the "
             f"run (they include this benchmark itself): {', '.join(f'{k} {v[0]:.2f}' for k, v in la.items() if v)}. "
             f"Other users' processes can slow individual timings; the minimum over repeats is reported.")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    main()
