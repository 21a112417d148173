"""Theory versus sampling on the digits task (docs/theory.md §6) at reduced size."""
import os

import numpy as np
import pytest

from smtheory.checks import InputError
from smtheory.validation import digits
from smtheory.validation.digits import DigitsConfig

TINY = DigitsConfig(heads=(2, 2), train_steps=40, n_train=24, n_val=20, n_test=20, widths=(10, 1000),
                    sampling=((10, 60, 60), (1000, 60, 60)), gibbs_check=((10, 30, 60),), chains=2, temperatures=(0.1, 1.0),
                    chunk=30, max_extensions=0, alignment_top=8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    return out, digits.run_digits(TINY, str(out), progress=False)


def _flipped(problems):
    """The same problems with the test and held-out labels negated (their accuracies become 1 − a)."""
    from smtheory.problem import KernelProblem

    out = dict(problems)
    for s in ("test", "ood"):
        p = problems[s]
        out[s] = KernelProblem(p.xi_train, p.y_train, p.heads, p.xi_test, -p.y_test)
    return out


def test_temperature_is_chosen_on_validation_only(tiny, monkeypatch):
    """Negating the test labels turns the best test temperature into the worst: the choice must not move."""
    out, res = tiny
    model = dict(checkpoint=res["model"]["checkpoint"], config=res["model"]["config"])
    base = digits.problems_for(TINY, model)
    cfg = TINY.replace(temperatures=(0.001, 0.1, 10.0))
    row = digits.theory_width(cfg, 10, model)
    gp = digits.gp_baseline(cfg, model)
    monkeypatch.setattr(digits, "problems_for", lambda c, m: _flipped(base))
    row_f = digits.theory_width(cfg, 10, model)
    gp_f = digits.gp_baseline(cfg, model)
    assert row_f["temperature"] == row["temperature"] and gp_f["temperature"] == gp["temperature"]
    assert row_f["val"] == row["val"]
    assert row_f["test"]["accuracy"] == pytest.approx(1 - row["test"]["accuracy"])  # the flip took effect
    # and the choice really is the best validation point of the grid
    ok = [g for g in row["grid"] if g["converged"]]
    assert row["val"]["accuracy"] == max(g["val_accuracy"] for g in ok)


def test_sampled_agrees_with_theory_at_largest_width(tiny):
    _, res = tiny
    c = res["comparison"]["sample-1000"]
    assert c["U1"]["max_rel_diff"] < 0.03
    assert c["U1"]["max_abs_z"] < 4.0
    for split in ("test", "ood"):
        assert abs(c[split]["theory"] - c[split]["sampled"]) <= 3 * (c[split]["mcse"] or 0.0) + 1.0 / TINY.n_test


def test_results_and_report(tiny):
    from smtheory.validation.digits_report import write_report

    out, res = tiny
    assert [r["width"] for r in res["theory"]] == [10, 1000]
    assert set(res["samples"]) == {"sample-10", "sample-1000", "gibbs-10"}
    sp = res["samples"]["sample-1000"]["splits"]
    assert 0 <= sp["test"]["accuracy"] <= 1 and sp["ood"]["accuracy_mcse"] is not None
    unconverged = [v for v in res["samples"].values() if not v["converged"]]
    assert len(res["flagged"]) == len(unconverged) + sum(not r["converged"] for r in res["theory"])
    paths = write_report(res, str(out))
    text = open(paths["report"]).read()
    assert "Accuracy versus N" in text and "GP (∞)" in text
    assert str(res["commit"]) in text and "Gibbs versus overlap" in text
    ck = os.path.relpath(res["model"]["checkpoint"], str(out))
    assert not ck.startswith(os.pardir) and f"Checkpoint `{ck}`" in text  # relative to the report's folder
    assert len(paths["figures"]) == 8


def test_split_accuracy_on_constructed_record():
    rec = dict(predictor_mean=[1.0, -1.0, 1.0, 1.0], predictor_variance=[0.0] * 4, test_accuracy_mcse=0.01,
               generalization_error_mcse=0.02)
    out = digits.split_accuracy(rec, [1.0, 1.0], [1.0, -1.0])
    assert out["test"]["accuracy"] == 0.5 and out["ood"]["accuracy"] == 0.5
    assert out["test"]["accuracy_mcse"] == pytest.approx(0.01 * np.sqrt(2))
    assert out["test"]["generalization_error"] == pytest.approx(2.0)


@pytest.mark.parametrize("argv, word", [
    (["compare", "omniglot"], "invalid choice"),
    (["compare", "digits", "--n-train", "3"], "--n-train"),
    (["compare", "digits", "--sampler", "gibbs"], "--sampler"),
    (["compare", "digits", "--chains", "0"], "--chains"),
])
def test_cli_bad_input(argv, word, tmp_path, capsys):
    from smtheory.cli import main

    try:
        code = main([*argv, "--out", str(tmp_path / "o")])
    except SystemExit as exc:  # argparse
        code = exc.code
    assert code == 2
    assert word in capsys.readouterr().err


def test_config_refuses_bad_values():
    with pytest.raises(InputError, match="n_train"):
        DigitsConfig(n_train=5)
    with pytest.raises(InputError, match="temperatures"):
        DigitsConfig(temperatures=(-1.0,))
    with pytest.raises(InputError):
        DigitsConfig(sampling=((10, 100),))
