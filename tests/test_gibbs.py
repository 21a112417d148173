"""Tests of smtheory.sims.gibbs: the exact blocked Gibbs sampler (docs/theory.md §1, §4)."""
import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import smtheory
from smtheory import InputError
from smtheory.sims import gibbs
from smtheory.sims.posterior import make_posterior
from tests.conftest import random_problem

BLOCKS = ("V0", "V1", "V2", "a")


@pytest.fixture(scope="module")
def tiny():
    prob = random_problem(heads=(2, 2), P=12, N0=4, T=3)
    spec = smtheory.ModelSpec(heads=(2, 2), widths=3, temperature=0.3)
    post = make_posterior(prob, spec)
    params = post.init(jax.random.key(0))
    return post, params


def _flat_block(params, b):
    return gibbs.get_block(params, b).reshape(-1)


def _whitened_errors(draws, mean, cov):
    """max |mean(z)| and max |cov(z) − I| of z = R⁻¹(x − m), cov = R Rᵀ."""
    R = np.linalg.cholesky(np.asarray(cov))
    z = np.linalg.solve(R, (np.asarray(draws) - np.asarray(mean)).T).T
    return np.max(np.abs(z.mean(0))), np.max(np.abs(np.cov(z.T) - np.eye(z.shape[1])))


# ----------------------------------------------------------------------------- structure


def test_block_names_and_errors(tiny):
    post, params = tiny
    assert gibbs.block_names(post.spec) == BLOCKS
    assert gibbs.get_block(params, "V2") is params["V"][1]
    with pytest.raises(InputError):
        gibbs.get_block(params, "V3")
    with pytest.raises(InputError):
        gibbs.build(post, blocks=("V0", "b"))
    with pytest.raises(InputError):
        gibbs.build(post, method="exact")


def test_output_is_linear_not_affine_in_each_block(tiny):
    post, params = tiny
    for block in BLOCKS:
        theta = gibbs.get_block(params, block)
        f0 = post.output(gibbs.set_block(params, block, jnp.zeros_like(theta)))
        f1 = post.output(params)
        f2 = post.output(gibbs.set_block(params, block, 2.5 * theta))
        assert np.max(np.abs(f0)) == 0.0, block
        assert np.max(np.abs(f1)) > 0.1
        np.testing.assert_allclose(f2, 2.5 * f1, rtol=1e-12, atol=1e-14)


def test_matrix_free_gram_and_jacobian_match_dense(tiny):
    """Both Gram routes (K > P: rows of Ξ; K ≤ P: unit vectors), vmapped or chunked (lax.map with a
    remainder), and both explicit-Jacobian routes (n_b ≤ K: columns; n_b > K: rows) against jacfwd."""
    post, params = tiny
    # P = 12 < K = D·N0 = 16, and a doubled training set with P = 24 > K
    big = dataclasses.replace(post, xi=jnp.concatenate([post.xi, post.xi]), y=jnp.concatenate([post.y, post.y]))

    def errors(params):
        out = {}
        for name, p, bs in (("small", post, None), ("big", big, 5)):
            for block in BLOCKS:
                shape = gibbs.get_block(params, block).shape
                J = jax.jacfwd(lambda t: p.output(gibbs.set_block(params, block, t.reshape(shape))))(
                    gibbs.get_block(params, block).reshape(-1))
                maps = gibbs._block_maps(p, params, block)
                C = J @ J.T
                out[name, block, "gram"] = jnp.max(jnp.abs(gibbs._gram(maps, J.shape[1], bs) - C)) / jnp.max(jnp.abs(C))
                out[name, block, "jac"] = (jnp.max(jnp.abs(gibbs._explicit_jacobian(maps, shape, bs) - J))
                                           / jnp.max(jnp.abs(J)))
        return out

    for k, err in jax.jit(errors)(params).items():
        assert err < 1e-12, (k, err)


