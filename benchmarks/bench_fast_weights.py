"""Benchmark: path features through the fast-weight recurrence (O(T)) versus the attention-matrix form (O(T²)).

Model (docs/theory.md §1–2, docs/attention.md): P = 4 random bare inputs x [P, N0 = 16, T], two layers of
two qk-style heads (G = 8):
layer 1 causal linear attention with the ELU+1 feature map and column normalisation, layer 2 the delta rule
(DPFP-1 keys/queries, sum-normalised, β_t = sigmoid(b_h·x_t) from the bare input).  D = 4 paths,
last-token readout.

Two ways to the raw path features ξ [P, D, N0], measured side by side in one run:

matrix form
    ``smtheory.paths.path_features(x, smtheory.attention_matrices(x, layers))`` — the mixing matrices
    Ω [P, H, T, T] of the rules (closed form; the delta rule needs a T × T triangular solve), then
    the matrix products of docs/theory.md §2;
fast weights
    ``smtheory.fast_weight_paths.fast_weight_path_features(x, layers)`` — the bare input fed as values through
    each head's memory recurrence (``lax.scan``), never forming a T × T matrix.

For every T both are run once untimed (JIT compilation; its time is reported), then timed ``--repeats``
times; the best time is reported (the machine is shared).  At every T where both run, the relative
difference of the features must be ≤ 1e-9, otherwise the script stops.  The matrix form is run up to
``--max-matrix-T`` (its memory and T³ solve grow fast).  The process is pinned to one CPU
(``_common.pin_single_cpu``).

Run: ``python3 benchmarks/bench_fast_weights.py`` → ``benchmarks/results/bench_fast_weights.{json,md}``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import RESULTS, environment, fmt, load_average, pin_single_cpu, write_json, write_text  # noqa: E402

NAME = "bench_fast_weights"
TOL = 1e-9


def build(n0=16, g=8, heads=2, seed=0):
    import numpy as np
    from smtheory.attention import AttentionLayer

    rng = np.random.default_rng(seed)

    def proj():
        return rng.standard_normal((heads, g, n0)) / np.sqrt(n0)

    layers = [
        AttentionLayer(Q=proj(), K=proj(),
                       rule="linear", rule_options={"feature_map": "elu1", "causal": True}, name="layer 1"),
        AttentionLayer(Q=proj(), K=proj(),
                       rule="delta", rule_options={"feature_map": "dpfp", "nu": 1, "beta": "input",
                                                   "beta_weights": rng.standard_normal((heads, n0)) / np.sqrt(n0)},
                       name="layer 2"),
    ]
    return layers


def timed(fn, repeats):
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return out, first, best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, nargs="+", default=[64, 128, 256, 512, 1024, 2048, 4096])
    ap.add_argument("--max-matrix-T", type=int, default=1024)
    ap.add_argument("--n-examples", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    cpu = pin_single_cpu()
    import numpy as np
    from smtheory.attention import attention_matrices
    from smtheory.fast_weight_paths import fast_weight_path_features
    from smtheory.paths import path_features

    env = environment()
    env["pinned_cpu"] = cpu
    layers = build()
    rng = np.random.default_rng(1)
    rows = []
    for T in args.tokens:
        x = rng.standard_normal((args.n_examples, 16, T))
        xi_f, first_f, best_f = timed(lambda: fast_weight_path_features(x, layers, "last"), args.repeats)
        row = dict(T=T, fast_first_s=first_f, fast_best_s=best_f, matrix_first_s=None, matrix_best_s=None,
                   rel_diff=None, speedup=None)
        if T <= args.max_matrix_T:
            xi_m, first_m, best_m = timed(lambda: path_features(x, attention_matrices(x, layers), "last"),
                                          args.repeats)
            rel = float(np.max(np.abs(xi_f - xi_m)) / np.max(np.abs(xi_m)))
            if not rel <= TOL:
                raise SystemExit(f"T = {T}: fast-weight and matrix-form features differ by {rel:.2e} > {TOL}")
            row.update(matrix_first_s=first_m, matrix_best_s=best_m, rel_diff=rel, speedup=best_m / best_f)
        rows.append(row)
        print(f"T={T:5d}  fast {best_f * 1e3:9.2f} ms   matrix "
              f"{fmt(None if row['matrix_best_s'] is None else row['matrix_best_s'] * 1e3, '9.2f')} ms   "
              f"rel.diff {fmt(row['rel_diff'], '.1e')}", flush=True)
    # log-log slopes over the largest grid points
    def slope(key):
        pts = [(r["T"], r[key]) for r in rows if r[key]]
        if len(pts) < 2:
            return None
        (t0, a), (t1, b) = pts[-3] if len(pts) >= 3 else pts[0], pts[-1]
        return float(np.log(b / a) / np.log(t1 / t0))

    result = dict(name=NAME, config=vars(args), model=dict(N0=16, G=8, heads=[2, 2], layers=["linear elu1 causal",
                  "delta dpfp-1, input-dependent beta"], readout="last"), rows=rows,
                  slope_fast=slope("fast_best_s"), slope_matrix=slope("matrix_best_s"),
                  load_average_at_end=load_average(), environment=env)
    write_json(os.path.join(RESULTS, NAME + ".json"), result)
    lines = [f"# {NAME}", "",
             "Raw path features ξ [P, D, N0] of a 2-layer model (causal ELU+1 linear attention, then the delta rule "
             "with input-dependent β), P = 4, N0 = 16, G = 8, heads (2, 2); best of "
             f"{args.repeats} after one untimed (compiling) call; one pinned CPU.", "",
             "| T | fast weights [ms] | matrix form [ms] | matrix / fast | rel. diff | first call fast / matrix [s] |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['T']} | {r['fast_best_s'] * 1e3:.2f} | "
                     f"{'—' if r['matrix_best_s'] is None else format(r['matrix_best_s'] * 1e3, '.2f')} | "
                     f"{fmt(r['speedup'], '.2f')} | {fmt(r['rel_diff'], '.1e')} | "
                     f"{r['fast_first_s']:.2f} / {fmt(r['matrix_first_s'], '.2f')} |")
    lines += ["", f"Log-log slope of the time versus T over the largest measured points: fast weights "
              f"{fmt(result['slope_fast'], '.2f')}, matrix form {fmt(result['slope_matrix'], '.2f')}.", "",
              f"Machine: {env.get('cpu_model')}, jax {env.get('jax')}, load average at start "
              f"{env.get('load_average_at_start')}, at end {result['load_average_at_end']}.", ""]
    write_text(os.path.join(RESULTS, NAME + ".md"), "\n".join(lines))
    return result


if __name__ == "__main__":
    main()
