"""Benchmark: the solver at scale — per-iteration cost against one Cholesky, reach, memory, streamed predictor.

Points (``--quick``: the first two only):

- ``solve`` points P × D ∈ (1000, 4), (1000, 16), (4000, 4), (4000, 16), (1000, 64), (10000, 4): build the
  problem, run ``smtheory.solvers.solve`` (default ``method="auto"``: the scaled path of
  ``smtheory.solvers.scaled`` from P = 500 on, default memory budget 8 GiB) from the GP value, then, in the
  same process and at the solution, time one Cholesky factorisation of the train matrix ``T I + K``
  (``jax.lax.linalg.cholesky``, the call the solver makes) side by side with the solver's own pieces: one
  value (kernel + factorisation), one gradient (``L⁻¹ Ξ`` and ``Φ``), the dense energy Hessian (where the
  solver forms it) and one Hessian-vector product.  Cholesky timings are taken before and after the pieces
  and the smaller is used.
- ``predictor`` points: a trained ``U_1`` (one solve), then predictor statistics on Q = 10⁵ fresh Markov
  test inputs generated, turned into path features and consumed chunk by chunk
  (``smtheory.predictor_stream``), with the peak memory.

Features: Markov-task inputs (docs/theory.md §5, x ∈ R^{231×31}, labels ±1) through L = 2 layers of random
w-style heads (strength 1, β = 10), heads (2, 2), (4, 4), (8, 8) → D = 4, 16, 64, readout last token.
Model: equal widths N = P (α = 1), T = 0.01, all σ² = 1.

Every point runs in a fresh subprocess, one at a time, pinned to one CPU with single-threaded XLA and BLAS
(``--threads 1``), killed after ``--timeout`` seconds; its peak resident memory is ``ru_maxrss`` of that
process (it includes the Python + JAX baseline, reported apart).  The machine's load average is recorded
beside every timing: the per-iteration / Cholesky ratios are measured side by side in one process and are
robust to load; absolute times are not.

Run: ``python3 benchmarks/bench_scaling.py [--quick] [--only solve|predictor]`` →
``benchmarks/results/bench_scaling.{json,md}`` (``--quick``: ``bench_scaling_quick.*``).
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


def _single_thread_before_jax(argv):
    """``--threads 1`` (default): single-threaded XLA and BLAS and this process pinned to one CPU, set before JAX
    is imported; ``_common.configure_process`` follows once ``_common`` is imported."""
    if "--threads" in argv and argv[argv.index("--threads") + 1] == "all":
        return dict(threads="all", pinned_cpu=None)
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    cpu = sorted(os.sched_getaffinity(0))[-1] if hasattr(os, "sched_setaffinity") else None
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    return dict(threads="1", XLA_FLAGS=os.environ["XLA_FLAGS"], OMP_NUM_THREADS="1", pinned_cpu=cpu)


THREADS = _single_thread_before_jax(sys.argv)

from _common import (RESULTS, configure_process, environment, fmt, fmt_load, load_average, write_json,  # noqa: E402
                     write_text)

configure_process()

NAME = "bench_scaling"
SOLVE_POINTS = ["1000x4", "1000x16", "4000x4", "4000x16", "4000x16:secant", "1000x64", "10000x4"]
QUICK_POINTS = ["1000x4", "1000x16"]
PREDICTOR_POINTS = [(4000, 4), (1000, 16)]
HEADS = {4: (2, 2), 16: (4, 4), 64: (8, 8)}
TARGETS = {(4000, 16): 180, (1000, 64): 180, (10000, 4): 600}  # issue 17: certified within these seconds
N_TEST = 100_000
CHUNK = 4096


def maxrss_bytes():
    """Peak resident set size of this process (Linux reports KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * (1 if sys.platform == "darwin" else 1024)


def reset_peak_rss():
    """Reset this process's peak resident memory (``VmHWM``, Linux ≥ 4.0); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_since_reset():
    """``VmHWM`` of /proc/self/status in bytes (peak resident memory since :func:`reset_peak_rss`), or None."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def build_problem(P, D, seed):
    """The Markov problem with ``P`` training inputs and its layers."""
    from smtheory.problem import KernelProblem
    from smtheory.tasks.markov import MarkovTask

    layers = make_layers(D, seed)
    x, y, _ = MarkovTask().sample(P // 2, seed=seed)
    return KernelProblem.from_inputs(x, y, layers, readout="last"), layers


def make_layers(D, seed):
    import numpy as np
    from smtheory.attention import AttentionLayer
    from smtheory.tasks.markov import random_head

    rng = np.random.default_rng(seed + 12345)
    return [AttentionLayer(W=np.stack([random_head(1.0, rng=rng) for _ in range(h)]), name=f"layer {i + 1}")
            for i, h in enumerate(HEADS[D])]


def best_time(fn, repeats, warm=True):
    """Smallest wall time of ``repeats`` calls of ``fn`` (results blocked on), after one untimed call if ``warm``
    (without it, the first timed call must not compile: the function was compiled by the solve)."""
    import jax
    if warm:
        jax.block_until_ready(fn())
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best


# ------------------------------------------------------------------------------------------ solve point

def cholesky_seconds(P, repeats):
    """Seconds of one ``jax.lax.linalg.cholesky`` of a ``P × P`` SPD matrix (the same LAPACK work for any SPD
    matrix of the size: no pivoting), best of ``repeats`` after a compiling call."""
    import jax
    import jax.numpy as jnp
    A = 2.0 * jnp.eye(P)
    chol = jax.jit(lambda M: jax.lax.linalg.cholesky(M, symmetrize_input=False))
    return best_time(lambda: chol(A), repeats)


def side_by_side(problem, spec, res, rec):
    """Time one Cholesky of ``T I + K`` and the solver's per-iteration pieces at the solution (same process)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from smtheory import energy_factor as ef
    from smtheory.solvers.scaled import scaled_plan

    xi = jnp.asarray(problem.scaled_train(spec))
    P, D, N0 = xi.shape
    plan = scaled_plan(P, D, N0)
    big = P > 4000  # one timed call each, no untimed warm-up (compiled by the solve), no HVP unless it was used
    repeats = 1 if big else 3
    data = ef.energy_data(xi, problem.y_train, plan["route"], plan["memory_budget"])
    U1 = jnp.asarray(res.U1)
    T = spec.temperature
    L, a, _ = ef.factor(U1, data, T)
    A = L @ L.T
    chol = jax.jit(lambda M: jax.lax.linalg.cholesky(M, symmetrize_input=False))
    t = dict(cholesky_before=best_time(lambda: chol(A), 1 if big else 3))
    del A
    t["value"] = best_time(lambda: ef.factor(U1, data, T), repeats, warm=not big)
    t["gradient"] = best_time(lambda: ef.gradient(L, a, data), repeats, warm=not big)
    _, X, Xt, beta = ef.gradient(L, a, data)
    if plan["dense"]:
        t["dense_hessian"] = best_time(lambda: ef.dense_hessian(X, beta), repeats, warm=not big)
    if not big or not plan["dense"]:
        t["hvp"] = best_time(lambda: ef.hvp(X, Xt, beta, U1), 1)
    if not big:
        A = L @ L.T
        t["cholesky_after"] = best_time(lambda: chol(A), repeats, warm=False)
    t["cholesky"] = min(t["cholesky_before"], t.get("cholesky_after", np.inf))
    rec["pieces"] = t
    rec["load_average_pieces"] = load_average()


def run_solve_point(P, D, args, rec, dump, hessian="auto"):
    import smtheory.solvers
    from smtheory.model import ModelSpec

    t0 = time.perf_counter()
    problem, _ = build_problem(P, D, args.seed)
    rec.update(build_time=time.perf_counter() - t0, rss_after_build=maxrss_bytes(), stage="built",
               load_average_solve=load_average())
    dump()
    spec = ModelSpec(heads=HEADS[D], widths=P, temperature=0.01)
    chol_before = cholesky_seconds(P, 1 if P > 4000 else 3)  # an SPD matrix of the size: same LAPACK work
    t0 = time.perf_counter()
    res = smtheory.solvers.solve(problem, spec, max_iter=args.max_iter, hessian=hessian)
    rec["solve_wall"] = time.perf_counter() - t0
    rec["cholesky_around_solve"] = [chol_before, cholesky_seconds(P, 1 if P > 4000 else 3)]
    rec.update(solve_time=res.solve_time, compile_time=res.compile_time, iterations=res.iterations,
               n_evaluations=res.n_evaluations, converged=res.converged, max_residual=res.max_residual,
               hessian_min_eig=res.hessian_min_eig, grad_norm=res.grad_norm, method=res.method, route=res.route,
               message=res.message, profile=res.profile, peak_rss_solve=maxrss_bytes(), stage="solved",
               load_average_after_solve=load_average())
    dump()
    side_by_side(problem, spec, res, rec)
    rec["peak_rss"] = maxrss_bytes()


# ------------------------------------------------------------------------------------------ predictor point

def test_batches(layers, sigma0_sq, n_test, chunk, seed):
    """``(features, labels)`` of ``n_test`` fresh Markov inputs, generated and featurised chunk by chunk."""
    from smtheory.predictor_stream import feature_chunks
    from smtheory.tasks.markov import MarkovTask

    task = MarkovTask()
    for k, start in enumerate(range(0, n_test, chunk)):
        n = min(chunk, n_test - start)
        x, y, _ = task.sample(n // 2, seed=seed + 1000 + k)
        yield from feature_chunks(x, y, layers, sigma0_sq, chunk=chunk)


def run_predictor_point(P, D, args, rec, dump):
    import smtheory.solvers
    from smtheory.model import ModelSpec
    from smtheory.predictor_stream import TrainFactor, streamed_statistics

    problem, layers = build_problem(P, D, args.seed)
    spec = ModelSpec(heads=HEADS[D], widths=P, temperature=0.01)
    res = smtheory.solvers.solve(problem, spec, max_iter=args.max_iter)
    rec.update(converged=res.converged, rss_before_predictor=maxrss_bytes(), load_average_predictor=load_average())
    dump()
    xi = problem.scaled_train(spec)
    rec["space"] = TrainFactor(xi, problem.y_train, res.U1, spec.temperature).space
    rec["peak_reset"] = reset_peak_rss()
    rec["rss_at_reset"] = peak_rss_since_reset()
    t0 = time.perf_counter()
    stats = streamed_statistics(xi, problem.y_train, res.U1, spec.temperature,
                                test_batches(layers, spec.sigma0_sq, args.n_test, CHUNK, args.seed))
    rec.update(predictor_wall=time.perf_counter() - t0, n_test=int(stats.mean.size), chunk=CHUNK,
               generalization_error=stats.generalization_error, accuracy=stats.accuracy,
               gaussian_accuracy=stats.gaussian_accuracy, peak_rss=maxrss_bytes(),
               peak_rss_streaming=peak_rss_since_reset() if rec["peak_reset"] else None)
    m = D * 231
    rec["bound_bytes"] = 8 * (3 * P * P + 3 * P * m + 2 * m * m + 4 * CHUNK * max(P, m) + CHUNK * 231 * 31 * 4)


def run_point(kind, P, D, args, out_path, hessian="auto"):
    """Child process: one point; writes its JSON record after every stage."""
    rec = dict(kind=kind, P=P, D=D, heads=list(HEADS[D]), hessian_requested=hessian, stage="start",
               load_average_start=load_average(),
               started_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    t_all = time.perf_counter()

    def dump():
        rec["child_wall"] = time.perf_counter() - t_all
        write_json(out_path, rec)

    import jax
    import smtheory.solvers  # noqa: F401
    rec.update(rss_after_imports=maxrss_bytes(), jax_backend=jax.default_backend(), stage="imported")
    dump()
    if kind == "solve":
        run_solve_point(P, D, args, rec, dump, hessian)
    else:
        run_predictor_point(P, D, args, rec, dump)
    rec.update(stage="done", load_average_end=load_average())
    dump()


# ------------------------------------------------------------------------------------------ driver

def run_child(kind, P, D, args, hessian="auto"):
    """Run one point in a fresh subprocess with a hard timeout; return its record."""
    point_out = os.path.join(args.out, f".{NAME}_{kind}_P{P}_D{D}_{hessian}.json.part")
    if os.path.exists(point_out):
        os.unlink(point_out)
    cmd = [sys.executable, os.path.abspath(__file__), "--point", kind, str(P), str(D), "--point-out", point_out,
           "--max-iter", str(args.max_iter), "--threads", args.threads, "--seed", str(args.seed),
           "--n-test", str(args.n_test), "--hessian", hessian]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=args.timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        proc.kill()  # only the child this driver started
        output, _ = proc.communicate()
        timed_out = True
    rec = dict(kind=kind, P=P, D=D, heads=list(HEADS[D]), hessian_requested=hessian)
    if os.path.exists(point_out):
        with open(point_out) as fh:
            rec.update(json.load(fh))
        os.unlink(point_out)
    rec["subprocess_wall"] = time.perf_counter() - t0
    if timed_out:
        rec.update(status="timed out", reason=f"killed after {args.timeout:g} s in stage {rec.get('stage')!r}")
    elif proc.returncode != 0 or rec.get("stage") != "done":
        rec.update(status="failed", reason=f"exit code {proc.returncode}", output_tail=output[-3000:])
    else:
        rec["status"] = "ok" if rec.get("converged") else "not converged"
    return rec


def _key(r):
    return r["kind"], r["P"], r["D"], r.get("hessian_requested", "auto")


def merged_rows(path, todo):
    """Rows of an earlier results file that ``todo`` does not redo (each keeps its own load and timestamps)."""
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        old = json.load(fh).get("rows", [])
    redo = {(k, P, D, h) for k, P, D, h in todo}
    return [dict(r, from_earlier_run=r.get("from_earlier_run") or r.get("started_utc")) for r in old
            if _key(r) not in redo]


def parse_point(text):
    """``"4000x16"`` → ``(4000, 16, "auto")``; ``"4000x16:secant"`` → ``(4000, 16, "secant")``."""
    size, _, hessian = text.partition(":")
    P, D = (int(v) for v in size.split("x"))
    return P, D, hessian or "auto"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="solve points P=1000 × D ∈ {4, 16} only")
    ap.add_argument("--only", choices=["solve", "predictor"], help="run one kind of point")
    ap.add_argument("--points", nargs="+", default=None,
                    help="solve points as PxD or PxD:HESSIAN, e.g. 4000x16 4000x16:secant")
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=720.0, help="kill a point's subprocess after this many s")
    ap.add_argument("--threads", choices=["1", "all"], default="1")
    ap.add_argument("--n-test", type=int, default=N_TEST)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=RESULTS)
    ap.add_argument("--merge", action="store_true",
                    help="keep the rows of the existing results file that this run does not redo")
    ap.add_argument("--point", nargs=3, metavar=("KIND", "P", "D"), help=argparse.SUPPRESS)
    ap.add_argument("--point-out", help=argparse.SUPPRESS)
    ap.add_argument("--hessian", default="auto", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    threads = THREADS
    if args.point:
        run_point(args.point[0], int(args.point[1]), int(args.point[2]), args, args.point_out, args.hessian)
        return None
    todo = [] if args.only == "predictor" else [("solve",) + parse_point(p) for p in
                                                 (args.points or (QUICK_POINTS if args.quick else SOLVE_POINTS))]
    if not args.quick and args.only != "solve":
        todo += [("predictor", P, D, "auto") for P, D in PREDICTOR_POINTS]
    env = environment()
    env["threads"] = threads
    config = dict(features="Markov-task inputs (noise 1,1,1) through 2 layers of random w-style heads (strength 1, "
                           "beta 10), KernelProblem.from_inputs, readout last", N0=231, alpha=1.0, temperature=0.01,
                  variances="all 1", init="GP", solver="smtheory.solvers.solve (method auto, tol 1e-9, default "
                  "memory budget)", max_iter=args.max_iter, timeout_s=args.timeout, threads=args.threads,
                  n_test=args.n_test, chunk=CHUNK, targets_s={f"{P}x{D}": s for (P, D), s in TARGETS.items()},
                  quick=args.quick, gpu="none available to this session: no GPU run")
    data = dict(benchmark=NAME, config=config, environment=env, rows=[])
    os.makedirs(args.out, exist_ok=True)
    name = NAME + ("_quick" if args.quick else "")
    kept = merged_rows(os.path.join(args.out, name + ".json"), todo) if args.merge else []
    new_rows = []
    t_start = time.perf_counter()
    for kind, P, D, hessian in todo:
        print(f"{kind} P={P} D={D} hessian={hessian}: running (load {load_average()}) ...", flush=True)
        rec = run_child(kind, P, D, args, hessian)
        print(f"  → {rec['status']}: {rec.get('method')} {rec.get('route')} it {rec.get('iterations')} solve wall "
              f"{rec.get('solve_wall')} predictor {rec.get('predictor_wall')}; {rec.get('reason', '')}", flush=True)
        new_rows.append(rec)
        data["rows"] = sorted(kept + new_rows, key=lambda r: (r["kind"] != "solve", r["D"] == 64, r["P"], r["D"],
                                                              r.get("hessian_requested", "auto") != "auto"))
        data.update(script_wall_time=time.perf_counter() - t_start, load_average_end=load_average())
        write_json(os.path.join(args.out, name + ".json"), data)
        write_text(os.path.join(args.out, name + ".md"), markdown(data))
    print(markdown(data))
    return data


# ------------------------------------------------------------------------------------------ report

def _mib(b):
    return fmt(b / 2**20, ".0f") if b is not None else "—"


def _ratio(t, key, chol):
    v = (t or {}).get(key)
    return fmt(v / chol, ".2f") if v is not None and chol else "—"


def _status(r):
    return r["status"] + (f" (earlier run, started {r['from_earlier_run']})" if r.get("from_earlier_run") else "")


def _reach_table(rows):
    L = ["| P | D | route | method | it | evals | certified | max resid | Hess min eig | build [s] | solve wall [s] | "
         "solve time [s] | compile [s] | target [s] | peak RSS [MiB] | after imports [MiB] | after build [MiB] | "
         "estimate [MiB] | "
         "budget [GiB] | load (1/5/15 min) at solve | status |",
         "|---:|---:|:---|:---|---:|---:|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|:---|"]
    for r in rows:
        prof = r.get("profile") or {}
        target = TARGETS.get((r["P"], r["D"]))
        ok = "" if target is None or r.get("solve_wall") is None else (" ✓" if r["solve_wall"] <= target else " ✗")
        L.append(f"| {r['P']} | {r['D']} | {r.get('route', '—')} | {r.get('method', '—')} | "
                 f"{r.get('iterations', '—')} | {r.get('n_evaluations', '—')} | {fmt(r.get('converged'))} | "
                 f"{fmt(r.get('max_residual'), '.1e')} | {fmt(r.get('hessian_min_eig'))} | "
                 f"{fmt(r.get('build_time'))} | {fmt(r.get('solve_wall'))}{ok} | {fmt(r.get('solve_time'))} | "
                 f"{fmt(r.get('compile_time'))} | {target or '—'} | {_mib(r.get('peak_rss_solve'))} | "
                 f"{_mib(r.get('rss_after_imports'))} | {_mib(r.get('rss_after_build'))} | "
                 f"{_mib(prof.get('estimated_bytes'))} | "
                 f"{fmt((prof.get('memory_budget') or 0) / 2**30, '.0f')} | {fmt_load(r.get('load_average_solve'))} | "
                 f"{_status(r)} |")
    return L


def _ratio_table(rows):
    L = ["| P | D | method | issue's floor / Cholesky (flops) | t(Cholesky) around the solve [s] | "
         "**solve: per iteration / Cholesky** | it | "
         "t(Cholesky) with the pieces [s] | value | gradient | secant iteration (value + gradient) | dense energy "
         "Hessian | Newton iteration (+ Hessian) | HVP | certificate | setup (blocks) | load at pieces |",
         "|---:|---:|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|"]
    for r in rows:
        t, prof = r.get("pieces") or {}, r.get("profile") or {}
        chol = t.get("cholesky")
        around = r.get("cholesky_around_solve") or []
        chol_solve = sum(around) / len(around) if around else chol
        it = max(r.get("iterations") or 0, 1)
        per_it = prof.get("optimise") / it if prof.get("optimise") is not None else None
        sec = t["value"] + t["gradient"] if "value" in t else None
        newt = sec + t["dense_hessian"] if sec is not None and "dense_hessian" in t else None
        P, m = r["P"], r["D"] * 231
        floor = (P**3 / 3 + P * P * m + P * m * m) / (P**3 / 3)
        L.append(f"| {r['P']} | {r['D']} | {r.get('method', '—')} | {fmt(floor, '.1f')} | {fmt(chol_solve)} | "
                 f"**{_ratio({'x': per_it}, 'x', chol_solve)}** | {r.get('iterations', '—')} | {fmt(chol)} | "
                 f"{_ratio(t, 'value', chol)} | {_ratio(t, 'gradient', chol)} | "
                 f"{_ratio({'x': sec}, 'x', chol)} | {_ratio(t, 'dense_hessian', chol)} | "
                 f"{_ratio({'x': newt}, 'x', chol)} | {_ratio(t, 'hvp', chol)} | {_ratio(prof, 'certificate', chol)} | "
                 f"{_ratio(prof, 'setup', chol)} | {fmt_load(r.get('load_average_pieces'))} |")
    return L


def _predictor_table(rows):
    L = ["| P | D | test inputs | chunk | variance in | wall [s] | RSS before streaming [MiB] | peak RSS while "
         "streaming [MiB] | bound [MiB] | gen. error | accuracy | load at start | status |",
         "|---:|---:|---:|---:|:---|---:|---:|---:|---:|---:|---:|:---|:---|"]
    for r in rows:
        L.append(f"| {r['P']} | {r['D']} | {r.get('n_test', '—')} | {r.get('chunk', '—')} | {r.get('space', '—')} | "
                 f"{fmt(r.get('predictor_wall'))} | {_mib(r.get('rss_at_reset'))} | "
                 f"{_mib(r.get('peak_rss_streaming'))} | {_mib(r.get('bound_bytes'))} | "
                 f"{fmt(r.get('generalization_error'), '.4f')} | {fmt(r.get('accuracy'), '.4f')} | "
                 f"{fmt_load(r.get('load_average_predictor'))} | {_status(r)} |")
    return L


def markdown(d):
    c, e = d["config"], d["environment"]
    solve = [r for r in d["rows"] if r["kind"] == "solve"]
    pred = [r for r in d["rows"] if r["kind"] == "predictor"]
    L = ["# Solver scaling: per-iteration cost against one Cholesky, reach and memory (issue 17)\n",
         f"Features: {c['features']}; N0 = {c['N0']}. Model: N = P (α = 1), T = {c['temperature']}, all σ² = 1, "
         f"cold start from the GP value; {c['solver']}, max_iter {c['max_iter']}. One CPU core per point "
         f"(threads: {c['threads']}, pinned), a fresh process per point, one point at a time, hard timeout "
         f"{c['timeout_s']:g} s. Machine: {e['cpu_count']} CPUs ({e['cpu_model']}), shared with other jobs; "
         f"{e['platform']}; numpy {e['numpy']}, scipy {e['scipy']}, jax {e['jax']} ({e['jax_backend']}); commit "
         f"{e['git_commit'] or 'n/a'} with uncommitted changes; {e['date_utc']}. Script wall time "
         f"{d.get('script_wall_time', 0):.0f} s.\n",
         f"**GPU: {c['gpu']}.** The code is plain JAX in float64 (Cholesky, triangular solves and matrix "
         "products), so it runs unchanged on a GPU backend; the GPU scaling run (P up to 20 000) remains to be "
         "done on a machine that has one.\n",
         "## Per-iteration cost in units of one Cholesky of T I + K (same process, side by side)\n",
         "Seconds divided by the time of one P × P Cholesky factorisation (`jax.lax.linalg.cholesky`, the call the "
         "solver makes) in the same process. **solve: per iteration** = the optimiser's wall time (compilation "
         "excluded; the first point's value and gradient and any line-search trial points included) / its "
         "iterations, over the mean of a Cholesky timed just before and just after the solve (best of 3; 1 at "
         "P = 10 000). The other columns time the solver's pieces at the solution against a Cholesky of the "
         "train matrix T I + K there, taken before and after the pieces (best of 3; at P = 10 000 one timed "
         "call each, the Cholesky before the pieces only). The pieces are "
         "the solver's own jitted functions at the solution: value = kernel assembly + factorisation + L⁻¹Y; "
         "gradient = L⁻¹Ξ and Φ; a secant iteration is value + gradient, a Newton iteration adds the dense "
         "energy Hessian; HVP = one Hessian-vector product (the D = 64 path); certificate = residuals, gradient "
         "and smallest Hessian eigenvalue (dense, or LOBPCG on HVPs); setup = forming the path-pair blocks "
         "(once per solve). Ratios are robust to the machine's load; absolute times are not.\n",
         "issue's floor = (P³/3 + P²·D·N0 + P·(D·N0)²) / (P³/3), the flop count that issue 17 gives for the "
         "physical floor of one iteration (factorisation plus the contractions that give Φ) in units of the "
         "factorisation: where it exceeds 5, no iteration that forms those contractions can cost less than 5 "
         "Cholesky factorisations' flops (matrix products run faster per flop than the factorisation, so the "
         "time ratio can be somewhat lower).\n"]
    L += _ratio_table(solve) + [""]
    L += ["## Reach: certified solves, wall time and peak memory\n",
          "solve wall = the whole `solve` call in a fresh process (JIT compilation, forming the blocks, optimiser "
          "and certificate; ✓/✗ against the issue's target); build = the problem (features) before it; solve "
          "time = the same without compilation. Peak RSS = `ru_maxrss` after the solve (includes the Python + "
          "JAX baseline 'after imports' and the problem build); estimate = the solver's own working-set "
          "estimate, checked against the budget before anything is built. Absolute times depend on the load "
          "(shared 2-core machine; load averages given).\n"]
    L += _reach_table(solve) + [""]
    if pred:
        L += ["## Predictor statistics on streamed test sets\n",
              f"{c['n_test']} fresh Markov test inputs generated, featurised and consumed {c['chunk']} at a "
              "time (`smtheory.predictor_stream.streamed_statistics` with `feature_chunks`); wall time excludes "
              "the training solve. Peak RSS while streaming = `VmHWM` reset just before the stream (it includes "
              "what the process already held: 'RSS before streaming'). bound = 8·(3P² + 3P·D·N0 + 2(D·N0)² + "
              "4·chunk·max(P, D·N0) + the chunk's attention temporaries) bytes: the streaming's own arrays. "
              "The random-head features do not generalise on this task (test accuracy at chance, as with "
              "`smtheory.predictor.predictor_statistics` on the same data): these rows measure throughput and "
              "memory; tests/test_scale.py checks that streamed statistics equal the unchunked ones.\n"]
        L += _predictor_table(pred) + [""]
    bad = [r for r in d["rows"] if r["status"] != "ok"]
    if bad:
        L.append("Points not OK:\n")
        L += [f"- {r['kind']} P={r['P']}, D={r['D']}: {r['status']} — {r.get('reason') or r.get('message')}"
              for r in bad]
        L.append("")
    return "\n".join(L) + "\n"


def regenerate_markdown(json_path):
    """Rewrite the .md next to a results .json (after editing :func:`markdown`)."""
    with open(json_path) as fh:
        data = json.load(fh)
    write_text(os.path.splitext(json_path)[0] + ".md", markdown(data))


if __name__ == "__main__":
    main()
