"""The collapsed samplers through :func:`smtheory.sims.sample` (docs/theory.md §8): agreement with exact Gibbs on
all weights, the Rao-Blackwellised predictor, extension, checkpoints and fingerprints, ArviZ export."""
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import smtheory as smt
from smtheory.sims import SampleConfig, sample
from smtheory.sims import nuts
from smtheory.sims.overlap import overlap_target
from tests.conftest import interrupted_and_fresh, random_problem


@pytest.fixture(scope="module")
def tiny():
    prob = random_problem(heads=(2, 1), P=16, Q=12, N0=4, T=3, seed=4)
    spec = smt.ModelSpec(heads=(2, 1), widths=4, temperature=0.2)
    return prob, spec


@pytest.fixture(scope="module")
def runs(tiny):
    prob, spec = tiny
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ov = sample(prob, spec, SampleConfig(sampler="overlap", chains=4, steps=2000, burnin=300, seed=1),
                    progress=False)
        gi = sample(prob, spec, SampleConfig(sampler="gibbs", chains=4, steps=6000, burnin=300, seed=2, chunk=1000),
                    progress=False)
    return ov, gi


def _z(a, sa, b, sb):
    return np.abs(a - b) / np.sqrt(sa**2 + sb**2)


def test_overlap_sampler_agrees_with_exact_gibbs_on_all_weights(runs):
    ov, gi = runs
    assert ov.converged and gi.converged, (ov.rhat_max, gi.rhat_max)
    z = _z(ov.U1_sampled, ov.U1_mcse, gi.U1_sampled, gi.U1_mcse)
    assert np.max(z) < 4.0, z
    # the two samplers disagree with the saddle point at this small N: the test resolves more than noise
    assert np.max(np.abs(ov.U1_sampled - gi.U1_sampled)) < 0.1 * np.max(np.abs(gi.U1_sampled))
    assert _z(ov.generalization_error, ov.generalization_error_mcse,
              gi.generalization_error, gi.generalization_error_mcse) < 4.0


def test_rao_blackwellised_predictor_equals_the_mean_over_weight_samples(runs):
    ov, gi = runs
    name = "f_test[:8].mean"
    a = np.mean(ov.traces[:, :, ov.trace_names.index(name)])
    b = np.mean(gi.traces[:, :, gi.trace_names.index(name)])
    assert _z(a, ov.diagnostics[name]["mcse"], b, gi.diagnostics[name]["mcse"]) < 4.0
    # Rao-Blackwellisation: far smaller Monte-Carlo error per draw than averaging f over weight draws
    assert ov.diagnostics[name]["mcse"] < gi.diagnostics[name]["mcse"]
    assert np.all(ov.predictor_variance > 0)
    # predictive variance = E[conditional variance] + Var[conditional mean] >= the spread of the means
    np.testing.assert_allclose(np.mean(ov.predictor_mean[:8]), a, rtol=1e-10)


def test_overlap_without_data_reproduces_the_wishart_moments():
    """NUTS on the prior alone: E[U_1] = σ1² σa² I and the variance of exact prior draws (heads (2,))."""
    prob = random_problem(heads=(2,), P=6, Q=2, N0=3, T=2, seed=0)
    spec = smt.ModelSpec(heads=(2,), widths=5, variances=(1.0, 0.7, 1.5))
    target = overlap_target(prob, spec, likelihood=False)
    kernel = nuts.build(target)
    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    pos = jax.vmap(target.init)(keys)
    states, params = jax.jit(jax.vmap(kernel.warmup, in_axes=(0, 0, None)), static_argnums=2)(keys, pos, 300)

    def body(carry, key):
        states = carry
        states, _ = jax.vmap(kernel.step)(jax.random.split(key, 4), states, params)
        return states, jax.vmap(target.order_parameter)(states.position)

    _, U = jax.jit(lambda s: jax.lax.scan(body, s, jax.random.split(jax.random.PRNGKey(5), 3000)))(states)
    U = np.asarray(U).reshape(-1, 2, 2)
    exact = np.asarray(jax.vmap(target.order_parameter)(jax.vmap(target.init)(
        jax.random.split(jax.random.PRNGKey(9), 40000))))
    scale = 0.7 * 1.5
    np.testing.assert_allclose(exact.mean(0), scale * np.eye(2), atol=0.03)
    np.testing.assert_allclose(U.mean(0), scale * np.eye(2), atol=0.08)
    np.testing.assert_allclose(U.var(0), exact.var(0), rtol=0.2)


