"""Benchmark: a 64-point theory sweep on 1 versus 2 local Dask workers, and the per-task overhead of Dask.

Grid (docs/theory.md §5, 4-path Markov network): P = 60 training and 200 test sequences, 8 widths N = 10..1000,
2 temperatures, 4 data seeds = 64 theory points in 8 tasks (one warm-started chain along N per (T, seed)).
Each configuration runs on its own local cluster (``LocalCluster(processes=True, threads_per_worker=1)``)
whose workers are pinned to distinct CPUs (so "1 worker" really uses one core), reached through its
scheduler address exactly as ``smtheory sweep --scheduler ADDRESS`` does; the JAX code is compiled on every
worker before the clock starts (``client.run``), so the ratio measures the sweep, not compilation.  The
in-process run (``--workers 1`` default, no Dask) is timed the same way for reference; the three are
interleaved ``REPEATS`` times and the fastest of each is reported.

Overhead per task: the round trip of an empty task (submit → result, one at a time), the throughput of
500 empty tasks submitted at once, and the difference between the 1-worker Dask sweep and the in-process
sweep divided by the number of tasks.

    python3 benchmarks/bench_sweep.py            # writes benchmarks/results/bench_sweep.{json,md}
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _common import RESULTS, configure_threads, environment, extra_versions, fmt, load_average, write_json, write_text  # noqa: E402,E501

CONFIG = {
    "sweep": {"name": "bench", "n_test": 500, "continuation": "N"},
    "grid": {"N": [10, 20, 30, 50, 100, 200, 500, 1000], "T": [0.01, 0.1], "P": [100], "heads": [[2, 2]],
             "seed": [0, 1, 2, 3, 4, 5, 6, 7]},
}
WARMUP = {"sweep": {"name": "warmup", "n_test": 500}, "grid": {"N": [10, 1000], "P": [100], "seed": [99]}}
REPEATS = 2


def _noop(i):
    return i


def _pin_all_threads(cpu):
    """Pin every thread of this process to one CPU (threads created later inherit it)."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), {cpu})
        except OSError:
            pass
    return cpu


def _warm():
    from smtheory.validation import sweep

    cfg = sweep.parse_config(WARMUP)
    for task in sweep.make_tasks(cfg):
        sweep.run_task(task)
    return os.getpid()


def _inprocess(cfg):
    from smtheory.validation import sweep

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        ds = sweep.run_sweep(cfg, d, progress=False)
        return time.perf_counter() - t0, int((ds.converged == 1).sum())


def _inprocess_on_worker(raw):
    """The in-process sweep (no Dask scheduling) run inside a pinned worker process: same CPU, same JIT cache."""
    from smtheory.validation import sweep

    return _inprocess(sweep.parse_config(raw))


def _start(n_workers, first_cpu):
    """A local cluster of single-threaded workers pinned to distinct CPUs, compiled and timed."""
    import numpy as np
    from dask.distributed import Client, LocalCluster

    cpus = sorted(os.sched_getaffinity(0))
    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(cluster.scheduler_address)
    start_s = time.perf_counter() - t0
    addrs = sorted(client.scheduler_info()["workers"])
    for i, a in enumerate(addrs):
        client.run(_pin_all_threads, cpus[(first_cpu + i) % len(cpus)], workers=[a])
    t0 = time.perf_counter()
    client.run(_warm)
    warm_s = time.perf_counter() - t0
    client.submit(_noop, -1, pure=False).result()
    lat = []
    for i in range(50):
        t0 = time.perf_counter()
        client.submit(_noop, i, pure=False).result()
        lat.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    client.gather(client.map(_noop, range(500), pure=False))
    burst = (time.perf_counter() - t0) / 500
    t0 = time.perf_counter()
    Client(cluster.scheduler_address).close()
    connect_s = time.perf_counter() - t0
    info = dict(workers=n_workers, cluster_start_s=start_s, warmup_compile_s=warm_s, client_connect_close_s=connect_s,
                empty_task_round_trip_ms=dict(median=1e3 * float(np.median(lat)), min=1e3 * float(np.min(lat))),
                empty_task_burst_ms_per_task=1e3 * burst, sweep_wall_s_all=[])
    return cluster, client, info


def _cluster_sweep(cfg, cluster, info):
    from smtheory.validation import sweep

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        ds = sweep.run_sweep(cfg, d, scheduler=cluster.scheduler_address, progress=False)
        info["sweep_wall_s_all"].append(time.perf_counter() - t0)
    info["sweep_wall_s"] = min(info["sweep_wall_s_all"])
    info["converged"] = int((ds.converged == 1).sum())
    info["points"] = int(ds.attrs["theory_points"])


