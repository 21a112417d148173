"""Theory versus sampling on the hidden-Markov task (issue 4): driver, claims, agreement, report, CLI.

Reduced sizes: the claims of docs/theory.md §5 are checked on the theory at P = 100 (cheap), the
theory/sampler agreement at the largest sampled width on a smaller training set.  The overlap sampler is exact
at finite N, so at N = 200 it resolves the O(1/N) finite-size correction (generalisation error +0.6 %, 4.9 MCSE);
agreement within Monte-Carlo error is therefore checked at N = 5000, where that correction is far below the MCSE
(its cost does not grow with N).
"""
import json
import os

import numpy as np
import pytest

from smtheory import InputError
from smtheory.cli import main
from smtheory.validation.engine import TaskStore
from smtheory.validation.markov import MarkovConfig, _sample_task, compare_width, run_markov
from smtheory.validation.markov_report import check_claims, write_report

# Agreement at the largest sampled width: P = 40, N = 5000, short but converged chains.
AGREE_N = 5000
REDUCED = MarkovConfig(paths=4, n_train=40, n_test=200, widths=(10, 1000),
                       sampling=((10, 50, 8), (AGREE_N, 100, 400)), gibbs_check=((10, 50, 300),),
                       max_extensions=1, chunk=50, kernel_examples=20, alignment_top=10)


@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("markov"))
    return run_markov(REDUCED, out, progress=False), out


def test_config_errors_name_the_parameter():
    with pytest.raises(InputError, match="paths"):
        MarkovConfig(paths=3)
    with pytest.raises(InputError, match="n_train"):
        MarkovConfig(n_train=41)
    with pytest.raises(InputError, match="sampling"):
        MarkovConfig(sampling=((10, 5),))
    with pytest.raises(InputError, match="twice"):
        MarkovConfig(sampling=((10, 5, 10), (10, 1, 10)))
    with pytest.raises(InputError, match="temperature"):
        MarkovConfig(temperature=0.0)
    with pytest.raises(InputError, match="kernel_examples"):
        MarkovConfig(n_train=20, kernel_examples=40)
    with pytest.raises(InputError, match="config"):
        run_markov({"paths": 4})


@pytest.mark.parametrize("paths", [4, 2])
def test_theory_shows_the_claims_of_theory_section_5(tmp_path, paths):
    """Every qualitative claim of docs/theory.md §5 holds on the theory at the paper's P = 100 and 1000 test sequences."""
    # theory only: the claims read the theory, the GP and the kernels (no sampling, no Gibbs check)
    cfg = MarkovConfig(paths=paths, n_train=100, n_test=1000, widths=(10, 30, 100, 300, 1000), sampling=(),
                       gibbs_check=())
    res = run_markov(cfg, str(tmp_path), progress=False)
    assert all(r["converged"] and r["max_residual"] < 1e-8 and r["hessian_min_eig"] > 0 for r in res["theory"])
    claims = check_claims(res)
    assert len(claims) >= (6 if paths == 4 else 3)
    failed = [(c, ev) for c, ok, ev in claims if not ok]
    assert not failed, failed


def test_theory_and_sampler_agree_at_the_largest_width(reduced):
    res, _ = reduced
    s = res["samples"][str(AGREE_N)]
    assert s["converged"] and s["rhat_max"] <= 1.01, s["rhat_max"]
    c = res["comparison"][str(AGREE_N)]
    # within Monte-Carlo error (|Δ| ≤ 4 MCSE) for every U_1 entry, accuracy and generalisation error
    assert c["max_abs_z_U1"] < 4.0, np.asarray(c["U1"]["z"])
    assert c["generalization_error"]["z"] < 4.0, c["generalization_error"]
    assert c["accuracy"]["abs_diff"] <= max(4.0 * c["accuracy"]["mcse"], 1.0 / REDUCED.n_test), c["accuracy"]
    np.testing.assert_allclose(c["U1"]["abs_diff"], np.abs(np.asarray(c["U1"]["theory"]) - c["U1"]["sampled"]))
    # the sampled predictor follows the theory's on the test set
    th = np.asarray(next(r for r in res["theory"] if r["width"] == AGREE_N)["predictor_mean"])
    assert np.corrcoef(th, s["predictor_mean"])[0, 1] > 0.98


def test_unconverged_small_width_is_reported_not_hidden(reduced):
    """8 draws per chain at N = 10 cannot meet R-hat ≤ 1.01: the run says so, after one automatic
    extension (to 16), and its comparison (with the small-N discrepancy) is still written out."""
    res, out = reduced
    s = res["samples"]["10"]
    assert not s["converged"] and s["rhat_max"] > 1.01
    assert s["extensions"] == 1 and s["sample_config"]["steps"] == 16
    assert "10" in res["comparison"] and np.isfinite(res["comparison"]["10"]["max_abs_z_U1"])
    report = write_report([res], os.path.join(out, "report"))
    text = open(report).read()
    assert "N = 10 (**NOT CONVERGED**" in text and f"N = {AGREE_N} (converged" in text
    assert "| 10 |" in text  # the agreement summary row of the small width
    assert "Weight-space cross-check" in text and "max z over U_1" in text  # Gibbs at N = 10 beside it
    g = res["gibbs_comparison"]["10"]["vs_sampler"]
    assert set(g) >= {"U1", "max_abs_z_U1", "test_accuracy", "generalization_error"}


