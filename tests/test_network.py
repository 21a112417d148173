"""Tests of smtheory.network: forward pass, path form, effective weights (docs/theory.md §1-§3)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import smtheory
from smtheory import InputError, ModelSpec
from smtheory.attention import AttentionLayer, attention_matrices
from smtheory import path_model
from smtheory.network import (check_weights, effective_weights, forward, init_weights, path_form,
                               sampled_order_parameters)
from smtheory.paths import path_features


def _w_layers(rng, heads, n0, scale=1.0):
    return [AttentionLayer(W=scale * rng.standard_normal((h, n0, n0)), name=f"layer {i + 1}")
            for i, h in enumerate(heads)]


def _inputs(rng, P=6, n0=5, T=4):
    return rng.standard_normal((P, n0, T))


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


# ----------------------------------------------------------------------------- path form == forward
CASES = [
    # heads, widths (N_1..N_L, N_a)
    ((3,), (7, 4)),
    ((2, 3), (6, 4, 5)),
    ((2, 1, 3), (5, 7, 3, 4)),
]


@pytest.mark.parametrize("readout", ["last", "first", "mean"])
@pytest.mark.parametrize("heads,widths", CASES)
def test_path_form_equals_forward_w_style(heads, widths, readout):
    rng = np.random.default_rng([len(heads), ["last", "first", "mean"].index(readout)])
    n0 = 5
    spec = ModelSpec(heads=heads, widths=widths, variances=[1.3] * (len(heads) + 2), readout=readout)
    x = _inputs(rng, n0=n0)
    omegas = attention_matrices(x, _w_layers(rng, heads, n0, scale=0.5))
    # attention must be non-trivial, otherwise the check would be weak
    assert np.std(omegas[0]) > 0.05
    weights = init_weights(spec, n0, seed=3)
    f_fwd = forward(weights, x, omegas, readout)
    f_path = path_form(weights, path_features(x, omegas, readout))
    assert f_fwd.shape == (x.shape[0],)
    assert np.max(np.abs(f_fwd)) > 1e-3
    assert _rel(f_path, f_fwd) < 1e-12


def test_path_form_equals_forward_qk_style_mixed():
    rng = np.random.default_rng(11)
    n0, G, heads = 6, 3, (2, 3)
    layers = [AttentionLayer(Q=rng.standard_normal((2, G, n0)), K=rng.standard_normal((2, G, n0))),
              AttentionLayer(W=0.3 * rng.standard_normal((3, n0, n0)))]
    spec = ModelSpec(heads=heads, widths=(4, 6, 3), variances=(0.7, 1.5, 2.0, 0.5), readout="mean")
    x = _inputs(rng, P=8, n0=n0, T=5)
    omegas = attention_matrices(x, layers)
    weights = init_weights(spec, n0, seed=5)
    f_fwd = forward(weights, x, omegas, "mean")
    f_path = path_form(weights, path_features(x, omegas, "mean"))
    assert _rel(f_path, f_fwd) < 1e-12


def test_forward_matches_explicit_loops():
    """Independent reference for the layer-by-layer pass with explicit sums (docs/theory.md §1)."""
    rng = np.random.default_rng(2)
    n0, T, P = 3, 4, 2
    heads, widths = (2, 2), (3, 2, 4)
    spec = ModelSpec(heads=heads, widths=widths)
    x = _inputs(rng, P=P, n0=n0, T=T)
    omegas = attention_matrices(x, _w_layers(rng, heads, n0))
    W = init_weights(spec, n0, seed=1)
    ref = np.zeros(P)
    for p in range(P):
        h = W["V0"] @ x[p] / math.sqrt(n0)
        for l in range(2):
            new = np.zeros((widths[l + 1], T))
            for hd in range(heads[l]):
                for t in range(T):
                    for s in range(T):
                        new[:, t] += W["V"][l][hd] @ h[:, s] * omegas[l][p, hd, s, t]
            h = new / math.sqrt(heads[l] * widths[l])
        ref[p] = W["a"] @ h[:, -1] / math.sqrt(widths[-1])
    assert _rel(forward(W, x, omegas, "last"), ref) < 1e-12


def test_single_path_single_token_closed_form():
    # H = 1, T = 1: Ω = 1 and f = a·V¹V⁰x / √(N0 N1 N_a) (a deep linear network)
    rng = np.random.default_rng(4)
    spec = ModelSpec(heads=(1,), widths=(3, 5))
    W = init_weights(spec, 4, seed=0)
    x = rng.standard_normal((3, 4, 1))
    om = [np.ones((3, 1, 1, 1))]
    ref = np.einsum("i,ij,jk,pk->p", W["a"], W["V"][0][0], W["V0"], x[:, :, 0]) / math.sqrt(4 * 3 * 5)
    assert _rel(forward(W, x, om), ref) < 1e-12
    assert _rel(path_form(W, path_features(x, om)), ref) < 1e-12


def test_jax_arrays_jit_and_grad():
    """JAX inputs take the jax.numpy path, which traces under jit / grad (one compile each)."""
    rng = np.random.default_rng(8)
    spec = ModelSpec(heads=(2, 2), widths=(4, 3, 5))
    x = _inputs(rng)
    omegas = attention_matrices(x, _w_layers(rng, (2, 2), 5))
    xi = path_features(x, omegas)
    W = init_weights(spec, 5, seed=0)
    f_np = path_form(W, xi)
    assert isinstance(f_np, np.ndarray)
    Wj = jax.tree_util.tree_map(jnp.asarray, W)
    f_j = jax.jit(path_form)(Wj, xi)
    assert isinstance(f_j, jax.Array) and f_j.dtype == jnp.float64
    assert _rel(f_j, f_np) < 1e-12
    assert _rel(jax.jit(forward, static_argnums=3)(Wj, x, omegas, "last"), f_np) < 1e-12
    # f is linear in a, so (d f_0/d a) · a = f_0
    g = jax.jit(jax.grad(lambda a: path_form({**Wj, "a": a}, xi)[0]))(Wj["a"])
    assert abs(float(g @ Wj["a"]) - float(f_np[0])) < 1e-10


def test_path_model_is_the_model_behind_the_validated_front_end():
    """smtheory.path_model (unvalidated, typed pytree) gives the same numbers bit for bit (docs/theory.md §2-3)."""
    rng = np.random.default_rng(9)
    spec = ModelSpec(heads=(2, 3), widths=(4, 3, 5))
    x = _inputs(rng)
    xi = path_features(x, attention_matrices(x, _w_layers(rng, (2, 3), 5)))
    W = init_weights(spec, 5, seed=2)
    pw = path_model.as_path_weights(W)
    assert isinstance(pw, path_model.PathWeights) and path_model.as_path_weights(pw) is pw
    assert (pw.heads, pw.widths, pw.n0, pw.n_paths) == ((2, 3), (4, 3, 5), 5, 6)
    assert check_weights(W).widths == spec.widths
    assert set(pw.as_dict()) == {"V0", "V", "a"}
    np.testing.assert_array_equal(path_model.output(pw, xi, np), path_form(W, xi))
    np.testing.assert_array_equal(path_model.output(W, xi, np), path_form(pw, xi))
    for a, b in zip(path_model.effective_weights(pw, np), effective_weights(W)):
        np.testing.assert_array_equal(a, b)
    Us, U_a = sampled_order_parameters(W)
    np.testing.assert_array_equal(path_model.order_parameter(pw, np), Us[0])
    np.testing.assert_array_equal(path_model.sampled_order_parameters(pw, np)[1], U_a)
    # a PathWeights is a pytree: jit / grad over it (default namespace jax.numpy)
    pj = jax.tree_util.tree_map(jnp.asarray, pw)
    f = jax.jit(path_model.output)(pj, jnp.asarray(xi))
    np.testing.assert_allclose(f, path_form(W, xi), rtol=1e-12)
    g = jax.grad(lambda p: path_model.output(p, jnp.asarray(xi))[0])(pj)
    assert isinstance(g, path_model.PathWeights)
    assert abs(float(jnp.sum(g.a * pj.a)) - float(f[0])) < 1e-10  # f linear in a
    # upper weights only (no V0) suffice for the order parameters
    upper = path_model.PathWeights(None, pw.V, pw.a)
    np.testing.assert_array_equal(path_model.order_parameter(upper, np), Us[0])


# ----------------------------------------------------------------------------- effective weights
def test_effective_weights_shapes_and_definition():
    spec = ModelSpec(heads=(2, 3, 2), widths=(4, 5, 6, 7))
    W = init_weights(spec, 3, seed=0)
    ws = effective_weights(W)
    assert [w.shape for w in ws] == [(12, 4), (6, 5), (2, 6)]
    # explicit check of one path (h1, h2, h3) = (1, 2, 0): flattened index 1*6 + 2*2 + 0 = 10
    V = W["V"]
    ref = V[0][1].T @ V[1][2].T @ V[2][0].T @ W["a"] / math.sqrt(7 * 6 * 5)
    assert _rel(ws[0][10], ref) < 1e-12
    # partial path (h2, h3) = (2, 1) at layer 2: index 2*2 + 1 = 5
    ref2 = V[1][2].T @ V[2][1].T @ W["a"] / math.sqrt(7 * 6)
    assert _rel(ws[1][5], ref2) < 1e-12


# ----------------------------------------------------------------------------- order parameters
def test_sampled_order_parameters_at_prior_match_gp():
    """Prior average of U_ℓ is the GP value σℓ²⋯σL²σa² I; U_a averages to σa² (docs/theory.md §3)."""
    variances = (0.8, 2.0, 0.5, 3.0)  # σ0², σ1², σ2², σa²  -> GP diag of U_1 = 3.0
    spec = ModelSpec(heads=(2, 3), widths=(30, 20, 25), variances=variances)
    n_draws = 1600
    acc = [np.zeros((6, 6)), np.zeros((3, 3))]
    acc_a = 0.0
    for s in range(n_draws):
        Us, U_a = sampled_order_parameters(init_weights(spec, 4, seed=1000 + s))
        for k in range(2):
            acc[k] += np.asarray(Us[k]) / n_draws
        acc_a += float(U_a) / n_draws
    U1, U2 = acc
    gp1, gp2 = spec.gp_order_parameters()[0]
    assert math.isclose(spec.gp_u1_scale(), 3.0)
    # One draw of U_1[π,π'] has std ≈ 0.5 × GP value (O(1/√N) with N ≈ 25); with 1600 draws the
    # standard error is ≈ 0.013 × GP, so 0.08 × GP is ≈ 6 standard errors for every entry.
    tol = 0.08 * spec.gp_u1_scale()
    assert np.max(np.abs(np.diag(U1) - 3.0)) < tol
    assert np.max(np.abs(U1 - np.diag(np.diag(U1)))) < tol
    assert np.max(np.abs(U2 - gp2)) < 0.08 * 1.5
    assert np.max(np.abs(U1 - gp1)) < tol
    assert abs(acc_a - 3.0) < 0.08 * 3.0


def test_sampled_order_parameters_single_draw_definition():
    spec = ModelSpec(heads=(2, 2), widths=(5, 4, 3))
    W = init_weights(spec, 2, seed=9)
    Us, U_a = sampled_order_parameters(W)
    ws = effective_weights(W)
    assert _rel(Us[0], np.asarray(ws[0]) @ np.asarray(ws[0]).T / 5) < 1e-12
    assert _rel(Us[1], np.asarray(ws[1]) @ np.asarray(ws[1]).T / 4) < 1e-12
    assert math.isclose(float(U_a), float(W["a"] @ W["a"]) / 3, rel_tol=1e-12)
    for U in Us:
        assert np.allclose(U, np.asarray(U).T)
        assert np.min(np.linalg.eigvalsh(U)) > -1e-12


def test_permuting_layer1_heads_permutes_U1():
    spec = ModelSpec(heads=(3, 2), widths=(6, 5, 4))
    W = init_weights(spec, 3, seed=21)
    perm = np.array([2, 0, 1])
    Wp = {"V0": W["V0"], "V": [W["V"][0][perm], W["V"][1]], "a": W["a"]}
    (U1, U2), _ = sampled_order_parameters(W)
    (U1p, U2p), _ = sampled_order_parameters(Wp)
    D2 = 2
    idx = (perm[:, None] * D2 + np.arange(D2)[None, :]).ravel()  # new path (h1, h2) = old (perm[h1], h2)
    assert not np.allclose(U1p, U1)  # the permutation really changes the matrix
    assert _rel(U1p, np.asarray(U1)[np.ix_(idx, idx)]) < 1e-12
    assert _rel(U2p, U2) < 1e-12  # layer 2 order parameter does not see layer-1 heads


# ----------------------------------------------------------------------------- linearity
def test_f_linear_in_each_layer():
    rng = np.random.default_rng(13)
    heads = (2, 3)
    spec = ModelSpec(heads=heads, widths=(4, 5, 3))
    x = _inputs(rng)
    omegas = attention_matrices(x, _w_layers(rng, heads, 5))
    xi = path_features(x, omegas)
    A = init_weights(spec, 5, seed=1)
    B = init_weights(spec, 5, seed=2)
    f0 = np.asarray(path_form(A, xi))
    c = -1.7
    # homogeneity in each layer separately
    assert _rel(path_form({**A, "V0": c * A["V0"]}, xi), c * f0) < 1e-12
    assert _rel(path_form({**A, "a": c * A["a"]}, xi), c * f0) < 1e-12
    for l in range(2):
        Vs = list(A["V"])
        Vs[l] = c * Vs[l]
        assert _rel(path_form({**A, "V": Vs}, xi), c * f0) < 1e-12
        assert _rel(forward({**A, "V": Vs}, x, omegas), c * f0) < 1e-12
    # additivity in one layer with the others fixed (true only layer by layer)
    for l in range(2):
        VsB, VsAB = list(A["V"]), list(A["V"])
        VsB[l] = B["V"][l]
        VsAB[l] = A["V"][l] + B["V"][l]
        lhs = path_form({**A, "V": VsAB}, xi)
        rhs = f0 + np.asarray(path_form({**A, "V": VsB}, xi))
        assert _rel(lhs, rhs) < 1e-12
    # ... but not jointly linear: scaling every layer by c scales f by c^(L+2)
    allc = {"V0": c * A["V0"], "V": [c * V for V in A["V"]], "a": c * A["a"]}
    assert _rel(path_form(allc, xi), c ** 4 * f0) < 1e-12


# ----------------------------------------------------------------------------- bad input
def test_init_weights_shapes_and_variances():
    spec = ModelSpec(heads=(2, 3), widths=(40, 50, 60), variances=(0.25, 4.0, 1.0, 9.0))
    W = init_weights(spec, 30, seed=0)
    assert W["V0"].shape == (40, 30)
    assert [V.shape for V in W["V"]] == [(2, 50, 40), (3, 60, 50)]
    assert W["a"].shape == (60,)
    assert abs(np.var(W["V0"]) - 0.25) < 0.25 * 0.1
    assert abs(np.var(W["V"][0]) - 4.0) < 4.0 * 0.1
    assert abs(np.var(W["V"][1]) - 1.0) < 0.1
    # seeded: reproducible, and different seeds differ
    assert np.array_equal(init_weights(spec, 30, seed=0)["V0"], W["V0"])
    assert not np.array_equal(init_weights(spec, 30, seed=1)["V0"], W["V0"])


def test_bad_input_raises():
    rng = np.random.default_rng(0)
    spec = ModelSpec(heads=(2, 3), widths=(4, 5, 3))
    W = init_weights(spec, 5, seed=0)
    x = _inputs(rng)
    omegas = attention_matrices(x, _w_layers(rng, (2, 3), 5))
    xi = path_features(x, omegas)

    with pytest.raises(InputError, match="spec"):
        init_weights((2, 3), 5)
    with pytest.raises(InputError, match="n0"):
        init_weights(spec, 0)
    with pytest.raises(InputError, match="seed"):
        init_weights(spec, 5, seed="abc")
    with pytest.raises(InputError, match="missing"):
        path_form({"V0": W["V0"], "a": W["a"]}, xi)
    with pytest.raises(InputError, match=r"V0"):
        path_form({**W, "V0": W["V0"][None]}, xi)
    with pytest.raises(InputError, match=r"\['V'\]\[1\]"):  # layer-2 input width mismatched
        path_form({**W, "V": [W["V"][0], W["V"][1][:, :, :4]]}, xi)
    with pytest.raises(InputError, match=r"\['V'\]\[0\]"):
        path_form({**W, "V": [W["V"][0][0], W["V"][1]]}, xi)
    with pytest.raises(InputError, match=r"\['a'\]"):
        path_form({**W, "a": W["a"][:2]}, xi)
    with pytest.raises(InputError, match=r"\['V'\]"):
        path_form({**W, "V": []}, xi)
    with pytest.raises(InputError, match="NaN"):
        path_form({**W, "a": np.full(3, np.nan)}, xi)
    # mismatched number of paths D
    with pytest.raises(InputError, match="D"):
        path_form(W, xi[:, :5])
    with pytest.raises(InputError, match="N0"):
        path_form(W, xi[:, :, :4])
    with pytest.raises(InputError, match="xi_raw"):
        path_form(W, xi[0])
    # forward: wrong x width, wrong number of layers / heads in omegas, bad readout
    with pytest.raises(InputError, match="N0"):
        forward(W, x[:, :4], omegas)
    with pytest.raises(InputError, match="omegas"):
        forward(W, x, omegas[:1])
    with pytest.raises(InputError, match=r"omegas\[1\]"):
        forward(W, x, [omegas[0], omegas[1][:, :2]])
    with pytest.raises(InputError, match="readout"):
        forward(W, x, omegas, readout="middle")
    with pytest.raises(InputError, match="readout"):
        forward(W, x, omegas, readout=np.ones(3))
    with pytest.raises(InputError):
        effective_weights("not weights")
    with pytest.raises(InputError):
        sampled_order_parameters({**W, "a": W["a"][:1]})


def test_exported_from_package():
    for name in ("init_weights", "forward", "effective_weights", "path_form", "sampled_order_parameters"):
        assert getattr(smtheory, name) is globals()[name]
