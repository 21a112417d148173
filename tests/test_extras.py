"""Optional dependencies (issue 15): each extra's feature without it, and the core without any extra.

Absence is simulated, never by uninstalling: ``monkeypatch.setitem(sys.modules, name, None)`` makes
``import name`` raise :class:`ModuleNotFoundError` in this process, and a meta-path finder refuses the names in
a fresh interpreter (``python -c``).  Every feature must fail with one :class:`smtheory.extras.MissingExtra`
naming the ``pip install "smtheory[EXTRA]"`` that provides it; the CLI must print one ``smtheory: error:`` line
and exit 2 before doing any work.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from smtheory import InputError
from smtheory.extras import MissingExtra, require

#: the import names behind each extra (setup.cfg [options.extras_require])
EXTRA_MODULES = {"store": ("xarray", "h5netcdf"), "cluster": ("dask", "distributed"), "digits": ("sklearn",),
                 "arviz": ("arviz",)}
#: heavy packages the core must never import (numba: dropped from the dependencies, benchmarks/bench_numba.py)
NEVER_IN_CORE = ("numba", "llvmlite", "dask", "distributed", "xarray", "h5netcdf", "sklearn", "arviz", "numpyro")
TINY_SWEEP = """
[sweep]
name = "tiny"
n_test = 50

