"""Benchmark: time per saddle-point solve and peak memory against P (training set) and D (paths).

Grid: P ∈ {100, 1000, 4000} × D ∈ {4, 16, 64} (``--quick``: P ∈ {100, 1000} × D ∈ {4, 16}).

Features: the Markov-task inputs (THEORY.md §5, ``x ∈ R^{231×31}``, labels ±1) passed through L = 2
layers of random w-style heads (``smtheory.tasks.markov.random_head``, strength 1, β = 10) with heads
(2, 2), (4, 4), (8, 8) → D = 4, 16, 64, built with ``KernelProblem.from_inputs`` (readout: last token).
Model: equal widths N = P / alpha (default alpha = 1), T = 0.01, all σ² = 1, cold start from the GP value.

Every (P, D) point runs in a fresh subprocess (``--point P D``), so that its peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own; it is read after the imports, after the feature
build and at the end.  It is compared with the theoretical ``8 (P² + P D N0)`` bytes.  Each point has a
time cap: the solver gets ``max_iter`` (default 50) and the subprocess is killed after ``--timeout``
seconds; points whose predicted solve time (a flop model calibrated on this machine) exceeds ``--cap``
seconds are skipped and recorded with the reason.

Run: ``python3 benchmarks/bench_scaling.py [--quick]`` → ``benchmarks/results/bench_scaling.{json,md}``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import RESULTS, configure_threads, environment, fmt, load_average, write_json, write_text  # noqa: E402

NAME = "bench_scaling"
P_GRID = [100, 1000, 4000]
D_GRID = [4, 16, 64]
QUICK_P = [100, 1000]
QUICK_D = [4, 16]
HEADS = {4: (2, 2), 16: (4, 4), 64: (8, 8)}
N0 = 231
DENSE_HESSIAN_MAX = 300  # mirrors solvers.numeric (parameters up to which trust-exact is used)
DENSE_CERTIFICATE_MAX = 600  # mirrors solvers.numeric (entries up to which the certificate is dense)


def maxrss_bytes():
    """Peak resident set size of this process (Linux reports KiB)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r) * (1 if sys.platform == "darwin" else 1024)


def theory_bytes(P, D, n0=N0):
    return 8 * (P * P + P * D * n0)


def n_params(D, H):
    return D * (D + 1) // 2 + H * (H + 1) // 2


# ------------------------------------------------------------------------------------------ cost model

def predicted_flops(P, D, iters=15):
    """Rough flop count of one cold solve (optimiser + certificate) with the current ``solvers.numeric``.

    value+grad ≈ 3 products of cost 2 P² D N0 (K, G Ξ, and the contraction) plus a Cholesky; a
    Hessian-vector product ≈ 2 value+grad.  trust-exact (≤ 300 parameters) adds the closed-form Hessian:
    M = Ξᵀ G Ξ (2 P² D N0 + 2 P (D N0)²) and the D⁴ N0² contraction.  trust-krylov does ~20 HVPs per
    iteration.  The certificate forms a dense Hessian from one HVP per entry (≤ 600 entries) or runs
    Lanczos (~100 HVPs).  ``iters`` is a guess for a cold start at alpha = 1.
    """
    H = {4: 2, 16: 4, 64: 8}.get(D, int(round(D ** 0.5)))
    kprod = 2.0 * P * P * D * N0 + 2.0 * P * D * D * N0
    vg = 3 * kprod + P ** 3 / 3.0
    hvp = 2 * vg
    n = n_params(D, H)
    if n <= DENSE_HESSIAN_MAX:
        hess = 2.0 * P * P * D * N0 + 2.0 * P * (D * N0) ** 2 + 2.0 * D ** 4 * N0 ** 2
        opt = iters * (1.5 * vg + hess)
    else:
        opt = iters * (1.5 * vg + 20 * hvp)
    cert = (n if n <= DENSE_CERTIFICATE_MAX else 100) * hvp
    return opt + cert


