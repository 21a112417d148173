"""Head scores, rankings and pruning (docs/theory.md §7)."""
import itertools

import jax
import numpy as np
import pytest

import smtheory as smt
from smtheory.paths import path_index
from smtheory.pruning import (gradient_importance, head_scores, path_mask, prune, pruning_order, rank_heads,
                              remove_heads, theory_prune_u1, theory_pruned_statistics)

HEADS = (3, 4)


def _random_params(heads=HEADS, N=5, N0=6, G=3, seed=0):
    rng = np.random.default_rng(seed)
    return {"Q": [rng.standard_normal((h, G, N0)) for h in heads], "K": [rng.standard_normal((h, G, N0)) for h in heads],
            "V0": rng.standard_normal((N, N0)), "V": [rng.standard_normal((h, N, N)) for h in heads],
            "a": rng.standard_normal(N)}


def _output(params, x):
    from smtheory.sims.training import predict
    return predict({k: v for k, v in params.items() if k != "pruned"}, x, "mean")


def _spd(D, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((D, D))
    return A @ A.T / D + 0.1 * np.eye(D)


def test_head_scores_match_brute_force():
    U = _spd(12, seed=1) - 0.3
    got = head_scores(U, HEADS, normalize=False)
    paths = path_index(HEADS)
    for l, H in enumerate(HEADS):
        for h in range(H):
            want = sum(abs(U[i, j]) for i, p in enumerate(paths) for j, q in enumerate(paths) if p[l] == h or q[l] == h)
            assert np.isclose(got[l][h], want)
    norm = head_scores(U, HEADS)
    assert np.isclose(max(s.max() for s in norm), 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_invariant_to_relabelling_heads(seed):
    rng = np.random.default_rng(seed)
    U = _spd(12, seed=seed)
    perms = [rng.permutation(h) for h in HEADS]
    # path (h1, h2) of the relabelled network is path (perm1[h1], perm2[h2]) of the original one
    idx = [np.ravel_multi_index(tuple(perms[l][p[l]] for l in range(2)), HEADS) for p in path_index(HEADS)]
    U_perm = U[np.ix_(idx, idx)]
    s, sp = head_scores(U, HEADS), head_scores(U_perm, HEADS)
    for l in range(2):
        assert np.allclose(sp[l], s[l][perms[l]])
    r, rp = rank_heads(U, HEADS), rank_heads(U_perm, HEADS)
    assert [(l, perms[l][h]) for l, h in rp.order] == r.order or np.allclose(
        sorted(rp.flat_scores()), sorted(r.flat_scores()))


def test_theory_scores_invariant_to_relabelling_heads_end_to_end():
    """Relabel the heads of the attention layers, solve again: the theory scores follow the heads."""
    import smtheory.solvers

    rng = np.random.default_rng(0)
    heads, N0, T, P = (2, 3), 5, 4, 24
    W = [rng.standard_normal((h, N0, N0)) for h in heads]
    x = rng.standard_normal((P, N0, T))
    y = np.sign(x[:, 0, -1] + 0.5 * x[:, 1, 0])
    y[y == 0] = 1
    perms = [np.array([1, 0]), np.array([2, 0, 1])]
    spec = smt.ModelSpec(heads=heads, widths=4, temperature=0.05, readout="mean")
    scores = []
    for Ws in (W, [w[p] for w, p in zip(W, perms)]):
        layers = [smt.AttentionLayer(W=w, name=f"layer {i + 1}") for i, w in enumerate(Ws)]
        res = smtheory.solvers.solve(smt.KernelProblem.from_inputs(x, y, layers, readout="mean"), spec)
        assert res.converged, res.message
        scores.append(head_scores(res.U1, heads))
    for l in range(2):
        assert np.allclose(scores[1][l], scores[0][l][perms[l]], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("remove", [[(0, 1)], [(1, 3)], [(0, 0), (1, 1), (1, 2)], [(0, 2), (0, 0)]])
def test_pruned_model_equals_model_without_heads(remove):
    params = _random_params()
    x = np.random.default_rng(1).standard_normal((9, 6, 5))
    a = _output(prune(params, remove), x)
    b = _output(remove_heads(params, remove), x)
    assert np.allclose(a, b, rtol=1e-12, atol=1e-12)
    # and pruning is never a silent no-op
    assert not np.allclose(a, _output(params, x))


def test_incremental_pruning_equals_one_shot():
    params = _random_params()
    x = np.random.default_rng(2).standard_normal((9, 6, 5))
    step = prune(prune(params, [(1, 0)]), [(1, 2), (0, 1)])
    once = prune(params, [(1, 0), (1, 2), (0, 1)])
    assert step["pruned"] == once["pruned"] == [(0, 1), (1, 0), (1, 2)]
    assert np.allclose(_output(step, x), _output(once, x), rtol=1e-12)
    assert np.allclose(_output(once, x), _output(remove_heads(params, [(1, 0), (1, 2), (0, 1)]), x))


def test_prune_does_not_modify_input_and_zeroes_heads():
    params = _random_params()
    V_before = [v.copy() for v in params["V"]]
    out = prune(params, [(1, 2)])
    assert all(np.array_equal(a, b) for a, b in zip(params["V"], V_before))
    assert np.all(out["V"][1][2] == 0)
    assert np.allclose(out["V"][1][0], V_before[1][0] * np.sqrt(4 / 3))
    assert np.array_equal(out["V"][0], V_before[0])


@pytest.mark.parametrize("remove, word", [
    ([], "empty"), ([(2, 0)], "does not exist"), ([(0, 3)], "does not exist"), ([(0, 1), (0, 1)], "duplicates"),
    ([(0, 0), (0, 1), (0, 2)], "all 3 heads"), ("abc", "pairs"),
])
def test_prune_refuses_bad_requests(remove, word):
    with pytest.raises(smt.InputError, match=word):
        prune(_random_params(), remove)


def test_prune_refuses_already_pruned_head():
    p = prune(_random_params(), [(1, 1)])
    with pytest.raises(smt.InputError, match="already pruned"):
        prune(p, [(1, 1)])
    with pytest.raises(smt.InputError, match="all 4 heads"):
        prune(p, [(1, 0), (1, 2), (1, 3)])


def test_pruning_order_keeps_one_head_per_layer():
    order = [(0, 0), (0, 1), (0, 2), (1, 3), (1, 0), (1, 1), (1, 2)]
    seq = pruning_order(order, HEADS)
    assert seq == [(0, 0), (0, 1), (1, 3), (1, 0), (1, 1)]
    with pytest.raises(smt.InputError, match="exactly once"):
        pruning_order(order[:-1], HEADS)


def test_rank_heads_ascending_and_inputs():
    r = rank_heads(scores=[np.array([0.3, 0.1, 0.9]), np.array([0.2, 1.0, 0.05, 0.5])], heads=HEADS)
    assert r.order[:3] == [(1, 2), (0, 1), (1, 0)]
    with pytest.raises(smt.InputError, match="exactly one"):
        rank_heads(np.eye(12), HEADS, scores=[np.ones(3), np.ones(4)])
    with pytest.raises(smt.InputError, match="12 x 12"):
        rank_heads(np.eye(5), HEADS)
    with pytest.raises(smt.InputError, match="NaN"):
        head_scores(np.full((12, 12), np.nan), HEADS)


def test_theory_pruning_equals_subnetwork_kernel(small_problem):
    """Zeroing U_1 rows = the renormalised kernel built from the kept paths' features alone."""
    spec = smt.ModelSpec(heads=(2, 2), widths=10, temperature=0.1)
    U = _spd(4, seed=3)
    remove = [(1, 0)]
    Uz = theory_prune_u1(U, (2, 2), remove)
    keep = path_mask((2, 2), remove)
    assert keep.tolist() == [False, True, False, True]
    assert np.all(Uz[~keep] == 0) and np.all(Uz[:, ~keep] == 0) and np.allclose(Uz[np.ix_(keep, keep)], U[np.ix_(keep, keep)])
    st = theory_pruned_statistics(small_problem, spec, U, remove)
    xi_tr = small_problem.scaled_train(spec)[:, keep]
    xi_te = small_problem.scaled_test(spec)[:, keep]
    mean, var = smt.predictor_moments(xi_tr, small_problem.y_train, xi_te, U[np.ix_(keep, keep)], 0.1)
    assert np.allclose(st.mean, mean) and np.allclose(st.variance, var)
    full = smt.predictor_statistics(small_problem, spec, U)
    assert not np.allclose(full.mean, st.mean)


def test_gradient_importance_normalised_per_layer():
    g = gradient_importance([np.array([3.0, 4.0]), np.array([0.0, 0.0, 2.0])])
    assert np.allclose(g[0], [0.6, 0.8]) and np.allclose(g[1], [0, 0, 1])
    with pytest.raises(smt.InputError, match="non-negative"):
        gradient_importance([np.array([-1.0, 1.0])])


def test_head_scores_of_effective_weights_follow_relabelling():
    """U_1 of the trained weights (effective weights) permutes with the heads, so its scores do too."""
    from smtheory.sims.training import effective_u1

    params = _random_params()
    perms = [np.array([2, 0, 1]), np.array([3, 1, 0, 2])]
    permuted = dict(params)
    permuted["V"] = [v[p] for v, p in zip(params["V"], perms)]
    s0 = head_scores(effective_u1(jax.tree_util.tree_map(np.asarray, params)), HEADS)
    s1 = head_scores(effective_u1(permuted), HEADS)
    for l in range(2):
        assert np.allclose(s1[l], s0[l][perms[l]])


def test_all_single_removals_change_output():
    params = _random_params(seed=4)
    x = np.random.default_rng(5).standard_normal((7, 6, 5))
    base = _output(params, x)
    for l, H in enumerate(HEADS):
        for h in range(H):
            assert not np.allclose(_output(prune(params, [(l, h)]), x), base)
    assert len(list(itertools.product(*[range(h) for h in HEADS]))) == 12


@pytest.mark.slow
def test_pruning_experiment_end_to_end(tmp_path):
    """Tiny model through the whole experiment: JSON, report and figures are written."""
    from smtheory.sims.training import TrainConfig, train
    from smtheory.validation.pruning import PruningConfig, run_pruning, write_outputs

    model = train(TrainConfig(steps=200, heads=(2, 2), width=8, qk_dim=4, batch_size=32, eval_size=100))
    res = run_pruning(model, PruningConfig(n_train=60, n_val=60, n_test=100, permutations=3,
                                           temperatures=(0.1, 1.0)), progress=None)
    paths = write_outputs(res, str(tmp_path))
    for name in ("report.md", "pruning.json", "pruning_curves.png", "pruning_curves.pdf", "u1_comparison.png"):
        assert (tmp_path / name).exists()
    assert len(res["curves"]["theory"]["test"]) == 3
    assert res["theory"]["solve"]["converged"]
    assert len(paths) >= 10
