"""Tests of smtheory.mixing: the registry of token-mixing rules (docs/theory.md §1)."""
import numpy as np
import pytest

import smtheory as smt
from smtheory import InputError, mixing
from smtheory.attention import AttentionLayer, attention_matrices, softmax_keys
from smtheory.network import forward, init_weights, path_form
from smtheory.paths import path_features


def _x(seed=0, P=4, N0=5, T=6):
    return np.random.default_rng(seed).standard_normal((P, N0, T))


def _qk(seed=1, H=2, G=3, N0=5):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((H, G, N0)), rng.standard_normal((H, G, N0))


def _elu1(z):
    return np.where(z > 0, z + 1.0, np.exp(z))


@pytest.fixture
def custom_rule():
    names = []

    def reg(name, fn, **kw):
        names.append(name)
        return mixing.register_rule(name, fn, **kw)

    yield reg
    for n in names:
        if n in mixing.available_rules():
            mixing.unregister_rule(n)


def test_builtin_rules_registered():
    assert {"softmax", "hardmax", "linear", "delta"} <= set(mixing.available_rules())


def test_default_rule_is_backwards_compatible():
    x = _x()
    Q, K = _qk()
    old = AttentionLayer(Q=Q, K=K)
    assert old.rule == "softmax"
    np.testing.assert_array_equal(old(x), softmax_keys(old.scores(x)))
    # the same rule through the registry (an option forces the registry route)
    via = mixing.mixing_matrices(x, AttentionLayer(Q=Q, K=K, rule="softmax", rule_options={"causal": False}))
    np.testing.assert_allclose(via, old(x), rtol=0, atol=1e-15)
    hard = AttentionLayer(Q=Q, K=K, nonlinearity="hardmax")
    assert hard.rule == "hardmax"
    np.testing.assert_allclose(mixing.mixing_matrices(x, hard), hard(x), atol=0)


def test_causal_softmax_masks_future_keys():
    x = _x()
    Q, K = _qk()
    om = AttentionLayer(Q=Q, K=K, rule_options={"causal": True})(x)
    T = x.shape[2]
    s = AttentionLayer(Q=Q, K=K).scores(x)
    want = np.zeros_like(s)
    for t in range(T):  # softmax over the keys s <= t of each query column
        e = np.exp(s[..., : t + 1, t] - s[..., : t + 1, t].max(-1, keepdims=True))
        want[..., : t + 1, t] = e / e.sum(-1, keepdims=True)
    np.testing.assert_allclose(om, want, atol=1e-14)


def test_linear_rule_elu_matches_manual():
    x = _x()
    Q, K = _qk()
    om = AttentionLayer(Q=Q, K=K, rule="linear", rule_options={"feature_map": "elu1", "causal": True})(x)
    k = _elu1(np.einsum("hgi,pit->phtg", K, x))
    q = _elu1(np.einsum("hgi,pit->phtg", Q, x))
    S = np.einsum("phsg,phtg->phst", k, q) * np.triu(np.ones((x.shape[2],) * 2))
    np.testing.assert_allclose(om, S / S.sum(axis=2, keepdims=True), rtol=1e-12)


def _naive_delta(phik, phiq, beta, values):
    """Plain Python loop of W_t = W_{t-1} + β_t (v_t − W_{t-1} k_t) k_tᵀ, y_t = W_t q_t."""
    n, T = values.shape
    W = np.zeros((n, phik.shape[1]))
    out = np.zeros((n, T))
    for t in range(T):
        W = W + beta[t] * np.outer(values[:, t] - W @ phik[t], phik[t])
        out[:, t] = W @ phiq[t]
    return out


@pytest.mark.parametrize("beta", [0.7, "input"])
def test_delta_rule_is_a_fixed_matrix_applied_to_values(beta):
    """Delta rule = a fixed effective attention matrix Ω(x) applied to the values (point 5)."""
    rng = np.random.default_rng(3)
    x = _x(2)
    Q, K = _qk(4)
    opts = {"beta": beta, "feature_map": "dpfp", "nu": 2}
    if beta == "input":
        opts["beta_weights"] = rng.standard_normal((2, x.shape[1]))
    layer = AttentionLayer(Q=Q, K=K, rule="delta", rule_options=opts)
    om = layer(x)
    prog = mixing.fast_weight_program(x, layer)
    phik, phiq, b = (np.asarray(a) for a in prog["arrays"])
    for p in range(x.shape[0]):
        for h in range(2):
            for values in (rng.standard_normal((3, x.shape[2])), x[p]):
                got = _naive_delta(phik[p, h], phiq[p, h], b[p, h], values)
                np.testing.assert_allclose(got, values @ om[p, h], rtol=1e-10, atol=1e-12)
    if beta == "input":  # β_t = sigmoid(b_h·x_t) from the bare input
        want = 1 / (1 + np.exp(-np.einsum("hi,pit->pht", opts["beta_weights"], x)))
        np.testing.assert_allclose(b, want, rtol=1e-12)