def calibrate_flop_rate():
    """Achieved matmul rate (flop/s) of NumPy on this machine: a 1500×1500 product, best of 3."""
    import numpy as np
    a = np.random.default_rng(0).standard_normal((1500, 1500))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    return 2 * 1500 ** 3 / best


# ------------------------------------------------------------------------------------------ one point

def build_problem(P, D, seed):
    import numpy as np
    from smtheory.attention import AttentionLayer
    from smtheory.problem import KernelProblem
    from smtheory.tasks.markov import MarkovTask, random_head

    heads = HEADS[D]
    rng = np.random.default_rng(seed + 12345)
    layers = [AttentionLayer(W=np.stack([random_head(1.0, rng=rng) for _ in range(h)]), name=f"layer {i + 1}")
              for i, h in enumerate(heads)]
    x, y, _ = MarkovTask().sample(P // 2, seed=seed)
    return KernelProblem.from_inputs(x, y, layers, readout="last")


def run_point(P, D, args, out_path):
    """Child process: build, solve, record; writes a JSON file (atomically) after every stage."""
    rec = dict(P=P, D=D, heads=list(HEADS[D]), stage="start", load_average_start=load_average())
    t_all = time.perf_counter()

    def dump():
        rec["child_wall"] = time.perf_counter() - t_all
        write_json(out_path, rec)

    import numpy as np  # noqa: F401
    import jax
    import solvers
    from smtheory.model import ModelSpec
    rec["rss_after_imports"] = maxrss_bytes()
    rec["stage"] = "imported"
    dump()

    t0 = time.perf_counter()
    problem = build_problem(P, D, args.seed)
    rec["build_time"] = time.perf_counter() - t0
    rec["rss_after_build"] = maxrss_bytes()
    rec["stage"] = "built"
    dump()

    N = max(1, int(round(P / args.alpha)))
    spec = ModelSpec(heads=HEADS[D], widths=N, temperature=0.01)
    rec["N"] = N
    t0 = time.perf_counter()
    res = solvers.solve(problem, spec, max_iter=args.max_iter)
    rec["solve_wall"] = time.perf_counter() - t0  # incl. JIT compilation and the certificate
    rec.update(solve_time=res.time, iterations=res.iterations, n_evaluations=res.n_evaluations,
               converged=res.converged, max_residual=res.max_residual, hessian_min_eig=res.hessian_min_eig,
               grad_norm=res.grad_norm, method=res.method, message=res.message,
               diag_U1=[float(v) for v in np.diag(res.U1)])
    rec["rss_after_solve"] = maxrss_bytes()
    rec["peak_rss"] = rec["rss_after_solve"]
    rec["jax_backend"] = jax.default_backend()
    rec["stage"] = "done"
    rec["load_average_end"] = load_average()
    dump()


# ------------------------------------------------------------------------------------------ driver

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only P ∈ {100, 1000} × D ∈ {4, 16}")
    ap.add_argument("--P", type=int, nargs="+", default=None, help="override the P grid")
    ap.add_argument("--D", type=int, nargs="+", default=None, choices=sorted(HEADS), help="override the D grid")
    ap.add_argument("--alpha", type=float, default=1.0, help="alpha = P / N (equal widths N = P / alpha)")
    ap.add_argument("--max-iter", type=int, default=50, help="optimiser iteration cap per solve")
    ap.add_argument("--cap", type=float, default=180.0,
                    help="skip points whose predicted solve time exceeds this many seconds")
    ap.add_argument("--timeout", type=float, default=300.0, help="kill a point's subprocess after this many seconds")
    ap.add_argument("--threads", choices=["1", "all"], default="all",
                    help="all (default): library defaults; 1: single-threaded XLA and BLAS")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=RESULTS)
    ap.add_argument("--point", type=int, nargs=2, metavar=("P", "D"), help=argparse.SUPPRESS)
    ap.add_argument("--point-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    threads = configure_threads(args.threads)

    if args.point:
        run_point(args.point[0], args.point[1], args, args.point_out)
        return None

    t_start = time.perf_counter()
    env = environment()
    env["threads"] = threads
    Ps = args.P or (QUICK_P if args.quick else P_GRID)
    Ds = args.D or (QUICK_D if args.quick else D_GRID)
    rate = calibrate_flop_rate()
    print(f"numpy matmul rate {rate / 1e9:.1f} GFlop/s; grid P={Ps} D={Ds}", flush=True)
    efficiency = 0.5  # the solver's kernels reach a fraction of the big-matmul rate
    points = sorted(((P, D) for P in Ps for D in Ds), key=lambda pd: predicted_flops(*pd))
    rows = []
    exceeded = []  # (P, D) of points that timed out
    os.makedirs(args.out, exist_ok=True)
    for P, D in points:
        pred = predicted_flops(P, D) / (rate * efficiency)
        row = dict(P=P, D=D, heads=list(HEADS[D]), n_params=n_params(D, HEADS[D][1]),
                   theory_bytes=theory_bytes(P, D), predicted_solve_s=pred)
        dominated = [pd for pd in exceeded if pd[0] <= P and pd[1] <= D]
        if dominated:
            row.update(status="skipped", reason=f"smaller point P={dominated[0][0]}, D={dominated[0][1]} already hit "
                                                f"the {args.timeout:g} s timeout")
        elif pred > args.cap:
            row.update(status="skipped", reason=f"predicted solve time {pred:.0f} s > cap {args.cap:g} s "
                                                f"(flop model, {rate * efficiency / 1e9:.1f} GFlop/s)")
        if "status" in row:
            print(f"P={P} D={D}: {row['status']} — {row['reason']}", flush=True)
            rows.append(row)
            continue
        point_out = os.path.join(args.out, f".{NAME}_P{P}_D{D}.json.part")
        if os.path.exists(point_out):
            os.unlink(point_out)
        cmd = [sys.executable, os.path.abspath(__file__), "--point", str(P), str(D), "--point-out", point_out,
               "--alpha", str(args.alpha), "--max-iter", str(args.max_iter), "--threads", args.threads,
               "--seed", str(args.seed)]
        print(f"P={P} D={D}: running (predicted {pred:.1f} s) ...", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            output, _ = proc.communicate(timeout=args.timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            proc.kill()  # only the child we started
            output, _ = proc.communicate()
            timed_out = True
        row["subprocess_wall"] = time.perf_counter() - t0
        rec = {}
        if os.path.exists(point_out):
            with open(point_out) as fh:
                rec = json.load(fh)
            os.unlink(point_out)
        row.update({k: v for k, v in rec.items() if k not in ("P", "D", "heads")})
        if timed_out:
            row.update(status="timed out", reason=f"killed after {args.timeout:g} s in stage {rec.get('stage')!r}")
            exceeded.append((P, D))
        elif proc.returncode != 0 or rec.get("stage") != "done":
            row.update(status="failed", reason=f"exit code {proc.returncode}", output_tail=output[-3000:])
        else:
            row["status"] = "ok" if row["converged"] else "not converged"
        if row.get("peak_rss") is not None:
            row["peak_rss_over_imports"] = row["peak_rss"] - row["rss_after_imports"]
        print(f"  → {row['status']}: build {fmt(row.get('build_time'))} s, solve time {fmt(row.get('solve_time'))} s "
              f"(wall {fmt(row.get('solve_wall'))} s), it {row.get('iterations')}, peak RSS "
              f"{fmt((row.get('peak_rss') or 0) / 2**20, '.0f')} MiB; {row.get('message', row.get('reason', ''))}",
              flush=True)
        rows.append(row)
        # write partial results after every point
        _write(args, env, threads, rate, efficiency, rows, Ps, Ds, time.perf_counter() - t_start)
    data = _write(args, env, threads, rate, efficiency, rows, Ps, Ds, time.perf_counter() - t_start)
    print(markdown(data))
    return data


def _write(args, env, threads, rate, efficiency, rows, Ps, Ds, wall):
    order = {(P, D): i for i, (P, D) in enumerate((P, D) for P in Ps for D in Ds)}
    rows = sorted(rows, key=lambda r: order[(r["P"], r["D"])])
    config = dict(P_grid=Ps, D_grid=Ds, heads={str(D): list(HEADS[D]) for D in Ds}, N0=N0, quick=args.quick,
                  features="Markov-task inputs (noise 1,1,1) through 2 layers of random w-style heads "
                           "(strength 1, beta 10), KernelProblem.from_inputs, readout last",
                  labels="Markov-task classes ±1 (balanced)", alpha=args.alpha, widths="N = P / alpha, all equal",
                  temperature=0.01, variances="all 1", init="GP", solver="solvers.solve (default tol 1e-9)",
                  max_iter=args.max_iter, cap_s=args.cap, timeout_s=args.timeout, seed=args.seed,
                  threads=args.threads, flop_rate_numpy=rate, flop_model_efficiency=efficiency,
                  peak_memory="ru_maxrss of a fresh subprocess per point (includes Python/JAX baseline)",
                  theory_bytes="8 (P^2 + P D N0)")
    data = dict(benchmark=NAME, config=config, environment=env, rows=rows, script_wall_time=wall,
                load_average_end=load_average())
    write_json(os.path.join(args.out, NAME + ".json"), data)
    write_text(os.path.join(args.out, NAME + ".md"), markdown(data))
    return data


def markdown(d):
    c, e = d["config"], d["environment"]
    L = ["# Solver scaling: time and peak memory against P and D\n"]
    L.append(f"Features: {c['features']}; N0 = {c['N0']}. Model: N = P/{c['alpha']:g}, T = {c['temperature']}, "
             f"all σ² = 1, cold start from the GP value, max_iter {c['max_iter']}, threads: {c['threads']}. "
             f"Machine: {e['cpu_count']} CPUs ({e['cpu_model']}), {e['platform']}; numpy {e['numpy']}, "
             f"scipy {e['scipy']}, jax {e['jax']}; commit {e['git_commit'] or 'n/a'}; {e['date_utc']}. "
             f"{'Quick mode. ' if c['quick'] else ''}"
             f"Script wall time {d['script_wall_time']:.0f} s.\n")
    L.append("`solve time` = `result.time` (optimiser only, no JIT, no certificate); `solve wall` = the whole "
             "`solvers.solve` call in a fresh process (JIT compilation + optimiser + certificate). "
             "Peak RSS = `ru_maxrss` of the point's subprocess (includes the Python + JAX baseline, "
             "given as 'after imports'); theory = 8 (P² + P·D·N0) bytes.\n")
    L.append("| P | D | heads | params | status | build [s] | solve time [s] | solve wall [s] | it | evals | "
             "method | max resid | Hess min eig | peak RSS [MiB] | after imports [MiB] | theory [MiB] | "
             "predicted [s] |")
    L.append("|---:|---:|:---:|---:|:---|---:|---:|---:|---:|---:|:---|---:|---:|---:|---:|---:|---:|")
    mib = lambda b: fmt(b / 2**20, ".0f") if b is not None else "—"  # noqa: E731
    for r in d["rows"]:
        L.append(f"| {r['P']} | {r['D']} | {tuple(r['heads'])} | {r['n_params']} | {r['status']} | "
                 f"{fmt(r.get('build_time'))} | {fmt(r.get('solve_time'))} | {fmt(r.get('solve_wall'))} | "
                 f"{r.get('iterations', '—')} | {r.get('n_evaluations', '—')} | {r.get('method', '—')} | "
                 f"{fmt(r.get('max_residual'), '.1e')} | {fmt(r.get('hessian_min_eig'))} | {mib(r.get('peak_rss'))} | "
                 f"{mib(r.get('rss_after_imports'))} | {mib(r['theory_bytes'])} | {fmt(r['predicted_solve_s'])} |")
    L.append("")
    notes = [r for r in d["rows"] if r["status"] != "ok"]
    if notes:
        L.append("Points not OK:\n")
        for r in notes:
            L.append(f"- P={r['P']}, D={r['D']}: {r['status']} — {r.get('reason') or r.get('message')}")
        L.append("")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    main()
