"""Benchmark: what the Gibbs scale moves and the closed-form V0 Gram buy, measured side by side.

Task (docs/theory.md §5): the 4-path Markov network (heads (2, 2), data seed 0, head seed 0), P = 100 training
sequences, 1000 test sequences, T = 0.01, all σ² = 1.  Single CPU (``pin_single_cpu``), float64.

1. **V0 Gram**: time of one exact draw of the input-projection block V0 (``smtheory.sims.gibbs.draw_block``, sample
   space) with the closed-form Gram ``J Jᵀ = c² Σ_de (w wᵀ)_de Ξ_d Ξ_eᵀ`` versus the generic matrix-free Gram
   (``L Lᵀ`` applied to the P rows of Ξ, the route every other block takes), at N ∈ {10, 100}; the two draws
   are checked equal (same noise) to 1e-10 first.  Best of ``--blocks`` timing blocks, interleaved.
2. **Scale moves**: ``smtheory.sims.run.sample`` (4 chains, Gibbs) at N = 10 with and without the scale moves, the
   same seed, burn-in and number of sweeps; reported: min bulk ESS over the traced observables (U_1 entries,
   train energy, test MSE), max R-hat, sweeps per second and ESS per second (compile excluded).

Run: ``python3 benchmarks/bench_gibbs_moves.py [--quick]`` → ``benchmarks/results/bench_gibbs_moves.{json,md}``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import environment, fmt, pin_single_cpu, write_json, write_text  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def gram_timing(problem, N, blocks, calls):
    import jax
    import numpy as np

    import smtheory
    from smtheory.sims import gibbs
    from smtheory.sims.posterior import make_posterior

    spec = smtheory.ModelSpec(heads=(2, 2), widths=N, temperature=0.01)
    post = make_posterior(problem, spec)
    params = post.init(jax.random.key(0))
    noise = jax.random.normal(jax.random.key(1), (gibbs.noise_size(post, "V0", "sample"),))
    real = gibbs._block_maps

    def generic_maps(*a, **k):
        return real(*a, **k)._replace(W=None)

    fast = jax.jit(lambda p, z: gibbs.draw_block(post, z, p, "V0", "sample")["V0"])
    gibbs._block_maps = generic_maps
    try:
        slow = jax.jit(lambda p, z: gibbs.draw_block(post, z, p, "V0", "sample")["V0"])
        a = np.asarray(slow(params, noise))
    finally:
        gibbs._block_maps = real
    b = np.asarray(fast(params, noise))
    err = float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
    if err > 1e-10:
        raise SystemExit(f"closed-form and generic V0 draws differ by {err:.2e}")
    best = {"closed_form": float("inf"), "generic": float("inf")}
    for _ in range(blocks):
        for name, fn in (("closed_form", fast), ("generic", slow)):
            t0 = time.perf_counter()
            for i in range(calls):
                out = fn(params, noise)
            jax.block_until_ready(out)
            best[name] = min(best[name], (time.perf_counter() - t0) / calls)
    return dict(N=N, closed_form_ms=1e3 * best["closed_form"], generic_ms=1e3 * best["generic"],
                speedup=best["generic"] / best["closed_form"], max_rel_diff=err)


def moves_comparison(problem, N, burnin, steps):
    import warnings

    import smtheory
    import smtheory.sims.run as run
    from smtheory.sims import gibbs

    spec = smtheory.ModelSpec(heads=(2, 2), widths=N, temperature=0.01)
    out = {}
    real = run.build_sampler
    for label, moves in (("with scale moves", True), ("without", False)):
        run.build_sampler = lambda post, config, moves=moves: gibbs.build(post, scale_moves=moves)
        try:
            cfg = run.SampleConfig(sampler="gibbs", chains=4, steps=steps, burnin=burnin, seed=0)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = run.sample(problem, spec, cfg, progress=False)
            wall = time.perf_counter() - t0
        finally:
            run.build_sampler = real
        run_time = 4 * (burnin + steps) / res.steps_per_second
        out[label] = dict(ess_min=res.ess_min, rhat_max=res.rhat_max, sweeps_per_second=res.steps_per_second / 4,
                          ess_per_second=res.ess_min / run_time, run_time=run_time, compile_time=res.compile_time,
                          wall=wall, scale_acceptance=res.acceptance_rate)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer sweeps and timing blocks")
    ap.add_argument("--blocks", type=int, default=5)
    args = ap.parse_args()
    cpu = pin_single_cpu()
    from smtheory.tasks import markov

    problem = markov.markov_problem(4, 100, 1000, seed=0, head_seed=0)
    calls = 5 if args.quick else 20
    gram = [gram_timing(problem, N, 2 if args.quick else args.blocks, calls) for N in (10, 100)]
    burnin, steps = (200, 600) if args.quick else (500, 3000)
    moves = moves_comparison(problem, 10, burnin, steps)
    env = environment()
    data = dict(cpu=cpu, environment=env, gram=gram, moves=dict(N=10, burnin=burnin, steps=steps, chains=4,
                                                                results=moves))
    name = "bench_gibbs_moves_quick" if args.quick else "bench_gibbs_moves"
    write_json(os.path.join(RESULTS, name + ".json"), data)
    w, wo = moves["with scale moves"], moves["without"]
    lines = [
        "# Gibbs sampler: scale moves and closed-form V0 Gram",
        "",
        f"4-path Markov task, P = 100, T = 0.01, single CPU {cpu}, commit `{env['git_commit']}`, "
        f"load average at start {env['load_average_at_start']}. Method: the script's docstring.",
        "",
        "## V0 block draw (sample space), closed-form Gram vs generic matrix-free Gram",
        "",
        "| N | closed form (ms) | generic (ms) | speed-up | max rel. difference |",
        "|---|---|---|---|---|",
    ]
    for g in gram:
        lines.append(f"| {g['N']} | {fmt(g['closed_form_ms'])} | {fmt(g['generic_ms'])} | {fmt(g['speedup'])}× | "
                     f"{g['max_rel_diff']:.1e} |")
    lines += [
        "",
        f"## Scale moves at N = 10 (4 chains, burn-in {burnin}, {steps} sweeps, same seed)",
        "",
        "| sweep | min ESS | max R-hat | sweeps/s per chain | min ESS / s | scale-move acceptance |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in moves.items():
        lines.append(f"| {label} | {fmt(r['ess_min'], '.0f')} | {fmt(r['rhat_max'], '.4f')} | "
                     f"{fmt(r['sweeps_per_second'], '.0f')} | {fmt(r['ess_per_second'], '.2f')} | "
                     f"{fmt(r['scale_acceptance'], '.3f') if label.startswith('with') else '—'} |")
    lines += ["", f"ESS per second ratio (with / without): **{w['ess_per_second'] / wo['ess_per_second']:.2f}×**.", ""]
    write_text(os.path.join(RESULTS, name + ".md"), "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
