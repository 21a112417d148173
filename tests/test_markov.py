"""The hidden-Markov task of docs/theory.md §5: generator and the theory-side qualitative facts."""
import numpy as np
import pytest

import smtheory as smt
import smtheory.solvers
from smtheory.tasks import markov


def test_generator_is_reproducible_balanced_and_has_the_stated_statistics():
    task = markov.MarkovTask()
    x, y, eta = task.sample(2000, seed=7)
    x2, _, _ = task.sample(2000, seed=7)
    np.testing.assert_array_equal(x, x2)
    assert x.shape == (4000, 231, 31) and np.sum(y == 1) == 2000
    assert np.all(x[:, :200, 0] == 0)  # BOS token
    np.testing.assert_array_equal(x[0, 200:, :], np.eye(31))  # one-hot positions
    stay = (eta[:, 1:] == eta[:, :-1]).mean(axis=1)
    assert abs(stay[y == 1].mean() - 0.7) < 0.01 and abs(stay[y == -1].mean() - 0.3) < 0.01
    # the clean part is v_eta; the noise has unit variance per feature by default
    vp, vm = markov.state_vectors()
    clean = np.where(eta[:, None, :] > 0, vp[:, None], vm[:, None])
    assert abs(np.std(x[:, :200, 1:] - clean) - 1.0) < 0.01


def test_good_head_attends_to_previous_same_state_token_else_bos():
    task = markov.MarkovTask(noise=(0.0, 0.0, 0.0))
    x, _, eta = task.sample(5, seed=1)
    om = smt.AttentionLayer(W=markov.good_head()[None])(x)[:, 0]
    for p in range(10):
        for t in range(2, 31):
            target = t - 1 if eta[p, t - 1] == eta[p, t - 2] else 0  # tokens are 1-based after BOS
            assert om[p, :, t].argmax() == target and om[p, target, t] > 0.85


@pytest.fixture(scope="module")
def markov4():
    return markov.markov_problem(paths=4, n_train=100, n_test=1000, seed=0)


def test_markov_qualitative_facts_4_paths(markov4):
    spec = smt.ModelSpec(heads=(2, 2), temperature=0.01)
    gp = {name: smt.predictor_statistics(markov4, spec, gp=True, subnetwork=smt.subnetwork_paths((2, 2), kept)).accuracy
          for name, kept in markov.SUBNETWORKS[4].items()}
    assert gp["all"] < gp["g"] - 0.03  # clearly worse
    assert gp["g"] <= gp["g+d"]
    widths = [10, 30, 100, 1000]
    results = smtheory.solvers.continuation(markov4, spec, widths=widths)
    assert all(r.converged for r in results)
    acc = [smt.predictor_statistics(markov4, r.spec, r.U1).accuracy for r in results]
    assert all(a1 >= a2 for a1, a2 in zip(acc, acc[1:]))  # rises as N falls
    assert acc[0] >= gp["g"] and abs(acc[-1] - gp["all"]) < 0.02
    U = results[0].U1  # N = 10; paths g, a1, d, a2
    g, a1, d, a2 = range(4)
    assert U[g, g] > 2 and U[d, d] > 2  # well above the GP value 1
    assert U[g, d] < -1  # large and negative
    assert U[a1, a1] < 1 and U[a2, a2] < 1
    off = results[-1].U1 - np.diag(np.diag(results[-1].U1))
    assert np.abs(off).max() < 0.05 * np.diag(results[-1].U1).min()  # nearly diagonal at N = 1000


def test_markov_alignment_renormalised_beats_gp(markov4):
    spec = smt.ModelSpec(heads=(2, 2), widths=10, temperature=0.01)
    res = smtheory.solvers.solve(markov4, spec)
    xi = markov4.scaled_train(spec)
    a_ren, _ = smt.kernel_task_alignment(xi, markov4.y_train, res.U1, top=5)
    a_gp, _ = smt.kernel_task_alignment(xi, markov4.y_train, np.eye(4), top=5)
    assert a_ren[0] > a_gp[0]


def test_noisier_two_path_task_gains_from_reweighting():
    prob = markov.markov_problem(paths=2, n_train=100, n_test=1000, seed=0)
    spec = smt.ModelSpec(heads=(2, 1), widths=10, temperature=0.01)
    gp_gd = smt.predictor_statistics(prob, spec, gp=True).accuracy  # both paths: g + d
    res = smtheory.solvers.solve(prob, spec)
    assert res.converged
    assert smt.predictor_statistics(prob, spec, res.U1).accuracy > gp_gd + 0.05