def test_conditional_moments_match_potential_hessian(tiny):
    """U restricted to a block is an exact quadratic: mean = argmin, covariance = inverse Hessian."""
    post, params = tiny

    def check(params):
        out = {}
        for block in BLOCKS:
            shape = gibbs.get_block(params, block).shape
            x0 = _flat_block(params, block)

            def U(t):
                return post.potential(gibbs.set_block(params, block, t.reshape(shape)))

            H = jax.hessian(U)(x0)
            m_newton = x0 - jnp.linalg.solve(H, jax.grad(U)(x0))
            cm = gibbs.conditional_moments(post, params, block)
            s2 = gibbs.block_std(post.spec, post.n0, block) ** 2
            out[block] = (jnp.max(jnp.abs(cm.cov - jnp.linalg.inv(H))) / jnp.max(jnp.abs(cm.cov)),
                          jnp.max(jnp.abs(cm.mean - m_newton)) / jnp.max(jnp.abs(cm.mean)),
                          jnp.max(jnp.abs(jax.grad(U)(cm.mean))),  # the mean is a stationary point
                          jnp.max(jnp.abs(cm.cov - s2 * jnp.eye(x0.size))))  # informative conditional
        return out

    for block, (e_cov, e_mean, grad, from_prior) in jax.jit(check)(params).items():
        assert e_cov < 1e-9 and e_mean < 1e-9, (block, e_cov, e_mean)
        assert grad < 1e-9, (block, grad)
        assert from_prior > 0.05, block


# ----------------------------------------------------------------------------- exactness of one block update

N_DRAWS = 20000


@pytest.fixture(scope="module")
def tiny_moments(tiny):
    """Exact conditionals of every block at T and at 1.3 T (the latter to show the test's power)."""
    post, params = tiny
    hot = dataclasses.replace(post, spec=dataclasses.replace(post.spec, temperature=1.3 * post.temperature))

    def moments(params):
        return ({b: gibbs.conditional_moments(post, params, b) for b in BLOCKS},
                {b: gibbs.conditional_moments(hot, params, b) for b in BLOCKS})

    return jax.jit(moments)(params)


@pytest.mark.parametrize("method,batch_size", [("sample", None), ("param", 5)])
def test_block_update_draws_the_exact_conditional(tiny, tiny_moments, method, batch_size):
    """Many draws of each block update (others fixed) have the exact conditional mean and covariance."""
    post, params = tiny
    exact, wrong = tiny_moments
    sizes = [gibbs.noise_size(post, b, method) for b in BLOCKS]
    offsets = np.cumsum([0] + sizes)

    def draws(key):
        noise = jax.random.normal(key, (sum(sizes),))
        out, moved = {}, {}
        for b, o, n in zip(BLOCKS, offsets, sizes):
            new = gibbs.draw_block(post, noise[o:o + n], params, b, method, batch_size)
            out[b] = _flat_block(new, b)
            moved[b] = jnp.stack([jnp.any(gibbs.get_block(new, c) != gibbs.get_block(params, c)) for c in BLOCKS])
        return out, moved

    out, moved = jax.jit(jax.vmap(draws))(jax.random.split(jax.random.key(1), N_DRAWS))
    tol_mean, tol_cov = 5.0 / math.sqrt(N_DRAWS), 6.0 / math.sqrt(N_DRAWS)
    for i, b in enumerate(BLOCKS):
        # only the updated block moves
        np.testing.assert_array_equal(np.asarray(moved[b]).all(0), np.arange(len(BLOCKS)) == i)
        np.testing.assert_array_equal(np.asarray(moved[b]).any(0), np.arange(len(BLOCKS)) == i)
        e_mean, e_cov = _whitened_errors(out[b], exact[b].mean, exact[b].cov)
        assert e_mean < tol_mean, (b, e_mean)
        assert e_cov < tol_cov, (b, e_cov)
        # power: the same draws are rejected against the conditional at 1.3 T
        w_mean, w_cov = _whitened_errors(out[b], wrong[b].mean, wrong[b].cov)
        assert w_mean > tol_mean or w_cov > tol_cov, b


# ----------------------------------------------------------------------------- sweeps


