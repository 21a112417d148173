"""Multi-model pruning statistics (docs/theory.md §7): statistics on synthetic inputs, a tiny run, bad input."""
import json

import numpy as np
import pytest

from smtheory.checks import InputError
from smtheory.validation import pruning_stats as ps


def _fake_result(seed, rho_sign=1.0, noise=0.0, heads=(2, 2), rng=None):
    """A per-model result whose measured drops are a known function of the theory scores."""
    rng = rng or np.random.default_rng(seed)
    n = sum(heads)
    scores = rng.random(n)
    drops = rho_sign * scores + noise * rng.standard_normal(n)
    single = {s: dict(measured=drops.tolist(), theory_side=(drops + 0.01).tolist(), resolved=(drops + 0.1).tolist())
              for s in ("test", "ood")}
    curve = dict(test=[0.9, 0.8, 0.85], ood=[0.8, 0.7, 0.7], no_rescale=[0.9, 0.8, 0.85], recentred=[0.9, 0.8, 0.79],
                 frac_positive=[0.5, 0.7, 0.6], heads_left=[[2, 2], [1, 2], [1, 1]], removed=[[0, 0], [1, 0]])
    return dict(heads=list(heads), seed=seed, status="ok", n_test=1000, gd=dict(test=0.9, ood=0.8, val=0.9),
                scores={k: scores.tolist() for k in ("theory", "trained_u1", "gradient", "ablation")}, single=single,
                curves={k: dict(curve) for k in ("theory", "gradient")}, random=[dict(curve)],
                theory_curve=dict(theory_side_test=[0.9, 0.88, 0.86], resolved_test=[0.9, 0.8, 0.85],
                                  theory_side_ood=[0.8, 0.8, 0.8], resolved_ood=[0.8, 0.7, 0.7]))


def test_mean_interval_covers_known_mean():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(400):
        m, lo, hi = ps.mean_interval(rng.normal(3.0, 1.0, size=(8, 1)))
        hits += bool(lo[0] <= 3.0 <= hi[0])
    assert 0.91 <= hits / 400 <= 0.985  # nominal 95 %


def test_spearman_perfect_and_reversed():
    res = [_fake_result(s) for s in range(6)]
    out = ps.spearman_summary(res, "theory", n_boot=200)
    assert out["pooled"] == pytest.approx(1.0) and np.allclose(out["per_model"], 1.0)
    assert out["pooled_ci"][0] == pytest.approx(1.0)
    rev = ps.spearman_summary([_fake_result(s, rho_sign=-1.0) for s in range(6)], "theory", n_boot=200)
    assert rev["pooled"] == pytest.approx(-1.0)


def test_spearman_bootstrap_interval_covers_known_rho():
    """Scores and drops from a Gaussian copula with a known Spearman ρ: the cluster-bootstrap interval covers it."""
    rho_s = 0.6
    r = 2 * np.sin(np.pi * rho_s / 6)  # Pearson of the Gaussian with Spearman rho_s
    rng = np.random.default_rng(1)
    res = []
    for s in range(30):
        z = rng.multivariate_normal([0, 0], [[1, r], [r, 1]], size=8)
        d = _fake_result(s, heads=(4, 4))
        d["scores"]["theory"] = z[:, 0].tolist()
        d["single"]["test"]["measured"] = z[:, 1].tolist()
        res.append(d)
    out = ps.spearman_summary(res, "theory", n_boot=400)
    lo, hi = out["pooled_ci"]
    assert lo < rho_s < hi
    assert hi - lo < 0.5
    assert out["mean_ci"][0] < out["mean"] < out["mean_ci"][1]


def test_random_ranking_is_uncorrelated_on_average():
    res = [_fake_result(s, heads=(4, 4)) for s in range(40)]
    out = ps.spearman_summary(res, "random", n_boot=200)
    assert out["pooled_ci"][0] < 0 < out["pooled_ci"][1]


def test_claim_table_on_constructed_drops():
    good = _fake_result(0, heads=(2, 2))
    good["scores"]["theory"] = [0.1, 0.9, 0.2, 0.8]
    good["single"]["test"]["measured"] = [0.01, 0.10, 0.015, 0.05]
    bad = json.loads(json.dumps(good))
    bad["seed"] = 1
    bad["single"]["test"]["measured"] = [0.01, 0.10, 0.03, 0.05]  # second lowest costs 3 points
    other = json.loads(json.dumps(good))
    other["seed"] = 2
    other["single"]["test"]["measured"] = [0.01, 0.10, 0.015, 0.005]  # a high-scoring head is free
    chance = json.loads(json.dumps(good))
    chance["seed"] = 3
    chance["gd"]["test"] = 0.52  # within 2 SE (0.032) of 0.5 at n = 1000
    rows = ps.claim_table([good, bad, other, chance], "theory", lowest=2, threshold=0.02)
    assert [r["holds"] for r in rows] == [True, False, False, None]
    assert rows[1]["lowest_ok"] is False and rows[1]["others_ok"] is True
    assert rows[2]["lowest_ok"] is True and rows[2]["others_ok"] is False
    assert "chance" in rows[3]["reason"]


def test_monotonicity_counts_rises():
    m = ps.monotonicity([_fake_result(0)])
    # 3 curves (2 rankings + 1 random), each rising 0.80 -> 0.85 once after a layer has one head
    assert m["curves"] == 3 and m["rises"] == 3 and m["rises_no_rescale"] == 3 and m["rises_recentred"] == 0
    assert m["rises_after_one_head"] == 3 and m["rescale_changes_accuracy"] == 0.0


