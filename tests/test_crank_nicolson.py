"""The prior-preserving Crank–Nicolson Langevin proposal (pCNL) of the collapsed sampler (docs/theory.md §8.1)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import smtheory as smt
from smtheory.checks import InputError
from smtheory.sims import collapsed, collapsed_langevin, crank_nicolson as cn
from smtheory.sims.collapsed_base import CollapsedTarget, KernelParams
from smtheory.sims.diagnostics import ess_bulk, mcse_mean, rhat


def _target(log_likelihood, s, dtype=jnp.float64):
    s = jnp.asarray(s, dtype)
    return CollapsedTarget(logdensity=lambda x: log_likelihood(x) - 0.5 * jnp.sum((x / s) ** 2),
                           init=lambda k: s * jax.random.normal(k, s.shape, dtype),
                           order_parameter=lambda x: jnp.outer(x[:2], x[:2]), n_dims=int(s.shape[0]), dtype=dtype,
                           name="test", log_likelihood=log_likelihood, prior_std=s)


def _nonlinear_ll(x):
    return -0.5 * (jnp.sum(x**2) - 3.0) ** 2 + jnp.sin(x[0]) * x[1]


def test_log_ratio_equals_the_metropolis_hastings_ratio_of_the_densities():
    """The cancellation-free ratio equals log π(x')q(x|x') − log π(x)q(x'|x) computed from the densities."""
    rng = np.random.default_rng(0)
    s = rng.uniform(0.5, 2.0, 6)
    target = _target(_nonlinear_ll, s)
    x, x_new = rng.standard_normal(6) * s, rng.standard_normal(6) * s
    m = rng.uniform(0.3, 2.0, 6)
    for h in (0.05, 0.7, 3.0):
        delta = np.minimum(0.5 * h * m, cn.DELTA_MAX)
        a, b, c = (np.asarray(v) for v in cn.coefficients(jnp.asarray(delta)))
        u, u_new = x / s, x_new / s
        g, g_new = (s * np.asarray(jax.grad(_nonlinear_ll)(jnp.asarray(v))) for v in (x, x_new))

        def log_q(to, frm, grad):  # whitened coordinates (the Jacobian s cancels in the ratio)
            return scipy.stats.norm.logpdf(to, a * frm + b * grad, c).sum()

        def log_pi(u_):
            return float(_nonlinear_ll(jnp.asarray(u_ * s))) + scipy.stats.norm.logpdf(u_).sum()

        direct = log_pi(u_new) + log_q(u, u_new, g_new) - log_pi(u) - log_q(u_new, u, g)
        ours = float(_nonlinear_ll(jnp.asarray(x_new)) - _nonlinear_ll(jnp.asarray(x))) + \
            float(cn.proposal_log_ratio(jnp.asarray(u), jnp.asarray(g), jnp.asarray(u_new), jnp.asarray(g_new),
                                        jnp.asarray(delta)))
        assert abs(ours - direct) < 1e-10 * max(1.0, abs(direct)), (h, ours, direct)


def test_the_prior_is_exactly_invariant_whatever_the_step():
    """With a flat likelihood every proposal is accepted and the chain samples the prior exactly."""
    s = jnp.asarray([0.1, 1.0, 3.0])
    target = _target(lambda x: 0.0 * jnp.sum(x), s)
    for h in (0.1, 2.0, 50.0):
        params = KernelParams(jnp.asarray(h), jnp.ones(3))
        kern = collapsed_langevin.build(target)
        assert kern.name == "pcnl"

        def one(st, k):
            st, info = kern.step(k, st, params)
            return st, (st.position, info.acceptance_rate)

        st = cn.initial_state(target, jnp.zeros(3))
        _, (xs, acc) = jax.jit(lambda st: jax.lax.scan(one, st, jax.random.split(jax.random.key(1), 20000)))(st)
        np.testing.assert_allclose(np.asarray(acc), 1.0, atol=1e-12)
        z = np.asarray(xs)[1000:] / np.asarray(s)
        err = 5 * np.sqrt(2.0 / ess_bulk(z[None] ** 2))
        assert np.all(np.abs(z.var(0) - 1.0) < err), (h, z.var(0), err)


def test_gaussian_posterior_moments_and_adapted_mass_matrix():
    """Prior N(0, s²) × likelihood N(y; x, τ²): posterior mean and variance per coordinate, R-hat ≤ 1.01."""
    s = jnp.asarray([0.2, 0.5, 1.0, 2.0, 4.0])
    tau = 0.7
    y = jnp.asarray([0.3, -1.0, 0.5, 2.0, -3.0])
    target = _target(lambda x: -0.5 * jnp.sum((x - y) ** 2) / tau**2, s)
    var = 1.0 / (1.0 / tau**2 + 1.0 / s**2)
    mean = var * y / tau**2
    kern = collapsed_langevin.build(target)
    k0, k1, k2 = jax.random.split(jax.random.key(3), 3)
    x0 = jax.vmap(target.init)(jax.random.split(k0, 4))
    st, par = jax.jit(jax.vmap(lambda k, x: kern.warmup(k, x, 1000)))(jax.random.split(k1, 4), x0)

    def chain(key, st, p):
        return jax.lax.scan(lambda c, k: (kern.step(k, c, p)[0],) * 2, st, jax.random.split(key, 5000))[1].position

    xs = np.asarray(jax.jit(jax.vmap(chain))(jax.random.split(k2, 4), st, par))
    assert np.all(rhat(xs) < 1.01)
    assert np.all(np.abs(xs.mean((0, 1)) - mean) < 5 * mcse_mean(xs))
    assert np.all(np.abs(xs.reshape(-1, 5).var(0) / var - 1) < 5 * np.sqrt(2.0 / ess_bulk(xs)))
    # the inverse mass matrix is learnt in whitened units: posterior variance / prior variance
    ratio = np.asarray(par.inverse_mass_matrix).mean(0) / (var / s**2)
    assert np.all(np.abs(np.log(ratio)) < np.log(1.6)), ratio


def _acceptance(proposal, d, h, steps=300):
    """Mean acceptance at fixed h on a prior N(0, I_d) × a likelihood of the order parameter |x|²/d."""
    target = _target(lambda x: -50.0 * (jnp.sum(x**2) / d - 1.1) ** 2, jnp.ones(d))
    kern = collapsed_langevin.build(target, proposal=proposal)
    params = KernelParams(jnp.asarray(h), jnp.ones(d))
    init = cn.initial_state if proposal == "crank-nicolson" else collapsed_langevin.initial_state
    st = init(target, target.init(jax.random.key(0)))

    def one(c, k):
        c, info = kern.step(k, c, params)
        return c, info.acceptance_rate

    return float(jax.jit(lambda st: jax.lax.scan(one, st, jax.random.split(jax.random.key(1), steps))[1].mean())(st))


def test_acceptance_does_not_fall_with_the_dimension_unlike_euler():
    """The reason for the proposal: at a fixed step, pCNL's acceptance does not fall from d = 10² to 10⁵
    (here it rises: the order parameter fluctuates less), the Euler proposal's collapses (its step must
    shrink like d^(-1/3))."""
    small, large = 100, 100_000
    cn_small, cn_large = _acceptance("crank-nicolson", small, 0.5), _acceptance("crank-nicolson", large, 0.5)
    eu_small, eu_large = _acceptance("euler", small, 0.5), _acceptance("euler", large, 0.5)
    assert cn_small > 0.5 and cn_large > cn_small - 0.05, (cn_small, cn_large)
    assert eu_large < 0.05 < eu_small, (eu_small, eu_large)


def test_collapsed_target_uses_crank_nicolson_and_euler_stays_available():
    from smtheory.tasks import markov

    problem = markov.markov_problem(paths=4, n_train=20, n_test=10, seed=0)
    target = collapsed.collapsed_target(problem, smt.ModelSpec(heads=(2, 2), widths=5, temperature=0.1))
    assert cn.supports(target)
    x = target.init(jax.random.key(0))
    # the likelihood is the log density without the Gaussian prior
    prior = -0.5 * jnp.sum((x / target.prior_std) ** 2)
    np.testing.assert_allclose(float(target.log_likelihood(x) + prior), float(target.logdensity(x)), rtol=1e-12)
    assert collapsed_langevin.build(target).name == "pcnl"
    assert collapsed_langevin.build(target, adjusted=False).name == "pcn-ula"
    assert collapsed_langevin.build(target, proposal="euler").name == "mala"


def test_bad_proposal_names_the_parameter():
    s = jnp.ones(3)
    plain = CollapsedTarget(lambda x: -0.5 * jnp.sum(x**2), lambda k: jax.random.normal(k, (3,)),
                            lambda x: jnp.outer(x, x), 3, jnp.float64, "plain")
    with pytest.raises(InputError, match="proposal"):
        collapsed_langevin.build(_target(lambda x: 0.0 * jnp.sum(x), s), proposal="leapfrog")
    with pytest.raises(InputError, match="proposal='crank-nicolson'"):
        collapsed_langevin.build(plain, proposal="crank-nicolson")
    assert collapsed_langevin.build(plain).name == "mala"  # auto falls back to Euler
