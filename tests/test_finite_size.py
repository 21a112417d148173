"""Finite-size scaling of sampled minus theory (docs/theory.md §8.4): config, pipeline, resume, fits.

The pipeline tests replace the saddle-point solver and the ``overlap`` sampler by cheap fakes with a
known ``1/N`` difference (compiling the real sampler costs tens of seconds per point); the real
end-to-end run is ``test_real_tiny_run`` (marked slow).
"""
import csv
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest

from smtheory import sims
import smtheory
from smtheory import solvers
from smtheory import InputError
from smtheory.validation import finite_size as fs
from smtheory.validation.engine import TaskStore
from smtheory.validation.finite_size_report import write_report

U_STAR = np.array([[4.0, -1.0, 0.2, 0.0], [-1.0, 3.0, 0.0, 0.1], [0.2, 0.0, 0.5, 0.0], [0.0, 0.1, 0.0, 0.4]])
TINY = fs.FiniteSizeConfig(alphas=(1.0,), widths=(10, 20, 40), data_seeds=(0, 2), n_test=20, burnin=50, steps=20,
                           max_steps=40, chunk=20, fixed_train=10, fixed_widths=(10, 100, 1000))


class Fakes:
    """Fake solver / sampler: U_1* fixed; ⟨U_1⟩ = U_1* (1 + c/N) times a small seed-dependent factor."""

    def __init__(self, c=0.5, unconverged_widths=(), failed_theory_widths=()):
        self.c, self.unconverged, self.failed = c, set(unconverged_widths), set(failed_theory_widths)
        self.samples = 0

    def solve(self, problem, spec, *a, **k):
        N = max(spec.widths)
        res = SimpleNamespace(U1=U_STAR, converged=N not in self.failed, message="fake", U_a=1.0, action=0.0,
                              max_residual=0.0, hessian_min_eig=1.0)
        record = dict(vars(res), U1=U_STAR.tolist())  # the keys of SaddlePointResult.to_record used here
        res.to_record = lambda: record
        return res

    def continuation(self, problem, spec, widths, **k):
        return [self.solve(problem, spec.replace(widths=w)) for w in widths]

    def stats(self, problem, spec, U1):
        st = SimpleNamespace(accuracy=0.8, generalization_error=0.5)
        st.to_record = lambda: dict(test_accuracy=0.8, generalization_error=0.5)
        return st

    def sample(self, problem, spec, config, progress=True, **k):
        self.samples += 1
        N = max(spec.widths)
        wiggle = 1.0 + 0.05 * np.sin(config.seed + N)
        conv = N not in self.unconverged
        return SimpleNamespace(U1_sampled=U_STAR * (1 + self.c * wiggle / N), U1_mcse=np.full((4, 4), 1e-4),
                               test_accuracy=0.8 + 0.1 / N, test_accuracy_mcse=1e-3,
                               generalization_error=0.5 + 1.0 * wiggle / N, generalization_error_mcse=1e-3,
                               rhat_max=1.001 if conv else 1.2, ess_min=500.0, converged=conv, extensions=0,
                               config=config, run_time=0.1, compile_time=0.1)


@pytest.fixture
def fakes(monkeypatch):
    f = Fakes()
    monkeypatch.setattr(solvers, "solve", f.solve)
    monkeypatch.setattr(solvers, "continuation", f.continuation)
    monkeypatch.setattr(smtheory, "predictor_statistics", f.stats)
    monkeypatch.setattr(sims, "sample", f.sample)
    return f


