"""Tests of smtheory.fast_weights and smtheory.fast_weight_paths.

Recurrence = matrix form; O(T) path features = attention-matrix form.
"""
import jax.numpy as jnp
import numpy as np
import pytest

from smtheory import InputError
from smtheory import fast_weights as fw
from smtheory.fast_weight_paths import fast_weight_path_features
from smtheory.attention import AttentionLayer, attention_matrices
from smtheory.paths import path_features


def _arrays(seed, T=7, m=4, n=3, positive=True):
    rng = np.random.default_rng(seed)
    k = rng.random((T, m)) if positive else rng.standard_normal((T, m))
    q = rng.random((T, m)) if positive else rng.standard_normal((T, m))
    return jnp.asarray(k / k.sum(1, keepdims=True)), jnp.asarray(q), jnp.asarray(rng.random(T)), \
        jnp.asarray(rng.standard_normal((n, T)))


@pytest.mark.parametrize("rule,causal,normalize", [("linear", True, False), ("linear", True, True),
                                                   ("linear", False, False), ("linear", False, True),
                                                   ("delta", True, False)])
def test_scan_equals_matrix_form(rule, causal, normalize):
    k, q, b, v = _arrays(0)
    y = fw.fast_weight_scan(k, q, v, b, rule=rule, causal=causal, normalize=normalize)
    om = fw.effective_attention(k, q, b, rule=rule, causal=causal, normalize=normalize)
    np.testing.assert_allclose(np.asarray(y), np.asarray(v @ om), rtol=1e-11, atol=1e-13)
    if causal:  # y_t must not see later tokens
        assert np.allclose(np.tril(np.asarray(om), -1), 0.0)


def test_linear_matrix_form_by_hand():
    k, q, _, v = _arrays(1, positive=False)
    om = np.asarray(fw.effective_attention(k, q, rule="linear", causal=True))
    kn, qn = np.asarray(k), np.asarray(q)
    T = kn.shape[0]
    want = np.array([[kn[s] @ qn[t] if s <= t else 0.0 for t in range(T)] for s in range(T)])
    np.testing.assert_allclose(om, want, rtol=1e-13)


def test_feature_maps():
    z = jnp.asarray(np.random.default_rng(2).standard_normal((5, 3)))
    assert fw.dpfp(z, 2).shape == (5, fw.feature_dim("dpfp", 3, nu=2))
    r = np.concatenate([np.maximum(z, 0), np.maximum(-z, 0)], -1)
    np.testing.assert_allclose(np.asarray(fw.dpfp(z, 1)), r * np.roll(r, 1, axis=-1))
    np.testing.assert_allclose(np.asarray(fw.elu_plus_one(z)), np.where(z > 0, z + 1, np.exp(z)), rtol=1e-14)
    proj = fw.random_projection(3, 4000, seed=0)
    a, b = 0.3 * z[0], 0.3 * z[1]
    est = float(fw.positive_random_features(a, proj) @ fw.positive_random_features(b, proj))
    assert abs(est / float(np.exp(a @ b)) - 1) < 0.1  # unbiased estimate of the softmax kernel
    with pytest.raises(InputError, match="feature_map"):
        fw.feature_map(z, "relu")


def _layers(rng, N0, specs):
    out = []
    for i, (style, rule, opts) in enumerate(specs):
        H = 2
        if style == "qk":
            out.append(AttentionLayer(Q=rng.standard_normal((H, 3, N0)), K=rng.standard_normal((H, 3, N0)),
                                      rule=rule, rule_options=opts, name=f"layer {i + 1}"))
        else:
            out.append(AttentionLayer(W=0.4 * rng.standard_normal((H, N0, N0)), rule=rule, rule_options=opts,
                                      name=f"layer {i + 1}"))
    return out


@pytest.mark.parametrize("readout", ["last", "mean"])
def test_fast_weight_path_features_equal_matrix_form(readout):
    rng = np.random.default_rng(7)
    P, N0, T = 3, 4, 9
    x = rng.standard_normal((P, N0, T))
    layers = _layers(rng, N0, [
        ("qk", "linear", {"feature_map": "dpfp", "nu": 2, "causal": True}),
        ("w", "delta", {"beta": "input", "beta_weights": rng.standard_normal((2, N0))}),
        ("qk", "linear", {"feature_map": "random", "n_features": 6, "normalize": False}),
    ])
    xi_fast = fast_weight_path_features(x, layers, readout)
    xi_mat = path_features(x, attention_matrices(x, layers), readout)
    assert xi_fast.shape == (P, 8, N0)
    np.testing.assert_allclose(xi_fast, xi_mat, rtol=1e-10, atol=1e-12 * np.abs(xi_mat).max())


def test_fast_weight_path_features_refuse_other_rules():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 4, 5))
    with pytest.raises(InputError, match="'linear' or 'delta'"):
        fast_weight_path_features(x, _layers(rng, 4, [("qk", "softmax", None)]))
    with pytest.raises(InputError, match="rms_heads"):
        fast_weight_path_features(x, _layers(rng, 4, [("qk", "linear", {"rms_heads": True})]))
    with pytest.raises(InputError, match="causal"):
        fw.effective_attention(jnp.ones((3, 2)), jnp.ones((3, 2)), jnp.ones(3), rule="delta", causal=False)
