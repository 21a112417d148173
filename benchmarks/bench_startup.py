"""Benchmark: start-up — fresh processes with the persistent compilation cache empty, filled and off.

Every figure is the wall time of one whole FRESH process (interpreter start, imports, data generation, JIT
compilation or persistent-cache reads, the work itself, printing), measured from this script:

(a) ``python -c "import smtheory"`` (median of ``--import-runs``);
(b) the README's Python example — the snippet under "Solving the kernel equations from Python", extracted
    from README.md at run time, so the benchmark follows the README;
(c) ``smtheory solve --task markov --paths 4 --width 10 30 50 100 300 500 1000``.

For (b) and (c), side by side in one run, each in a temporary cache folder (``SMTHEORY_JAX_CACHE``):

* ``first``: the first process, cache folder empty;  ``second``: the next process, reading the filled folder;
* ``off``: ``SMTHEORY_JAX_CACHE=off``;
* ``min 1 s``: first and second process with JAX's default threshold
  (``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=1``, which smtheory keeps as a user setting) instead of
  smtheory's 0 — the check of which threshold to use;
* ``before``: first and second process of the code before issue 15 item 2 (commit ``--before-ref``, default
  e24be52, unpacked with ``git archive`` into a temporary folder and put first on ``PYTHONPATH``): the README
  example had no cache at all, the CLI a cache that kept only compilations of ≥ 1 s, and the certificate
  compiled ~50 more small programs op by op.  (That tree lacks the other uncommitted changes of the
  working tree, e.g. the float64 policy; the ``after`` columns have them.)

Every process runs with ``JAX_LOG_COMPILES=1``; its standard error gives the number of XLA compilations
and their seconds, persistent-cache reads and their seconds, and the seconds of tracing + lowering (paid in
every process: the cache key is the lowered program).  Goal: ``second`` (after) / import ≤ 5×.

Run: ``python3 benchmarks/bench_startup.py`` → ``benchmarks/results/bench_startup.{json,md}``.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import RESULTS, ROOT, environment, fmt, load_average, machine_line, save_progress  # noqa: E402

NAME = "bench_startup"
WIDTHS = ["10", "30", "50", "100", "300", "500", "1000"]
CLI_ARGS = ["solve", "--task", "markov", "--paths", "4", "--width", *WIDTHS]
README_HEADING = "## Solving the kernel equations from Python"
GOAL = 5.0
BEFORE_REF = "e24be52"
#: (label, code, cache, extra environment); ``cache``: "empty" / "filled" (the folder of the previous row)
#: / "off".  The rows of each workload, in the order run.
SCENARIOS = [
    ("before, first", "before", "empty", {}),
    ("before, second", "before", "filled", {}),
    ("first", "after", "empty", {}),
    ("second", "after", "filled", {}),
    ("off", "after", "off", {}),
    ("min 1 s, first", "after", "empty", {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "1.0"}),
    ("min 1 s, second", "after", "filled", {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "1.0"}),
]

#: Prefixed to the README example for the ``before`` code, which set float64 when imported and had no
#: ``smtheory.enable_float64`` (the README calls it now): there the call does nothing.
BEFORE_SHIM = ("import smtheory as _smt\n"
               "_smt.enable_float64 = getattr(_smt, 'enable_float64', lambda: None)\n")
_FINISHED = re.compile(r"Finished XLA compilation of (.+?) in ([0-9.eE+-]+) sec")
_HIT = re.compile(r"Persistent compilation cache hit for ")
_TRACE = re.compile(r"Finished (?:tracing|jaxpr to MLIR module conversion).* in ([0-9.eE+-]+) sec")


def readme_snippet(path=os.path.join(ROOT, "README.md")):
    """The first ``python`` code block after :data:`README_HEADING` in README.md."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    start = text.find(README_HEADING)
    match = re.search(r"```python\n(.*?)```", text[start:], re.S) if start >= 0 else None
    if match is None:
        raise SystemExit(f"README.md has no python block under {README_HEADING!r}")
    return match.group(1)


