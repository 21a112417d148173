"""Unadjusted Langevin (smtheory.sims.langevin) and MALA (smtheory.sims.mala).

Gaussian-target tests use many independent chains (vmap) advanced with lax.scan
and keep only each chain's final state, so the samples are i.i.d. and the
Monte-Carlo error of a sample mean / covariance is known in closed form:
``se(mean_i) = sqrt(S_ii / n)``, ``se(cov_ij) = sqrt((S_ii S_jj + S_ij²) / n)``
(Gaussian fourth moments).  Tolerances are 5 standard errors per entry (false
alarm probability ~1e-6 per statistic; the keys are fixed anyway).
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import smtheory as smt
from smtheory.sims import langevin, mala
from smtheory.sims.posterior import make_posterior, prior_stds, weight_shapes
from tests.conftest import random_problem

# ---------------------------------------------------------------- the Gaussian target
MU = np.array([1.0, -2.0, 0.5])
SIGMA = np.array([[1.0, 0.6, 0.2], [0.6, 1.5, -0.4], [0.2, -0.4, 0.8]])
PREC = np.linalg.inv(SIGMA)
LAM, VEC = np.linalg.eigh(PREC)  # precision eigenvalues 0.51 .. 3.48
LAM_MAX, V_TOP = LAM[-1], VEC[:, -1]
N_CHAINS = 4000
NSE = 5.0


def potential(x):
    d = x - MU
    return 0.5 * d @ (PREC @ d)


def logdensity(x):
    return -potential(x)


def ula_stationary_cov(h):
    """Stationary covariance of x' = x − h A (x−μ) + √(2h) ξ: A⁻¹ (I − hA/2)⁻¹."""
    return np.linalg.inv(PREC @ (np.eye(3) - 0.5 * h * PREC))


def run_chains(alg, key, n_steps, n_chains=N_CHAINS):
    """Final positions of n_chains independent chains started at N(0, I)."""
    k0, k1 = jax.random.split(key)
    x0 = jax.random.normal(k0, (n_chains, 3))
    state = jax.vmap(alg.init)(x0)

    def body(state, key):
        keys = jax.random.split(key, n_chains)
        state, info = jax.vmap(alg.step)(keys, state)
        acc = getattr(info, "acceptance_rate", jnp.ones(n_chains))
        return state, (jnp.all(info.is_finite), jnp.mean(acc), jnp.min(acc), jnp.max(acc))

    run = jax.jit(lambda s, k: jax.lax.scan(body, s, jax.random.split(k, n_steps)))
    state, (finite, acc_mean, acc_min, acc_max) = run(state, k1)
    return np.asarray(state.position), dict(finite=bool(np.all(finite)), acc_mean=np.asarray(acc_mean),
                                            acc_min=float(np.min(acc_min)), acc_max=float(np.max(acc_max)))


def mc_tolerances(S, n):
    d = np.sqrt(np.diag(S))
    return NSE * d / math.sqrt(n), NSE * np.sqrt((np.outer(d, d) ** 2 + S**2) / n)


def assert_gaussian_moments(x, mean, cov):
    n = x.shape[0]
    tol_m, tol_c = mc_tolerances(cov, n)
    m_hat, c_hat = x.mean(0), np.cov(x.T)
    np.testing.assert_array_less(np.abs(m_hat - mean), tol_m)
    np.testing.assert_array_less(np.abs(c_hat - cov), tol_c)
    return tol_m, tol_c


# ---------------------------------------------------------------- Langevin on a Gaussian
def test_langevin_recovers_gaussian_small_step():
    # h = ε T = 0.02: the O(h) bias of the covariance (≈ h/2 = 0.01 per entry) is < 0.3 of the MC tolerance.
    h = 0.02
    _, tol_c = mc_tolerances(SIGMA, N_CHAINS)
    assert np.max(np.abs(ula_stationary_cov(h) - SIGMA) / tol_c) < 0.3
    # 800 steps = 800 h λ_min ≈ 8.2 e-folds of the slowest mode: the start-up offset of the mean
    # (|μ| ≈ 2.3) decays to < 1e-3, well below the tolerance (≈ 0.07).
    alg = langevin.build_for_potential(potential, step_size=0.01, temperature=2.0)
    x, info = run_chains(alg, jax.random.PRNGKey(1), 800)
    assert info["finite"]
    assert_gaussian_moments(x, MU, SIGMA)


