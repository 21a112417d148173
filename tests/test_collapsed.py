"""The collapsed weight posterior (V⁰ integrated out) and its Langevin kernel (docs/theory.md §8.1).

Default tests take about a minute on one core; the N = 100 and N = 1000 convergence runs are
``@pytest.mark.slow``.  P × P LAPACK calls are limited to one BLAS thread (threadpoolctl): on a
shared machine OpenBLAS' thread pool made every 100 × 100 solve some 50 times slower.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg  # noqa: F401  (loads OpenBLAS so that threadpoolctl can limit it)
import threadpoolctl

import smtheory as smt
from smtheory.sims import collapsed, collapsed_langevin
from smtheory.sims.collapsed_base import CollapsedTarget, KernelParams
from smtheory.sims.diagnostics import ess_bulk, mcse_mean, rhat
from smtheory.sims.gibbs import conditional_moments
from smtheory.sims.posterior import make_posterior
from smtheory.checks import InputError
from smtheory.attention import attention_matrices
from smtheory.kernels import renormalized_kernel
from smtheory.network import forward

# Settings for the 4-path Markov task at T = 0.01 (4 chains; R-hat ≤ 1.01 on every U_1 entry), with the
# default (Crank–Nicolson) proposal.  Measured here (one CPU core, float64): N = 100, 500 + 1000 steps gave
# ESS_min 511; N = 1000, 300 + 300 steps gave ESS_min 167 (h ≈ 0.9, 0.15 s per chain-step, so the N = 1000
# test below takes about 15 minutes).  With the Euler proposal N = 1000 needed an estimated 12 CPU hours.
MARKOV_SETTINGS = {10: dict(num_warmup=1000, num_draws=1000, thin=8),
                   100: dict(num_warmup=500, num_draws=1000, thin=2),
                   1000: dict(num_warmup=500, num_draws=1000, thin=1)}


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        yield


# ----------------------------------------------------------------------------- a tiny model


def _tiny(variances=(1.3, 0.7, 1.1, 0.9), T=0.2, N=3, P=6, N0=4, n_tokens=5, seed=0):
    """Tiny problem with its bare inputs and attention matrices (for the layer-by-layer pass)."""
    rng = np.random.default_rng(seed)
    layers = [smt.AttentionLayer(W=rng.standard_normal((2, N0, N0)) / N0, name=f"layer {i + 1}") for i in range(2)]
    x = rng.standard_normal((P, N0, n_tokens))
    y = np.sign(rng.standard_normal(P))
    problem = smt.KernelProblem.from_inputs(x, y, layers)
    spec = smt.ModelSpec(heads=(2, 2), widths=N, variances=variances, temperature=T)
    return problem, spec, x, attention_matrices(x, layers)


def _reference_logdensity(problem, spec, x, omegas, position):
    """log N(Y; 0, T I + σ0² J Jᵀ) + log prior(θ_up), J = ∂f/∂vec(V⁰) of the layer-by-layer pass."""
    n0 = problem.input_dim
    upper = collapsed.unravel(spec, n0, position)
    V0 = jnp.zeros((spec.widths[0], n0))

    def f_of(v0_flat):
        w = {"V0": v0_flat.reshape(V0.shape), "V": list(upper["V"]), "a": upper["a"]}
        return forward(w, jnp.asarray(x), [jnp.asarray(o) for o in omegas], spec.readout)

    J = jax.jacfwd(f_of)(V0.reshape(-1))  # [P, N1 N0]; f is linear in V⁰
    cov = spec.variances[0] * J @ J.T + spec.temperature * jnp.eye(J.shape[0])
    y = jnp.asarray(problem.y_train)
    loglik = jax.scipy.stats.multivariate_normal.logpdf(y, jnp.zeros_like(y), cov)
    var = spec.variances
    prior = -sum(jnp.sum(v**2) / (2 * var[l + 1]) for l, v in enumerate(upper["V"])) - jnp.sum(upper["a"] ** 2) / (2 * var[-1])
    return loglik + prior


@pytest.mark.parametrize("data_term", ["features", "path_kernels"])
def test_logdensity_is_the_v0_integrated_likelihood(data_term):
    problem, spec, x, omegas = _tiny()
    target = collapsed.collapsed_target(problem, spec, data_term=data_term)
    ps = jax.vmap(target.init)(jax.random.split(jax.random.key(1), 3))
    ref = np.asarray(jax.jit(jax.vmap(lambda p: _reference_logdensity(problem, spec, x, omegas, p)))(ps))
    got = np.asarray(jax.jit(jax.vmap(target.logdensity))(ps))
    np.testing.assert_allclose(got[1:] - got[0], ref[1:] - ref[0], rtol=0, atol=1e-10)
    assert np.min(np.abs(got[1:] - got[0])) > 1e-2  # the comparison is not vacuous


def _slogdet_reference(problem, spec, position):
    """The collapsed log density with autodiff straight through slogdet and solve."""
    n0 = problem.input_dim
    upper = collapsed.unravel(spec, n0, position)
    w = smt.network.effective_weights({"V0": jnp.zeros((spec.widths[0], n0)), **upper})[0]
    K = renormalized_kernel(jnp.asarray(problem.scaled_train(spec)), w @ w.T / spec.widths[0])
    A = K + spec.temperature * jnp.eye(K.shape[0])
    y = jnp.asarray(problem.y_train)
    std = collapsed.prior_std_vector(spec, n0)
    return -0.5 * (jnp.linalg.slogdet(A)[1] + y @ jnp.linalg.solve(A, y)) - 0.5 * jnp.sum((position / std) ** 2)


@pytest.mark.parametrize("data_term", ["features", "path_kernels"])
def test_gradient_matches_slogdet_autodiff_and_finite_differences(data_term):
    problem, spec, _, _ = _tiny()
    target = collapsed.collapsed_target(problem, spec, data_term=data_term)
    x = target.init(jax.random.key(4))
    g = jax.jit(jax.grad(target.logdensity))(x)
    g_ref = jax.jit(jax.grad(lambda p: _slogdet_reference(problem, spec, p)))(x)
    np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), rtol=1e-9, atol=1e-9 * float(jnp.max(jnp.abs(g_ref))))
    v = jax.random.normal(jax.random.key(5), x.shape)
    eps = 1e-5
    ld = jax.jit(jax.vmap(target.logdensity))(jnp.stack([x + eps * v, x - eps * v]))
    fd = (ld[0] - ld[1]) / (2 * eps)
    assert abs(float(fd - g @ v)) < 1e-6 * max(1.0, abs(float(g @ v)))


def test_path_kernel_energy_equals_energy_term_and_auto_choice():
    problem, spec, _, _ = _tiny()
    xi = jnp.asarray(problem.scaled_train(spec))
    y = jnp.asarray(problem.y_train)
    A = jax.random.normal(jax.random.key(3), (4, 4))
    U = A @ A.T + 0.1 * jnp.eye(4)
    C = smt.kernels.path_pair_kernels(xi)
    e1, g1 = jax.jit(jax.value_and_grad(smt.action.energy_term))(U, xi, y, 0.2)
    e2, g2 = jax.jit(jax.value_and_grad(collapsed.path_kernel_energy))(U, C, y, 0.2)
    assert abs(float(e1 - e2)) < 1e-10 * abs(float(e1))
    np.testing.assert_allclose(np.asarray(g2), np.asarray(g1), rtol=1e-10, atol=1e-10)
    assert collapsed.choose_data_term(100, 4, 231) == "path_kernels"  # the Markov task
    assert collapsed.choose_data_term(20, 16, 4) == "features"  # many paths, narrow input: more flops
    assert collapsed.choose_data_term(20000, 4, 231) == "features"  # tensor over budget


def test_float32_target_keeps_its_dtype():
    problem, spec, _, _ = _tiny()
    t32 = collapsed.collapsed_target(problem, spec, dtype="float32")
    t64 = collapsed.collapsed_target(problem, spec)
    x = t64.init(jax.random.key(6))
    v32, g32 = jax.jit(jax.value_and_grad(t32.logdensity))(x.astype(jnp.float32))
    assert v32.dtype == jnp.float32 and g32.dtype == jnp.float32 and t32.init(jax.random.key(0)).dtype == jnp.float32
    g64 = jax.jit(jax.grad(t64.logdensity))(x)
    np.testing.assert_allclose(np.asarray(g32), np.asarray(g64), rtol=2e-3, atol=2e-3 * float(jnp.max(jnp.abs(g64))))


def test_ravel_unravel_and_order_parameter():
    problem, spec, _, _ = _tiny()
    target = collapsed.collapsed_target(problem, spec)
    x = target.init(jax.random.key(7))
    upper = collapsed.unravel(spec, problem.input_dim, x)
    assert [v.shape for v in upper["V"]] == [(2, 3, 3), (2, 3, 3)] and upper["a"].shape == (3,)
    np.testing.assert_array_equal(np.asarray(collapsed.ravel(upper)), np.asarray(x))
    full = {"V0": np.zeros((3, problem.input_dim)), "V": [np.asarray(v) for v in upper["V"]], "a": np.asarray(upper["a"])}
    Us, _ = smt.network.sampled_order_parameters(full)
    np.testing.assert_allclose(np.asarray(target.order_parameter(x)), Us[0], rtol=1e-12, atol=1e-12)
    assert target.n_dims == x.shape[0] == 2 * 9 + 2 * 9 + 3


def test_draw_input_projection_matches_the_gaussian_conditional():
    problem, spec, _, _ = _tiny()
    target = collapsed.collapsed_target(problem, spec)
    x = target.init(jax.random.key(8))
    n = 20000
    draws = jax.jit(jax.vmap(lambda k: collapsed.draw_input_projection(problem, spec, k, x)))(
        jax.random.split(jax.random.key(9), n))
    np.testing.assert_array_equal(np.asarray(draws["a"][0]), np.asarray(collapsed.unravel(spec, 4, x)["a"]))
    upper = collapsed.unravel(spec, problem.input_dim, x)
    params = {"V0": jnp.zeros((3, problem.input_dim)), "V": list(upper["V"]), "a": upper["a"]}
    mom = conditional_moments(make_posterior(problem, spec), params, "V0")
    L = np.linalg.cholesky(np.asarray(mom.cov))
    z = np.linalg.solve(L, (np.asarray(draws["V0"]).reshape(n, -1) - np.asarray(mom.mean)).T).T  # whitened
    assert np.max(np.abs(z.mean(0))) < 5 / math.sqrt(n)
    assert np.max(np.abs(np.cov(z.T) - np.eye(z.shape[1]))) < 6 * math.sqrt(2 / n)


# ----------------------------------------------------------------------------- the kernel on Gaussians

_SD = np.array([0.3, 0.6, 1.0, 2.0, 4.0])
_MU = np.array([1.0, -2.0, 0.5, 3.0, 0.0])


def _gaussian_target(sd=_SD, mu=_MU, dtype=jnp.float64):
    sd, mu = jnp.asarray(sd, dtype), jnp.asarray(mu, dtype)
    return CollapsedTarget(logdensity=lambda x: -0.5 * jnp.sum(((x - mu) / sd) ** 2),
                           init=lambda k: mu + 3 * sd * jax.random.normal(k, sd.shape, dtype),
                           order_parameter=lambda x: jnp.outer(x, x), n_dims=int(sd.shape[0]), dtype=dtype,
                           name="gaussian")


def _run_positions(target, kernel, key, chains, num_warmup, num_steps):
    k0, k1, k2 = jax.random.split(key, 3)
    x0 = jax.vmap(target.init)(jax.random.split(k0, chains))
    state, params = jax.vmap(lambda k, x: kernel.warmup(k, x, num_warmup))(jax.random.split(k1, chains), x0)

    def chain(key, state, params):
        def one(s, k):
            s, info = kernel.step(k, s, params)
            return s, (s.position, info.acceptance_rate)
        return jax.lax.scan(one, state, jax.random.split(key, num_steps))[1]

    xs, acc = jax.jit(jax.vmap(chain))(jax.random.split(k2, chains), state, params)
    return np.asarray(xs), np.asarray(acc), params


def test_mala_leaves_an_anisotropic_gaussian_invariant_and_learns_its_variances():
    target = _gaussian_target()
    kernel = collapsed_langevin.build(target)
    xs, acc, params = _run_positions(target, kernel, jax.random.key(10), 4, 2000, 5000)
    mean_err = np.abs(xs.mean((0, 1)) - _MU) / mcse_mean(xs)
    assert np.all(mean_err < 5), mean_err
    var = xs.reshape(-1, 5).var(0)
    tol = 5 * np.sqrt(2.0 / ess_bulk(xs))  # relative MC error of a variance
    assert np.all(np.abs(var / _SD**2 - 1) < tol), (var, _SD**2)
    assert np.all(rhat(xs) < 1.01)
    ratio = np.asarray(params.inverse_mass_matrix) / _SD**2
    assert np.all(np.abs(np.log(ratio)) < np.log(1.5)), ratio  # 16-fold range of scales, learnt within 50 %
    assert abs(acc.mean() - 0.574) < 0.1


def test_ula_bias_is_order_h_and_mala_removes_it():
    """Stationary variance of ULA on N(0, 1) with m = 1 is 1/(1 − h/4) (docs/theory.md §8.1)."""
    target = _gaussian_target(sd=np.ones(5), mu=np.zeros(5))
    out = {}
    for adjusted in (False, True):
        kern = collapsed_langevin.build(target, adjusted=adjusted)

        @jax.jit
        def run(key, h, kern=kern):
            params = KernelParams(h, jnp.ones(5))
            state = jax.vmap(lambda x: collapsed_langevin.initial_state(target, x))(jnp.zeros((8, 5)))

            def chain(key, s):
                def one(s, k):
                    s = kern.step(k, s, params)[0]
                    return s, s.position
                return jax.lax.scan(one, s, jax.random.split(key, 4500))[1]
            return jax.vmap(chain)(jax.random.split(key, 8), state)

        for h in (0.4, 1.2):
            xs = np.asarray(run(jax.random.key(11), jnp.asarray(h)))[:, 500:]
            out[adjusted, h] = (xs.var(), 5 * np.sqrt(2.0 / ess_bulk(xs**2).sum()))  # 5 MC errors of the variance
    for h in (0.4, 1.2):
        v, err = out[False, h]
        assert abs(v - 1 / (1 - h / 4)) < err, (h, v, err)
        assert abs(out[True, h][0] - 1.0) < out[True, h][1], out[True, h]
    assert out[False, 0.4][0] - 1 > out[False, 0.4][1]  # biased already at h = 0.4 ...
    assert out[False, 1.2][0] - 1 > 2 * (out[False, 0.4][0] - 1)  # ... and more so at larger h


def test_float32_chain_stays_float32():
    target = _gaussian_target(dtype=jnp.float32)
    kernel = collapsed_langevin.build(target)

    @jax.jit
    def run(key):
        k1, k2, k3 = jax.random.split(key, 3)
        state, params = kernel.warmup(k1, target.init(k2), 60)
        return kernel.step(k3, state, params) + (params,)
    state, info, params = run(jax.random.key(12))
    assert state.position.dtype == jnp.float32 and state.logdensity_grad.dtype == jnp.float32
    assert params.step_size.dtype == jnp.float32 and params.inverse_mass_matrix.dtype == jnp.float32
    assert bool(info.is_finite) and int(info.num_grad_evals) == 1
    fixed = collapsed_langevin.build(target, adapt_mass_matrix=False)
    _, p_fixed = jax.jit(lambda k, x: fixed.warmup(k, x, 60))(jax.random.key(15), target.init(jax.random.key(16)))
    np.testing.assert_array_equal(np.asarray(p_fixed.inverse_mass_matrix), np.ones(5, np.float32))


def test_warmup_schedule_is_stans():
    s = collapsed_langevin.warmup_schedule(1000)
    ends = np.flatnonzero(s.window_end)
    assert list(ends + 1) == [100, 150, 250, 450, 950]  # 75 fast, windows 25, 50, 100, 200, 500, 50 fast
    assert s.slow[75:950].all() and not s.slow[:75].any() and not s.slow[950:].any()
    short = collapsed_langevin.warmup_schedule(100)  # Stan's 15 % / 75 % / 10 %
    assert np.flatnonzero(short.slow)[0] == 15 and np.flatnonzero(short.window_end)[-1] == 89
    assert not collapsed_langevin.warmup_schedule(10).slow.any()


# ----------------------------------------------------------------------------- Markov task, T = 0.01


@pytest.fixture(scope="module")
def markov_problem():
    from smtheory.tasks import markov
    return markov.markov_problem(paths=4, n_train=100, n_test=1000, seed=0)


def _sample_markov(problem, N, num_warmup, num_draws, thin, chains=4, seed=0, kernel=None):
    """U_1 draws [chains, num_draws, D, D] of the collapsed MALA (a small test driver)."""
    spec = smt.ModelSpec(heads=(2, 2), widths=N, temperature=0.01)
    target = collapsed.collapsed_target(problem, spec)
    kernel = collapsed_langevin.build(target, **(kernel or {}))
    k0, k1, k2 = jax.random.split(jax.random.key(seed), 3)
    x0 = jax.vmap(target.init)(jax.random.split(k0, chains))
    state, params = jax.jit(jax.vmap(lambda k, x: kernel.warmup(k, x, num_warmup)))(jax.random.split(k1, chains), x0)

    def chain(key, state, params):
        def draw(s, k):
            s = jax.lax.fori_loop(0, thin, lambda i, s: kernel.step(jax.random.fold_in(k, i), s, params)[0], s)
            return s, target.order_parameter(s.position)
        return jax.lax.scan(draw, state, jax.random.split(key, num_draws))[1]

    return np.asarray(jax.jit(jax.vmap(chain))(jax.random.split(k2, chains), state, params))


def _check_converged(U):
    iu = np.triu_indices(U.shape[-1])
    Ut = U[:, :, iu[0], iu[1]]
    r = rhat(Ut)
    assert np.all(r <= 1.01), (r, ess_bulk(Ut))
    return Ut


def test_markov_n10_converges_and_agrees_with_gibbs(markov_problem):
    U = _sample_markov(markov_problem, 10, **MARKOV_SETTINGS[10])
    Ut = _check_converged(U)
    # weight-space Gibbs gives U_gg ≈ 12.4 ± 0.1 here (docs/theory.md §8.4)
    assert abs(Ut[..., 0].mean() - 12.4) < 0.3 + 4 * mcse_mean(Ut[..., 0])


@pytest.mark.slow
@pytest.mark.parametrize("N", [100, 1000])
def test_markov_converges_at_larger_width(markov_problem, N):
    _check_converged(_sample_markov(markov_problem, N, **MARKOV_SETTINGS[N]))


# ----------------------------------------------------------------------------- bad input


def test_bad_input_names_the_parameter():
    problem, spec, _, _ = _tiny()
    target = collapsed.collapsed_target(problem, spec)
    bad = [
        (lambda: collapsed_langevin.build("not a target"), "target"),
        (lambda: collapsed_langevin.build(target, target_acceptance=1.5), "target_acceptance"),
        (lambda: collapsed_langevin.build(target, target_acceptance="high"), "target_acceptance"),
        (lambda: collapsed_langevin.build(target, initial_step_size=-1.0), "initial_step_size"),
        (lambda: collapsed_langevin.build(target, adjusted="yes"), "adjusted"),
        (lambda: collapsed_langevin.build(target, final_buffer=-1), "final_buffer"),
        (lambda: collapsed_langevin.build(target, adapt_mass_matrix="no"), "adapt_mass_matrix"),
        (lambda: collapsed_langevin.build(target).warmup(jax.random.key(0), target.init(jax.random.key(0)), -5),
         "num_steps"),
        (lambda: collapsed.collapsed_target("problem", spec), "problem"),
        (lambda: collapsed.collapsed_target(problem, "spec"), "spec"),
        (lambda: collapsed.collapsed_target(problem, smt.ModelSpec(heads=(4,), widths=3)), "heads"),
        (lambda: collapsed.collapsed_target(problem, spec, dtype="float16"), "dtype"),
        (lambda: collapsed.collapsed_target(problem, spec, data_term="dense"), "data_term"),
        (lambda: collapsed.unravel(spec, problem.input_dim, jnp.zeros(5)), "position"),
        (lambda: collapsed.draw_input_projection(problem, spec, jax.random.key(0), jnp.zeros(39, jnp.int32)),
         "position"),
    ]
    for fn, word in bad:
        with pytest.raises(InputError, match=word):
            fn()