def before_tree(ref, dest):
    """The package at commit ``ref`` unpacked into ``dest`` (``git archive``), importable with PYTHONPATH=dest.

    The folders that setup.cfg maps into the package (solvers, sims, validation) are linked inside it.
    Returns ``dest``, or None when the commit cannot be read.
    """
    archive = subprocess.run(["git", "archive", ref, "smtheory", "solvers", "sims", "validation"], cwd=ROOT,
                             capture_output=True)
    if archive.returncode != 0:
        return None
    os.makedirs(dest, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", dest], input=archive.stdout, check=True)
    for sub in ("solvers", "sims", "validation"):
        os.symlink(os.path.join("..", sub), os.path.join(dest, "smtheory", sub))
    return dest


def compile_log(stderr):
    """Counts and seconds from a ``JAX_LOG_COMPILES=1`` standard error (see the module docstring)."""
    out = dict(xla_compiles=0, compile_s=0.0, cache_reads=0, read_s=0.0, trace_lower_s=0.0)
    per_program = collections.defaultdict(lambda: [0, 0.0])
    hit = False  # a cache hit is logged just before the "Finished XLA compilation" line of its program
    for line in stderr.splitlines():
        if _HIT.search(line):
            hit = True
        elif m := _FINISHED.search(line):
            name, secs = m.group(1), float(m.group(2))
            if hit:
                hit = False
                out["cache_reads"] += 1
                out["read_s"] += secs
            else:
                out["xla_compiles"] += 1
                out["compile_s"] += secs
                per_program[name][0] += 1
                per_program[name][1] += secs
        elif m := _TRACE.search(line):
            out["trace_lower_s"] += float(m.group(1))
    out["programs"] = {k: dict(count=c, seconds=s) for k, (c, s) in
                       sorted(per_program.items(), key=lambda kv: -kv[1][1])}
    return out


def run_process(argv, env, cwd):
    """Run one fresh process; its wall time, exit status and :func:`compile_log`."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    row = dict(wall=wall, rc=proc.returncode, **compile_log(proc.stderr))
    if proc.returncode != 0:
        row["stderr_tail"] = proc.stderr[-2000:]
    return row


def base_env(pythonpath=None):
    """This environment without JAX or smtheory cache settings, with compile logging on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_") and k != "SMTHEORY_JAX_CACHE"}
    env["JAX_LOG_COMPILES"] = "1"
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def cache_size(folder):
    """(entries, bytes) of a cache folder."""
    if not folder or not os.path.isdir(folder):
        return 0, 0
    names = [n for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n))]
    return len(names), sum(os.path.getsize(os.path.join(folder, n)) for n in names)


def smtheory_program():
    """The ``smtheory`` console script next to this Python (else ``python -m smtheory.cli``)."""
    script = os.path.join(os.path.dirname(sys.executable), "smtheory")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "smtheory.cli"]


def run_workload(commands, trees, work, log, repeats):
    """The :data:`SCENARIOS` rows of one workload, best (least wall) of ``repeats`` passes over all rows.

    ``commands`` and ``trees`` map "before"/"after" to the command and to a PYTHONPATH (or None).  Each row
    keeps every pass's wall time in ``walls``.
    """
    best = {}
    for rep in range(repeats):
        log(f" pass {rep + 1}/{repeats}")
        for label, row in _workload_pass(commands, trees, work, log).items():
            walls = best.get(label, {}).get("walls", []) + [row["wall"]]
            if label not in best or row["wall"] < best[label]["wall"]:
                best[label] = row
            best[label]["walls"] = walls
    return best