def test_config_validation_names_the_parameter():
    bad = [(dict(paths=3), "paths"), (dict(alphas=()), "alphas"), (dict(alphas=(1.0, -1.0)), "alphas"),
           (dict(alphas=("a",)), "alphas"), (dict(widths=(0, 10)), "widths"), (dict(data_seeds=(0, 1)), "differ"),
           (dict(data_seeds=()), "data_seeds"), (dict(n_test=21), "n_test"), (dict(temperature=0.0), "temperature"),
           (dict(chains=1), "chains"), (dict(burnin=10), "burnin"), (dict(steps=100, max_steps=50), "max_steps"),
           (dict(fixed_train=99), "fixed_train"), (dict(rhat_target=1.0), "rhat_target"),
           (dict(alphas=(0.3,), widths=(10,)), "even integer"), (dict(max_train=1, fixed_train=0), "max_train")]
    for kwargs, needle in bad:
        with pytest.raises(InputError, match=needle):
            fs.FiniteSizeConfig(**kwargs)
    with pytest.raises(InputError, match="config"):
        fs.run_finite_size({"alphas": (1,)}, "x")
    with pytest.raises(InputError, match="workers"):
        fs.run_finite_size(TINY, "x", workers=0)


def test_grid_points_and_skips():
    cfg = fs.FiniteSizeConfig(alphas=(0.5, 2.0), widths=(10, 20, 40), max_train=40, data_seeds=(0, 2),
                              fixed_train=0)
    pts = {(p["alpha"], p["N"], p["P"]) for p in cfg.points()}
    assert pts == {(0.5, 20, 10), (0.5, 40, 20), (2.0, 10, 20), (2.0, 20, 40)}
    reasons = {(s["alpha"], s["N"]): s["reason"] for s in cfg.skipped()}
    assert "even integer" in reasons[(0.5, 10)] and "max_train" in reasons[(2.0, 40)]
    assert fs.DEMO_FS.points() and len(fs.FULL_FS.data_seeds) >= 5
    assert max(p["N"] for p in fs.FULL_FS.points() if p["alpha"] == 0.5) >= 1000


def test_tiny_run_writes_all_files_and_resumes(tmp_path, fakes):
    out = str(tmp_path / "fs")
    res = fs.run_finite_size(TINY, out, progress=False)
    # α = 1: N ∈ {10, 20, 40}; fixed P = 10: N ∈ {10, 100, 1000}; (10, 10) is shared -> 5 unique × 2 seeds
    assert len(res["points"]) == 10 and fakes.samples == 10 and res["computed"] == 10 and res["reused"] == 0
    g = {(r["series"], r["N"]): r for r in res["groups"]}
    assert g[("alpha", 20)]["n"] == 2 and g[("alpha", 20)]["rel_max"] == pytest.approx(0.5 / 20, rel=0.06)
    assert g[("alpha", 20)]["dacc"] == pytest.approx(0.1 / 20)
    paths = write_report(res, out)
    for p in paths["figures"] + [paths["csv"], paths["report"], os.path.join(out, "finite_size_results.json")]:
        assert os.path.getsize(p) > 0, p
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 and {r["status"] for r in rows} == {"ok"}
    text = open(paths["report"]).read()
    assert "Fixed α = 1" in text and "Fixed P = 10" in text and "γ" in text
    store = TaskStore(os.path.join(out, "tasks"))
    stage = store.path(fs._point_task(TINY, 20, 20, 2))
    assert os.path.basename(stage).startswith("fs-N20-P20-s2-")
    assert len(os.listdir(store.root)) == 10  # one task file per point
    before = os.path.getmtime(stage)
    again = fs.run_finite_size(TINY, out, progress=False)
    assert fakes.samples == 10 and again["reused"] == 10 and again["computed"] == 0
    assert os.path.getmtime(stage) == before
    assert json.load(open(stage))["key"]["N"] == 20
    assert again["points"] == [dict(p, reused=True) for p in res["points"]]  # as stored, fresh or reused
    # another sampler setting invalidates the stages
    fs.run_finite_size(TINY.replace(steps=40), out, progress=False)
    assert fakes.samples == 20