def test_prediction_errors_prefer_the_closer_prediction():
    out = ps.prediction_errors([_fake_result(s) for s in range(4)], "test", n_boot=100)
    assert out["theory_side"]["mae_single"] == pytest.approx(0.01)
    assert out["resolved"]["mae_single"] == pytest.approx(0.1)
    assert out["resolved"]["mae_curve"] < out["theory_side"]["mae_curve"]


def test_curve_bands_over_models():
    b = ps.curve_bands([_fake_result(s) for s in range(3)])
    assert b["theory"]["mean"] == pytest.approx([0.9, 0.8, 0.85]) and b["theory"]["n"] == 3
    assert "random" in b


def test_rescaling_never_changes_accuracy():
    """Pruning rescales the head sum by a positive constant, so sign(f) — the accuracy — is unchanged."""
    from smtheory.pruning import prune
    from smtheory.sims.training import predict

    rng = np.random.default_rng(0)
    heads, N, N0, G = (3, 2), 5, 6, 3
    params = {"Q": [rng.standard_normal((h, G, N0)) for h in heads], "K": [rng.standard_normal((h, G, N0)) for h in heads],
              "V0": rng.standard_normal((N, N0)), "V": [rng.standard_normal((h, N, N)) for h in heads],
              "a": rng.standard_normal(N)}
    x = rng.standard_normal((50, N0, 4))
    pruned = prune(params, [(0, 1)])
    zeroed = dict(params, V=[v.copy() for v in params["V"]])
    zeroed["V"][0][1] = 0.0
    f1, f2 = predict({k: v for k, v in pruned.items() if k != "pruned"}, x), predict(zeroed, x)
    assert np.allclose(f1, f2 * np.sqrt(3 / 2))
    assert np.array_equal(np.sign(f1), np.sign(f2))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from smtheory.validation.pruning_seeds import PruneSeedsConfig, run_pruning_seeds

    out = tmp_path_factory.mktemp("seeds")
    cfg = PruneSeedsConfig(architectures=((2, 2),), seeds=3, train_steps=40, n_train=30, n_val=30, n_test=40,
                           permutations=2, theory_widths=(32,), temperatures=(1.0,), n_boot=50)
    return cfg, out, run_pruning_seeds(cfg, str(out), progress=False)


def test_statistics_over_several_seeds(tiny_run):
    cfg, out, res = tiny_run
    assert [m["seed"] for m in res["models"]] == [0, 1, 2]
    assert len({tuple(m["scores"]["theory"]) for m in res["models"]}) == 3  # independently trained models
    s = res["summary"]["all"]
    assert s["spearman"]["theory"]["test"]["n_models"] == sum(m["status"] == "ok" for m in res["models"])
    assert len(s["spearman"]["gradient"]["test"]["per_model"]) == s["n_models"]
    assert len(res["summary"]["claims"]["theory"]) == 3
    assert (out / "pruning_seeds.json").exists() and any((out / "tasks").iterdir())


def test_rerun_reuses_tasks(tiny_run):
    from smtheory.validation.pruning_seeds import run_pruning_seeds

    cfg, out, res = tiny_run
    again = run_pruning_seeds(cfg, str(out), progress=False)
    assert again["wall_time"] < res["wall_time"]
    assert again["models"][0]["scores"] == res["models"][0]["scores"]


def test_report_written(tiny_run):
    from smtheory.validation.pruning_stats_report import write_report

    _, out, res = tiny_run
    paths = write_report(res, str(out / "report"))
    text = open(paths["report"]).read()
    assert "claim holds" in text and "Spearman" in text and len(paths["figures"]) == 6


def test_model_file_of_another_architecture_is_refused(tiny_run, tmp_path):
    """A checkpoint of another architecture where the model should be: refused by name, not silently used."""
    import shutil

    from smtheory.validation.digits_models import model_path
    from smtheory.validation.pruning_seeds import PruneSeedsConfig, run_pruning_seeds

    cfg, out, _ = tiny_run
    other = cfg.replace(architectures=((3, 2),), seeds=1)
    dest = model_path(str(tmp_path), other.train_config((3, 2), 0))
    import os

    os.makedirs(os.path.dirname(dest))
    shutil.copy(model_path(str(out), cfg.train_config((2, 2), 0)), dest)
    with pytest.raises(InputError, match="different configuration"):
        run_pruning_seeds(other, str(tmp_path), progress=False)


@pytest.mark.parametrize("argv, word", [
    (["--seeds", "0"], "--seeds"),
    (["--seeds", "2", "--architectures", "4x1"], "--architectures"),
    (["--seeds", "2", "--architectures", "4xq"], "--architectures"),
    ([], "exactly one of --model"),
    (["--seeds", "2", "--n-train", "3"], "--n-train"),
])
def test_cli_bad_input(argv, word, tmp_path, capsys):
    from smtheory.cli import main

    assert main(["prune", *argv, "--out", str(tmp_path / "o")]) == 2
    assert word in capsys.readouterr().err


def test_config_refuses_bad_values():
    from smtheory.validation.pruning_seeds import PruneSeedsConfig

    with pytest.raises(InputError, match="seeds"):
        PruneSeedsConfig(seeds=0)
    with pytest.raises(InputError, match="threshold"):
        PruneSeedsConfig(threshold=2.0)


def test_single_model_report_says_when_the_model_is_at_chance():
    from smtheory.validation.pruning_outputs import chance_note

    res = dict(config=dict(n_test=1000), gd_accuracy=dict(test=0.52, ood=0.90))
    text = " ".join(chance_note(res))
    assert "at chance on the in-distribution test set" in text and "out-of-distribution" not in text
    assert chance_note(dict(config=dict(n_test=1000), gd_accuracy=dict(test=0.9, ood=0.8))) == []
