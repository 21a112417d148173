"""The persistent compilation cache (smtheory.compile_cache): on at the first entry-point call, off on request.

Every test runs a fresh Python process (the cache is a process-wide JAX setting) with its own cache folder,
calls one entry point on a tiny problem (``solve``, or the cheaper ``predictor_statistics`` where only
the switch is tested) and reports, as JSON on standard output, JAX's cache folder and threshold, and the
number of XLA compilations and persistent-cache hits (counted with ``jax.monitoring``).  Structural only:
nothing here is timed.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from smtheory.cli.parser import build_parser

#: The child process: ``SETUP`` (a statement), then a tiny ``solve`` (WORK "solve") or the GP predictor
#: statistics (WORK "gp"); prints what it saw as JSON.
CHILD = r"""
import json, os, sys
import jax
import jax.monitoring
import numpy as np

counts = {"backend": 0, "hits": 0}
def on_duration(event, duration, **_):
    if event == "/jax/core/compile/backend_compile_duration":  # a compilation or a persistent-cache read
        counts["backend"] += 1
def on_event(event, **_):
    if event == "/jax/compilation_cache/cache_hits":
        counts["hits"] += 1
jax.monitoring.register_event_duration_secs_listener(on_duration)
jax.monitoring.register_event_listener(on_event)

import smtheory as smt
from smtheory import solvers
smt.enable_float64()
dir_after_import = jax.config.jax_compilation_cache_dir
exec(sys.argv[1])  # SETUP
rng = np.random.default_rng(0)
N0, T, P, Q = 5, 4, 20, 10
layers = [smt.AttentionLayer(W=rng.standard_normal((2, N0, N0)) / N0),
          smt.AttentionLayer(W=rng.standard_normal((2, N0, N0)) / N0)]
x = rng.standard_normal((P + Q, N0, T))
y = np.where(x[:, 0, -1] >= 0, 1.0, -1.0)
problem = smt.KernelProblem.from_inputs(x[:P], y[:P], layers, x[P:], y[P:], readout="mean")
spec = smt.ModelSpec(heads=(2, 2), widths=8, temperature=0.1)
if sys.argv[2] == "solve":
    ok = bool(solvers.solve(problem, spec).converged)
else:
    ok = bool(np.isfinite(smt.predictor_statistics(problem, spec, gp=True).generalization_error))
print(json.dumps(dict(dir_after_import=dir_after_import, cache_dir=jax.config.jax_compilation_cache_dir,
                      min_compile_time=jax.config.jax_persistent_cache_min_compile_time_secs,
                      xla_compiles=counts["backend"] - counts["hits"], cache_hits=counts["hits"], ok=ok)))
"""


def _env(tmp_path, cache):
    """The environment of a child: its own HOME (so the default ~/.cache is inside tmp_path) and cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env.update(HOME=str(tmp_path / "home"), SMTHEORY_JAX_CACHE=str(cache), PYTHONWARNINGS="ignore")
    return env


def _child(tmp_path, cache, setup="pass", work="gp"):
    out = subprocess.run([sys.executable, "-c", CHILD, setup, work], env=_env(tmp_path, cache),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["ok"]
    return report


def _entries(folder):
    """Files in a cache folder (none when it does not exist)."""
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_first_solve_enables_cache_and_second_process_compiles_less(tmp_path):
    cache = tmp_path / "cache"
    first = _child(tmp_path, cache, work="solve")
    assert first["dir_after_import"] is None  # importing smtheory does not turn it on ...
    assert first["cache_dir"] == str(cache)  # ... the first solve does
    assert first["min_compile_time"] == 0.0  # small compilations are cached too
    files = _entries(cache)
    assert len(files) >= first["xla_compiles"] > 0  # every compilation was written
    second = _child(tmp_path, cache, work="solve")
    assert second["cache_hits"] > 0
    assert second["xla_compiles"] < first["xla_compiles"]
    assert second["xla_compiles"] <= first["xla_compiles"] // 10  # the sub-second ones are read back as well
    assert not _entries(tmp_path / "home")  # the default folder was not used


@pytest.mark.parametrize("how", ["env", "switch"])
def test_cache_stays_off(tmp_path, how):
    cache = tmp_path / "cache"
    if how == "env":
        report = _child(tmp_path, "off")
    else:
        report = _child(tmp_path, cache, "from smtheory.compile_cache import disable_compilation_cache\n"
                                         "disable_compilation_cache()\n"
                                         "assert os.environ['SMTHEORY_JAX_CACHE'] == 'off'")
    assert report["cache_dir"] is None and report["cache_hits"] == 0 and report["xla_compiles"] > 0
    assert not _entries(cache)
    assert not _entries(tmp_path / "home")  # nor the default ~/.cache/smtheory/jax


def test_users_own_jax_cache_dir_is_left_alone(tmp_path):
    own, ours = tmp_path / "own", tmp_path / "ours"
    report = _child(tmp_path, ours, f"jax.config.update('jax_compilation_cache_dir', {str(own)!r})")
    assert report["cache_dir"] == str(own)
    assert report["min_compile_time"] == 1.0  # JAX's default, the user's configuration: not changed
    assert not _entries(ours)


def test_explicit_folder_is_used_and_exported(tmp_path):
    chosen = tmp_path / "chosen"
    report = _child(tmp_path, tmp_path / "unused",
                    "from smtheory.compile_cache import disable_compilation_cache, enable_compilation_cache\n"
                    f"disable_compilation_cache(); enable_compilation_cache({str(chosen)!r})\n"
                    f"assert os.environ['SMTHEORY_JAX_CACHE'] == {str(chosen)!r}")
    assert report["cache_dir"] == str(chosen) and _entries(chosen)
    assert not _entries(tmp_path / "unused")


@pytest.mark.parametrize("argv", [["--no-compile-cache", "solve", "--task", "markov"],
                                  ["solve", "--task", "markov", "--no-compile-cache"]])
def test_cli_flag_parses_before_and_after_the_command(argv):
    assert build_parser().parse_args(argv).no_compile_cache is True
    assert build_parser().parse_args(["solve", "--task", "markov"]).no_compile_cache is False


def _write_data(path):
    rng = np.random.default_rng(0)
    N0, T = 5, 4
    np.savez(path, x_train=rng.standard_normal((20, N0, T)), y_train=np.sign(rng.standard_normal(20)),
             x_test=rng.standard_normal((10, N0, T)), y_test=np.sign(rng.standard_normal(10)),
             w_layer1=rng.standard_normal((2, N0, N0)) / N0, w_layer2=rng.standard_normal((2, N0, N0)) / N0)
    return path


@pytest.mark.parametrize("flag", [False, True])
def test_cli_no_compile_cache(tmp_path, flag):
    cache = tmp_path / "cache"
    data = _write_data(tmp_path / "d.npz")
    argv = ["solve", "--data", str(data), "--width", "5"] + (["--no-compile-cache"] if flag else [])
    out = subprocess.run([sys.executable, "-m", "smtheory.cli", *argv], env=_env(tmp_path, cache),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert bool(_entries(cache)) is not flag  # the same run without the flag fills the cache
    assert not _entries(tmp_path / "home")