def test_langevin_bias_grows_with_step_as_predicted():
    """Euler–Maruyama on a Gaussian: stationary N(μ, A⁻¹(I − hA/2)⁻¹), variance inflated."""
    top_true = 1.0 / LAM_MAX
    se_rel = math.sqrt(2.0 / N_CHAINS)  # relative standard error of a sample variance
    ratios = []
    for hl in (0.6, 1.2):  # h λ_max; the small-step case is test_langevin_recovers_gaussian_small_step
        h = hl / LAM_MAX
        pred = ula_stationary_cov(h)
        alg = langevin.build_for_potential(potential, step_size=h)
        x, info = run_chains(alg, jax.random.PRNGKey(7), int(math.ceil(12.0 / (h * LAM[0]))))
        assert info["finite"]
        # the whole sampled law matches the discretised-OU prediction
        assert_gaussian_moments(x, MU, pred)
        # variance along the stiffest direction: truth 1/λ, predicted (1/λ)/(1 − hλ/2)
        ratio = np.var((x - MU) @ V_TOP) / top_true
        assert ratio == pytest.approx(1 / (1 - hl / 2), rel=NSE * se_rel)
        ratios.append(ratio)
    # measurably above the true variance, and growing with the step
    assert ratios[0] > 1.0 + 10 * se_rel * ratios[0]
    assert ratios[1] > ratios[0] + 10 * se_rel * ratios[1]


def test_langevin_update_convention():
    """θ' = θ − ε T ∇U + √(2 T ε) ξ: drift from the same-key difference, noise variance 2εT."""
    eps, T = 0.03, 0.5
    x = jnp.array([0.3, -1.0, 2.0])
    alg = langevin.build_for_potential(potential, eps, temperature=T)
    free = langevin.build_for_potential(lambda z: 0.0 * jnp.sum(z), eps, temperature=T)
    keys = jax.random.split(jax.random.PRNGKey(3), 20000)
    moved = jax.jit(jax.vmap(lambda k: alg.step(k, alg.init(x))[0].position))(keys)
    noise = jax.jit(jax.vmap(lambda k: free.step(k, free.init(x))[0].position))(keys) - x
    drift = np.asarray(moved - x - noise)
    np.testing.assert_allclose(drift, np.broadcast_to(-eps * T * PREC @ (np.asarray(x) - MU), drift.shape),
                               atol=1e-12)
    var = np.var(np.asarray(noise), axis=0)
    np.testing.assert_allclose(var, 2 * eps * T, rtol=NSE * math.sqrt(2 / 20000))
    # only ε T matters
    alt = langevin.build_for_potential(potential, eps * T, temperature=1.0)
    k = jax.random.PRNGKey(5)
    np.testing.assert_allclose(alt.step(k, alt.init(x))[0].position, alg.step(k, alg.init(x))[0].position,
                               atol=1e-14)
    # the state carries U and ∇U of its own position, before and after a step
    for st in (alg.init(x), alg.step(k, alg.init(x))[0]):
        y = np.asarray(st.position)
        assert float(st.potential) == pytest.approx(float(potential(y)), rel=1e-12)
        np.testing.assert_allclose(st.grad, PREC @ (y - MU), atol=1e-12)


# ---------------------------------------------------------------- MALA on a Gaussian
def test_mala_recovers_gaussian_where_ula_is_biased():
    h = 1.2 / LAM_MAX
    # at this step the unadjusted chain would be off by far more than the tolerance:
    _, tol_c = mc_tolerances(SIGMA, N_CHAINS)
    assert np.max(np.abs(ula_stationary_cov(h) - SIGMA) / tol_c) > 3.0
    alg = mala.build_for_logdensity(logdensity, step_size=h)
    x, info = run_chains(alg, jax.random.PRNGKey(11), 250)
    assert info["finite"]
    assert 0.2 < float(np.mean(info["acc_mean"][50:])) < 0.99
    assert_gaussian_moments(x, MU, SIGMA)