[grid]
N = [10, 100]
T = [0.01]
P = [20]
heads = [2, 2]
seed = [0]
"""


def _block(monkeypatch, *names):
    """Make ``import NAME`` (and of every already-imported submodule of NAME) raise ModuleNotFoundError."""
    for name in names:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            monkeypatch.setitem(sys.modules, loaded, None)
        monkeypatch.setitem(sys.modules, name, None)


def _pip(extra):
    return f'pip install "smtheory[{extra}]"'


def _sample_result():
    """A SampleResult with synthetic traces (2 chains, 5 draws, 2 paths): what to_inference_data reads."""
    from smtheory.model import ModelSpec
    from smtheory.sims.config import SampleConfig, SampleResult

    nan = float("nan")
    traces = np.arange(2 * 5 * 5, dtype=float).reshape(2, 5, 5)
    return SampleResult(U1_sampled=np.eye(2), U1_mcse=np.zeros((2, 2)), predictor_mean=np.zeros(3),
                        predictor_variance=np.ones(3), test_accuracy=nan, generalization_error=nan,
                        train_energy=nan, rhat_max=nan, ess_min=nan, steps_per_second=nan, diagnostics={},
                        config=SampleConfig(), spec=ModelSpec(heads=(2, 1), widths=10), traces=traces,
                        trace_names=["U1[0,0]", "U1[0,1]", "U1[1,0]", "U1[1,1]", "train_energy"])


def _store_load(tmp_path):
    from smtheory.validation import store

    return store.load(str(tmp_path))


def _store_save(tmp_path):
    from smtheory.validation import store

    return store.save(object(), str(tmp_path / "results.nc"))


def _sweep_inline(tmp_path):
    from smtheory.validation import sweep

    return sweep.run_sweep(sweep.parse_config(_toml(TINY_SWEEP)), str(tmp_path / "out"), progress=False)


def _sweep_dask(tmp_path):
    from smtheory.validation import sweep

    return sweep.run_sweep(sweep.parse_config(_toml(TINY_SWEEP)), str(tmp_path / "out"), workers=2,
                           progress=False)


def _dask_executor(tmp_path):
    from smtheory.validation.engine import make_executor

    with make_executor("dask", workers=1):
        pass


def _digits(tmp_path):
    from smtheory.tasks.digits import DigitsTask

    return DigitsTask().sample(4, "train", seed=0)


def _inference_data(tmp_path):
    return _sample_result().to_inference_data()


def _toml(text):
    import tomllib

    return tomllib.loads(text)


# (feature, extra, import names to block)
FEATURES = [
    (_store_load, "store", ("xarray",)),
    (_store_load, "store", ("h5netcdf",)),
    (_store_save, "store", ("h5netcdf",)),
    (_sweep_inline, "store", ("xarray",)),
    (_sweep_dask, "cluster", ("distributed",)),
    (_sweep_dask, "cluster", ("dask",)),
    (_dask_executor, "cluster", ("distributed",)),
    (_digits, "digits", ("sklearn",)),
    (_inference_data, "arviz", ("arviz",)),
]


@pytest.mark.parametrize("feature, extra, blocked", FEATURES,
                         ids=[f"{f.__name__[1:]}-without-{'+'.join(b)}" for f, _, b in FEATURES])
def test_feature_without_its_extra_names_the_pip_install(monkeypatch, tmp_path, feature, extra, blocked):
    _block(monkeypatch, *blocked)
    with pytest.raises(MissingExtra) as info:
        feature(tmp_path)
    message = str(info.value)
    assert _pip(extra) in message
    assert repr(blocked[0]) in message and "not installed" in message
    assert "\n" not in message
    assert isinstance(info.value, InputError) and isinstance(info.value, ImportError)
    assert not (tmp_path / "out" / "sweep.json").exists()  # refused before any work


@pytest.mark.parametrize("feature, extra", [(_digits, "digits"), (_inference_data, "arviz")])
def test_feature_with_its_extra_works(feature, extra, tmp_path):
    for name in EXTRA_MODULES[extra]:
        pytest.importorskip(name)
    out = feature(tmp_path)
    if extra == "digits":
        x, y = out[:2]
        assert x.shape[0] == 4 and set(np.unique(y)) <= {-1.0, 1.0}
    else:
        np.testing.assert_array_equal(out.posterior["U1"].values[1, 2], np.array([[35, 36], [37, 38]]))


def test_require_message_for_present_but_broken_package(monkeypatch):
    import importlib

    def broken(name, *args):
        raise ImportError("cannot import name 'thing' from 'xarray.core'\nsecond line")

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(MissingExtra) as info:
        require("xarray", "store", "the sweep store")
    message = str(info.value)
    assert "installed but failed to import" in message and "cannot import name 'thing'" in message
    assert "second line" not in message and _pip("store") in message


@pytest.mark.parametrize("blocked, extra, options", [
    (("xarray",), "store", []),
    (("distributed",), "cluster", ["--workers", "2"]),
    (("distributed",), "cluster", ["--scheduler", "tcp://127.0.0.1:1"]),
])
def test_cli_sweep_without_extra_exits_2_with_one_line(monkeypatch, tmp_path, capsys, blocked, extra, options):
    from smtheory.cli import main

    config = tmp_path / "tiny.toml"
    config.write_text(TINY_SWEEP)
    _block(monkeypatch, *blocked)
    out = tmp_path / "out"
    code = main(["sweep", str(config), "--out", str(out), "--quiet", *options])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("smtheory: error:"), err
    assert _pip(extra) in lines[0] and repr(blocked[0]) in lines[0]
    assert not (out / "sweep.json").exists()


# A fresh interpreter: a meta-path finder refuses the optional packages (BLOCK), then every module of the
# package is imported; prints which heavy packages ended up in sys.modules and what the store does.
_CHILD = textwrap.dedent("""
    import importlib, importlib.abc, json, pkgutil, sys
    BLOCK = set(sys.argv[1].split(",")) if sys.argv[1] else set()

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCK:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
            return None

    sys.meta_path.insert(0, Refuse())
    import smtheory, smtheory.sims, smtheory.solvers, smtheory.validation, smtheory.cli
    names = []
    for pkg in (smtheory, smtheory.sims, smtheory.solvers, smtheory.validation):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            importlib.import_module(info.name)
            names.append(info.name)
    heavy = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2].split(",")))
    try:
        import xarray  # noqa: F401
        xarray_importable = True
    except ImportError:
        xarray_importable = False
    store_error = None
    try:
        from smtheory.validation import store
        store.load(".")
    except Exception as exc:
        store_error = [type(exc).__name__, str(exc)]
    print(json.dumps(dict(modules=names, heavy=heavy, xarray_importable=xarray_importable, store_error=store_error)))
""")


def _child(blocked, cwd):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", _CHILD, ",".join(blocked), ",".join(NEVER_IN_CORE)],
                         capture_output=True, text=True, timeout=300, env=env, cwd=cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("blocked", [NEVER_IN_CORE, ()], ids=["optional-packages-blocked", "all-installed"])
def test_core_imports_without_optional_packages(blocked, tmp_path):
    """Every module of smtheory, .sims, .solvers, .validation (and .cli) imports with the optional packages
    refused, and — with them installed — importing the package loads none of them (imports are lazy)."""
    import importlib.util

    if not blocked and importlib.util.find_spec("xarray") is None:
        pytest.skip("the store extra is not installed")
    got = _child(blocked, tmp_path)
    assert {"smtheory.validation.store", "smtheory.validation.sweep", "smtheory.tasks.digits",
            "smtheory.sims.config", "smtheory.solvers.symbolic.closed_forms"} <= set(got["modules"])
    assert got["heavy"] == []
    if blocked:
        assert got["xarray_importable"] is False  # the finder really refuses
        kind, message = got["store_error"]
        assert kind == "MissingExtra" and _pip("store") in message
    else:
        assert got["store_error"][0] == "InputError" and "no sweep store" in got["store_error"][1]
