"""The float64 policy (smtheory.precision): importing changes nothing; the theory turns float64 on visibly."""
import json
import os
import subprocess
import sys

import pytest

from smtheory.precision import float64_enabled
from smtheory.validation.engine import ProcessExecutor, Task, TaskStore, run_tasks

PROBLEM = ("from smtheory.tasks import markov; problem = markov.markov_problem(4, 20, 20, seed=0); "
           "problem = problem[0] if isinstance(problem, tuple) else problem; ")


def _python(code, **env):
    full = dict(os.environ, **env)
    full.pop("JAX_ENABLE_X64", None)
    return subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True,
                          timeout=300, env=full)


def test_import_leaves_the_jax_configuration_alone():
    out = _python("import jax; a = jax.config.read('jax_cpu_enable_async_dispatch'); "
                  "import smtheory, smtheory.solvers, smtheory.sims, smtheory.validation; "
                  "print(jax.config.jax_enable_x64, jax.config.read('jax_cpu_enable_async_dispatch') == a)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]


def test_the_theory_turns_float64_on_with_one_warning():
    code = ("import warnings, jax; import smtheory as smt\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            f"    {PROBLEM}\n"
            "    st = smt.predictor_statistics(problem, smt.ModelSpec(heads=(2, 2), widths=10), gp=True)\n"
            "n = sum(issubclass(x.category, smt.PrecisionWarning) for x in w)\n"
            "print(n, jax.config.jax_enable_x64, st.to_record()['dtype'])")
    out = _python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "True", "float64"]


def test_explicit_float64_gives_no_warning():
    out = _python("import warnings; warnings.simplefilter('error'); import smtheory as smt; "
                  f"print(smt.enable_float64()); {PROBLEM} print(problem.xi_train.dtype, smt.float64_enabled())")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "float64", "True"]


def test_float64_off_is_refused_with_the_fix_named():
    out = _python(f"import smtheory\ntry:\n    {PROBLEM}\nexcept smtheory.InputError as e:\n    print('refused', e)",
                  SMTHEORY_FLOAT64="off")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused") and "enable_float64()" in out.stdout and "SMTHEORY_FLOAT64" in out.stdout


def test_cli_runs_in_float64_and_records_say_so(tmp_path):
    path = tmp_path / "solve.json"
    out = subprocess.run([sys.executable, "-W", "default", "-m", "smtheory.cli", "solve", "--task", "markov",
                          "--width", "10", "--n-train", "20", "--n-test", "20", "--json", str(path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "PrecisionWarning" not in out.stderr
    row = json.load(open(path))["results"][0]
    assert row["dtype"] == "float64"


def test_worker_processes_run_in_float64(tmp_path):
    task = Task(key=dict(probe="x64"), fn=float64_enabled, label="x64")
    run = run_tasks([task], TaskStore(tmp_path), ProcessExecutor(2))
    assert run.results[task.id] is True


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sampling_records_state_their_dtype(dtype):
    from smtheory.sims.config import SampleConfig, SampleResult

    assert "dtype" in SampleResult.to_record.__doc__
    assert SampleConfig(dtype=dtype).dtype == dtype