def test_interrupted_run_keeps_finished_points(tmp_path, fakes, monkeypatch):
    out = str(tmp_path / "fs")
    real = fakes.sample
    calls = {"n": 0}

    def dies_on_third(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(sims, "sample", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        fs.run_finite_size(TINY, out, progress=False)
    assert len(os.listdir(os.path.join(out, "tasks"))) == 2  # at most the point in progress is lost
    monkeypatch.setattr(sims, "sample", real)
    res = fs.run_finite_size(TINY, out, progress=False)
    assert res["reused"] == 2 and res["computed"] == 8


def test_unconverged_points_are_flagged_and_excluded(tmp_path, monkeypatch):
    f = Fakes(unconverged_widths={40}, failed_theory_widths={100})
    for mod, name, fn in ((solvers, "solve", f.solve), (solvers, "continuation", f.continuation),
                          (smtheory, "predictor_statistics", f.stats), (sims, "sample", f.sample)):
        monkeypatch.setattr(mod, name, fn)
    res = fs.run_finite_size(TINY, str(tmp_path), progress=False)
    assert res["excluded"] == dict(theory_unconverged=2, sampler_unconverged=2, sampler_error=0)
    g = {(r["series"], r["N"]): r for r in res["groups"]}
    assert g[("alpha", 40)]["n"] == 0 and g[("alpha", 40)]["excluded"]["sampler_unconverged"] == 2
    assert g[("alpha", 40)]["rel_max"] is None
    assert g[("fixed", 100)]["excluded"]["theory_unconverged"] == 2
    fit = res["fits"]["alpha"]["1"]
    assert fit["rel_max"]["widths"] == [10, 20] and fit["n_groups_excluded"] == 1
    assert res["fits"]["fixed"]["rel_max"]["widths"] == [10, 1000]
    assert f.samples == 8  # no sampling where the theory failed
    text = write_report(res, str(tmp_path), figures=False)["report"]
    assert "sampler unconverged" in open(text).read()


def test_point_differences_by_hand():
    th = dict(U1=U_STAR, test_accuracy=0.7, generalization_error=0.4)
    d = np.zeros((4, 4))
    d[0, 1] = d[1, 0] = 0.2
    d[2, 2] = -0.1
    se = np.full((4, 4), 0.01)
    sa = dict(U1_sampled=U_STAR + d, U1_mcse=se, test_accuracy=0.72, test_accuracy_mcse=0.005,
              generalization_error=0.38, generalization_error_mcse=0.002)
    out = fs.point_differences(th, sa)
    assert out["rel_max"] == pytest.approx(0.2 / 4.0) and out["rel_max_mcse"] == pytest.approx(0.01 / 4.0)
    nd, nu = np.sqrt(0.2 ** 2 * 2 + 0.01), np.linalg.norm(U_STAR)
    assert out["rel_frob"] == pytest.approx(nd / nu)
    # off-diagonal pair counted coherently: var = (2·0.2·0.01)² + (0.1·0.01)², divided by ‖ΔU‖
    assert out["rel_frob_mcse"] == pytest.approx(np.sqrt((2 * 0.2 * 0.01) ** 2 + (0.1 * 0.01) ** 2) / nd / nu)
    assert out["rel_frob_noise"] == pytest.approx(0.04 / nu)
    assert out["dacc"] == pytest.approx(0.02) and out["dgen"] == pytest.approx(-0.02)
    assert out["abs_dgen"] == pytest.approx(0.02) and out["dacc_mcse"] == 0.005


def test_group_standard_error_uses_spread_with_mcse_floor():
    def pt(v, m, status="ok"):
        diff = {q: v for q in fs._AVERAGED} | {f"{q}_mcse": m for q in fs._AVERAGED}
        return dict(status=status, seed=0, diff=diff, sampled=dict(rhat_max=1.0, ess_min=100.0))

    g = fs.group_statistics([pt(1.0, 0.01), pt(3.0, 0.01), pt(99.0, 0.01, "sampler_unconverged")])
    assert g["n"] == 2 and g["rel_max"] == 2.0 and g["rel_max_se"] == pytest.approx(1.0)  # s/√n = √2/√2
    g = fs.group_statistics([pt(1.0, 0.5), pt(1.0, 0.5)])  # seeds agree: the MCSE floor √(2·0.25)/2
    assert g["rel_max_se"] == pytest.approx(np.sqrt(0.5) / 2)
    g = fs.group_statistics([pt(2.0, 0.3)])
    assert g["rel_max_se"] == pytest.approx(0.3)


def test_power_law_fit_recovers_exponent_and_interval():
    N = np.array([10, 20, 40, 80, 160, 320])
    exact = fs.fit_power_law(N, 3.0 * N ** -1.0, 0.05 * 3.0 * N ** -1.0)
    assert exact["gamma"] == pytest.approx(1.0, abs=1e-12) and exact["amplitude"] == pytest.approx(3.0)
    assert exact["ci"][1] - exact["ci"][0] < 1e-9
    rng = np.random.default_rng(0)
    rel = np.array([0.05, 0.05, 0.1, 0.1, 0.2, 0.3])  # heteroscedastic relative errors
    covered, gammas = 0, []
    for _ in range(2000):
        y = 2.0 * N ** -0.8 * np.exp(rel * rng.standard_normal(N.size))
        f = fs.fit_power_law(N, y, rel * y)
        covered += f["ci"][0] <= 0.8 <= f["ci"][1]
        gammas.append(f["gamma"])
    assert 0.935 <= covered / 2000 <= 0.965  # exact t-interval coverage
    assert np.mean(gammas) == pytest.approx(0.8, abs=0.01)
    # the weights matter: an outlier with a large error barely moves the fit
    y = 2.0 * N ** -1.0
    y_out = y.copy()
    y_out[-1] *= 5
    se = 0.01 * y
    se[-1] = 10 * y_out[-1]
    assert fs.fit_power_law(N, y_out, se)["gamma"] == pytest.approx(1.0, abs=0.01)
    assert fs.fit_power_law(N[:2], y[:2], se[:2])["ci"] is None
    assert fs.fit_power_law([10], [1.0], [0.1])["gamma"] is None
    assert fs.fit_power_law([10, 20, 40], [1.0, 0.0, 0.2], [0.1, 0.1, 0.1])["n"] == 2  # zero dropped


def test_noise_limited_widths_are_left_out_of_the_fit():
    N = [10, 20, 40, 80, 1000]
    y = [1 / 10, 1 / 20, 1 / 40, 1 / 80, 0.01]  # the last is a noise floor, not 1/1000
    noise = [1e-4, 1e-4, 1e-4, 1e-4, 0.008]
    groups = [dict(N=n, n=3, **{k: v for q in fs.QUANTITIES
                                for k, v in ((q, yy), (f"{q}_se", 0.05 * yy), (f"{q}_noise", nn))})
              for n, yy, nn in zip(N, y, noise)]
    fit = fs.fit_series(groups, min_snr=2.0)["rel_max"]
    assert fit["noise_limited"] == [1000] and fit["widths"] == [10, 20, 40, 80]
    assert fit["gamma"] == pytest.approx(1.0)
    loose = fs.fit_series(groups, min_snr=0.0)["rel_max"]
    assert loose["noise_limited"] == [] and loose["gamma"] < 0.8
    assert fs.fit_series(groups, min_width=20)["rel_max"]["widths"] == [20, 40, 80]
    with pytest.raises(InputError, match="fit_min_snr"):
        fs.FiniteSizeConfig(fit_min_snr=-1)


@pytest.mark.slow
def test_real_tiny_run(tmp_path):
    """The real solver and overlap sampler end to end (α = 1, N ∈ {10, 20}, one seed; minutes: compiles)."""
    cfg = fs.FiniteSizeConfig(alphas=(1.0,), widths=(10, 20), data_seeds=(0,), n_test=50, burnin=60, steps=100,
                              max_steps=400, fixed_train=0)
    res = fs.run_finite_size(cfg, str(tmp_path), progress=False)
    assert len(res["points"]) == 2
    for p in res["points"]:
        assert p["theory"]["converged"]
        assert p["status"] in ("ok", "sampler_unconverged")
        assert 0 < p["diff"]["rel_max"] < 0.5
    paths = write_report(res, str(tmp_path))
    assert all(os.path.exists(p) for p in paths["figures"])
