"""Path-form posterior = layer-by-layer posterior; samplers agree with each other and with NUTS (issue 3)."""
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import smtheory as smt
from smtheory.sims.posterior import make_posterior
from smtheory.sims.run import SampleConfig, sample
from tests.conftest import random_problem


def test_path_form_log_density_and_gradient_equal_the_forward_pass():
    rng = np.random.default_rng(0)
    P, N0, T = 7, 5, 4
    layers = [smt.AttentionLayer(W=rng.standard_normal((2, N0, N0))), smt.AttentionLayer(W=rng.standard_normal((3, N0, N0)))]
    x = rng.standard_normal((P, N0, T))
    y = np.sign(rng.standard_normal(P))
    prob = smt.KernelProblem.from_inputs(x, y, layers, readout="mean")
    spec = smt.ModelSpec(heads=(2, 3), widths=(4, 6, 5), variances=(1.2, 0.8, 1.5, 0.7), temperature=0.3,
                         readout="mean")
    post = make_posterior(prob, spec)
    omegas = [jnp.asarray(o) for o in smt.attention_matrices(x, layers)]
    xj = jnp.asarray(x)

    def potential_forward(params):
        f = smt.forward(params, xj, omegas, "mean")
        prior = (jnp.sum(params["V0"] ** 2) / 1.2 + jnp.sum(params["V"][0] ** 2) / 0.8
                 + jnp.sum(params["V"][1] ** 2) / 1.5 + jnp.sum(params["a"] ** 2) / 0.7) / 2
        return jnp.sum((f - y) ** 2) / (2 * 0.3) + prior

    params = post.init(jax.random.PRNGKey(1))
    np.testing.assert_allclose(float(post.potential(params)), float(potential_forward(params)), rtol=1e-12)
    g1 = jax.grad(post.potential)(params)
    g2 = jax.grad(potential_forward)(params)
    for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)


def _nuts(post, prob, chains=2, warmup=500, samples=1500, seed=0):
    from numpyro.infer import MCMC, NUTS

    from smtheory.sims import observables

    init = jax.vmap(post.init)(jax.random.split(jax.random.PRNGKey(seed + 100), chains))
    mcmc = MCMC(NUTS(potential_fn=post.potential), num_warmup=warmup, num_samples=samples, num_chains=chains,
                chain_method="vectorized", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), init_params=init)
    draws = mcmc.get_samples(group_by_chain=True)
    flat = jax.tree_util.tree_map(lambda a: a.reshape((-1,) + a.shape[2:]), draws)
    xi_test = jnp.asarray(prob.xi_test)
    obs = jax.vmap(lambda p: observables.observe(post, p, xi_test))(flat)
    return np.asarray(jnp.mean(obs["U1"], 0)), np.asarray(jnp.mean(obs["f_test"], 0)), obs


@pytest.mark.slow  # about 2.5 minutes; the overlap-vs-Gibbs agreement (test_collapsed_run) runs by default
def test_all_samplers_and_nuts_agree_within_monte_carlo_error():
    prob = random_problem(heads=(2, 1), P=10, Q=8, N0=4, T=3, seed=3)
    spec = smt.ModelSpec(heads=(2, 1), widths=6, temperature=0.5)
    post = make_posterior(prob, spec)
    runs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs["gibbs"] = sample(prob, spec, SampleConfig("gibbs", chains=4, steps=20000, burnin=500, chunk=5000),
                               progress=False)
        runs["mala"] = sample(prob, spec, SampleConfig("full-mala", chains=4, steps=60000, burnin=5000, step_size=0.02,
                                                       thin=5, chunk=4000), progress=False)
        runs["langevin"] = sample(prob, spec, SampleConfig("full-langevin", chains=4, steps=60000, burnin=5000,
                                                           step_size=0.002, thin=5, chunk=4000), progress=False)
    U_nuts, f_nuts, obs = _nuts(post, prob)
    se_nuts = np.asarray(jnp.std(obs["U1"], 0)) / np.sqrt(500)  # conservative ESS guess for NUTS
    ref = runs["gibbs"]
    for name, r in runs.items():
        assert r.rhat_max < 1.02, name
        tol = 4 * np.sqrt(r.U1_mcse**2 + ref.U1_mcse**2) + 1e-3
        assert np.all(np.abs(r.U1_sampled - ref.U1_sampled) < tol + (0.05 if name == "langevin" else 0)), name
    assert np.all(np.abs(U_nuts - ref.U1_sampled) < 4 * np.sqrt(se_nuts**2 + ref.U1_mcse**2) + 1e-3)
    assert np.all(np.abs(f_nuts - ref.predictor_mean) < 0.1 * (1 + np.abs(ref.predictor_mean)))


def test_gibbs_and_mala_agree_on_a_tiny_network():
    prob = random_problem(heads=(2, 1), P=8, Q=6, N0=3, T=2, seed=5)
    spec = smt.ModelSpec(heads=(2, 1), widths=3, temperature=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = sample(prob, spec, SampleConfig("gibbs", chains=4, steps=4000, burnin=200, chunk=2000), progress=False)
        m = sample(prob, spec, SampleConfig("full-mala", chains=4, steps=20000, burnin=2000, step_size=0.05, thin=5,
                                            chunk=2000), progress=False)
    assert g.rhat_max < 1.02 and m.rhat_max < 1.05
    tol = 4 * np.sqrt(g.U1_mcse**2 + m.U1_mcse**2) + 1e-3
    assert np.all(np.abs(g.U1_sampled - m.U1_sampled) < tol)
