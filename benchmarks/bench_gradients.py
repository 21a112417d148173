"""Benchmark: gradient evaluations per second of the weight-posterior potential, path form vs layer-by-layer.

Task (docs/theory.md §5): the 4-path Markov network (heads (2, 2), data seed 0, head seed 0), P = 100 training
sequences, T = 0.01, all σ² = 1, equal widths N ∈ {100, 1000} (``--quick``: the same grid, shorter timing).

Two potentials ``U(θ) = (1/2T) Σ_μ (f(x^μ) − y^μ)² + Σ_b |θ_b|²/(2σ_b²)`` over the same weight pytree:

path form
    ``smtheory.sims.posterior.make_posterior(problem, spec).potential`` — ``f`` from the precomputed raw path
    features ξ [P, D, N0] (docs/theory.md §2), what every sampler of ``sims`` uses;
layer by layer
    ``smtheory.network.forward(weights, x, omegas, "last")`` on the bare inputs x [P, 231, 31] with the
    attention matrices ``smtheory.attention_matrices(x, layers)`` precomputed once and held as JAX arrays,
    plus the same prior term (``Posterior.prior_energy``).

Before timing, both potentials and their gradients are compared at three weight draws (a prior draw and
the same draw scaled by 0.3 and 2): the relative difference of the values and the largest relative
gradient difference per block must be ≤ 1e-10, otherwise the script stops.

Timed functions: ``jax.jit(jax.grad(U))`` on one weight pytree ("single"), and
``jax.jit(jax.vmap(jax.grad(U)))`` on 4 stacked pytrees ("vmap ×4", as the samplers run 4 chains).
Compilation is done ahead of time (``.lower().compile()``, its time is reported separately) and excluded.
Timing: ``--blocks`` blocks, each of at least ``--min-time`` seconds and ``--min-calls`` calls,
the two forms interleaved block by block; the per-call time is the best block (the machine is shared,
the minimum is the least disturbed estimate); the median block is reported too.
Gradient evaluations per second = 1 / per-call time (× 4 for vmap ×4: chain-gradients per second).

Run: ``python3 benchmarks/bench_gradients.py [--quick]`` → ``benchmarks/results/bench_gradients.{json,md}``
(``--quick`` writes ``bench_gradients_quick.{json,md}``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (RESULTS, configure_threads, environment, extra_versions, fmt,  # noqa: E402
                     machine_line, save_progress, source_fingerprint)

NAME = "bench_gradients"
WIDTHS = [100, 1000]
CHAINS = 4
TOL = 1e-10
SCALES = (1.0, 0.3, 2.0)


def build(seed, head_seed, n_train):
    """Problem (path features) and the bare inputs / attention matrices of the same training set."""
    import numpy as np
    import smtheory
    from smtheory.paths import path_features
    from smtheory.tasks.markov import markov_problem, network_layers, task_for

    problem = markov_problem(paths=4, n_train=n_train, n_test=2, seed=seed, head_seed=head_seed)
    # markov_problem draws the training set as task.sample(n_train // 2, seed=seed): regenerate it
    x, y, _ = task_for(4).sample(n_train // 2, seed=seed)
    layers = network_layers(4, seed=head_seed)
    omegas = smtheory.attention_matrices(x, layers)
    xi = path_features(x, omegas, "last")
    if not (np.array_equal(y, problem.y_train) and np.allclose(xi, problem.xi_train, rtol=0, atol=1e-12)):
        raise RuntimeError("regenerated Markov training inputs do not match markov_problem's path features")
    return problem, x, y, omegas


def potentials(problem, spec, x, y, omegas):
    import jax.numpy as jnp
    from smtheory.sims.posterior import make_posterior
    from smtheory.network import forward

    post = make_posterior(problem, spec)
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    oms = [jnp.asarray(o) for o in omegas]
    T = spec.temperature

    def potential_forward(params):
        r = forward(params, xj, oms, spec.readout) - yj
        return 0.5 * jnp.dot(r, r) / T + post.prior_energy(params)

    return post, post.potential, potential_forward


def check_agreement(post, u_path, u_fwd, seed):
    """Relative value / gradient differences of the two potentials at a few weight draws."""
    import jax
    import jax.numpy as jnp

    vg_path, vg_fwd = jax.jit(jax.value_and_grad(u_path)), jax.jit(jax.value_and_grad(u_fwd))
    base = post.init(jax.random.PRNGKey(seed + 101))
    rows = []
    for s in SCALES:
        p = jax.tree_util.tree_map(lambda a, s=s: s * a, base)
        v1, g1 = vg_path(p)
        v2, g2 = vg_fwd(p)
        dv = float(abs(v1 - v2) / abs(v1))
        dg = max(float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(a)))
                 for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2)))
        rows.append(dict(scale=s, value_path=float(v1), value_forward=float(v2), rel_diff_value=dv, rel_diff_grad=dg))
    return rows


def time_pair(fns, args, blocks, min_time, min_calls, log):
    """Interleaved timing of compiled functions: per-call seconds of every block, per function."""
    import jax
    out = {k: [] for k in fns}
    for b in range(blocks):
        for k, f in fns.items():
            n, t0 = 0, time.perf_counter()
            while True:
                jax.block_until_ready(f(args[k]))
                n += 1
                el = time.perf_counter() - t0
                if n >= min_calls and el >= min_time:
                    break
            out[k].append(el / n)
        log(f"    block {b + 1}/{blocks}: " + ", ".join(f"{k} {out[k][-1] * 1e3:.3g} ms" for k in fns))
    return out


def run_width(N, problem, x, y, omegas, args, log):
    import jax
    import jax.numpy as jnp
    from smtheory import ModelSpec

    spec = ModelSpec(heads=(2, 2), widths=N, temperature=args.temperature)
    post, u_path, u_fwd = potentials(problem, spec, x, y, omegas)
    n_params = sum(int(a.size) for a in jax.tree_util.tree_leaves(post.init(jax.random.PRNGKey(0))))
    log(f"N = {N}: {n_params} weights; checking agreement")
    agree = check_agreement(post, u_path, u_fwd, args.seed)
    worst = max(max(r["rel_diff_value"], r["rel_diff_grad"]) for r in agree)
    log(f"  max relative difference (value, gradient) = {worst:.2e}")
    if not worst <= TOL:
        raise RuntimeError(f"path form and layer-by-layer potentials disagree at N = {N}: {worst:.3e} > {TOL}")

    p1 = post.init(jax.random.PRNGKey(args.seed))
    p4 = jax.vmap(post.init)(jax.random.split(jax.random.PRNGKey(args.seed), CHAINS))
    res = dict(N=N, n_params=n_params, agreement=agree, max_rel_diff=worst, modes={})
    for mode, arg, wrap in (("single", p1, lambda g: g), (f"vmap x{CHAINS}", p4, jax.vmap)):
        compiled, compile_time = {}, {}
        for form, u in (("path", u_path), ("forward", u_fwd)):
            t0 = time.perf_counter()
            compiled[form] = jax.jit(wrap(jax.grad(u))).lower(arg).compile()
            compile_time[form] = time.perf_counter() - t0
            jax.block_until_ready(compiled[form](arg))  # first call (allocations) not timed
        # same gradient from both compiled functions (vmapped included)
        gp, gf = compiled["path"](arg), compiled["forward"](arg)
        dg = max(float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(a)))
                 for a, b in zip(jax.tree_util.tree_leaves(gp), jax.tree_util.tree_leaves(gf)))
        if not dg <= TOL:
            raise RuntimeError(f"compiled gradients disagree at N = {N} ({mode}): {dg:.3e}")
        log(f"  {mode}: compile path {compile_time['path']:.2f} s, forward {compile_time['forward']:.2f} s; timing")
        times = time_pair(compiled, {"path": arg, "forward": arg}, args.blocks, args.min_time, args.min_calls, log)
        per_eval = CHAINS if mode != "single" else 1
        m = dict(compile_time=compile_time, rel_diff_grad=dg, block_times=times)
        for form in ("path", "forward"):
            best, med = min(times[form]), statistics.median(times[form])
            m[form] = dict(per_call=best, per_call_median=med, grads_per_second=per_eval / best,
                           grads_per_second_median=per_eval / med)
        m["ratio"] = m["forward"]["per_call"] / m["path"]["per_call"]
        m["ratio_median"] = m["forward"]["per_call_median"] / m["path"]["per_call_median"]
        log(f"  {mode}: path {m['path']['grads_per_second']:.4g}/s, forward {m['forward']['grads_per_second']:.4g}/s,"
            f" ratio {m['ratio']:.3g}")
        res["modes"][mode] = m
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter timing (2 blocks of ≥ 0.3 s)")
    ap.add_argument("--N", type=int, nargs="+", default=None, help="override the width grid")
    ap.add_argument("--P", type=int, default=100, help="training sequences (even)")
    ap.add_argument("--temperature", type=float, default=0.01)
    ap.add_argument("--blocks", type=int, default=None, help="timing blocks per function (default 5, quick 2)")
    ap.add_argument("--min-time", type=float, default=None, help="seconds per block (default 1.0, quick 0.3)")
    ap.add_argument("--min-calls", type=int, default=2, help="calls per block at least")
    ap.add_argument("--threads", choices=["1", "all"], default="1",
                    help="'1' (default): single-threaded XLA/BLAS and the process pinned to one CPU "
                         "(XLA:CPU ignores the thread flags for its dot thread pool)")
    ap.add_argument("--seed", type=int, default=0, help="data seed and weight-draw seed")
    ap.add_argument("--head-seed", type=int, default=0)
    ap.add_argument("--out", default=RESULTS)
    args = ap.parse_args(argv)
    args.blocks = args.blocks or (2 if args.quick else 5)
    args.min_time = args.min_time or (0.3 if args.quick else 1.0)
    threads = configure_threads(args.threads)
    t_all, c_all = time.perf_counter(), time.process_time()

    def log(msg):
        print(f"[{time.perf_counter() - t_all:7.1f}s] {msg}", flush=True)

    env = environment()
    env.update(extra_versions())
    env["source_sha256"] = source_fingerprint(("smtheory", "solvers", "sims"))
    name = NAME + ("_quick" if args.quick else "")
    widths = args.N or WIDTHS
    config = dict(task="markov, 4 paths, heads (2, 2)", P=args.P, temperature=args.temperature, widths=widths,
                  chains_vmapped=CHAINS, seed=args.seed, head_seed=args.head_seed, blocks=args.blocks,
                  min_time=args.min_time, min_calls=args.min_calls, tolerance=TOL, quick=args.quick, threads=threads,
                  dtype="float64", readout="last", variances="all 1")
    problem, x, y, omegas = build(args.seed, args.head_seed, args.P)
    rows = []
    data = dict(benchmark=NAME, config=config, environment=env, rows=rows)
    for N in widths:
        rows.append(run_width(N, problem, x, y, omegas, args, log))
        save_progress(data, args.out, name, t_all, c_all, markdown)
    log(f"done in {time.perf_counter() - t_all:.1f} s → {os.path.join(args.out, name)}.{{json,md}}")
    print(markdown(data))


def markdown(d):
    c, e = d["config"], d["environment"]
    lines = [
        "# Gradients per second of the posterior potential — path form vs layer-by-layer forward pass",
        "",
        f"4-path Markov task (heads (2, 2)), P = {c['P']}, T = {c['temperature']}, all σ² = 1, float64; data seed "
        f"{c['seed']}, head seed {c['head_seed']}, weight draws from the prior (seed {c['seed']}). "
        f"Threads: {c['threads']['threads']} (XLA_FLAGS `{c['threads']['XLA_FLAGS']}`, process pinned to CPU "
        f"{c['threads'].get('pinned_cpu')}); process CPU time / wall time {fmt(d.get('cpu_over_wall'), '.2f')}.",
        "",
        machine_line(e, d),
        "",
        "Path form: `jax.jit(jax.grad(smtheory.sims.posterior.make_posterior(...).potential))` (precomputed path features "
        "ξ [P, 4, 231]). Forward: the same potential with f from `smtheory.network.forward` on x [P, 231, 31] with "
        "precomputed attention matrices (JAX arrays), same prior term. Compiled ahead of time (compile excluded); "
        f"{c['blocks']} interleaved blocks of ≥ {c['min_time']} s and ≥ {c['min_calls']} calls; per-call time = "
        "best block (median block in brackets). vmap ×4: 4 weight pytrees per call, rate counted in chain-gradients. "
        f"Agreement checked first at 3 draws (prior draw × {', '.join(str(s) for s in SCALES)}): "
        f"tolerance {c['tolerance']:.0e} relative.",
        "",
        "| N | weights | mode | path grads/s | forward grads/s | speed-up (path / forward rate) | compile path [s] | "
        "compile forward [s] | max rel diff |",
        "|---:|---:|:---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in d["rows"]:
        for mode, m in r["modes"].items():
            lines.append(
                f"| {r['N']} | {r['n_params']} | {mode} | {fmt(m['path']['grads_per_second'], '.4g')} "
                f"({fmt(m['path']['grads_per_second_median'], '.4g')}) | "
                f"{fmt(m['forward']['grads_per_second'], '.4g')} "
                f"({fmt(m['forward']['grads_per_second_median'], '.4g')}) | **{fmt(m['ratio'], '.3g')}** "
                f"({fmt(m['ratio_median'], '.3g')}) | {fmt(m['compile_time']['path'], '.2f')} | "
                f"{fmt(m['compile_time']['forward'], '.2f')} | {r['max_rel_diff']:.1e} |")
    lines += ["", "Agreement of the two potentials (value and gradient, relative):", "",
              "| N | draw scale | U path | U forward | rel diff U | max rel diff ∇U |",
              "|---:|---:|---:|---:|---:|---:|"]
    for r in d["rows"]:
        for a in r["agreement"]:
            lines.append(f"| {r['N']} | {a['scale']} | {a['value_path']:.10g} | {a['value_forward']:.10g} | "
                         f"{a['rel_diff_value']:.1e} | {a['rel_diff_grad']:.1e} |")
    lines += ["", f"Total wall time {fmt(d.get('wall_time'), '.1f')} s. The machine is shared: absolute rates vary "
              "with its load; the ratio (interleaved timing) is the robust figure.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
