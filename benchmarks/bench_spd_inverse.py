"""Benchmark: the explicit inverse of ``T I + K`` by matrix products versus LAPACK (smtheory.spd_inverse).

Every gradient of the overlap sampler (and of :func:`smtheory.pair_energy.pair_energy`) needs the Cholesky
factor of the ``P × P`` matrix ``A = T I + K`` and its explicit inverse ``G`` (docs/theory.md §3, §8.2); the
Rao-Blackwellised predictor needs ``L⁻¹``.  Two ways, measured side by side in one process, one pinned core:

- **LAPACK**: ``jax.lax.linalg.cholesky`` then ``jax.scipy.linalg.cho_solve((L, True), I)`` (two triangular
  solves with ``P`` right-hand sides) — what the package did before;
- **recursive**: :func:`smtheory.spd_inverse.spd_inverse` with the recursion forced at every size
  (``direct_max`` above the size), LAPACK only on blocks ≤ :data:`smtheory.spd_inverse.LEAF` rows.

Also ``L⁻¹`` alone (the predictor's need): LAPACK triangular solve with the identity versus
:func:`~smtheory.spd_inverse.cholesky_and_inverse`.  Per size: a fixed SPD matrix ``X Xᵀ/P + T I``
(``X`` [P, 3P] standard normal, T = 0.01, float64), both variants compiled ahead of time (compilation
excluded), interleaved in 7 rounds; the best round's mean per call is reported (the machine is a shared VM:
the minimum is the reproducible figure).  Accuracy: ``max |G A − I|`` for both.  The size up to which the
recursion wins sets :data:`smtheory.spd_inverse.DIRECT_MAX`.

Run: ``python3 benchmarks/bench_spd_inverse.py`` (≈ 2 minutes) → ``benchmarks/results/bench_spd_inverse.{json,md}``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _common import RESULTS, configure_threads, environment, fmt, machine_line, save_progress  # noqa: E402

NAME = "bench_spd_inverse"
SIZES = (50, 100, 150, 200, 300, 400, 600, 1000, 2000)


def best_time(fns, x, calls, rounds=7):
    """Best-of-``rounds`` mean seconds per call of each compiled function in ``fns`` (interleaved)."""
    import jax
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, f in enumerate(fns):
            t0 = time.perf_counter()
            for _ in range(calls):
                r = f(x)
            jax.block_until_ready(r)
            best[i] = min(best[i], (time.perf_counter() - t0) / calls)
    return best


def measure(P, seed=0):
    import jax
    import jax.numpy as jnp
    import numpy as np
    from smtheory.spd_inverse import cholesky_and_inverse, spd_inverse

    X = np.random.default_rng(seed).standard_normal((P, 3 * P))
    A = jnp.asarray(X @ X.T / P + 0.01 * np.eye(P))
    eye = jnp.eye(P)

    def lapack_inv(a):
        L = jax.lax.linalg.cholesky(a, symmetrize_input=False)
        return L, jax.scipy.linalg.cho_solve((L, True), eye)

    def lapack_linv(a):
        L = jax.lax.linalg.cholesky(a, symmetrize_input=False)
        return L, jax.scipy.linalg.solve_triangular(L, eye, lower=True)

    fns = [jax.jit(f).lower(A).compile() for f in
           (lapack_inv, lambda a: spd_inverse(a, direct_max=P), lapack_linv,
            lambda a: cholesky_and_inverse(a, direct_max=P))]
    calls = max(3, int(2e7 / P**3))
    t = best_time(fns, A, calls)
    err = [float(jnp.max(jnp.abs(f(A)[1] @ A - eye))) for f in fns[:2]]
    err_l = [float(jnp.max(jnp.abs(f(A)[1] @ f(A)[0] - eye))) for f in fns[2:]]
    return dict(P=P, calls=calls, lapack_inverse=t[0], recursive_inverse=t[1], lapack_linv=t[2],
                recursive_linv=t[3], speedup_inverse=t[0] / t[1], speedup_linv=t[2] / t[3],
                err_lapack=err[0], err_recursive=err[1], err_linv_lapack=err_l[0], err_linv_recursive=err_l[1])


def markdown(d):
    e = d["environment"]
    lines = ["# Explicit SPD inverse: matrix-product recursion vs LAPACK (smtheory.spd_inverse)", "",
             "A = X Xᵀ/P + 0.01 I (X [P, 3P] standard normal), float64, one pinned core; compile excluded; best of 7 "
             "interleaved rounds (mean per call). Inverse: Cholesky + explicit inverse; L⁻¹: Cholesky + inverse "
             "factor. Method: the script's docstring.", "", machine_line(e, d), "",
             "| P | inverse LAPACK [µs] | inverse recursive [µs] | speed-up | L⁻¹ LAPACK [µs] | L⁻¹ recursive [µs] | "
             "speed-up | max abs(GA − I) LAPACK / recursive |",
             "|---:|---:|---:|---:|---:|---:|---:|:---|"]
    for r in d["rows"]:
        lines.append(f"| {r['P']} | {r['lapack_inverse'] * 1e6:.1f} | {r['recursive_inverse'] * 1e6:.1f} | "
                     f"**{r['speedup_inverse']:.2f}** | {r['lapack_linv'] * 1e6:.1f} | {r['recursive_linv'] * 1e6:.1f} | "
                     f"{r['speedup_linv']:.2f} | {fmt(r['err_lapack'], '.1e')} / {fmt(r['err_recursive'], '.1e')} |")
    if d.get("direct_max") is not None:
        lines += ["", f"`smtheory.spd_inverse.DIRECT_MAX` = {d['direct_max']}: the recursion is used up to that size."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--out", default=RESULTS, help="results folder (default benchmarks/results)")
    args = ap.parse_args(argv)
    configure_threads("1")
    import jax
    jax.config.update("jax_enable_x64", True)
    from smtheory.spd_inverse import DIRECT_MAX
    t0, c0 = time.perf_counter(), time.process_time()
    data = dict(benchmark=NAME, config=dict(sizes=args.sizes, temperature=0.01, dtype="float64", threads=1),
                environment=environment(), rows=[], direct_max=DIRECT_MAX)
    os.makedirs(args.out, exist_ok=True)
    for P in args.sizes:
        data["rows"].append(measure(P))
        r = data["rows"][-1]
        print(f"P = {P}: inverse {r['speedup_inverse']:.2f}x, L^-1 {r['speedup_linv']:.2f}x", flush=True)
        save_progress(data, args.out, NAME, t0, c0, markdown)
    print(markdown(data))


if __name__ == "__main__":
    main()
