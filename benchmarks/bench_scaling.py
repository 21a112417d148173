"""Benchmark: time per saddle-point solve and peak memory against P (training set) and D (paths).

Grid: P ∈ {100, 1000, 4000} × D ∈ {4, 16, 64} (``--quick``: P ∈ {100, 1000} × D ∈ {4, 16}).

Features: the Markov-task inputs (THEORY.md §5, ``x ∈ R^{231×31}``, labels ±1) passed through L = 2
layers of random w-style heads (``smtheory.tasks.markov.random_head``, strength 1, β = 10) with heads
(2, 2), (4, 4), (8, 8) → D = 4, 16, 64, built with ``KernelProblem.from_inputs`` (readout: last token).
Model: equal widths N = P / alpha (default alpha = 1), T = 0.01, all σ² = 1, cold start from the GP value.

Every (P, D) point runs in a fresh subprocess (``--point P D``), so that its peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own; it is read after the imports, after the feature
build, after probing and at the end.  It is compared with the theoretical ``8 (P² + P D N0)`` bytes.

Time caps, three levels: (1) a flop model calibrated on this machine predicts the cost of the probe
(below); points whose probe alone would exceed ``--cap`` seconds are skipped without building anything;
(2) the child builds the features and times one value+gradient, one closed-form Hessian (when trust-exact
uses it) and one certificate Hessian-vector product with the solver's own jitted functions, predicts the
solve from those, and runs ``smtheory.solvers.solve`` (``max_iter``, default 50) only if the prediction is below
``--cap`` (else it is recorded as "probe only" with the reason); (3) the subprocess is killed after
``--timeout`` seconds, and bigger points are then skipped.

Run: ``python3 benchmarks/bench_scaling.py [--quick]`` → ``benchmarks/results/bench_scaling.{json,md}``
(``--quick`` writes ``bench_scaling_quick.{json,md}`` so that it does not overwrite a full run).
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

from _common import (RESULTS, configure_threads, environment, fmt, load_average,  # noqa: E402
                     source_fingerprint, write_json, write_text)

NAME = "bench_scaling"
P_GRID = [100, 1000, 4000]
D_GRID = [4, 16, 64]
QUICK_P = [100, 1000]
QUICK_D = [4, 16]
HEADS = {4: (2, 2), 16: (4, 4), 64: (8, 8)}
N0 = 231
DENSE_HESSIAN_MAX = 300  # mirrors smtheory.solvers.numeric (parameters up to which trust-exact is used)
DENSE_CERTIFICATE_MAX = 600  # mirrors smtheory.solvers.numeric (entries up to which the certificate is dense)


def maxrss_bytes():
    """Peak resident set size of this process (Linux reports KiB)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r) * (1 if sys.platform == "darwin" else 1024)


def theory_bytes(P, D, n0=N0):
    return 8 * (P * P + P * D * n0)


def n_params(D, H):
    return D * (D + 1) // 2 + H * (H + 1) // 2


# ------------------------------------------------------------------------------------------ cost model

