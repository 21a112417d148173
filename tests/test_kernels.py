import jax.numpy as jnp
import numpy as np
import pytest

import smtheory as smt
from smtheory.attention import hardmax_keys, qk_scores, softmax_keys, w_scores
from tests.conftest import random_problem


def test_scores_match_definitions():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 5, 4))
    W = rng.standard_normal((2, 5, 5))
    s = w_scores(x, W)
    for p in range(3):
        for h in range(2):
            np.testing.assert_allclose(s[p, h], x[p].T @ W[h] @ x[p], rtol=1e-12)
    Q, K = rng.standard_normal((2, 3, 2, 5))
    s = qk_scores(x, Q, K)
    for p in range(3):
        for h in range(2):
            np.testing.assert_allclose(s[p, h], (K[h] @ x[p]).T @ (Q[h] @ x[p]) / np.sqrt(2), rtol=1e-12)


def test_softmax_over_keys_and_hardmax():
    rng = np.random.default_rng(2)
    s = rng.standard_normal((2, 3, 4, 4))
    om = softmax_keys(s)
    np.testing.assert_allclose(om.sum(axis=-2), 1.0, rtol=1e-12)  # columns (keys) sum to one
    hm = hardmax_keys(s)
    np.testing.assert_allclose(hm.sum(axis=-2), 1.0)
    assert np.all(hm.argmax(axis=-2) == s.argmax(axis=-2))
    tie = hardmax_keys(np.zeros((1, 1, 4, 4)))
    np.testing.assert_allclose(tie, 0.25)


def test_path_features_contract_top_down():
    rng = np.random.default_rng(3)
    P, N0, T = 4, 5, 6
    x = rng.standard_normal((P, N0, T))
    om1 = softmax_keys(rng.standard_normal((P, 2, T, T)))
    om2 = softmax_keys(rng.standard_normal((P, 3, T, T)))
    r = smt.readout_vector(T, "mean")
    xi = smt.path_features(x, [om1, om2], "mean")
    assert xi.shape == (P, 6, N0)
    for p in range(P):
        for k, (h1, h2) in enumerate(smt.path_index((2, 3))):  # h_1 most significant
            np.testing.assert_allclose(xi[p, k], x[p] @ om1[p, h1] @ om2[p, h2] @ r, rtol=1e-12)


def test_kernel_symmetric_psd_and_equal_to_explicit_sum():
    prob = random_problem(heads=(2, 3), P=25)
    spec = smt.ModelSpec(heads=(2, 3), widths=10, variances=(2.0, 1.0, 1.5, 0.5))
    xi = prob.scaled_train(spec)
    rng = np.random.default_rng(4)
    A = rng.standard_normal((6, 6))
    U = A @ A.T + 0.1 * np.eye(6)
    K = np.asarray(smt.renormalized_kernel(xi, U))
    C = np.asarray(smt.path_pair_kernels(xi))
    explicit = np.einsum("de,depq->pq", U, C)
    np.testing.assert_allclose(K, explicit, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(K, K.T, rtol=1e-12, atol=1e-14)
    assert np.linalg.eigvalsh(K).min() > -1e-10 * np.abs(K).max()
    # the scale sigma0 / sqrt(N0 D) of docs/theory.md §2
    np.testing.assert_allclose(C[1, 2, 0, 3], spec.sigma0_sq / (6 * 6) * prob.xi_train[0, 1] @ prob.xi_train[3, 2])


def test_subnetwork_gp_kernel_is_kernel_of_smaller_model():
    """The GP of a sub-network equals the GP kernel of the model built with only those heads."""
    rng = np.random.default_rng(5)
    N0, T = 6, 5
    W1 = rng.standard_normal((2, N0, N0))
    W2 = rng.standard_normal((2, N0, N0))
    x = rng.standard_normal((10, N0, T))
    y = np.sign(rng.standard_normal(10))
    full = smt.KernelProblem.from_inputs(x, y, [smt.AttentionLayer(W=W1), smt.AttentionLayer(W=W2)])
    sub = smt.KernelProblem.from_inputs(x, y, [smt.AttentionLayer(W=W1[:1]), smt.AttentionLayer(W=W2)])
    spec_full = smt.ModelSpec(heads=(2, 2), variances=(1.3, 2.0, 0.7, 1.1))
    spec_sub = spec_full.replace(heads=(1, 2))
    paths = smt.subnetwork_paths((2, 2), [[0], [0, 1]])
    assert paths == [0, 1]
    K_sub = np.asarray(smt.gp_kernel(sub.scaled_train(spec_sub), spec_sub))
    K_via_full = np.asarray(smt.renormalized_kernel(full.scaled_train(spec_full), smt.subnetwork_gp_u(spec_full, paths)))
    np.testing.assert_allclose(K_via_full, K_sub, rtol=1e-12)


def test_kernel_rejects_wrong_u_shape(small_problem):
    spec = smt.ModelSpec(heads=(2, 2))
    with pytest.raises(smt.InputError, match="U must be a 4x4"):
        smt.renormalized_kernel(jnp.asarray(small_problem.scaled_train(spec)), np.eye(3))
