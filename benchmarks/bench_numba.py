"""Benchmark: does numba earn its place?  NumPy versus numba where numba could help (issue 15).

``numba`` (≈190 MB installed with llvmlite) was on the design's dependency list but imported nowhere.  The two
candidates of the issue, each measured NumPy versus numba in the same run:

(a) the path-feature pipeline on large test sets (docs/theory.md §1–2): bare inputs x [P, N0 = 231, T = 31] of the
    4-path Markov network (docs/theory.md §5: two w-style softmax layers of two heads, last-token readout) → the
    raw path features ξ [P, D = 4, N0].
    NumPy: ``smtheory.paths.path_features(x, smtheory.attention.attention_matrices(x, layers))``, exactly
    what ``KernelProblem.from_inputs`` runs per block of 4096 test inputs.
    numba: :func:`numba_kernel` below, one fused ``prange``-parallel kernel over inputs: per input, the
    scores ``x_sᵀ W x_t`` of every head (BLAS for ``W x``), the softmax over keys, the path codes and
    ``ξ = Σ_s c_s x_s`` — no [P, H, T, T] intermediate, only per-thread scratch of a few kB.
    Both stream over the inputs in blocks of ``--block`` (4096) and write into one preallocated
    ξ [10⁵, D, N0] (740 MB).  The numba features must equal NumPy's to 1e-12 (relative), or the script stops.
(b) the hidden-Markov sequence generator ``MarkovTask.sample`` (``smtheory/tasks/markov.py``): it has no
    Python loop over time steps (the chains are a vectorised cumulative sum).  Its time is dominated by the
    NumPy random draws, which any reimplementation must keep to return the same numbers, so the measured
    bound ``time(sample) / time(its standard-normal draws)`` is the largest speed-up numba could give.

What each number includes: *compilation* — numba's import and its first call on 2 inputs (the kernel's JIT
compilation, ``cache=False``) — is reported separately and excluded from every steady-state time; *start-up*
(interpreter, imports) is excluded; *data* — the inputs are generated once (one block, streamed
``ceil(n / block)`` times: the pipeline does not care that inputs repeat) and their generation is not timed.
Steady state: per block of ``--block`` inputs, NumPy and numba interleaved ``--repeats`` times in one worker
process (best and median wall and CPU time), with 1 thread (pinned to one CPU; decisive: the ratio does not
depend on how busy the other core is) and with 2 threads (both CPUs: OpenBLAS threads for NumPy, ``prange``
threads for numba, whose per-input BLAS calls are then single-threaded).  Peak memory of the 10⁵-input stream:
one worker process per variant (1 thread), the high-water mark of its resident memory (``VmHWM``, reset
through ``/proc/self/clear_refs`` after set-up and compilation) minus its resident memory just before the
stream, i.e. the pipeline's temporaries (ξ and the input block are allocated and touched before).

Decision rule (issue 15): keep numba as an optional accelerator only if it is ≥ 3× faster on a realistic size;
otherwise drop it from the dependencies.  The verdict is written to the results.

Run: ``python3 benchmarks/bench_numba.py`` (≈ 5 minutes on 2 cores; ``--quick``: 16384 inputs, blocks of 2048)
→ ``benchmarks/results/bench_numba.{json,md}``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _common import RESULTS, environment, fmt, machine_line, save_progress  # noqa: E402

NAME = "bench_numba"
KEEP_RATIO = 3.0
TOL = 1e-12


# ----------------------------------------------------------------------------- the numba candidate (a)


def numba_kernel():
    """The fused numba kernel ``kernel(x, W, heads, r, out)`` (compiled at its first call).

    ``x`` [P, N0, T] C-contiguous; ``W`` [ΣH, N0, N0] the w-style softmax heads of every layer, stacked;
    ``heads`` [L] int64; ``r`` [T] the readout; writes ξ [P, D, N0] into ``out`` (paths h_1 most significant,
    as :func:`smtheory.paths.path_features`).  Defined in a function so that this file imports without numba.
    """
    import numba as nb
    import numpy as np

    @nb.njit(cache=False)
    def softmax_scores(xp, xpT, Wh, om):  # om[s, t] = softmax over keys s of x_sᵀ W x_t (docs/theory.md §1)
        s = np.dot(xpT, np.dot(Wh, xp))
        T = s.shape[0]
        for t in range(T):
            m = s[0, t]
            for k in range(1, T):
                m = max(m, s[k, t])
            tot = 0.0
            for k in range(T):
                e = np.exp(s[k, t] - m)
                om[k, t] = e
                tot += e
            for k in range(T):
                om[k, t] = om[k, t] / tot

    @nb.njit(cache=False)
    def path_codes(om, heads, r):  # v[π, s] = (Ω^{1,h1} ⋯ Ω^{L,hL} r)_s, contracted from the top (docs/theory.md §2)
        L, T = heads.shape[0], r.shape[0]
        off = om.shape[0] - heads[L - 1]
        v = np.zeros((heads[L - 1], T))
        for h in range(heads[L - 1]):
            v[h] = np.dot(om[off + h], r)
        for layer in range(L - 2, -1, -1):
            off -= heads[layer]
            K = v.shape[0]
            nv = np.empty((heads[layer] * K, T))
            for h in range(heads[layer]):
                for k in range(K):
                    nv[h * K + k] = np.dot(om[off + h], v[k])
            v = nv
        return v

    @nb.njit(parallel=True, cache=False)
    def kernel(x, W, heads, r, out):
        P, N0, T = x.shape
        for p in nb.prange(P):
            xp = np.ascontiguousarray(x[p])
            xpT = np.ascontiguousarray(xp.T)
            om = np.empty((W.shape[0], T, T))
            for h in range(W.shape[0]):
                softmax_scores(xp, xpT, W[h], om[h])
            out[p] = np.dot(path_codes(om, heads, r), xpT)  # ξ[π] = Σ_s c^π_s x_s

    return kernel


# ----------------------------------------------------------------------------- worker side


def _setup(block, seed=1):
    """The Markov network's layers and one block of inputs (generated once, not timed)."""
    import numpy as np

    import smtheory
    from smtheory.attention_primitives import readout_vector
    from smtheory.tasks import markov

    smtheory.enable_float64()
    layers = markov.network_layers(4, seed=0)
    x, _, _ = markov.task_for(4).sample(block // 2, seed=seed)
    W = np.ascontiguousarray(np.concatenate([layer.W for layer in layers]))
    heads = np.array([layer.n_heads for layer in layers], dtype=np.int64)
    return layers, x, (W, heads, readout_vector(x.shape[2], "last"))


def _variants(layers, packed, threads):
    """``{"numpy": f, "numba": f}``, each ``f(x, out)`` writing ξ of ``x`` into ``out``; the numba compile time."""
    from threadpoolctl import threadpool_limits

    from smtheory.attention import attention_matrices
    from smtheory.paths import path_features

    t0 = time.perf_counter()
    import numba
    import_s = time.perf_counter() - t0
    numba.set_num_threads(threads)
    kernel = numba_kernel()

    def numpy_f(x, out):
        out[...] = path_features(x, attention_matrices(x, layers), "last")

    def numba_f(x, out):
        with threadpool_limits(1):  # one BLAS thread per prange thread
            kernel(x, *packed, out)

    return dict(numpy=numpy_f, numba=numba_f), import_s


def _compile(fns, x):
    """Time numba's first call on 2 inputs (JIT compilation) minus a second call."""
    import numpy as np

    out = np.empty((2, 4, x.shape[1]))
    t0 = time.perf_counter()
    fns["numba"](x[:2], out)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    fns["numba"](x[:2], out)
    return first - (time.perf_counter() - t0)


def _clock(fn, *args):
    w, c = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - w, time.process_time() - c


def _stats(times):
    import numpy as np

    wall, cpu = np.array(times).T
    return dict(wall_best_s=float(wall.min()), wall_median_s=float(np.median(wall)),
                cpu_best_s=float(cpu.min()), cpu_median_s=float(np.median(cpu)), wall_all_s=wall.tolist())


def worker_block(args):
    """Interleaved steady-state timing of both variants on one block; agreement; the generator split (b)."""
    import numpy as np

    layers, x, packed = _setup(args.block)
    fns, import_s = _variants(layers, packed, args.threads)
    compile_s = _compile(fns, x)
    outs = {k: np.zeros((x.shape[0], 4, x.shape[1])) for k in fns}
    times = {k: [] for k in fns}
    for i in range(args.repeats):
        for k in (("numpy", "numba") if i % 2 == 0 else ("numba", "numpy")):
            times[k].append(_clock(fns[k], x, outs[k]))
    rel = float(np.max(np.abs(outs["numba"] - outs["numpy"])) / np.max(np.abs(outs["numpy"])))
    res = dict(threads=args.threads, block=args.block, numba_import_s=import_s, numba_compile_s=compile_s,
               rel_diff=rel, numpy=_stats(times["numpy"]), numba=_stats(times["numba"]))
    if args.threads == 1:
        res["generator"] = _generator(args.block)
    return res


def _generator(block, repeats=3):
    """(b): ``MarkovTask.sample`` of one block versus its standard-normal draws alone (same shapes)."""
    import numpy as np

    from smtheory.tasks import markov

    task = markov.task_for(4)
    sample, draws = [], []
    for _ in range(repeats):
        sample.append(_clock(task.sample, block // 2, 1))
        rng = np.random.default_rng(1)
        draws.append(_clock(rng.standard_normal, (block, markov.FEATURES, markov.STEPS)))
    s, d = _stats(sample), _stats(draws)
    return dict(sample=s, normal_draws=d, bound=s["cpu_best_s"] / d["cpu_best_s"])


def _memory_kib(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def worker_stream(args):
    """One variant over ``--n-inputs`` inputs in blocks: total time, per-block times, peak extra memory."""
    import numpy as np

    layers, x, packed = _setup(args.block)
    fns, _ = _variants(layers, packed, args.threads)
    if args.variant == "numba":
        _compile(fns, x)
    fn = fns[args.variant]
    out = np.zeros((args.n_inputs, 4, x.shape[1]))
    out[...] = 1.0  # touch every page before the baseline
    reset = _reset_peak()
    base = _memory_kib("VmRSS")
    blocks = []
    w, c = time.perf_counter(), time.process_time()
    for start in range(0, args.n_inputs, args.block):
        n = min(args.block, args.n_inputs - start)
        blocks.append(_clock(fn, x[:n], out[start:start + n]))
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    peak = _memory_kib("VmHWM")
    return dict(variant=args.variant, threads=args.threads, n_inputs=args.n_inputs, block=args.block,
                wall_s=wall, cpu_s=cpu, per_input_ms=1e3 * wall / args.n_inputs, blocks=_stats(blocks[1:] or blocks),
                rss_before_MiB=base / 1024, peak_extra_MiB=(peak - base) / 1024 if reset else None,
                output_MiB=out.nbytes / 2**20, input_block_MiB=x.nbytes / 2**20, checksum=float(out[::997].sum()))


def run_worker(args):
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, set(cpus[-args.threads:]))
    res = worker_block(args) if args.worker == "block" else worker_stream(args)
    res["cpus"] = sorted(os.sched_getaffinity(0))
    print("RESULT " + json.dumps(res), flush=True)


# ----------------------------------------------------------------------------- parent side


def spawn(args, worker, threads, variant=None):
    """Run one worker process with ``threads`` BLAS / numba threads (set before NumPy is imported)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads), JAX_PLATFORMS="cpu")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", worker, "--threads", str(threads),
           "--block", str(args.block), "--n-inputs", str(args.n_inputs), "--repeats", str(args.repeats)]
    if variant:
        cmd += ["--variant", variant]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"worker {worker} ({threads} threads, {variant}) failed:\n{out.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def flop_share_wx(n0=231, tokens=31, n_paths=4):
    """Share of the pipeline's floating-point operations in the products ``W x`` (per head ``2 N0² T``).

    The rest: scores ``x_sᵀ (W x_t)`` (``2 T² N0``), softmax (≈ ``4 T²``) per head, and ``ξ = Σ_s c_s x_s``
    (``2 D T N0``) per input; the path codes are negligible.
    """
    per_head_wx, per_head_rest = 2 * n0 * n0 * tokens, 2 * tokens * tokens * n0 + 4 * tokens * tokens
    heads = 4  # two layers of two heads
    total = heads * (per_head_wx + per_head_rest) + 2 * n_paths * tokens * n0
    return heads * per_head_wx / total


def verdict(data):
    """The decision of issue 15: keep numba only if ≥ KEEP_RATIO× faster single-threaded, per block and on the
    10⁵-input stream (where measured).  CPU time decides: the two stream processes run one after the other, so
    their wall times also measure how busy the shared machine was at the time."""
    one = next((r for r in data.get("block", []) if r["threads"] == 1), None)
    if one is None:
        return None
    ratio = one["numpy"]["cpu_best_s"] / one["numba"]["cpu_best_s"]
    by_variant = {s["variant"]: s for s in data.get("stream", [])}
    both = {"numpy", "numba"} <= set(by_variant)
    stream = by_variant["numpy"]["cpu_s"] / by_variant["numba"]["cpu_s"] if both else None
    stream_wall = by_variant["numpy"]["wall_s"] / by_variant["numba"]["wall_s"] if both else None
    keep = ratio >= KEEP_RATIO and (stream is None or stream >= KEEP_RATIO)
    return dict(ratio_1_thread_cpu=ratio, stream_ratio_cpu=stream, stream_ratio_wall=stream_wall,
                stream_inputs=data["config"]["n_inputs"],
                generator_bound=one["generator"]["bound"],
                ratios_wall=[r["numpy"]["wall_best_s"] / r["numba"]["wall_best_s"] for r in data["block"]],
                flop_share_wx=flop_share_wx(), keep=bool(keep), threshold=KEEP_RATIO)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-inputs", type=int, default=100_000)
    ap.add_argument("--block", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="16384 inputs, blocks of 2048, 3 repeats")
    ap.add_argument("--worker", choices=["block", "stream"], help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--variant", choices=["numpy", "numba"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return run_worker(args)
    if args.quick:
        args.n_inputs, args.block, args.repeats = 16384, 2048, 3
    name = NAME + ("_quick" if args.quick else "")
    t_start, cpu_start = time.perf_counter(), time.process_time()
    data = dict(name=name, config=dict(n_inputs=args.n_inputs, block=args.block, repeats=args.repeats),
                model=dict(task="markov", paths=4, heads=[2, 2], N0=231, T=31, style="w", rule="softmax",
                           readout="last"),
                install_MiB=install_sizes(), environment=environment(), block=[], stream=[])
    for threads in (1, 2):
        row = spawn(args, "block", threads)
        if not row["rel_diff"] <= TOL:
            raise SystemExit(f"numba and NumPy features differ by {row['rel_diff']:.2e} > {TOL}")
        data["block"].append(row)
        data["verdict"] = verdict(data)
        save_progress(data, RESULTS, name, t_start, cpu_start, markdown)
    for variant in ("numpy", "numba"):
        data["stream"].append(spawn(args, "stream", 1, variant))
        data["verdict"] = verdict(data)
        save_progress(data, RESULTS, name, t_start, cpu_start, markdown)
    print(markdown(data))
    return data


def install_sizes():
    """Installed size (MiB) of numba and llvmlite, from their wheels' file records (None if absent)."""
    from importlib import metadata

    out = {}
    for dist in ("numba", "llvmlite"):
        try:
            out[dist] = sum(f.size or 0 for f in metadata.files(dist) or []) / 2**20
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


# ----------------------------------------------------------------------------- report


def markdown(d):
    n, b = d["config"]["n_inputs"], d["config"]["block"]
    lines = [f"# {d['name']}: does numba earn its place?", "",
             "(a) Raw path features ξ [P, 4, 231] of the 4-path Markov network (docs/theory.md §5; two w-style softmax "
             "layers of two heads, N0 = 231, T = 31), from the bare inputs: NumPy "
             "(`path_features(x, attention_matrices(x, layers))`, what `KernelProblem.from_inputs` runs) versus a "
             "fused `prange` numba kernel (`numba_kernel` in `benchmarks/bench_numba.py`). Per block of "
             f"{b} inputs, interleaved, best of {d['config']['repeats']}; compilation excluded (below); inputs "
             "generated once, not timed.", "",
             "| threads | NumPy wall [s] | numba wall [s] | NumPy / numba (wall) | NumPy CPU [s] | numba CPU [s] | "
             "NumPy / numba (CPU) | rel. diff |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in d["block"]:
        a, c = r["numpy"], r["numba"]
        lines.append(f"| {r['threads']} | {fmt(a['wall_best_s'])} | {fmt(c['wall_best_s'])} | "
                     f"**{a['wall_best_s'] / c['wall_best_s']:.2f}** | {fmt(a['cpu_best_s'])} | {fmt(c['cpu_best_s'])} "
                     f"| {a['cpu_best_s'] / c['cpu_best_s']:.2f} | {r['rel_diff']:.1e} |")
    if d["block"]:
        r = d["block"][0]
        lines += ["", f"Compilation (reported apart): `import numba` {r['numba_import_s']:.2f} s, the kernel's first "
                  f"call (JIT) {r['numba_compile_s']:.1f} s, in every new process (`cache=False`)."]
    lines += _stream_lines(d, n, b) + _generator_lines(d) + _verdict_lines(d)
    sizes = d.get("install_MiB", {})
    lines += ["", f"Installed size: numba {fmt(sizes.get('numba'), '.0f')} MiB + llvmlite "
              f"{fmt(sizes.get('llvmlite'), '.0f')} MiB.", "",
              machine_line(d["environment"], d), f"Total benchmark wall time {fmt(d.get('wall_time'), '.0f')} s.", ""]
    return "\n".join(lines)


def _stream_lines(d, n, b):
    if not d["stream"]:
        return []
    lines = ["", f"Streaming {n} inputs in blocks of {b} into one preallocated ξ ({fmt(d['stream'][0]['output_MiB'], '.0f')}"
             f" MiB; input block {fmt(d['stream'][0]['input_block_MiB'], '.0f')} MiB), 1 thread, one process per "
             "variant: peak extra memory = high-water mark of resident memory minus resident memory before the "
             "stream (the pipeline's temporaries).", "",
             "| variant | total wall [s] | total CPU [s] | per input [ms] | median block [s] | peak extra memory [MiB] |",
             "|---|---:|---:|---:|---:|---:|"]
    for s in d["stream"]:
        lines.append(f"| {s['variant']} | {fmt(s['wall_s'])} | {fmt(s['cpu_s'])} | {fmt(s['per_input_ms'])} | "
                     f"{fmt(s['blocks']['wall_median_s'])} | {fmt(s['peak_extra_MiB'], '.0f')} |")
    v = d.get("verdict") or {}
    if v.get("stream_ratio_cpu") is not None:
        lines += ["", f"NumPy / numba on the stream: **{v['stream_ratio_cpu']:.2f}** in CPU time, "
                  f"{v['stream_ratio_wall']:.2f} in wall time. The two processes ran one after the other on a shared "
                  "machine, so a wall time that exceeds its CPU time counts waiting for the CPU, not the pipeline; "
                  "the CPU-time ratio is the comparison."]
    return lines


def _generator_lines(d):
    g = next((r.get("generator") for r in d["block"] if r.get("generator")), None)
    if g is None:
        return []
    return ["", f"(b) `MarkovTask.sample` of {d['config']['block']} sequences: {fmt(g['sample']['cpu_best_s'])} s CPU, "
            f"of which its standard-normal draws alone take {fmt(g['normal_draws']['cpu_best_s'])} s. A numba "
            "version must make the same draws to return the same numbers, so it can be at most "
            f"**{g['bound']:.2f}×** faster (it has no Python loop over time steps to remove)."]


def _verdict_lines(d):
    v = d.get("verdict")
    if not v:
        return []
    stream = ("" if v["stream_ratio_cpu"] is None else
              f", {v['stream_ratio_cpu']:.2f}× on the {v['stream_inputs']}-input stream (CPU time)")
    measured = (f"{v['ratio_1_thread_cpu']:.2f}× faster single-threaded (CPU time per block){stream}, "
                f"{' / '.join(f'{x:.2f}×' for x in v['ratios_wall'])} per block in wall time with 1 / 2 threads")
    if v["keep"]:
        return ["", f"**Verdict: numba kept as an optional accelerator** (extra `fast`): on the path features it is "
                f"{measured}."]
    return ["", f"**Verdict: numba dropped from the dependencies.** On the path features it is {measured} — below "
            f"the {v['threshold']:g}× the issue asks for: {100 * v['flop_share_wx']:.0f}% of the flops are the "
            "products W x, which NumPy already hands to BLAS as large GEMMs, so fusing the rest cannot win much; "
            f"the generator (b) is bounded at {v['generator_bound']:.2f}×. Not worth ≈ {_mib(d)} MiB of dependency "
            f"and a JIT compilation in every new process.{_memory_note(d)}"]


def _memory_note(d):
    mem = {s["variant"]: s["peak_extra_MiB"] for s in d["stream"]}
    if mem.get("numpy") is None or mem.get("numba") is None:
        return ""
    return (f" numba's one clear gain, {mem['numpy'] - mem['numba']:.0f} MiB fewer temporaries, does not need it "
            f"either: NumPy's temporaries are bounded by the block size ({d['config']['block']} inputs), not by "
            "the number of inputs.")


def _mib(d):
    sizes = [v for v in d.get("install_MiB", {}).values() if v]
    return f"{math.fsum(sizes):.0f}" if sizes else "190"


if __name__ == "__main__":
    main()