def predicted_flops(P, D, iters=8):
    """Rough flop count of one cold solve (optimiser + certificate) with the current ``smtheory.solvers.numeric``.

    value+grad ≈ 3 products of cost 2 P² D N0 (K, G Ξ, and the contraction) plus a Cholesky; a
    Hessian-vector product ≈ 2 value+grad.  trust-exact (≤ 300 parameters) adds the closed-form Hessian:
    M = Ξᵀ G Ξ (2 P² D N0 + 2 P (D N0)²) and the D⁴ N0² contraction.  trust-krylov does ~20 HVPs per
    iteration.  The certificate forms a dense Hessian from one HVP per entry (≤ 600 entries) or runs
    Lanczos (~100 HVPs).  ``iters`` is a guess for a cold start at alpha = 1 (3–5 were measured).
    Returns (solve flops, probe flops).
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
    probe = 2 * (vg + hvp) + (2 * hess if n <= DENSE_HESSIAN_MAX else 0)
    return opt + cert, probe


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


def _probe(name, fn, rec, dump, repeats=1):
    """Time one call of ``fn`` after a first (compiling) call; record time and peak RSS."""
    import jax
    t0 = time.perf_counter()
    try:
        jax.block_until_ready(fn())
    except (AttributeError, TypeError) as exc:  # private API of smtheory.solvers.numeric changed: record, do not fail
        rec["probe"][name] = dict(error=f"{type(exc).__name__}: {exc}")
        dump()
        return
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    rec["probe"][name] = dict(first_call=first, per_call=best, rss_after=maxrss_bytes())
    dump()


def run_point(P, D, args, out_path, mode):
    """Child process: build, probe the per-evaluation costs, solve (mode "full"); writes JSON after every stage."""
    rec = dict(P=P, D=D, heads=list(HEADS[D]), mode=mode, stage="start", load_average_start=load_average(), probe={},
               source_sha256=source_fingerprint(), started_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    t_all = time.perf_counter()

    def dump():
        rec["child_wall"] = time.perf_counter() - t_all
        write_json(out_path, rec)

    import numpy as np
    import jax
    import jax.numpy as jnp
    import smtheory.solvers
    from smtheory.solvers import numeric as nm
    from smtheory.solvers import parameterization as par
    from smtheory.action import ActionConstants
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
    # per-evaluation costs at the GP point, with the solver's own jitted functions (private API of
    # smtheory.solvers.numeric: the same compiled functions that solve() uses, so no extra compilation for those)
    xi = jnp.asarray(problem.scaled_train(spec))
    y = jnp.asarray(problem.y_train)
    c = ActionConstants.from_spec(spec)
    scale = float(max(spec.widths) + problem.n_train)
    gp = spec.gp_order_parameters()[0]
    theta = jnp.asarray(par.pack(gp))
    n = par.n_params(spec.partial_paths)
    rec["stage"] = "probing"
    _probe("value_and_grad", lambda: nm._value_and_grad(theta, xi, y, c, scale), rec, dump)
    if n <= nm.DENSE_HESSIAN_MAX and (D * N0) ** 2 * 8 <= nm.ANALYTIC_HESSIAN_BYTES:
        _probe("analytic_hessian", lambda: nm._hessian_analytic(theta, xi, y, c, scale), rec, dump)
    vec = jnp.asarray(par.pack_entries(gp))
    n_entries = sum(d * (d + 1) // 2 for d in spec.partial_paths)
    # the certificate: closed-form dense Hessian where smtheory.solvers.numeric has one and uses it, else one HVP per
    # entry (dense) or Lanczos on HVPs (mirrors smtheory.solvers.numeric.hessian_certificate)
    analytic_cert = (hasattr(nm, "_entries_hessian_analytic") and n_entries <= nm.DENSE_CERTIFICATE_MAX
                     and (D * N0) ** 2 * 8 <= nm.ANALYTIC_HESSIAN_BYTES)
    rec["certificate_kind"] = ("dense closed form" if analytic_cert else
                               "dense from HVPs" if n_entries <= nm.DENSE_CERTIFICATE_MAX else "Lanczos on HVPs")
    if analytic_cert:
        _probe("certificate_hessian", lambda: nm._entries_hessian_analytic(vec, xi, y, c), rec, dump)
    _probe("certificate_hvp", lambda: nm._entries_hvp(vec, vec, xi, y, c), rec, dump)
    rec["stage"] = "probed"
    # predicted solve time from the measured per-evaluation costs (about 6 iterations of ~3 evaluations each
    # for a cold start at alpha = 1; trust-krylov ~20 HVPs per iteration; the certificate does one HVP per
    # entry when dense, ~100 in Lanczos otherwise)
    pr = {k: v for k, v in rec["probe"].items() if "per_call" in v}
    if "value_and_grad" not in pr or "certificate_hvp" not in pr:
        raise RuntimeError(f"probes failed (private API of smtheory.solvers.numeric changed?): {rec['probe']}")
    t_vg, t_hvp = pr["value_and_grad"]["per_call"], pr["certificate_hvp"]["per_call"]
    if n <= nm.DENSE_HESSIAN_MAX:
        t_opt = 6 * (3 * t_vg + pr.get("analytic_hessian", {}).get("per_call", n * t_hvp))
    else:
        t_opt = 6 * (3 * t_vg + 20 * t_hvp)
    if analytic_cert and "certificate_hessian" in pr:
        t_cert = pr["certificate_hessian"]["per_call"]
    else:
        t_cert = (n_entries if n_entries <= nm.DENSE_CERTIFICATE_MAX else 100) * t_hvp
    rec["measured_prediction"] = dict(optimiser=t_opt, certificate=t_cert, total=t_opt + t_cert)
    dump()
    elapsed = time.perf_counter() - t_all
    rec["measured_prediction"]["elapsed_before_solve"] = elapsed
    if mode == "auto" and elapsed + 1.5 * (t_opt + t_cert) > args.timeout:
        rec["skip_reason"] = (f"predicted from the probes: optimiser {t_opt:.0f} s + certificate {t_cert:.0f} s "
                              f"(×1.5 margin) after {elapsed:.0f} s of build and probes would pass the "
                              f"{args.timeout:g} s timeout; solve not run")
        mode = "probe"
    elif mode == "auto" and t_opt + t_cert > args.cap:
        rec["skip_reason"] = (f"predicted from the probes: optimiser {t_opt:.0f} s + certificate {t_cert:.0f} s "
                              f"> cap {args.cap:g} s; solve not run")
        mode = "probe"
    rec["mode_run"] = mode
    if mode == "probe":
        rec["stage"] = "done"
        rec["peak_rss"] = maxrss_bytes()
        dump()
        return

    t0 = time.perf_counter()
    res = smtheory.solvers.solve(problem, spec, max_iter=args.max_iter)
    rec["solve_wall"] = time.perf_counter() - t0  # incl. JIT compilation and the certificate
    rec.update(solve_time=res.solve_time, compile_time=res.compile_time, iterations=res.iterations, n_evaluations=res.n_evaluations,
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
    ap.add_argument("--threads", choices=["1", "all"], default="1",
                    help="1 (default): single-threaded XLA and BLAS, reproducible on a shared machine; "
                         "all: library defaults")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=RESULTS)
    ap.add_argument("--point", type=int, nargs=2, metavar=("P", "D"), help=argparse.SUPPRESS)
    ap.add_argument("--point-out", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=["auto", "full", "probe"], default="auto", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    threads = configure_threads(args.threads)

    if args.point:
        run_point(args.point[0], args.point[1], args, args.point_out, args.mode)
        return None

    t_start = time.perf_counter()
    env = environment()
    env["threads"] = threads
    Ps = args.P or (QUICK_P if args.quick else P_GRID)
    Ds = args.D or (QUICK_D if args.quick else D_GRID)
    rate = calibrate_flop_rate()
    print(f"numpy matmul rate {rate / 1e9:.1f} GFlop/s; grid P={Ps} D={Ds}", flush=True)
    efficiency = 0.5  # the solver's kernels reach a fraction of the big-matmul rate
    points = sorted(((P, D) for P in Ps for D in Ds), key=lambda pd: predicted_flops(*pd)[0])
    rows = []
    exceeded = []  # (P, D) of points that timed out
    os.makedirs(args.out, exist_ok=True)
    for P, D in points:
        flops, probe_flops = predicted_flops(P, D)
        pred, pred_probe = flops / (rate * efficiency), probe_flops / (rate * efficiency)
        row = dict(P=P, D=D, heads=list(HEADS[D]), n_params=n_params(D, HEADS[D][1]),
                   theory_bytes=theory_bytes(P, D), predicted_solve_s=pred, predicted_probe_s=pred_probe)
        dominated = [pd for pd in exceeded if pd[0] <= P and pd[1] <= D]
        mode = "auto"
        if dominated:
            row.update(status="skipped", reason=f"smaller point P={dominated[0][0]}, D={dominated[0][1]} already hit "
                                                f"the {args.timeout:g} s timeout")
        elif pred > args.cap:
            reason = (f"predicted solve time {pred:.0f} s > cap {args.cap:g} s "
                      f"(flop model, {rate * efficiency / 1e9:.1f} GFlop/s)")
            if pred_probe <= args.cap:
                row["flop_model_note"] = reason + "; the child decides from measured per-evaluation costs"
            else:
                row.update(status="skipped", reason=reason + f"; even the probe (predicted {pred_probe:.0f} s) "
                                                             f"is over the cap too")
        if "status" in row:
            print(f"P={P} D={D}: {row['status']} — {row['reason']}", flush=True)
            rows.append(row)
            continue
        point_out = os.path.join(args.out, f".{NAME}_P{P}_D{D}.json.part")
        if os.path.exists(point_out):
            os.unlink(point_out)
        cmd = [sys.executable, os.path.abspath(__file__), "--point", str(P), str(D), "--point-out", point_out,
               "--alpha", str(args.alpha), "--max-iter", str(args.max_iter), "--threads", args.threads,
               "--seed", str(args.seed), "--mode", mode, "--cap", str(args.cap),
               "--timeout", str(args.timeout)]
        print(f"P={P} D={D}: running (flop model: solve {pred:.1f} s, probe {pred_probe:.1f} s) ...", flush=True)
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
        elif rec.get("mode_run") == "probe":
            row.update(status="probe only", reason=rec.get("skip_reason"))
        else:
            row["status"] = "ok" if row["converged"] else "not converged"
        if row.get("peak_rss") is None:  # killed: the highest reading the child got to write
            seen = [row.get(k) for k in ("rss_after_imports", "rss_after_build")]
            seen += [v.get("rss_after") for v in (row.get("probe") or {}).values()]
            seen = [v for v in seen if v is not None]
            if seen:
                row["peak_rss_seen"] = max(seen)
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
                  temperature=0.01, variances="all 1", init="GP", solver="smtheory.solvers.solve (default tol 1e-9)",
                  max_iter=args.max_iter, cap_s=args.cap, timeout_s=args.timeout, seed=args.seed,
                  threads=args.threads, flop_rate_numpy=rate, flop_model_efficiency=efficiency,
                  peak_memory="ru_maxrss of a fresh subprocess per point (includes Python/JAX baseline)",
                  theory_bytes="8 (P^2 + P D N0)")
    data = dict(benchmark=NAME, config=config, environment=env, rows=rows, script_wall_time=wall,
                load_average_end=load_average())
    name = NAME + ("_quick" if args.quick else "")
    write_json(os.path.join(args.out, name + ".json"), data)
    write_text(os.path.join(args.out, name + ".md"), markdown(data))
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
    L.append("`solve time` = `result.solve_time` (optimiser + certificate, JIT compilation excluded); `solve wall` = the whole "
             "`smtheory.solvers.solve` call in a fresh process (JIT compilation + optimiser + certificate). "
             "Peak RSS = `ru_maxrss` of the point's subprocess (includes the Python + JAX baseline, "
             "given as 'after imports'; for 'probe only' rows it is the peak up to the probes, without a solve); "
             "theory = 8 (P² + P·D·N0) bytes. 'predicted solve' is the rough flop model used only to decide "
             "what to attempt; the child's own decision uses the measured per-evaluation costs below.\n")
    L.append("| P | D | heads | params | status | build [s] | solve time [s] | solve wall [s] | it | evals | "
             "method | max resid | Hess min eig | peak RSS [MiB] | RSS after imports [MiB] | theory [MiB] | "
             "predicted solve [s] | solvers src |")
    L.append("|---:|---:|:---:|---:|:---|---:|---:|---:|---:|---:|:---|---:|---:|---:|---:|---:|---:|:---|")
    mib = lambda b: fmt(b / 2**20, ".0f") if b is not None else "—"  # noqa: E731
    src = lambda r: "/".join(v[:8] for v in (r.get("source_sha256") or {}).values()) or "—"  # noqa: E731
    for r in d["rows"]:
        peak = mib(r.get("peak_rss")) if r.get("peak_rss") is not None else (
            f"≥ {mib(r['peak_rss_seen'])}" if r.get("peak_rss_seen") is not None else "—")
        L.append(f"| {r['P']} | {r['D']} | {tuple(r['heads'])} | {r['n_params']} | {r['status']} | "
                 f"{fmt(r.get('build_time'))} | {fmt(r.get('solve_time'))} | {fmt(r.get('solve_wall'))} | "
                 f"{r.get('iterations', '—')} | {r.get('n_evaluations', '—')} | {r.get('method', '—')} | "
                 f"{fmt(r.get('max_residual'), '.1e')} | {fmt(r.get('hessian_min_eig'))} | {peak} | "
                 f"{mib(r.get('rss_after_imports'))} | {mib(r['theory_bytes'])} | {fmt(r['predicted_solve_s'])} | "
                 f"{src(r)} |")
    L.append("")
    L.append("Per-evaluation costs at the GP point (the solver's own jitted functions; second call, seconds; "
             "RSS after the probe in MiB): value+gradient of S; the closed-form Hessian used by trust-exact; one "
             "Hessian-vector product in the certificate's entries (a dense certificate from HVPs does one per entry, "
             "batched); the closed-form certificate Hessian where `smtheory.solvers.numeric` has and uses one.\n")
    L.append("| P | D | t(value+grad) | t(analytic Hessian) | t(certificate HVP) | certificate | t(closed-form "
             "certificate Hessian) | certificate entries | RSS after build | RSS after probes |")
    L.append("|---:|---:|---:|---:|---:|:---|---:|---:|---:|---:|")
    for r in d["rows"]:
        pr = r.get("probe") or {}
        if not pr:
            continue
        g = lambda k: fmt(pr[k]["per_call"]) if "per_call" in pr.get(k, {}) else "—"  # noqa: E731
        last = max([v["rss_after"] for v in pr.values() if "rss_after" in v] or [None], key=lambda v: v or 0)
        D, H = r["D"], r["heads"][-1]
        L.append(f"| {r['P']} | {r['D']} | {g('value_and_grad')} | {g('analytic_hessian')} | "
                 f"{g('certificate_hvp')} | {r.get('certificate_kind', '—')} | {g('certificate_hessian')} | "
                 f"{D * (D + 1) // 2 + H * (H + 1) // 2} | "
                 f"{mib(r.get('rss_after_build'))} | {mib(last)} |")
    L.append("")
    fps = {src(r) for r in d["rows"] if r.get("source_sha256")}
    L.append(f"'solvers src' = first 8 hex digits of the SHA-256 of the smtheory/solvers sources seen by the point's "
             f"process. {'All points ran the same sources.' if len(fps) <= 1 else '**The sources changed during the run** (' + str(len(fps)) + ' versions): compare rows with care.'}\n")
    notes = [r for r in d["rows"] if r["status"] != "ok"]
    if notes:
        L.append("Points not OK:\n")
        for r in notes:
            L.append(f"- P={r['P']}, D={r['D']}: {r['status']} — {r.get('reason') or r.get('message')}")
        L.append("")
    return "\n".join(L) + "\n"


def regenerate_markdown(json_path):
    """Rewrite the .md next to a results .json (after editing :func:`markdown`)."""
    with open(json_path) as fh:
        data = json.load(fh)
    write_text(os.path.splitext(json_path)[0] + ".md", markdown(data))


if __name__ == "__main__":
    main()