def stationary_acceptance(step_sizes, n=4000, seed=4):
    """Per-step-size mean acceptance probability of one MALA step from exact draws of the target."""
    algs = [mala.build_for_logdensity(logdensity, h) for h in step_sizes]
    k0, k1 = jax.random.split(jax.random.PRNGKey(seed))
    x0 = jnp.asarray(MU) + jax.random.normal(k0, (n, 3)) @ jnp.asarray(np.linalg.cholesky(SIGMA).T)
    keys = jax.random.split(k1, n)

    @jax.jit  # one compilation for all step sizes
    def run():
        return [jax.vmap(lambda k, x, a=a: a.step(k, a.init(x))[1])(keys, x0) for a in algs]

    out = []
    for info in run():
        acc = np.asarray(info.acceptance_rate)
        assert np.all((acc >= 0) & (acc <= 1)) and np.all(np.asarray(info.is_finite))
        out.append(float(acc.mean()))
    return out


def test_mala_acceptance():
    tiny, small, large = stationary_acceptance([1e-4, 0.3 / LAM_MAX, 3.0 / LAM_MAX])
    assert tiny > 0.995
    assert all(0.0 < a < 1.0 for a in (tiny, small, large))
    assert tiny > small > 0.9 > 0.5 > large


def test_mala_step_size_mapping_to_blackjax():
    import blackjax

    eps, T = 0.2, 0.5
    ours = mala.build_for_logdensity(logdensity, eps, temperature=T)
    theirs = blackjax.mala(logdensity, eps * T)
    x = jnp.array([0.3, -1.0, 2.0])
    for seed in range(5):
        k = jax.random.PRNGKey(seed)
        a, ia = ours.step(k, ours.init(x))
        b, ib = theirs.step(k, theirs.init(x))
        np.testing.assert_array_equal(a.position, b.position)
        assert float(ia.acceptance_rate) == float(ib.acceptance_rate)


def test_mala_dtype_preserving_kernel_matches_blackjax():
    """The float32 code path is blackjax.mala's algorithm: bitwise equal in float64."""
    import blackjax

    h = 0.7
    ref = blackjax.mala(logdensity, h)
    x = {"u": jnp.array([0.3, -1.0]), "v": jnp.array(2.0)}
    lp = lambda p: logdensity(jnp.concatenate([p["u"], p["v"][None]]))  # noqa: E731
    ref = blackjax.mala(lp, h)
    n_acc = 0
    ours_step = jax.jit(lambda k: mala._dtype_preserving_kernel(k, ref.init(x), lp, h))
    ref_step = jax.jit(lambda k: ref.step(k, ref.init(x)))
    for seed in range(8):
        k = jax.random.PRNGKey(seed)
        a, ia = ours_step(k)
        b, ib = ref_step(k)
        for la, lb in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
            np.testing.assert_array_equal(la, lb)
        assert float(ia.acceptance_rate) == float(ib.acceptance_rate)
        n_acc += bool(ia.is_accepted)
    assert 0 < n_acc < 8  # both branches exercised
    # and in float32 it keeps float32
    x32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), x)
    a, _ = mala._dtype_preserving_kernel(jax.random.PRNGKey(0), blackjax.mcmc.mala.init(x32, lp), lp, h)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(a.position))


# ---------------------------------------------------------------- network posterior
@pytest.fixture(scope="module")
def problem():
    return random_problem(heads=(2, 2), P=20, N0=5, T=4)


SPEC = smt.ModelSpec(heads=(2, 2), widths=4, temperature=0.5)


def prior_draws(post, n, seed=0):
    """n prior draws (leading chain axis) made with NumPy: cheaper to set up than compiling post.init."""
    rng = np.random.default_rng(seed)
    shapes, stds = weight_shapes(post.spec, post.n0), prior_stds(post.spec, post.n0)
    draw = lambda shape, s: jnp.asarray(s * rng.standard_normal((n, *shape)), dtype=post.dtype)  # noqa: E731
    return {"V0": draw(shapes["V0"], stds["V0"]), "V": [draw(sh, s) for sh, s in zip(shapes["V"], stds["V"])],
            "a": draw(shapes["a"], stds["a"])}


