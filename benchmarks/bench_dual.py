"""Benchmark: the overlap sampler's log density and the Rao-Blackwellised predictor in feature space versus P × P.

When ``r = rank(U_1) · N0 < P`` the energy ``ln det(T I + K) + Yᵀ(T I + K)⁻¹Y`` and the conditional predictor
can be computed from an ``r × r`` matrix (docs/theory.md §8.2, "Feature-space form"; :mod:`smtheory.dual_energy`).
Measured side by side in one process, one pinned core, on the digits task's shapes (heads (4, 4) → D = 16 paths,
P = 600 training and 1000 test sequences, N0 = 32, T = 0.1; random features of those shapes: the cost depends on
the shapes only), at N = 10 (layer 1 singular: rank(U_1) = 10, r = 320) and N = 10 000 (r = 512):

- **gradient**: ``jax.vmap(jax.value_and_grad(target.logdensity))`` over 4 chains (prior draws) of
  :func:`smtheory.sims.overlap.overlap_target` with ``route="dual"`` against ``route="pair"`` (the 136
  symmetrised pair blocks, 392 MiB, within a raised budget) and ``route="factored"``;
- **predictor**: :func:`smtheory.sims.rao_blackwell.conditional_moments` vmapped over 4 draws of U_1, in feature
  space against the P × P route from the features (the pair blocks do not fit its default budget).

Every function is compiled ahead of time (compilation excluded), the variants are interleaved in 5 rounds and the
best round's mean per call is reported (a shared VM: the minimum is the reproducible figure).  Agreement: the
largest difference of the log densities and the largest relative difference of the gradients / moments.
Not included: the one-off set-up (Gram matrix ``ΞᵀΞ``, pair blocks), the sampler's tree building.

Run: ``python3 benchmarks/bench_dual.py`` (≈ 3 minutes) → ``benchmarks/results/bench_dual.{json,md}``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _common import RESULTS, configure_threads, environment, machine_line, save_progress  # noqa: E402
from bench_spd_inverse import best_time  # noqa: E402

NAME = "bench_dual"
WIDTHS = (10, 10000)
HEADS, P, Q, N0, T, CHAINS = (4, 4), 600, 1000, 32, 0.1, 4


def _problem():
    import numpy as np
    import smtheory as smt

    rng = np.random.default_rng(0)
    layers = [smt.AttentionLayer(W=rng.standard_normal((h, N0, N0)) / N0, name=f"layer {i + 1}")
              for i, h in enumerate(HEADS)]
    x = rng.standard_normal((P + Q, N0, 5))
    y = np.sign(x[:, :, -1] @ rng.standard_normal(N0))
    y[y == 0] = 1.0
    return smt.KernelProblem.from_inputs(x[:P], y[:P], layers, x[P:], y[P:], readout="mean")


def _rel(a, b):
    import jax.numpy as jnp
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


def gradient_row(problem, N):
    import jax
    import smtheory as smt
    from smtheory.sims.overlap import overlap_target

    spec = smt.ModelSpec(heads=HEADS, widths=N, temperature=T, readout="mean")
    fns, outs, pos = [], [], None
    for route in ("dual", "pair", "factored"):
        target = overlap_target(problem, spec, route=route, memory_budget=2**31)
        if pos is None:
            pos = jax.vmap(target.init)(jax.random.split(jax.random.key(0), CHAINS))
        f = jax.jit(jax.vmap(jax.value_and_grad(target.logdensity))).lower(pos).compile()
        fns.append(f)
        outs.append(f(pos))
    t = best_time(fns, pos, calls=5, rounds=5)
    (vd, gd), rest = outs[0], outs[1:]
    return dict(N=N, dual=t[0], pair=t[1], factored=t[2], speedup_pair=t[1] / t[0], speedup_factored=t[2] / t[0],
                value_diff=max(float(abs(vd - v).max()) for v, _ in rest), grad_rel=max(_rel(gd, g) for _, g in rest))


def predictor_row(problem, N):
    import jax
    import jax.numpy as jnp
    import smtheory as smt
    from smtheory.sims import rao_blackwell as rb
    from smtheory.sims.overlap import overlap_target

    spec = smt.ModelSpec(heads=HEADS, widths=N, temperature=T, readout="mean")
    dual = rb.predictor_data(problem, spec)
    kernel = dual._replace(dual=None)
    target = overlap_target(problem, spec, likelihood=False)
    U = jax.vmap(lambda k: target.order_parameter(target.init(k)))(jax.random.split(jax.random.key(1), CHAINS))
    fns = [jax.jit(jax.vmap(lambda u, d=d: rb.conditional_moments(u, d))).lower(U).compile() for d in (dual, kernel)]
    a, b = fns[0](U), fns[1](U)
    t = best_time(fns, U, calls=5, rounds=5)
    return dict(N=N, dual=t[0], kernel=t[1], speedup=t[1] / t[0],
                moments_rel=max(_rel(a[k], b[k]) for k in ("f_mean", "f_var", "test_mse", "train_energy")),
                var_min=float(jnp.min(a["f_var"])))


def markdown(d):
    e = d["environment"]
    lines = ["# Feature-space (dual) log density and predictor vs P × P (smtheory.dual_energy)", "",
             f"Digits shapes: heads {HEADS} (D = 16), P = {P}, Q = {Q} test points, N0 = {N0}, T = {T}, float64, "
             f"{CHAINS} chains vectorised, one pinned core; compile excluded; best of 5 interleaved rounds (mean per "
             "call). Method: the script's docstring.", "", machine_line(e, d), "",
             "## Gradient of the overlap log density (4 chains)", "",
             "| N | r | dual [ms] | pair blocks [ms] | factored [ms] | ÷ pair | ÷ factored | max Δ log p | max rel. Δ grad |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in d["gradient"]:
        rank = min(r["N"], 16) * N0
        lines.append(f"| {r['N']} | {rank} | {r['dual'] * 1e3:.1f} | {r['pair'] * 1e3:.1f} | {r['factored'] * 1e3:.1f} | "
                     f"**{r['speedup_pair']:.1f}** | {r['speedup_factored']:.1f} | {r['value_diff']:.1e} | "
                     f"{r['grad_rel']:.1e} |")
    lines += ["", "## Rao-Blackwellised predictor (4 draws, 1000 test points)", "",
              "| N | dual [ms] | P × P from features [ms] | speed-up | max rel. Δ moments | min variance (dual) |",
              "|---:|---:|---:|---:|---:|---:|"]
    for r in d["predictor"]:
        lines.append(f"| {r['N']} | {r['dual'] * 1e3:.1f} | {r['kernel'] * 1e3:.1f} | **{r['speedup']:.2f}** | "
                     f"{r['moments_rel']:.1e} | {r['var_min']:.2e} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS))
    ap.add_argument("--out", default=RESULTS, help="results folder (default benchmarks/results)")
    args = ap.parse_args(argv)
    configure_threads("1")
    import smtheory as smt
    smt.enable_float64()
    t0, c0 = time.perf_counter(), time.process_time()
    data = dict(benchmark=NAME, config=dict(widths=args.widths, heads=HEADS, P=P, Q=Q, N0=N0, temperature=T,
                                            chains=CHAINS, dtype="float64", threads=1),
                environment=environment(), gradient=[], predictor=[])
    os.makedirs(args.out, exist_ok=True)
    problem = _problem()
    for N in args.widths:
        data["gradient"].append(gradient_row(problem, N))
        data["predictor"].append(predictor_row(problem, N))
        g, p = data["gradient"][-1], data["predictor"][-1]
        print(f"N = {N}: gradient {g['speedup_pair']:.1f}x pair, predictor {p['speedup']:.2f}x", flush=True)
        save_progress(data, args.out, NAME, t0, c0, markdown)
    print(markdown(data))


if __name__ == "__main__":
    main()