def main():
    threads = configure_threads("1", pin=False)  # before JAX: the spawned workers inherit the environment
    from smtheory.validation import sweep

    cfg = sweep.parse_config(CONFIG)
    n_tasks = len(sweep.make_tasks(cfg))
    load0 = load_average()
    _warm()  # this process, for the in-process reference
    c1, cl1, r1 = _start(1, 0)
    c2, cl2, r2 = _start(2, 0)
    runs = [r1, r2]
    t_in_all, t_pin_all = [], []
    try:
        for _ in range(REPEATS):  # interleaved, so that a change of load hits every configuration
            _cluster_sweep(cfg, c1, r1)
            _cluster_sweep(cfg, c2, r2)
            t_in, conv_in = _inprocess(cfg)
            t_in_all.append(t_in)
            (t_w, _), = cl1.run(_inprocess_on_worker, CONFIG).values()
            t_pin_all.append(t_w)
    finally:
        for cl, c in ((cl1, c1), (cl2, c2)):
            cl.close()
            c.close()
    t_in = min(t_in_all)
    t_pin = min(t_pin_all)
    ratio = r1["sweep_wall_s"] / r2["sweep_wall_s"]
    result = dict(
        benchmark=f"sweep of {cfg.n_theory_points} theory points: 1 vs 2 local Dask workers", config=CONFIG, theory_points=cfg.n_theory_points,
        tasks=n_tasks, runs=runs, in_process=dict(sweep_wall_s=t_in, sweep_wall_s_all=t_in_all, converged=conv_in,
                        note="driver process, not pinned: XLA's intra-op pool uses both cores"),
        in_process_pinned=dict(sweep_wall_s=t_pin, sweep_wall_s_all=t_pin_all,
                               note="run inside the pinned 1-worker process without Dask scheduling"),
        repeats=REPEATS,
        scaling_ratio_1_over_2=ratio, parallel_efficiency=ratio / 2,
        dask_overhead_per_task_s=(r1["sweep_wall_s"] - t_pin - r1["client_connect_close_s"]) / n_tasks,
        load_average_before=load0, load_average_after=load_average(), threads=threads,
        environment=environment(), versions=extra_versions(("dask", "distributed", "xarray", "h5netcdf")),
    )
    write_json(os.path.join(RESULTS, "bench_sweep.json"), result)
    lines = [
        f"# Sweep benchmark: {cfg.n_theory_points} theory points on 1 vs 2 local Dask workers", "",
        f"Markov 4-path network (docs/theory.md §5), P = 100, 500 test sequences, N = {CONFIG['grid']['N']}, "
        f"T = {CONFIG['grid']['T']}, seeds = {CONFIG['grid']['seed']}: {cfg.n_theory_points} points in {n_tasks} "
        "tasks (chains along N). Workers single-threaded and pinned to distinct CPUs; JAX compiled on every "
        f"worker before timing; fastest of {REPEATS} interleaved repeats.", "",
        "| run | sweep wall [s] | converged | cluster start [s] | compile warm-up [s] | empty task round trip "
        "[ms] (median) | 500 empty tasks [ms/task] |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(f"| {r['workers']} Dask worker(s) | {fmt(r['sweep_wall_s'])} | {r['converged']}/{r['points']} | "
                     f"{fmt(r['cluster_start_s'])} | {fmt(r['warmup_compile_s'])} | "
                     f"{fmt(r['empty_task_round_trip_ms']['median'])} | {fmt(r['empty_task_burst_ms_per_task'])} |")
    lines.append(f"| in-process, same pinned CPU (no Dask) | {fmt(t_pin)} | — | — | — | — | — |")
    lines.append(f"| in-process, unpinned (XLA threads on both cores) | {fmt(t_in)} | {conv_in}/{cfg.n_theory_points} "
                 "| — | — | — | — |")
    lines += ["", f"- scaling ratio T(1 worker) / T(2 workers): **{ratio:.2f}** (parallel efficiency "
              f"{ratio / 2:.0%})",
              f"- Dask overhead per task ((1-worker sweep − pinned in-process sweep − client connect) / {n_tasks} tasks, "
              "i.e. scheduling + serialising the task and its result): "
              f"{fmt(result['dask_overhead_per_task_s'])} s",
              f"- load average before / after: {load0} / {result['load_average_after']} "
              f"({os.cpu_count()} CPUs, shared with other jobs)",
              f"- commit {result['environment']['git_commit']}, dask {result['versions']['dask']}, "
              f"jax {result['environment']['jax']}", ""]
    write_text(os.path.join(RESULTS, "bench_sweep.md"), "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