def first(tree):
    return jax.tree_util.tree_map(lambda a: a[0], tree)


@pytest.mark.parametrize("module", [langevin, mala])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_network_posterior_steps(problem, module, dtype):
    post = make_posterior(problem, SPEC, dtype=dtype)
    alg = module.build(post, 1e-3)
    want = jnp.float32 if dtype == "float32" else jnp.float64
    pos = prior_draws(post, 4)
    if dtype == "float64":  # one jitted single-chain step
        state = alg.init(first(pos))
        new, info = jax.jit(alg.step)(jax.random.PRNGKey(1), state)
        assert bool(info.is_finite)
        diffs = jax.tree_util.tree_map(lambda a, b: jnp.max(jnp.abs(a - b)), new.position, state.position)
        assert max(float(d) for d in jax.tree_util.tree_leaves(diffs)) > 0
    # vmap over 4 chains (jitted), a few steps
    states = jax.vmap(alg.init)(pos)
    vstep = jax.jit(jax.vmap(alg.step))
    for k in jax.random.split(jax.random.PRNGKey(3), 5):
        states, info = vstep(jax.random.split(k, 4), states)
        assert info.is_finite.shape == (4,) and bool(jnp.all(info.is_finite))
        if module is mala:
            acc = np.asarray(info.acceptance_rate)
            assert np.all((acc >= 0) & (acc <= 1))
    for leaf, ref in zip(jax.tree_util.tree_leaves(states.position), jax.tree_util.tree_leaves(pos)):
        assert leaf.dtype == want and leaf.shape == ref.shape
        assert not np.array_equal(np.asarray(leaf), np.asarray(ref))
    pot = states.potential if module is langevin else -states.logdensity
    assert pot.dtype == want and pot.shape == (4,) and np.all(np.isfinite(np.asarray(pot)))


def test_build_uses_posterior_temperature():
    """build(posterior, ε) integrates with T = posterior.temperature: Langevin drift −εT∇U, BlackJAX h = εT.

    A stand-in posterior with the Gaussian potential keeps this cheap; the real posterior
    is exercised in test_network_posterior_steps.
    """
    import types

    import blackjax

    post = types.SimpleNamespace(potential=potential, logdensity=logdensity, temperature=0.37)
    eps, T = 0.05, post.temperature
    x = jnp.array([0.3, -1.0, 2.0])
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    alg = langevin.build(post, eps)
    free = langevin.build_for_potential(lambda z: 0.0 * jnp.sum(z), eps, temperature=T)
    st = alg.init(x)
    for k in keys:
        a = alg.step(k, st)[0].position
        b = free.step(k, free.init(x))[0].position
        np.testing.assert_allclose(a - b, -eps * T * st.grad, atol=1e-12)
    m, ref = mala.build(post, eps), blackjax.mala(logdensity, eps * T)
    for k in keys:
        np.testing.assert_array_equal(m.step(k, m.init(x))[0].position, ref.step(k, ref.init(x))[0].position)


# ---------------------------------------------------------------- validation
BUILDERS = [
    lambda s: langevin.build_for_potential(potential, s),
    lambda s: mala.build_for_logdensity(logdensity, s),
]


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "x", None])
@pytest.mark.parametrize("which", range(4))
def test_bad_step_size(problem, bad, which):
    post = make_posterior(problem, SPEC)
    builders = BUILDERS + [lambda s: langevin.build(post, s), lambda s: mala.build(post, s)]
    with pytest.raises(smt.InputError, match="step_size"):
        builders[which](bad)


@pytest.mark.parametrize("bad", [0, -2.0, float("nan"), "hot"])
def test_bad_temperature(bad):
    with pytest.raises(smt.InputError, match="temperature"):
        langevin.build_for_potential(potential, 0.1, temperature=bad)
    with pytest.raises(smt.InputError, match="temperature"):
        mala.build_for_logdensity(logdensity, 0.1, temperature=bad)