def test_update_block_and_noise_shape(tiny):
    post, params = tiny
    new = jax.jit(lambda k, p: gibbs.update_block(post, k, p, "V2"))(jax.random.key(3), params)
    for c in BLOCKS:
        assert np.array_equal(gibbs.get_block(new, c), gibbs.get_block(params, c)) == (c != "V2"), c
    assert gibbs.noise_size(post, "V0", "sample") == 12 + 12 and gibbs.noise_size(post, "V0", "param") == 12
    with pytest.raises(InputError):
        gibbs.draw_block(post, jnp.zeros(5), params, "a")


def test_vmapped_sweeps_are_finite_and_consistent(tiny):
    post, _ = tiny
    alg = gibbs.build(post)
    n_chains, n_steps = 4, 25
    state0 = jax.jit(jax.vmap(lambda k: alg.init(post.init(k))))(jax.random.split(jax.random.key(4), n_chains))
    pos = state0.position

    def run(state, key):
        def body(s, k):
            s, info = alg.step(k, s)
            return s, (info.is_finite, s.potential)
        return jax.lax.scan(body, state, jax.random.split(key, n_steps))

    state, (finite, pots) = jax.jit(jax.vmap(run))(state0, jax.random.split(jax.random.key(5), n_chains))
    assert finite.shape == (n_chains, n_steps) and bool(finite.all())
    assert np.all(np.isfinite(pots))
    np.testing.assert_allclose(state.potential, jax.jit(jax.vmap(post.potential))(state.position), rtol=1e-12)
    # every block moved, and the chains differ
    for b in BLOCKS:
        assert np.all(np.abs(gibbs.get_block(state.position, b) - gibbs.get_block(pos, b)) > 0)
    a = np.asarray(state.position["a"])
    assert np.min(np.abs(a[0] - a[1])) > 0
    # the chain equilibrates: potential after the sweeps is far below the prior draws'
    assert np.mean(pots[:, -10:]) < np.mean(state0.potential)


def test_single_block_chain_mean_is_conditional_mean(tiny, tiny_moments):
    """Gibbs with one block free: the chain's mean is the exact conditional mean, others fixed."""
    post, params = tiny
    block, n = "a", 4000
    alg = gibbs.build(post, blocks=(block,), scale_moves=False)

    def body(s, k):
        s, info = alg.step(k, s)
        return s, (_flat_block(s.position, block), info.is_finite)

    state, (xs, finite) = jax.jit(lambda s: jax.lax.scan(body, s, jax.random.split(jax.random.key(6), n)))(
        alg.init(params))
    assert bool(finite.all())
    for other in BLOCKS:
        if other != block:
            assert np.array_equal(gibbs.get_block(state.position, other), gibbs.get_block(params, other))
    cm = tiny_moments[0][block]
    se = np.sqrt(np.diag(cm.cov) / n)
    assert np.max(np.abs(xs.mean(0) - cm.mean) / se) < 5.0


# ----------------------------------------------------------------------------- exactly solvable full posterior


def _scalar_exact(xi, y, T):
    """⟨f⟩/ξ = ⟨a v v0⟩ and ⟨U_1⟩ = ⟨a² v²⟩ for f_μ = a v v0 ξ_μ, all priors N(0, 1).

    The readout a is integrated in closed form (Gaussian given u = v v0); (v, v0) by a
    trapezoid rule on a fine grid.
    """
    Sxx, Sxy = np.sum(xi**2), np.sum(xi * y)
    g = np.linspace(-8, 8, 2001)
    v, v0 = np.meshgrid(g, g, indexing="ij")
    u = v * v0
    lam = 1 + Sxx * u**2 / T
    mu = (Sxy * u / T) / lam
    logw = -0.5 * (v**2 + v0**2) - 0.5 * np.log(lam) + 0.5 * lam * mu**2
    w = np.exp(logw - logw.max())
    return (w * u * mu).sum() / w.sum(), (w * v**2 * (mu**2 + 1 / lam)).sum() / w.sum()


