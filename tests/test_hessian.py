"""Tests of smtheory.sims.hessian: Gauss–Newton / functional split and the identities of docs/theory.md §4."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import smtheory as smt
from smtheory.sims import hessian as hs
from smtheory.sims.posterior import make_posterior
from smtheory import InputError


def _model(seed=0, P=6, N0=4, T=5, heads=(2, 2), width=3, temperature=0.1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((P, N0, T))
    y = np.sign(rng.standard_normal(P))
    layers = [smt.AttentionLayer(W=0.5 * rng.standard_normal((h, N0, N0)), name=f"layer {i + 1}")
              for i, h in enumerate(heads)]
    spec = smt.ModelSpec(heads=heads, widths=width, temperature=temperature, variances=(1.5, 1.0, 0.8, 1.2))
    post = make_posterior(smt.KernelProblem.from_inputs(x, y, layers), spec)
    params = smt.init_weights(spec, N0, seed=seed + 1)
    return x, y, layers, spec, post, params


@pytest.fixture(scope="module")
def model():
    return _model()


@pytest.fixture(scope="module")
def parts(model):
    _, _, _, _, post, params = model
    return hs.dense_hessian(post, params)


def test_parts_add_up_and_layout(model, parts):
    _, _, _, _, post, params = model
    assert parts.labels == ["V0", "V1[0]", "V1[1]", "V2[0]", "V2[1]", "a"]
    np.testing.assert_allclose(parts.full, parts.gauss_newton + parts.functional + parts.prior, atol=1e-12)
    np.testing.assert_allclose(parts.full, parts.full.T, atol=1e-11)
    np.testing.assert_allclose(parts.residual, np.asarray(post.output(jax.tree_util.tree_map(jnp.asarray, params)))
                               - np.asarray(post.y), atol=1e-13)
    # prior block: 1/σ_b² on the diagonal
    np.testing.assert_allclose(np.diag(parts.block("prior", "V2[1]", "V2[1]")), 1 / 0.8)


def test_within_layer_functional_hessian_vanishes(parts):
    """f is linear in each layer's weights: the functional part is 0 on every within-layer block."""
    fn = parts.block_norms("functional")
    layer_of = [b[1] for b in parts.layout]
    scale = np.abs(parts.functional).max()
    assert scale > 1e-3
    for i, li in enumerate(layer_of):
        for j, lj in enumerate(layer_of):
            if li == lj:  # includes cross-head blocks of the same layer
                assert fn[i, j] <= 1e-12 * scale, (parts.labels[i], parts.labels[j])
    # ... and it does not vanish across layers (residual non-zero)
    assert fn[0, -1] > 1e-3 * scale and fn[1, 3] > 1e-6 * scale


def test_hessian_equals_gauss_newton_at_zero_residual(model):
    _, _, _, _, post, params = model
    f = np.asarray(post.output(jax.tree_util.tree_map(jnp.asarray, params)))
    p0 = hs.dense_hessian(post, params, y=f)
    np.testing.assert_allclose(p0.full - p0.prior, p0.gauss_newton, atol=1e-11 * np.abs(p0.gauss_newton).max())
    assert np.abs(p0.functional).max() <= 1e-11 * np.abs(p0.gauss_newton).max()
    p1 = hs.dense_hessian(post, params, y=f + 0.5)
    assert np.abs(p1.functional).max() > 1e-2  # a residual switches the cross-layer part on


def test_v0_gauss_newton_equals_path_kernel(model):
    """σ0² J_{V⁰} J_{V⁰}ᵀ = K_{U(θ)} with U(θ) = w wᵀ / N1 (sample-space Gauss–Newton of V⁰)."""
    _, _, _, _, post, params = model
    gn, K = hs.v0_gauss_newton_kernel(post, params)
    np.testing.assert_allclose(gn, K, rtol=1e-11, atol=1e-13 * np.abs(K).max())
    # the same from the dense parameter-space Gauss–Newton of the V0 block: J_{V0} J_{V0}ᵀ
    parts = hs.dense_hessian(post, params)
    s, e = parts.layout[0][2:]
    Jv0 = parts.jacobian[:, s:e]
    np.testing.assert_allclose(post.spec.sigma0_sq * Jv0 @ Jv0.T, K, rtol=1e-10, atol=1e-13 * np.abs(K).max())


def test_matrix_free_products(model, parts):
    _, _, _, _, post, params = model
    v = np.random.default_rng(0).standard_normal(parts.full.shape[0])
    for fn, M in [(hs.hvp, parts.full), (hs.gauss_newton_vp, parts.gauss_newton), (hs.functional_vp, parts.functional)]:
        np.testing.assert_allclose(np.asarray(fn(post, params, v)), M @ v, atol=1e-11 * np.abs(M @ v).max())


def test_hutchinson_estimates(model, parts):
    _, _, _, _, post, params = model
    n = 300
    est = hs.hutchinson(post, params, jax.random.PRNGKey(1), n_samples=n, part="gauss_newton")
    A = parts.gauss_newton
    sd = np.sqrt(2 * (np.sum(A**2) - np.sum(np.diag(A) ** 2)) / n)  # Rademacher variance of zᵀAz
    assert abs(est["trace"] - np.trace(A)) < 5 * sd
    exact = {lab: np.trace(A[s:e, s:e]) for lab, _, s, e in parts.layout}
    assert set(est["block_trace"]) == set(exact)
    np.testing.assert_allclose(sum(est["block_trace"].values()), est["trace"], rtol=1e-12)
    with pytest.raises(InputError, match="part"):
        hs.hutchinson(post, params, jax.random.PRNGKey(1), part="prior")


def test_gauss_newton_grows_as_scale_squared_with_fixed_attention(model):
    x, y, layers, spec, _, params = model
    build = hs.scaled_posterior_builder(x, y, layers, spec)
    st = hs.input_scale_study(build, params, [0.5, 1.0, 3.0], fixed_attention=True)
    np.testing.assert_allclose(st["slope_gauss_newton"], 2.0, atol=1e-9)
    gn = st["gauss_newton"]
    np.testing.assert_allclose(gn[1] / gn[0], 4.0, rtol=1e-9)
    moving = hs.input_scale_study(build, params, [0.5, 3.0], fixed_attention=False)
    assert np.max(np.abs(moving["slope_gauss_newton"] - 2.0)) > 1e-3  # softmax sharpens with the scale


def test_dense_refuses_large_models_and_plot(model, parts, tmp_path):
    _, _, _, _, post, params = model
    with pytest.raises(InputError, match="max_params"):
        hs.dense_hessian(post, params, max_params=10)
    with pytest.raises(InputError, match="scales"):
        hs.input_scale_study(None, params, [1.0])
    paths = hs.plot_hessian_blocks(parts, str(tmp_path / "h"))
    assert all(tmp_path.joinpath(p).stat().st_size > 1000 for p in paths)