def test_outputs_are_written_with_provenance(reduced):
    res, out = reduced
    rdir = os.path.join(out, "report")
    write_report([res], rdir)
    stems = ["accuracy", "generalization", "U1", "kernels", "alignment", "predictor"]
    for stem in stems:
        for ext in ("png", "pdf"):
            path = os.path.join(rdir, f"markov4_{stem}.{ext}")
            assert os.path.getsize(path) > 1000, path
    stored = json.load(open(os.path.join(out, "markov4_results.json")))
    assert stored["config"] == REDUCED.to_dict()
    assert stored["seeds"] == {"data_seed": 0, "head_seed": 0, "sample_seed": 0}
    assert "jax" in stored["versions"] and "commit" in stored
    rows = open(os.path.join(rdir, "markov4_table.csv")).read().splitlines()
    assert rows[0].startswith("network,width,quantity,source,value,mcse")
    assert sum(",sampled," in r for r in rows) == 2 * (2 + 10)  # 2 widths × (acc, gen, 10 U_1 entries)


def test_rerun_reuses_stages_and_resumes_sampling(reduced, tmp_path):
    """A second run with the same configuration reuses every stage (one task file each in OUT/tasks/); a
    deleted task file is recomputed from the sampler checkpoint and gives the same numbers."""
    res, out = reduced
    store = TaskStore(os.path.join(out, "tasks"))
    labels = sorted(f.rsplit("-", 1)[0] for f in os.listdir(store.root))
    assert labels == sorted(["markov4-theory", "markov4-kernels", "markov4-sample-N10", f"markov4-sample-N{AGREE_N}",
                             "markov4-gibbs-N10"])
    again = run_markov(REDUCED, out, progress=False)
    assert again["samples"][str(AGREE_N)]["U1_sampled"] == res["samples"][str(AGREE_N)]["U1_sampled"]
    assert again["wall_time"] < 0.5 * res["wall_time"]
    task = _sample_task(REDUCED, out, AGREE_N)
    assert store.load_payload(task)["key"]["width"] == AGREE_N
    os.unlink(store.path(task))
    redo = run_markov(REDUCED, out, progress=False)
    np.testing.assert_allclose(redo["samples"][str(AGREE_N)]["U1_sampled"],
                               res["samples"][str(AGREE_N)]["U1_sampled"], rtol=1e-12)


def test_compare_width_units():
    theory = {"U1": [[2.0, 0.0], [0.0, 1.0]], "test_accuracy": 0.9, "generalization_error": 0.5}
    sampled = {"U1_sampled": [[2.2, 0.0], [0.0, 1.0]], "U1_mcse": [[0.1, 0.1], [0.1, 0.1]], "test_accuracy": 0.85,
               "test_accuracy_mcse": 0.01, "generalization_error": 0.53, "generalization_error_mcse": 0.01}
    c = compare_width(theory, sampled)
    assert c["max_abs_z_U1"] == pytest.approx(2.0)
    assert c["accuracy"]["z"] == pytest.approx(5.0) and c["generalization_error"]["z"] == pytest.approx(3.0)
    # with the test set known (one predictor value per point): an accuracy MCSE below half a test point gives no z
    exact = dict(sampled, test_accuracy_mcse=0.0, predictor_mean=[0.1] * 100)
    assert np.isnan(compare_width(theory, exact)["accuracy"]["z"])
    assert compare_width(theory, dict(exact, test_accuracy_mcse=0.01))["accuracy"]["z"] == pytest.approx(5.0)


def test_cli_compare_reduced_and_bad_input(tmp_path, capsys):
    out = str(tmp_path / "cmp")
    code = main(["compare", "markov", "--paths", "2", "--n-train", "20", "--n-test", "40", "--widths", "10", "100",
                 "--sample-widths", "100", "--burnin", "60", "--steps", "200", "--gibbs-widths", "--out", out,
                 "--quiet"])
    text = capsys.readouterr().out
    assert code in (0, 3) and "markov2 N=100: accuracy theory" in text
    assert os.path.exists(os.path.join(out, "report.md")) and os.path.exists(os.path.join(out, "markov2_results.json"))
    assert code == (0 if json.load(open(os.path.join(out, "markov2_results.json")))["samples"]["100"]["converged"]
                    else 3)
    assert main(["compare", "markov", "--n-train", "21", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "n_train" in capsys.readouterr().err
