"""The Rao-Blackwellised predictor by running sums in path-pair space (docs/theory.md §8.3, smtheory.sims.rb_sums)
against the draw-by-draw conditional moments, and NUTS with a dense mass matrix (smtheory.sims.nuts)."""
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import smtheory as smt
from smtheory.sims import SampleConfig, nuts, rb_sums, sample
from smtheory.sims import rao_blackwell as rb
from smtheory.sims.collapsed_base import CollapsedTarget
from smtheory.sims.collapsed_run import resolved_mass_matrix
from tests.conftest import interrupted_and_fresh, random_problem

# D = 4 paths, P < D N0 (pair blocks formed), Q large: the summed route applies
PAIRS = dict(heads=(2, 2), P=20, Q=150, N0=8, T=3, seed=3)


@pytest.fixture(scope="module")
def pair_problem():
    prob = random_problem(**PAIRS)
    spec = smt.ModelSpec(heads=(2, 2), widths=12, temperature=0.05)
    return prob, spec


def _random_U1s(n, D=4, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        X = rng.standard_normal((D, D + 3))
        out.append(X @ X.T / (D + 3) + 0.2 * np.eye(D))
    return jnp.asarray(np.array(out))


def test_sums_equal_the_draw_by_draw_moments(pair_problem):
    prob, spec = pair_problem
    data = rb.predictor_data(prob, spec)
    sd = rb_sums.sums_data(data, chains=4)
    assert sd is not None
    Us = _random_U1s(12)
    cms = [rb.conditional_moments(u, data) for u in Us]
    sums = rb_sums.sums_init(data)
    for u, cm in zip(Us, cms):
        t = rb_sums.draw_terms(u, data, sd)
        for k in ("train_energy", "test_mse"):
            np.testing.assert_allclose(float(t[k]), float(cm[k]), rtol=1e-10)
        np.testing.assert_allclose(t["f_head"], cm["f_mean"][:8], rtol=1e-10, atol=1e-12)
        sums = rb_sums.sums_add(sums, t["w"], t["alpha"], t["W"])
    fm = np.array([np.asarray(c["f_mean"]) for c in cms])
    fv = np.array([np.asarray(c["f_var"]) for c in cms])
    mean, var = rb_sums.finalize(sums, len(Us), np.mean(np.asarray(Us), axis=0), data)
    np.testing.assert_allclose(mean, fm.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(var, fv.mean(0) + fm.var(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rb_sums.block_f_sums(sums.A, data), fm.sum(0), rtol=1e-10, atol=1e-10)


def test_sums_route_only_where_it_applies_and_fits(pair_problem):
    prob, spec = pair_problem
    data = rb.predictor_data(prob, spec)
    assert rb_sums.sums_data(data, chains=4, budget=0) is None  # over budget
    few = random_problem(**dict(PAIRS, Q=5))  # per-point variances of 5 test points cost less than the sums
    assert rb_sums.sums_data(rb.predictor_data(few, spec), chains=4) is None
    dual = random_problem(heads=(2, 2), P=40, Q=150, N0=4, T=3, seed=3)  # D N0 < P: feature space
    assert rb_sums.sums_data(rb.predictor_data(dual, spec), chains=4) is None


@pytest.mark.parametrize("sampler", ["overlap", "langevin"])
def test_driver_gives_the_same_numbers_by_either_route(pair_problem, monkeypatch, sampler):
    prob, spec = pair_problem
    cfg = SampleConfig(sampler=sampler, chains=2, steps=60, burnin=60, max_steps=60, chunk=30, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summed = sample(prob, spec, cfg, progress=False)
        monkeypatch.setattr(rb_sums, "sums_data", lambda *a, **k: None)
        direct = sample(prob, spec, cfg, progress=False)
    np.testing.assert_array_equal(summed.U1_sampled, direct.U1_sampled)
    np.testing.assert_allclose(summed.traces, direct.traces, rtol=1e-9, atol=1e-11)
    for k in ("predictor_mean", "predictor_variance"):
        np.testing.assert_allclose(getattr(summed, k), getattr(direct, k), rtol=1e-9, atol=1e-11)
    assert summed.test_accuracy == direct.test_accuracy
    np.testing.assert_allclose(summed.test_accuracy_mcse, direct.test_accuracy_mcse, rtol=1e-9, atol=1e-12)


def test_resume_with_the_sums_route_is_bit_identical(pair_problem, tmp_path):
    prob, spec = pair_problem
    ck = str(tmp_path / "sums.npz")
    short = SampleConfig(sampler="overlap", chains=2, steps=40, burnin=60, chunk=20, seed=5, max_steps=40)
    resumed, fresh = interrupted_and_fresh(prob, spec, short, short.replace(steps=80, max_steps=80), ck)
    np.testing.assert_array_equal(resumed.traces, fresh.traces)
    np.testing.assert_array_equal(resumed.predictor_variance, fresh.predictor_variance)
    np.testing.assert_array_equal(resumed.predictor_mean, fresh.predictor_mean)


# ------------------------------------------------------------------ dense mass matrix

def test_warmup_windows_and_the_auto_rule():
    assert [nuts.last_window_length(n) for n in (0, 200, 300, 500, 1000)] == [0, 50, 100, 200, 500]
    assert nuts.dense_mass_estimable(500, 14) and nuts.dense_mass_estimable(400, 20)
    assert not nuts.dense_mass_estimable(200, 14) and not nuts.dense_mass_estimable(500, 21)


def test_dense_nuts_learns_a_correlated_gaussian():
    cov = np.array([[1.0, 0.95, 0.0], [0.95, 1.0, 0.3], [0.0, 0.3, 2.0]])
    prec = jnp.asarray(np.linalg.inv(cov))
    target = CollapsedTarget(logdensity=lambda x: -0.5 * x @ prec @ x, init=None, order_parameter=None, n_dims=3,
                             dtype=jnp.float64, name="gauss")
    kern = nuts.build(target, dense_mass=True)

    def chain(key):
        k1, k2 = jax.random.split(key)
        state, params = kern.warmup(k1, jnp.ones(3), 600)
        _, xs = jax.lax.scan(lambda s, k: (lambda o: (o[0], o[0].position))(kern.step(k, s, params)), state,
                             jax.random.split(k2, 1500))
        return params.inverse_mass_matrix, xs

    imm, xs = jax.jit(jax.vmap(chain))(jax.random.split(jax.random.PRNGKey(0), 4))
    assert imm.shape == (4, 3, 3)
    np.testing.assert_allclose(np.asarray(imm).mean(0), cov, atol=0.25)  # the posterior covariance, not its diagonal
    flat = np.asarray(xs).reshape(-1, 3)
    np.testing.assert_allclose(np.cov(flat.T), cov, atol=0.15)
    np.testing.assert_allclose(flat.mean(0), 0.0, atol=0.1)
    with pytest.raises(smt.InputError, match="dense_mass"):
        nuts.build(target, dense_mass="yes")


def test_mass_matrix_config_and_the_one_used(pair_problem):
    prob, spec = pair_problem
    with pytest.raises(smt.InputError, match="mass_matrix must be one of"):
        SampleConfig(mass_matrix="full")
    with pytest.raises(smt.InputError, match="only for the overlap sampler"):
        SampleConfig(sampler="gibbs", mass_matrix="dense")
    resolved = [resolved_mass_matrix(spec, SampleConfig(burnin=b, mass_matrix=m))
                for b, m in ((400, "auto"), (100, "auto"), (100, "dense"), (1000, "diagonal"))]
    assert resolved == ["dense", "diagonal", "dense", "diagonal"]  # 14 coordinates: dense from a 200-draw window
    assert resolved_mass_matrix(spec, SampleConfig(sampler="langevin", burnin=1000)) == "diagonal"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        forced = sample(prob, spec, SampleConfig(chains=2, steps=20, burnin=60, max_steps=20, mass_matrix="dense"),
                        progress=False)
    assert forced.config.mass_matrix == "dense" and np.isfinite(forced.U1_sampled).all()


def test_resume_accepts_the_resolved_mass_matrix(pair_problem, tmp_path):
    prob, spec = pair_problem
    ck = str(tmp_path / "auto.npz")
    cfg = SampleConfig(chains=2, steps=20, burnin=400, max_steps=20, chunk=10, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = sample(prob, spec, cfg, checkpoint=ck, progress=False)
        assert first.config.mass_matrix == "dense"  # "auto" resolved
        more = sample(prob, spec, first.config.replace(steps=40, max_steps=40), checkpoint=ck, resume=True,
                      progress=False)
        fresh = sample(prob, spec, cfg.replace(steps=40, max_steps=40), progress=False)
    np.testing.assert_array_equal(more.traces, fresh.traces)