def _workload_pass(commands, trees, work, log):
    """One pass over the :data:`SCENARIOS` rows (fresh cache folders)."""
    rows, folder = {}, None
    for label, code, cache, extra in SCENARIOS:
        if code not in trees:
            continue
        argv = commands[code]
        if cache == "empty":
            folder = tempfile.mkdtemp(prefix="cache-", dir=work)
        env = dict(base_env(trees[code]), **extra, SMTHEORY_JAX_CACHE="off" if cache == "off" else folder)
        row = run_process(argv, env, work)
        row.update(code=code, cache=cache, cache_folder_used=cache != "off")
        row["cache_entries"], row["cache_bytes"] = cache_size(folder if cache != "off" else None)
        rows[label] = row
        log(f"  {label:16s} wall {row['wall']:7.2f} s  rc {row['rc']}  compiles {row['xla_compiles']:3d} "
            f"({row['compile_s']:.2f} s)  reads {row['cache_reads']:3d} ({row['read_s']:.2f} s)  "
            f"trace+lower {row['trace_lower_s']:.2f} s  entries {row['cache_entries']}")
    return rows


def import_times(runs, trees, work):
    """Wall times of ``python -c "import smtheory"`` per code tree (interleaved)."""
    out = {code: [] for code in trees}
    for _ in range(runs):
        for code, path in trees.items():
            out[code].append(run_process([sys.executable, "-c", "import smtheory"], base_env(path), work)["wall"])
    return {code: dict(runs=v, median=statistics.median(v)) for code, v in out.items()}


def tree_check(trees, work):
    """Which files ``import smtheory, smtheory.solvers`` loads per code tree (a sanity check)."""
    code = "import smtheory, smtheory.solvers; print(smtheory.__file__, smtheory.solvers.__file__)"
    return {k: subprocess.run([sys.executable, "-c", code], env=base_env(p), cwd=work, capture_output=True,
                              text=True).stdout.strip() for k, p in trees.items()}


