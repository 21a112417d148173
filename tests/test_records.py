"""One record per result (issue 14): to_record() is JSON-ready and from_record() gives the result back."""
import dataclasses
import json
import warnings

import numpy as np
import pytest

import smtheory as smt
import smtheory.solvers
from smtheory.predictor import PredictorStats, predictor_statistics
from smtheory.records import array_from_json, json_array, json_tree, tree_from_json
from smtheory.sims.config import SampleConfig, SampleResult
from smtheory.sims.run import sample
from smtheory.solvers.numeric import SaddlePointResult
from tests.conftest import random_problem


def _same(a, b):
    """Field-by-field equality (arrays exactly, NaN equal to NaN)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and not (a and np.ndim(a[0]) == 0 and not isinstance(a[0], str)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, str) or a is None or dataclasses.is_dataclass(a):
        return a == b
    return np.array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float), equal_nan=True)


def _assert_round_trip(obj, record):
    back = type(obj).from_record(json.loads(json.dumps(record, allow_nan=False)))
    for f in dataclasses.fields(obj):
        assert _same(getattr(obj, f.name), getattr(back, f.name)), f.name


@pytest.fixture(scope="module")
def solved():
    prob = random_problem(heads=(2, 2), P=20, Q=8, seed=3)
    spec = smt.ModelSpec(heads=(2, 2), widths=10, temperature=0.1)
    return prob, spec, smtheory.solvers.solve(prob, spec)


def test_saddle_point_record_round_trips(solved):
    _, _, res = solved
    rec = res.to_record()
    for key in ("U", "U1", "U_a", "action", "residuals", "max_residual", "solve_time", "compile_time", "spec", "theta"):
        assert key in rec
    assert "Ua" not in rec and "time" not in rec
    assert res.to_dict() == rec and res.time == res.solve_time
    _assert_round_trip(res, rec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.U_a = 0.0


def test_solve_reports_compilation_apart(solved):
    prob, spec, first = solved
    assert first.compile_time >= 0 and first.solve_time > 0
    again = smtheory.solvers.solve(prob, spec)  # same shapes: every compiled function is reused
    assert again.compile_time == 0.0
    assert np.array_equal(again.U1, first.U1)
    assert "solve_time=" in repr(again) and "compile_time=" in repr(again)


def test_predictor_record_round_trips(solved):
    prob, spec, res = solved
    st = predictor_statistics(prob, spec, res.U1)
    rec = st.to_record()
    assert rec["test_accuracy"] == st.accuracy and "accuracy" not in rec
    assert len(rec["predictor_mean"]) == prob.xi_test.shape[0]
    _assert_round_trip(st, rec)
    nan = PredictorStats(np.zeros(2), np.ones(2), 0.5, float("nan"), float("nan"), "regression")
    assert nan.to_record()["test_accuracy"] is None
    _assert_round_trip(nan, nan.to_record())


def test_sample_record_round_trips():
    prob = random_problem(heads=(2, 1), P=12, Q=6, N0=4, seed=3)
    spec = smt.ModelSpec(heads=(2, 1), widths=8, temperature=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sample(prob, spec, SampleConfig(sampler="gibbs", chains=2, steps=20, burnin=5, chunk=10, max_steps=20),
                     progress=False)
    rec = res.to_record()
    for key in ("U1_sampled", "U1_mcse", "rhat_max", "ess_min", "test_accuracy", "run_time", "compile_time",
                "converged", "traces"):
        assert key in rec
    assert res.compile_time > 0
    _assert_round_trip(res, rec)
    light = SampleResult.from_record(res.to_record(traces=False))
    assert light.traces is None and light.trace_names == res.trace_names
    assert np.array_equal(light.U1_sampled, res.U1_sampled) and light.converged == res.converged
    assert res.replace(extensions=3).extensions == 3 and res.extensions == 0


def test_json_helpers():
    a = np.array([[1.0, np.nan], [np.inf, -2.0]])
    assert json_array(a) == [[1.0, None], [None, -2.0]]
    assert np.array_equal(array_from_json(json_array(a)), np.where(np.isfinite(a), a, np.nan), equal_nan=True)
    tree = {"x": {"rhat": np.float64(1.2), "mcse": np.array([0.1, np.nan])}, "names": ["a"], "ok": np.bool_(True)}
    out = json_tree(tree)
    assert json.loads(json.dumps(out, allow_nan=False)) == {"x": {"rhat": 1.2, "mcse": [0.1, None]}, "names": ["a"],
                                                            "ok": True}
    assert np.isnan(tree_from_json(out)["x"]["mcse"][1])
