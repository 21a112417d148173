"""The labelled results store (issue 8): assembly, netCDF round trip, provenance, loader, plots."""
import json

import matplotlib
import numpy as np
import pytest

from smtheory import InputError
from smtheory.validation import store, sweep

matplotlib.use("Agg")

CONFIG = {"sweep": {"name": "synthetic", "n_test": 50},
          "grid": {"N": [10, 100], "T": [0.01, 0.1], "P": [20], "heads": [[2, 2], [2, 1]], "seed": [0, 3]},
          "sampling": [{"name": "gibbs-a", "N": [10], "T": [0.01], "chains": 2, "steps": 20}]}


def _fake_payloads(cfg, skip=()):
    """Task results with made-up numbers that encode their coordinates (no solves)."""
    out = []
    for t in sweep.make_tasks(cfg):
        if t["id"] in skip:
            continue
        pr = t["problem"]
        D = int(np.prod(pr["heads"]))
        names = ["g", "a1", "d", "a2"][:D] if D == 4 else ["g", "d"]
        if t["kind"] == "theory":
            points = []
            for N in t["N"]:
                for T in t["T"]:
                    acc = 0.5 + N / 1000 + T + pr["seed"] / 100
                    points.append(dict(N=N, T=T, converged=True, message="ok", U1=(np.eye(D) * N).tolist(), U_a=1.0,
                                       action=-N, grad_norm=0.0, hessian_min_eig=1.0, max_residual=1e-12,
                                       iterations=3, solve_time=0.1, compile_time=0.0, test_accuracy=acc,
                                       gaussian_accuracy=acc, generalization_error=1 - acc))
            gp = [dict(T=T, test_accuracy=0.6, generalization_error=0.4) for T in t["T"]]
            out.append(dict(task=t, result=dict(points=points, gp=gp, path_names=names)))
        else:
            point = dict(N=t["N"], T=t["T"], test_accuracy=0.7, test_accuracy_mcse=0.01, generalization_error=0.3,
                         generalization_error_mcse=0.02, U1_sampled=np.ones((D, D)).tolist(),
                         U1_mcse=(0.1 * np.ones((D, D))).tolist(), rhat_max=1.0, ess_min=100.0, converged=True,
                         wall_time=1.0)
            out.append(dict(task=t, result=dict(point=point, path_names=names)))
    return out


@pytest.fixture
def dataset():
    cfg = sweep.parse_config(CONFIG)
    return store.build_dataset(cfg, _fake_payloads(cfg), config_path="synthetic.toml", run=dict(mode="test"))


def test_labelled_dimensions_and_values(dataset):
    ds = dataset
    assert ds.accuracy.dims == ("P", "heads", "seed", "T", "N")
    assert ds.U1.dims == ("P", "heads", "seed", "T", "N", "path", "path_")
    assert ds.sampled_U1.dims[0] == "sampler" and list(ds.sampler.values) == ["gibbs-a"]
    assert list(ds.heads.values) == ["2x2", "2x1"]
    v = float(ds.accuracy.sel(P=20, heads="2x1", seed=3, T=0.1, N=100))
    assert v == pytest.approx(0.5 + 0.1 + 0.1 + 0.03)
    # a 2-path architecture pads U_1 to the 4 x 4 of the largest with NaN
    u = ds.U1.sel(P=20, heads="2x1", seed=0, T=0.01, N=10).values
    assert np.allclose(u[:2, :2], 10 * np.eye(2)) and np.isnan(u[2:, :]).all()
    assert list(ds.path_name.sel(heads="2x2").values) == ["g", "a1", "d", "a2"]
    # sampled only where configured
    s = ds.sampled_accuracy.sel(sampler="gibbs-a")
    assert np.isfinite(s.sel(N=10, T=0.01)).all() and np.isnan(s.sel(N=100)).all() and np.isnan(s.sel(T=0.1)).all()
    assert ds.attrs["theory_points"] == ds.attrs["theory_points_expected"] == 16


def test_netcdf_round_trip_and_provenance(dataset, tmp_path):
    path = store.save(dataset, str(tmp_path / "results.nc"))
    back = store.load(path)
    assert back.identical(dataset)
    assert store.load(str(tmp_path)).identical(dataset)  # the folder works too
    prov = store.provenance(back)
    assert prov["config"] == json.loads(json.dumps(CONFIG))
    assert prov["seeds"]["data_seeds"] == [0, 3] and prov["seeds"]["sampler_seeds"] == {"gibbs-a": 0}
    assert {"smtheory", "jax", "numpy", "xarray", "dask"} <= set(prov["versions"])
    assert prov["run"] == {"mode": "test"} and back.attrs["commit"]
    with pytest.raises(InputError, match="no sweep store"):
        store.load(str(tmp_path / "nothing.nc"))


def test_missing_tasks_are_nan():
    cfg = sweep.parse_config(CONFIG)
    first = sweep.make_tasks(cfg)[0]
    ds = store.build_dataset(cfg, _fake_payloads(cfg, skip={first["id"]}))
    assert ds.attrs["theory_points"] == 14
    pr = first["problem"]
    sel = dict(P=pr["P"], heads=sweep.heads_label(pr["heads"]), seed=pr["seed"], T=first["T"][0])
    assert np.isnan(ds.accuracy.sel(sel)).all()


def test_plots_straight_from_the_store(dataset, tmp_path):
    store.save(dataset, str(tmp_path / "r.nc"))
    ds = store.load(str(tmp_path / "r.nc"))
    fig = store.plot_metric(ds, "accuracy", P=20, seed=0, T=0.01)
    assert len(fig.axes[0].lines) >= 2
    fig = store.plot_metric(ds, "generalization_error", heads="2x2", P=20, T=0.01)  # one line per seed
    assert any("seed=3" in t.get_text() for t in fig.axes[0].get_legend().get_texts())
    fig = store.plot_order_parameter(ds, heads="2x1", P=20, seed=0, T=0.01)
    assert len(fig.axes[0].lines) >= 3
    with pytest.raises(InputError, match="select"):
        store.plot_metric(ds, "accuracy")
    with pytest.raises(InputError, match="no variable"):
        store.plot_metric(ds, "nope")
