"""Shared helpers of the benchmark scripts: environment record and atomic result files."""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")


def configure_threads(threads, pin=True):
    """Limit XLA (JAX) and BLAS to one thread when ``threads == "1"``; must run before JAX is imported.

    On a small shared machine XLA's multi-threaded Eigen pool degrades badly (we saw up to ~7x slower
    steps) as soon as another process competes for the cores; single-threaded timings are reproducible.
    The XLA flags alone do not make XLA:CPU single-threaded, so with ``pin`` (default) the process is also
    pinned to one CPU (:func:`pin_single_cpu`); the CPU used is returned as ``"pinned_cpu"`` (None when not
    pinned).  ``pin=False`` sets only the environment, e.g. for a parent that pins its workers itself.
    """
    if "jax" in sys.modules:
        raise RuntimeError("configure_threads must be called before jax is imported")
    if str(threads) == "1":
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = "1"
    pinned = pin_single_cpu() if (pin and str(threads) == "1") else None
    configure_process()
    return dict(threads=str(threads), XLA_FLAGS=os.environ.get("XLA_FLAGS"),
                OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS"), pinned_cpu=pinned)


def pin_single_cpu(cpu=None):
    """Restrict this process to one CPU (``os.sched_setaffinity``); must run before JAX is imported.

    On JAX 0.10 the XLA flags of :func:`configure_threads` do not make XLA:CPU single-threaded: its
    intra-op thread pool still runs large dots on every core (process CPU time ≈ 2 × wall time on a
    2-core machine).  XLA sizes that pool from the affinity mask, and threads created later inherit it,
    so pinning the process before the import gives truly single-threaded timings.  Returns the CPU
    used, or None where affinity cannot be set.
    """
    if "jax" in sys.modules:
        raise RuntimeError("pin_single_cpu must be called before jax is imported")
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    cpu = allowed[-1] if cpu is None else int(cpu)
    os.sched_setaffinity(0, {cpu})
    configure_process()
    return cpu


def configure_process():
    """Run the benchmark as the package's own processes run (the CLI, its workers): float64 on, asynchronous
    CPU dispatch off (:func:`smtheory.precision.configure_process`).  Imports JAX, so it is called by
    :func:`configure_threads` and :func:`pin_single_cpu` after they have set the environment."""
    from smtheory.precision import configure_process as configure

    configure()


def git_commit():
    """``git rev-parse HEAD`` of the repository, or None (no commits, no git, ...)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def git_dirty_files():
    """Paths with uncommitted changes (``git --no-optional-locks status --porcelain``: read-only), or None."""
    try:
        out = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return [line[3:] for line in out.stdout.splitlines() if line.strip()]


def source_fingerprint(packages=("smtheory", "solvers")):
    """SHA-256 of the benchmarked packages' ``.py`` sources (the working tree may differ from HEAD)."""
    import hashlib
    out = {}
    for pkg in packages:
        h = hashlib.sha256()
        base = os.path.join(ROOT, pkg)
        for dirpath, dirnames, filenames in sorted(os.walk(base)):
            dirnames.sort()
            for name in sorted(filenames):
                if name.endswith(".py"):
                    path = os.path.join(dirpath, name)
                    h.update(os.path.relpath(path, ROOT).encode())
                    with open(path, "rb") as fh:
                        h.update(fh.read())
        out[pkg] = h.hexdigest()
    return out


def load_average():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def environment():
    """Versions and machine description recorded with every result file."""
    import numpy
    import scipy
    try:
        import jax
        jax_version = jax.__version__
        jax_backend = jax.default_backend()
    except Exception:  # noqa: BLE001 - the record must not fail
        jax_version = jax_backend = None
    cpu_model = None
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return dict(
        python=sys.version.split()[0], numpy=numpy.__version__, scipy=scipy.__version__, jax=jax_version,
        jax_backend=jax_backend, platform=platform.platform(), machine=platform.machine(),
        cpu_count=os.cpu_count(), cpu_model=cpu_model, git_commit=git_commit(), git_dirty_files=git_dirty_files(),
        source_sha256=source_fingerprint(),
        load_average_at_start=load_average(),
        date_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


def extra_versions(packages=("numpyro", "blackjax", "jaxlib", "arviz")):
    """Versions of optional packages (``None`` where not installed), e.g. for the sampler benchmarks."""
    from importlib import metadata
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _atomic_write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _jsonable(obj):
    import numpy as np
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if v == v and v not in (float("inf"), float("-inf")) else repr(v)  # NaN/inf as strings
    return obj


def write_json(path, data):
    _atomic_write(path, json.dumps(_jsonable(data), indent=2) + "\n")


def write_text(path, text):
    _atomic_write(path, text)


def fmt(v, spec=".3g"):
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int,)):
        return str(v)
    try:
        return format(float(v), spec)
    except (TypeError, ValueError):
        return str(v)


def fmt_load(v):
    """A load-average triple as text."""
    return "—" if not v else ", ".join(f"{x:.2f}" for x in v)


def machine_line(e, d, packages=()):
    """The "Machine: …" sentence of a report: CPUs, platform, versions, commit, date and load averages.

    ``e`` is :func:`environment` (optionally merged with :func:`extra_versions`), ``d`` the result dict
    (for ``load_average_end``); ``packages`` names extra versions held in ``e`` to list.
    """
    extra = "".join(f", {p} {e.get(p)}" for p in packages)
    return (f"Machine: {e['cpu_count']} CPUs ({e['cpu_model']}), {e['platform']}; python {e['python']}, numpy "
            f"{e['numpy']}, jax {e['jax']} ({e['jax_backend']}){extra}; commit {e['git_commit']} (uncommitted: "
            f"{', '.join(e['git_dirty_files'] or []) or 'none'}); {e['date_utc']}; load average at start "
            f"{fmt_load(e['load_average_at_start'])}, at end {fmt_load(d.get('load_average_end'))}.")


def save_progress(data, out_dir, name, t_start, cpu_start, markdown):
    """Stamp wall time, CPU/wall and the load average into ``data`` and write ``name.json`` and ``name.md``
    (atomically) — called after every row so that an interrupted benchmark keeps what it measured."""
    data["wall_time"] = time.perf_counter() - t_start
    data["cpu_over_wall"] = (time.process_time() - cpu_start) / data["wall_time"]
    data["load_average_end"] = load_average()
    write_json(os.path.join(out_dir, name + ".json"), data)
    write_text(os.path.join(out_dir, name + ".md"), markdown(data))