def ratios(data):
    """Second process (and the others) over the median import time, per workload."""
    imp = data["import"]["after"]["median"]
    out = {}
    for name, rows in data["workloads"].items():
        out[name] = {label: row["wall"] / imp for label, row in rows.items()}
        out[name]["goal_met"] = out[name].get("second", float("inf")) <= GOAL
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before-ref", default=BEFORE_REF, help="commit of the 'before' code ('none': skip)")
    ap.add_argument("--import-runs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2, help="passes over the rows of each workload (least wall kept)")
    ap.add_argument("--only", choices=["readme", "cli"], help="run one workload")
    ap.add_argument("--out", default=RESULTS)
    args = ap.parse_args(argv)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    t_start, cpu_start = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as work:
        trees = {"after": None}
        if args.before_ref.lower() != "none":
            path = before_tree(args.before_ref, os.path.join(work, "before"))
            if path is None:
                log(f"commit {args.before_ref} not found: no 'before' rows")
            else:
                trees["before"] = path
        snippets = {}
        for code, prefix in (("after", ""), ("before", BEFORE_SHIM)):
            snippets[code] = os.path.join(work, f"readme_example_{code}.py")
            with open(snippets[code], "w", encoding="utf-8") as fh:
                fh.write(prefix + readme_snippet())
        data = dict(name=NAME, environment=environment(), goal=GOAL, before_ref=args.before_ref, repeats=args.repeats,
                    before_shim=BEFORE_SHIM,
                    readme_snippet=readme_snippet(), cli_args=CLI_ARGS, trees=tree_check(trees, work),
                    scenarios=[s[0] for s in SCENARIOS], workloads={})
        data["import"] = import_times(args.import_runs, trees, work)
        log(f"import smtheory: {data['import']}")
        workloads = dict(readme={k: [sys.executable, v] for k, v in snippets.items()},
                         cli={k: smtheory_program() + CLI_ARGS for k in snippets})
        for name, commands in workloads.items():
            if args.only and name != args.only:
                continue
            log(f"{name}: {' '.join(commands['after'])}")
            data["workloads"][name] = run_workload(commands, trees, work, log, args.repeats)
            data["ratios"] = ratios(data)
            save_progress(data, args.out, NAME, t_start, cpu_start, markdown)
    data["load_average_end"] = load_average()
    save_progress(data, args.out, NAME, t_start, cpu_start, markdown)
    return 0


TITLES = dict(readme="(b) the README's Python example", cli="(c) `smtheory " + " ".join(CLI_ARGS) + "`")


def markdown(d):
    e = d["environment"]
    imp = d["import"]
    lines = [
        "# Start-up: fresh processes with the persistent compilation cache empty, filled and off", "",
        "Wall time of one whole fresh process each (interpreter start, imports, data, JIT compilation or "
        "persistent-cache reads, the work, printing), measured side by side in one run. `first`: empty cache "
        "folder; `second`: the next process on the filled folder; `off`: `SMTHEORY_JAX_CACHE=off`; `min 1 s`: "
        "JAX's default threshold `jax_persistent_cache_min_compile_time_secs = 1` instead of smtheory's 0; "
        f"`before`: the code of commit {d['before_ref']} (before this change: no cache for the Python entry "
        "points, the CLI's cache kept only compilations of ≥ 1 s, the certificate compiled op by op), run from a "
        "`git archive` of that commit (its README example gets a no-op `smt.enable_float64`, which that code "
        f"lacked: it set float64 on import). Best of {d.get('repeats', 1)} passes over all rows per workload "
        "(every pass's walls in the JSON). Counts and seconds from `JAX_LOG_COMPILES=1` (on in every process): "
        "XLA compilations, persistent-cache reads, tracing + lowering (paid in every process). Ratio = wall / "
        f"median `import smtheory` wall; goal: `second` ≤ {GOAL:g}×.", "",
        machine_line(e, d), "",
        "`python -c \"import smtheory\"`: " + "; ".join(
            f"{k} median {fmt(v['median'])} s (runs {', '.join(fmt(x) for x in v['runs'])})" for k, v in imp.items())
        + ".", "",
    ]
    for name, rows in d["workloads"].items():
        lines += _workload_table(name, rows, d["ratios"][name])
    lines += [f"Total wall time {fmt(d.get('wall_time'), '.1f')} s. The machine is shared (see the load averages): "
              "absolute times move with its load; rows run one after another, so compare counts first.", ""]
    return "\n".join(lines)


def _workload_table(name, rows, ratio):
    out = [f"## {TITLES[name]}", "",
           "| process | wall [s] | ratio to import | XLA compiles | compile [s] | cache reads | read [s] | "
           "trace + lower [s] | cache entries | exit |",
           "|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, r in rows.items():
        bold = "**" if label == "second" else ""
        out.append(f"| {label} | {bold}{fmt(r['wall'])}{bold} | {bold}{fmt(ratio[label])}{bold} | "
                   f"{r['xla_compiles']} | {fmt(r['compile_s'])} | {r['cache_reads']} | {fmt(r['read_s'])} | "
                   f"{fmt(r['trace_lower_s'])} | {r['cache_entries']} | {r['rc']} |")
    out.append("")
    for label in ("first", "second"):
        if f"before, {label}" in rows and label in rows:
            b, a = rows[f"before, {label}"], rows[label]
            out.append(f"{label.capitalize()} process, before → after: wall {fmt(b['wall'])} → {fmt(a['wall'])} s "
                       f"(before / after {fmt(b['wall'] / a['wall'])}), XLA compilations {b['xla_compiles']} → "
                       f"{a['xla_compiles']}, compile {fmt(b['compile_s'])} → {fmt(a['compile_s'])} s.  ")
    first = rows.get("first") or next(iter(rows.values()))
    top = list(first["programs"].items())[:6]
    out += [f"Goal `second` ≤ {GOAL:g}× import: **{'met' if ratio['goal_met'] else 'not met'}**. Largest "
            "compilations of `first`: " + ", ".join(f"{k} {fmt(v['seconds'])} s" + (f" ×{v['count']}" if
                                                                                   v["count"] > 1 else "")
                                                   for k, v in top) + ".",
            f"`first` compiled {len(first['programs'])} distinct programs; compiled more than once (op-by-op "
            "primitives at other array shapes): " + (", ".join(
                f"{k} ×{v['count']}" for k, v in first["programs"].items() if v["count"] > 1) or "none") + ".", ""]
    return out


if __name__ == "__main__":
    sys.exit(main())