def test_full_gibbs_matches_exact_scalar_posterior():
    """One head, one layer, widths 1, N0 = 1: f = a v v0 ξ, a non-Gaussian 3-d posterior."""
    rng = np.random.default_rng(0)
    P, T = 5, 0.5
    xi = rng.standard_normal((P, 1, 1))
    y = np.sign(xi[:, 0, 0] + 0.3 * rng.standard_normal(P))
    post = make_posterior(smtheory.KernelProblem(xi, y, (1,)), smtheory.ModelSpec(heads=(1,), widths=1, temperature=T))
    z_exact, u_exact = _scalar_exact(xi[:, 0, 0], y, T)
    z_hot, u_hot = _scalar_exact(xi[:, 0, 0], y, 1.5 * T)

    # "sample" forces the Matheron route with K = D·N0 = 1 ≤ P (the unit-vector Gram branch)
    alg = gibbs.build(post, method={"V0": "sample", "V1": "sample", "a": "param"})
    C, S, B = 200, 1000, 200

    def run(key):
        k0, k1 = jax.random.split(key)

        def body(st, k):
            st, info = alg.step(k, st)
            p = st.position
            return st, (post.output(p)[0] / xi[0, 0, 0], post.order_parameter(p)[0, 0], info.is_finite)

        return jax.lax.scan(body, alg.init(post.init(k0)), jax.random.split(k1, S))[1]

    z, u, finite = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(7), C))
    assert bool(finite.all())
    for q, exact, hot in ((z, z_exact, z_hot), (u, u_exact, u_hot)):
        chain_means = np.asarray(q[:, B:].mean(1))
        est, se = chain_means.mean(), chain_means.std(ddof=1) / math.sqrt(C)
        assert abs(est - exact) < 5 * se + 1e-4, (est, exact, se)
        assert abs(hot - exact) > 20 * se  # the check can tell T from 1.5 T


# ----------------------------------------------------------------------------- scale moves


@pytest.mark.parametrize("lower,upper", [("V0", "V1"), ("V2", "a")])
def test_scale_move_samples_the_exact_orbit_conditional(tiny, lower, upper):
    """Chained scale moves: f is unchanged and the cumulative log-scale u = log(|θ_lower|²/|θ_lower,0|²)
    follows p(u) ∝ exp(λu − A₀eᵘ − B₀e⁻ᵘ) (quadrature), λ = (n_lower − n_upper)/2."""
    post, params = tiny
    n = 6000
    lo0, hi0 = gibbs.get_block(params, lower), gibbs.get_block(params, upper)
    s_lo = gibbs.block_std(post.spec, post.n0, lower)
    s_hi = gibbs.block_std(post.spec, post.n0, upper)
    A0, B0 = float(jnp.sum(lo0**2)) / (2 * s_lo**2), float(jnp.sum(hi0**2)) / (2 * s_hi**2)
    lam = 0.5 * (lo0.size - hi0.size)

    def body(p, k):
        p, alpha = gibbs.scale_move(post, jax.random.normal(k, (2,)), p, lower, upper)
        return p, (jnp.log(jnp.sum(gibbs.get_block(p, lower) ** 2)), alpha)

    last, (logs, alphas) = jax.jit(lambda p: jax.lax.scan(body, p, jax.random.split(jax.random.key(11), n)))(params)
    u = np.asarray(logs) - math.log(float(jnp.sum(lo0**2)))
    np.testing.assert_allclose(post.output(last), post.output(params), rtol=1e-10, atol=1e-12)
    grid = np.linspace(-15, 15, 200001)
    logp = lam * grid - A0 * np.exp(grid) - B0 * np.exp(-grid)
    w = np.exp(logp - logp.max())
    w /= w.sum()
    mean = float(np.sum(w * grid))
    sd = float(np.sqrt(np.sum(w * (grid - mean) ** 2)))
    assert 0.3 < float(np.mean(alphas)) <= 1.0
    assert np.std(u) > 0.5 * sd  # it moves
    # independence MH with high acceptance: nearly independent draws; allow for autocorrelation
    se = sd * math.sqrt(4.0 / n)
    assert abs(np.mean(u) - mean) < 5 * se, (np.mean(u), mean, se)
    assert abs(np.std(u) / sd - 1) < 0.1


def test_scale_moves_need_the_full_block_order(tiny):
    post, _ = tiny
    with pytest.raises(InputError, match="scale_moves"):
        gibbs.build(post, blocks=("V0", "a"))
