"""Sweeps (issue 8): configuration errors, in-process run through the CLI, resume, a real Dask scheduler.

Sizes are tiny (P = 20, 50 test sequences, two widths): the point is the plumbing, not the physics.
"""
import json
import os

import numpy as np
import pytest

from smtheory import InputError
from smtheory.cli import main
from smtheory.validation import store, sweep

TINY = """
[sweep]
name = "tiny"
n_test = 50

[grid]
N = [10, 100]
T = [0.01]
P = [20]
heads = [2, 2]
seed = [0, 1]
"""

SAMPLING = """
[[sampling]]
name = "gibbs-demo"
N = [10]
chains = 2
burnin = 10
steps = 20
chunk = 10
"""


def _write(tmp_path, text, name="c.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    cfg = _write(d, TINY + SAMPLING)
    out = str(d / "out")
    rc = main(["sweep", cfg, "--out", out, "--quiet", "--plot"])
    return rc, cfg, out


@pytest.mark.parametrize("text, match", [
    ("[grid]\nT = [0.1]\n", "grid.N"),
    ("[grid]\nN = [10, -3]\n", r"grid.N\[1\]"),
    ("[grid]\nN = [10]\nP = [21]\n", r"grid.P\[0\].*even"),
    ("[grid]\nN = [10]\nT = [0.0]\n", r"grid.T\[0\].*positive"),
    ("[grid]\nN = [10]\nheads = [[3, 3]]\n", r"grid.heads\[0\].*network = 'random'"),
    ("[grid]\nN = [10]\nwidth = [3]\n", "grid.*'width'.*not known"),
    ("[sweep]\ncontinuation = 'P'\n[grid]\nN = [10]\n", "sweep.continuation"),
    ("[sweep]\ntask = 'digits'\n[grid]\nN = [10]\n", "sweep.task"),
    ("[grid]\nN = [10]\n[[sampling]]\nN = [30]\n", r"sampling\[0\].N.*grid.N"),
    ("[grid]\nN = [10]\n[[sampling]]\nN = [10]\nsampler = 'nuts'\n", r"sampling\[0\].*sampler"),
    ("[grid]\nN = [10]\n[[sampling]]\nN = [10]\nsteps = 0\n", r"sampling\[0\].*steps"),
    ("[grid\nN = 1", "not valid TOML"),
])
def test_bad_config_names_the_key(tmp_path, text, match):
    path = _write(tmp_path, text)
    with pytest.raises(InputError, match=match):
        sweep.load_config(path)


def test_bad_config_from_the_cli_exits_2(tmp_path, capsys):
    path = _write(tmp_path, "[grid]\nN = [10]\nseed = [-1]\n")
    assert main(["sweep", path, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("smtheory: error: config key 'grid.seed[0]'")
    assert main(["sweep", str(tmp_path / "missing.toml")]) == 2


def test_grid_and_tasks():
    cfg = sweep.parse_config({"grid": {"N": [100, 10], "T": [0.1, 0.01], "heads": [[2, 2], [2, 1]], "seed": [0]},
                              "sampling": [{"N": [10], "name": "a"}, {"N": [100], "T": [0.1], "name": "b"}]})
    assert cfg.N == (10, 100) and cfg.T == (0.01, 0.1) and cfg.n_theory_points == 8
    tasks = sweep.make_tasks(cfg)
    theory = [t for t in tasks if t["kind"] == "theory"]
    assert len(theory) == 4 and all(t["N"] == [10, 100] and len(t["T"]) == 1 for t in theory)  # chains along N
    assert len([t for t in tasks if t["kind"] == "sample"]) == 2 * 2 + 2 * 1
    assert len({t["id"] for t in tasks}) == len(tasks)
    cfg_t = sweep.parse_config({"sweep": {"continuation": "T"}, "grid": {"N": [10, 100], "T": [0.1, 0.01]}})
    theory = sweep.make_tasks(cfg_t)
    assert len(theory) == 2 and all(t["T"] == [0.01, 0.1] and len(t["N"]) == 1 for t in theory)  # chains along T
    assert sweep.make_tasks(cfg) == sweep.make_tasks(cfg)  # ids are stable


def test_example_config_is_valid():
    here = os.path.join(os.path.dirname(__file__), "..", "validation", "configs", "markov_widths.toml")
    cfg = sweep.load_config(here)
    assert cfg.n_theory_points >= 28 and cfg.sampling


def test_cli_run_writes_labelled_store(cli_run):
    rc, _, out = cli_run
    assert rc == 0
    ds = store.load(out)
    assert dict(ds.sizes) == dict(P=1, heads=1, seed=2, T=1, N=2, path=4, path_=4, sampler=1)
    assert bool((ds.converged == 1).all())
    assert np.all(np.isfinite(ds.U1.values)) and np.all((ds.accuracy >= 0) & (ds.accuracy <= 1))
    assert np.all(np.isfinite(ds.gp_accuracy.values))
    # the sampled point is filled at N = 10 only
    assert np.isfinite(ds.sampled_accuracy.sel(N=10)).all() and np.isnan(ds.sampled_accuracy.sel(N=100)).all()
    prov = store.provenance(ds)
    assert prov["config"]["grid"]["N"] == [10, 100] and prov["seeds"]["data_seeds"] == [0, 1]
    assert prov["versions"]["jax"] and prov["versions"]["xarray"] and ds.attrs["commit"]
    assert os.path.exists(os.path.join(out, "accuracy.png")) and os.path.exists(os.path.join(out, "U1_2x2.png"))
    # theory at the largest width approaches the GP limit
    assert float(abs(ds.U1.sel(N=100, path=0, path_=0) - 1).max()) < float(
        abs(ds.U1.sel(N=10, path=0, path_=0) - 1).max()) + 1e-12


def test_resume_skips_finished_tasks(cli_run, monkeypatch, capsys):
    _, cfg, out = cli_run
    # without --resume an existing sweep is not overwritten
    assert main(["sweep", cfg, "--out", out, "--quiet"]) == 2
    assert "--resume" in capsys.readouterr().err
    tasks = sweep.make_tasks(sweep.load_config(cfg))
    removed = tasks[0]
    os.unlink(os.path.join(out, sweep.TASKS_DIR, removed["id"] + ".json"))
    calls = []
    real = sweep.run_task
    monkeypatch.setattr(sweep, "run_task", lambda t: calls.append(t["id"]) or real(t))
    ds = sweep.run_sweep(cfg, out, resume=True, progress=False)
    assert calls == [removed["id"]]
    run = store.provenance(ds)["run"]
    assert run["computed"] == 1 and run["skipped"] == len(tasks) - 1
    calls.clear()
    sweep.run_sweep(cfg, out, resume=True, progress=False)
    assert calls == []


def test_failed_task_is_reported_and_retried(cli_run, tmp_path, monkeypatch):
    import shutil

    _, cfg, out = cli_run
    copy = str(tmp_path / "copy")
    shutil.copytree(out, copy)
    task = sweep.make_tasks(sweep.load_config(cfg))[1]
    os.unlink(os.path.join(copy, sweep.TASKS_DIR, task["id"] + ".json"))

    def boom(t):
        raise RuntimeError("worker lost")

    monkeypatch.setattr(sweep, "run_task", boom)
    ds = sweep.run_sweep(cfg, copy, resume=True, progress=False)
    run = store.provenance(ds)["run"]
    assert [f["task"] for f in run["failed"]] == [task["id"]] and "worker lost" in run["failed"][0]["error"]
    seed = task["problem"]["seed"]
    assert np.isnan(ds.accuracy.sel(seed=seed)).all() and ds.attrs["theory_points"] == 2
    monkeypatch.undo()
    ds = sweep.run_sweep(cfg, copy, resume=True, progress=False)  # the retry fills the gap
    assert store.provenance(ds)["run"]["failed"] == [] and ds.attrs["theory_points"] == 4


def test_dask_scheduler_matches_in_process(cli_run, tmp_path):
    """Tasks submitted to a real Dask scheduler (by address) give the in-process numbers."""
    from dask.distributed import LocalCluster

    _, cfg_path, out_local = cli_run
    ref = store.load(out_local)
    cfg = _write(tmp_path, TINY)
    # threads in this process (the JIT cache is warm), but a real scheduler reached over TCP
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                      dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://")
        ds = sweep.run_sweep(cfg, str(tmp_path / "o"), scheduler=cluster.scheduler_address, progress=False)
    run = json.loads(ds.attrs["run"])
    assert run["mode"].startswith("dask scheduler tcp://") and run["computed"] == 2
    np.testing.assert_allclose(ds.U1.values, ref.U1.values, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(ds.accuracy.values, ref.accuracy.values)


def test_unreachable_scheduler_is_an_input_error(tmp_path):
    import dask

    cfg = _write(tmp_path, TINY)
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        with pytest.raises(InputError, match="scheduler"):
            sweep.run_sweep(cfg, str(tmp_path / "o"), scheduler="tcp://127.0.0.1:9", progress=False)


@pytest.mark.slow
def test_local_process_cluster_from_the_cli(tmp_path):
    """``--workers 2``: a local Dask cluster of two worker processes (each compiles its own JAX code)."""
    cfg = _write(tmp_path, TINY)
    out = str(tmp_path / "o")
    assert main(["sweep", cfg, "--out", out, "--workers", "2", "--quiet"]) == 0
    ds = store.load(out)
    assert bool((ds.converged == 1).all())
    assert json.loads(ds.attrs["run"])["mode"] == "local dask cluster, 2 workers"