def test_rms_across_heads():
    x = _x()
    Q, K = _qk(H=3)
    om = AttentionLayer(Q=Q, K=K, rule="linear", rule_options={"rms_heads": True})(x)
    col = np.sum(om**2, axis=2)  # [P, H, T]
    np.testing.assert_allclose(col.mean(axis=1), 1.0, rtol=1e-10)
    raw = AttentionLayer(Q=Q, K=K, rule="linear")(x)
    ratio = om / raw
    np.testing.assert_allclose(ratio, ratio[:, :1, :1, :] * np.ones_like(ratio), rtol=1e-10)  # one factor per (p, t)


def test_all_rules_feed_the_theory_and_samplers():
    """KernelProblem.from_inputs and the network accept any rule; forward == path form on its features."""
    rng = np.random.default_rng(5)
    N0, T, P = 5, 6, 7
    x = rng.standard_normal((P, N0, T))
    y = np.sign(rng.standard_normal(P))
    Q, K = _qk(6, H=2, N0=N0)
    layers = [AttentionLayer(Q=Q, K=K, rule="linear", rule_options={"feature_map": "random", "n_features": 8}),
              AttentionLayer(W=0.3 * rng.standard_normal((2, N0, N0)), rule="delta", rule_options={"beta": 0.5})]
    prob = smt.KernelProblem.from_inputs(x, y, layers)
    spec = smt.ModelSpec(heads=(2, 2), widths=4)
    w = init_weights(spec, N0, seed=0)
    oms = attention_matrices(x, layers)
    np.testing.assert_allclose(path_form(w, prob.xi_train), forward(w, x, oms), rtol=1e-10)
    np.testing.assert_allclose(prob.xi_train, path_features(x, oms), rtol=0, atol=0)


def test_custom_matrix_rule(custom_rule):
    def uniform_causal(x, layer, *, strength=1.0):
        P, N0, T = x.shape
        m = np.triu(np.ones((T, T))) * strength
        return np.broadcast_to(m / m.sum(0), (P, layer.n_heads, T, T))

    custom_rule("test-uniform", uniform_causal)
    x = _x()
    Q, K = _qk()
    om = AttentionLayer(Q=Q, K=K, rule="test-uniform", rule_options={"strength": 2.0})(x)
    np.testing.assert_allclose(om.sum(axis=2), 1.0)
    with pytest.raises(InputError, match="not options"):
        AttentionLayer(Q=Q, K=K, rule="test-uniform", rule_options={"beta": 1.0})


def test_custom_value_program_rule(custom_rule):
    def running_mean(x, layer, values):
        T = values.shape[-1]
        return np.cumsum(values, axis=-1) / np.arange(1, T + 1)

    custom_rule("test-cummean", running_mean, form="values")
    x = _x()
    Q, K = _qk()
    om = AttentionLayer(Q=Q, K=K, rule="test-cummean")(x)
    T = x.shape[2]
    want = np.triu(np.ones((T, T))) / np.arange(1, T + 1)
    np.testing.assert_allclose(om, np.broadcast_to(want, om.shape), rtol=1e-14)


def test_refuses_hidden_state_dependence(custom_rule):
    def reads_hidden(x, layer, hidden):
        return x

    with pytest.raises(InputError, match="hidden"):
        custom_rule("test-bad1", reads_hidden)

    def hidden_option(x, layer, *, states=None):
        return x

    with pytest.raises(InputError, match="states"):
        custom_rule("test-bad2", hidden_option)

    def extra_argument(x, layer, other):
        return x

    with pytest.raises(InputError, match="cannot supply"):
        custom_rule("test-bad3", extra_argument)
    with pytest.raises(InputError, match="depend only on the bare"):
        custom_rule("test-bad4", lambda x, layer: x, depends_on="hidden")

    def value_gated(x, layer, values):  # the gate reads the values (= hidden states): not a fixed Ω(x)
        T = values.shape[-1]
        gate = 1.0 / (1.0 + np.exp(-values.sum(axis=-2, keepdims=True)))
        return np.cumsum(gate * values, axis=-1) / np.arange(1, T + 1)

    custom_rule("test-bad5", value_gated, form="values")
    Q, K = _qk()
    layer = AttentionLayer(Q=Q, K=K, rule="test-bad5")
    with pytest.raises(InputError, match="hidden states"):
        layer(_x())
    assert "test-bad1" not in mixing.available_rules()


def test_bad_options():
    Q, K = _qk()
    with pytest.raises(InputError, match="rule must be one of"):
        AttentionLayer(Q=Q, K=K, rule="nope")
    with pytest.raises(InputError, match="causal"):
        AttentionLayer(Q=Q, K=K, rule="delta", rule_options={"causal": False})(_x())
    with pytest.raises(InputError, match="beta"):
        AttentionLayer(Q=Q, K=K, rule="delta", rule_options={"beta": 1.5})(_x())
    with pytest.raises(InputError, match="beta_weights"):
        AttentionLayer(Q=Q, K=K, rule="delta", rule_options={"beta": "input"})(_x())
    with pytest.raises(InputError, match="feature_map"):
        AttentionLayer(Q=Q, K=K, rule="linear", rule_options={"feature_map": "relu"})(_x())
    with pytest.raises(InputError, match="rule_options"):
        AttentionLayer(Q=Q, K=K, rule="linear", rule_options=[("causal", True)])
    with pytest.raises(InputError, match="already registered"):
        mixing.register_rule("softmax", lambda x, layer: x)