def test_a_short_run_is_extended_and_an_unconverged_one_flagged(tiny):
    prob, spec = tiny
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sample(prob, spec, SampleConfig(sampler="overlap", chains=2, steps=8, burnin=50, chunk=8, seed=3),
                     progress=False)
        capped = sample(prob, spec, SampleConfig(sampler="overlap", chains=2, steps=8, burnin=50, chunk=8, seed=3,
                                                 max_steps=8), progress=False)
    assert res.extensions >= 1 and res.config.steps > 8
    assert res.converged == (res.rhat_max <= 1.01)
    assert capped.extensions == 0 and capped.config.steps == 8
    assert not capped.converged  # 8 draws per chain cannot give R-hat <= 1.01 here
    one = sample(prob, spec, SampleConfig(sampler="overlap", chains=1, steps=20, burnin=50), progress=False)
    assert np.isnan(one.rhat_max) and not one.converged
    d = one.to_dict()
    assert d["rhat_max"] is None and d["converged"] is False


def test_resume_is_bit_identical_and_refuses_another_problem(tiny, tmp_path):
    prob, spec = tiny
    ck = str(tmp_path / "ov.npz")
    short = SampleConfig(sampler="overlap", chains=2, steps=40, burnin=60, chunk=20, seed=7, max_steps=40)
    long = short.replace(steps=80, max_steps=80)
    resumed, fresh = interrupted_and_fresh(prob, spec, short, long, ck)
    np.testing.assert_array_equal(resumed.traces, fresh.traces)
    np.testing.assert_array_equal(resumed.U1_sampled, fresh.U1_sampled)
    other = random_problem(heads=(2, 1), P=16, Q=12, N0=4, T=3, seed=5)
    with pytest.raises(smt.InputError, match="training data"):
        sample(other, spec, long, checkpoint=ck, resume=True, progress=False)
    with pytest.raises(smt.InputError, match="model"):
        sample(prob, spec.replace(widths=6), long, checkpoint=ck, resume=True, progress=False)
    (tmp_path / "text.npz").write_text("not a checkpoint")
    with pytest.raises(smt.InputError, match="not a readable smtheory checkpoint"):
        sample(prob, spec, long, checkpoint=str(tmp_path / "text.npz"), resume=True, progress=False)


def test_inference_data_export(runs):
    az = pytest.importorskip("arviz")
    ov, _ = runs
    idata = ov.to_inference_data()
    assert idata.posterior["U1"].shape == (4, ov.traces.shape[1], 2, 2)
    summary = az.summary(idata, var_names=["U1"])
    np.testing.assert_allclose(summary["mean"].to_numpy().reshape(2, 2), ov.U1_sampled, atol=1e-3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(sampler="overlap", burnin=10), "burnin must be at least 50"),
    (dict(sampler="nope"), "sampler must be one of"),
    (dict(chains=2.5), "chains"),
    (dict(seed=-1), "seed"),
    (dict(seed=2**70), "seed"),
    (dict(steps=10, max_steps=5), "max_steps"),
    (dict(rhat_target=0.9), "rhat_target"),
    (dict(adjusted="yes"), "adjusted"),
])
def test_config_errors(kwargs, match):
    with pytest.raises(smt.InputError, match=match):
        SampleConfig(**kwargs)


def test_config_keeps_converted_values():
    c = SampleConfig(chains=2.0, steps=20.0, seed=3.0)
    assert (type(c.chains), type(c.steps), type(c.seed)) == (int, int, int)
    assert c.max_steps == 16 * 20
