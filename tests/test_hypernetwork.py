"""Tests of smtheory.hypernetwork: path codes, hypernetwork weights, kernel = code × input similarity."""
import math

import numpy as np
import pytest

import smtheory as smt
from smtheory import InputError
from smtheory.attention import AttentionLayer, attention_matrices
from smtheory.hypernetwork import (code_kernel, head_hypernetwork_weights, hypernetwork_metric, hypernetwork_output,
                                   hypernetwork_weights, latent_codes, path_codes)
from smtheory.kernels import renormalized_kernel
from smtheory.network import forward, init_weights
from smtheory.paths import path_features, scaled_path_features


def _setup(seed=0, rule="softmax", P=5, Q=4, N0=4, T=6, readout="last"):
    rng = np.random.default_rng(seed)
    opts = {"feature_map": "elu1", "causal": True} if rule == "linear" else None
    layers = [AttentionLayer(W=0.5 * rng.standard_normal((2, N0, N0)), rule=rule, rule_options=opts),
              AttentionLayer(W=0.5 * rng.standard_normal((3, N0, N0)))]
    xa = rng.standard_normal((P, N0, T))
    xb = rng.standard_normal((Q, N0, T))
    return rng, layers, xa, xb


@pytest.mark.parametrize("rule,readout", [("softmax", "last"), ("linear", "mean")])
def test_kernel_rewrite_equals_path_kernel_assembly(rule, readout):
    rng, layers, xa, xb = _setup(1, rule)
    sigma0_sq = 1.7
    A = rng.standard_normal((6, 6))
    U = A @ A.T + 0.1 * np.eye(6) - 0.5  # a general symmetric metric with negative off-diagonals
    oa, ob = attention_matrices(xa, layers), attention_matrices(xb, layers)
    ca, cb = path_codes(oa, readout), path_codes(ob, readout)
    K_codes = code_kernel(ca, xa, U, sigma0_sq, cb, xb)
    fa = scaled_path_features(path_features(xa, oa, readout), sigma0_sq)
    fb = scaled_path_features(path_features(xb, ob, readout), sigma0_sq)
    K_paths = np.asarray(renormalized_kernel(fa, U, fb))
    np.testing.assert_allclose(K_codes, K_paths, rtol=1e-11, atol=1e-13 * np.abs(K_paths).max())
    np.testing.assert_allclose(code_kernel(ca, xa, U, sigma0_sq), np.asarray(renormalized_kernel(fa, U)),
                               rtol=1e-11, atol=1e-13)


def test_path_codes_give_path_features():
    _, layers, xa, _ = _setup(2)
    oms = attention_matrices(xa, layers)
    c = path_codes(oms, "last")
    np.testing.assert_allclose(np.einsum("psd,pis->pdi", c, xa), path_features(xa, oms), rtol=1e-12)


def test_hypernetwork_output_equals_network():
    _, layers, xa, _ = _setup(3)
    spec = smt.ModelSpec(heads=(2, 3), widths=(5, 4, 3))
    w = init_weights(spec, xa.shape[1], seed=1)
    oms = attention_matrices(xa, layers)
    f_hyper = hypernetwork_output(path_codes(oms, "last"), xa, hypernetwork_weights(w))
    np.testing.assert_allclose(f_hyper, forward(w, xa, oms), rtol=1e-11)


def test_head_latent_codes_generate_the_layer():
    """One layer: (H N)^{-1/2} Σ_h V^h x Ω^h = Σ_s W(z_st) x_s with W(z) = (HN)^{-1/2} Σ_h z_h V^h."""
    rng, layers, xa, _ = _setup(4)
    om = attention_matrices(xa, layers)[1]  # 3 heads
    V = rng.standard_normal((3, 2, xa.shape[1]))
    z = latent_codes(om)  # [P, s, t, H]
    generated = head_hypernetwork_weights(V, z)  # [P, s, t, 2, N0]
    got = np.einsum("pstij,pjs->pit", generated, xa)
    want = np.einsum("hij,pjs,phst->pit", V, xa, om) / math.sqrt(3 * xa.shape[1])
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_hypernetwork_metric_expectation():
    """E_{V⁰}[W_h W_hᵀ] = σ0² U_1 / D: average over many input projections at fixed upper layers."""
    spec = smt.ModelSpec(heads=(2, 2), widths=3, variances=(2.0, 1.0, 1.0, 1.0))
    w = init_weights(spec, 4, seed=0)
    rng = np.random.default_rng(0)
    U1, _ = hypernetwork_metric(w)
    G = np.zeros((4, 4))
    n = 4000
    for _ in range(n):
        w["V0"] = math.sqrt(2.0) * rng.standard_normal(w["V0"].shape)
        G += hypernetwork_metric(w)[1] / n
    np.testing.assert_allclose(G, 2.0 * U1 / 4, atol=0.08 * np.abs(U1).max() / 2)


def test_bad_inputs():
    _, layers, xa, _ = _setup(5)
    c = path_codes(attention_matrices(xa, layers))
    with pytest.raises(InputError, match="U must be"):
        code_kernel(c, xa, np.eye(3))
    with pytest.raises(InputError, match="omegas"):
        path_codes([])
    with pytest.raises(InputError, match="codes must have"):
        head_hypernetwork_weights(np.ones((2, 3, 4)), np.ones((5, 3)))


def test_metric_figure(tmp_path):
    from smtheory.validation.hypernetwork_figures import metric_figure

    U = np.array([[2.0, -1.0], [-1.0, 0.5]])
    paths = metric_figure(U, np.eye(2), ["g", "d"], str(tmp_path / "m"), (np.arange(5.0), np.arange(5.0) ** 2))
    assert all((tmp_path / p).exists() and (tmp_path / p).stat().st_size > 1000 for p in ["m.png", "m.pdf"])
    assert len(paths) == 2


@pytest.mark.slow
def test_markov_metric_figure(tmp_path):
    from smtheory.validation.hypernetwork_figures import markov_metric_figure

    out = markov_metric_figure(str(tmp_path), width=10, n_train=100)
    assert out["converged"]
    U = out["U_learned"]
    # docs/theory.md §5 at small N: U_gg well above the GP value, U_gd large and negative
    names = out["path_names"]
    g, d = names.index("g"), names.index("d")
    assert U[g, g] > 2 * out["U_gp"][g, g] and U[g, d] < -1.0


def test_cli_registers_attention_figures():
    from smtheory.cli import build_parser

    args = build_parser().parse_args(["attention-figures", "--out", "somewhere", "--width", "30"])
    assert args.width == 30 and callable(args.func)
