"""The exact order-parameter target (docs/theory.md §8.2): coordinates, prior, likelihood, pair energy."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

import smtheory as smt
from smtheory.sims.overlap import SUM_OF_SQUARES_MAX_DOF, factors, hierarchy, overlap_layout, overlap_target
from smtheory.action import energy_hessian, energy_term
from smtheory.kernels import renormalized_kernel
from smtheory.pair_blocks import blocks_contract, blocks_kernel, cross_pair_blocks, pair_block_nbytes, pair_blocks
from smtheory.pair_energy import PAIR_BLOCK_BUDGET, pair_energy

from tests.conftest import random_problem


def _spd(D, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((D, D))
    return jnp.asarray(A @ A.T / D + 0.5 * np.eye(D))


# ---------------------------------------------------------------- 1. pair energy
def _symmetriser(D):
    """Projector of ``vec(dU)`` onto symmetric directions (the Hessians agree there)."""
    S = np.zeros((D * D, D * D))
    for i in range(D):
        for j in range(D):
            S[i * D + j, i * D + j] += 0.5
            S[i * D + j, j * D + i] += 0.5
    return S


@jax.jit
def _energies(U, C, xi, y, T, tangents):
    return dict(pair=pair_energy(U, C, y, T), fact=energy_term(U, xi, y, T),
                g_pair=jax.grad(pair_energy)(U, C, y, T), g_fact=jax.grad(energy_term)(U, xi, y, T),
                jvp=jax.jvp(pair_energy, (U, C, y, T), tangents)[1],
                hess=jax.hessian(pair_energy)(U, C, y, T), hess_ref=energy_hessian(U, xi, y, T))


def test_pair_energy_equals_energy_term_value_and_gradient():
    prob = random_problem(heads=(2, 2), P=25, N0=6, seed=1)
    spec = smt.ModelSpec(heads=(2, 2), widths=8, temperature=0.2)
    xi, y = jnp.asarray(prob.scaled_train(spec)), jnp.asarray(prob.y_train)
    C = pair_blocks(xi, PAIR_BLOCK_BUDGET)
    assert C.shape == (10, 25, 25)
    np.testing.assert_array_equal(C, jnp.transpose(C, (0, 2, 1)))  # every block exactly symmetric
    U, rng = _spd(4, 0), np.random.default_rng(2)
    dC = pair_blocks(0.1 * jnp.asarray(rng.standard_normal(xi.shape)), PAIR_BLOCK_BUDGET)  # symmetric tangent
    tangents = (_spd(4, 1), dC, jnp.asarray(rng.standard_normal(25)), 0.7)
    r = _energies(U, C, xi, y, spec.temperature, tangents)
    assert abs(r["pair"] - r["fact"]) <= 1e-10 * abs(r["fact"])
    np.testing.assert_allclose(r["g_pair"], r["g_fact"], rtol=1e-10, atol=1e-10 * np.abs(r["g_fact"]).max())
    # every tangent (U, C, Y, T) at once against central differences of the value
    h = 1e-5
    shifted = [jax.jit(pair_energy)(*(a + s * h * t for a, t in zip((U, C, y, 0.2), tangents))) for s in (1, -1)]
    assert abs((shifted[0] - shifted[1]) / (2 * h) - r["jvp"]) < 1e-7 * abs(r["jvp"])
    # second derivatives differentiate Φ: the exact Hessian of smtheory.action on symmetric directions
    S = _symmetriser(4)
    H, H_ref = S @ r["hess"].reshape(16, 16) @ S, S @ r["hess_ref"] @ S
    np.testing.assert_allclose(H, H_ref, rtol=1e-8, atol=1e-8 * np.abs(H_ref).max())


def test_pair_blocks_kernel_and_contraction_against_the_full_blocks():
    """K = Σ U C and Ψ = ⟨M, C⟩ from the D(D+1)/2 blocks equal the sums over all D² blocks (independent einsum)."""
    rng = np.random.default_rng(3)
    xa, xb = jnp.asarray(rng.standard_normal((7, 3, 5))), jnp.asarray(rng.standard_normal((9, 3, 5)))
    U = _spd(3, 4)
    full = np.einsum("pdi,qei->depq", xb, xb)  # C[π, π', μ, ν]
    np.testing.assert_allclose(blocks_kernel(U, pair_blocks(xb, PAIR_BLOCK_BUDGET)),
                               np.einsum("de,depq->pq", U, full), rtol=1e-12)
    M = rng.standard_normal((9, 9))
    M = M + M.T
    np.testing.assert_allclose(blocks_contract(jnp.asarray(M), pair_blocks(xb, PAIR_BLOCK_BUDGET)),
                               np.einsum("pq,depq->de", M, full), rtol=1e-12)
    cross = np.einsum("qdi,pei->deqp", xa, xb)
    np.testing.assert_allclose(blocks_kernel(U, cross_pair_blocks(xa, xb, PAIR_BLOCK_BUDGET)),
                               np.einsum("de,deqp->qp", U, cross), rtol=1e-12)


def test_pair_blocks_refuse_over_budget():
    xi = jnp.ones((30, 4, 3))
    assert pair_block_nbytes(30, 4) == 8 * 10 * 900
    with pytest.raises(smt.InputError, match="memory budget"):
        pair_blocks(xi, memory_budget=8 * 10 * 900 - 1)
    with pytest.raises(smt.InputError, match="xi_scaled"):
        pair_blocks(jnp.ones((30, 4)), PAIR_BLOCK_BUDGET)
    with pytest.raises(smt.InputError, match="memory budget"):
        cross_pair_blocks(jnp.ones((20, 4, 3)), xi, memory_budget=8 * 10 * 600 - 1)
    with pytest.raises(smt.InputError, match="share paths"):
        cross_pair_blocks(jnp.ones((20, 3, 3)), xi, PAIR_BLOCK_BUDGET)


# ---------------------------------------------------------------- 2. coordinates
def _position(n_dims, seed):
    """Any point is a valid position (the coordinates are unconstrained)."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(n_dims))


@pytest.mark.parametrize("heads, widths, n_dims, rank", [
    ((2, 2), 10, 14, 4),
    ((3,), (3, 6), 7, 3),
    ((2, 2), (2, 5, 5), 1 + 3 + 4 * 2, 2),          # singular bottom layer: Z is 4 x 2
    ((2, 2, 2), (2, 2, 8, 8), 1 + 3 + 4 * 2 + 4 * 2, 2),  # singular middle layer: parent rank 2·2 = 4
])
def test_n_dims_and_rank(heads, widths, n_dims, rank):
    spec = smt.ModelSpec(heads=heads, widths=widths)
    target = overlap_target(random_problem(heads=heads, P=20, seed=2), spec, likelihood=False)
    assert target.n_dims == overlap_layout(spec).n_dims == n_dims
    assert jax.eval_shape(target.init, jax.random.key(3)).shape == (n_dims,)
    (U_a, Us), U1 = jax.jit(lambda p: (hierarchy(target, p), target.order_parameter(p)))(_position(n_dims, 3))
    assert U1.shape == (spec.n_paths,) * 2
    np.testing.assert_array_equal(U1, U1.T)
    assert np.linalg.matrix_rank(np.asarray(U1), tol=1e-9 * np.abs(U1).max()) == rank
    assert [U.shape[0] for U in Us] == list(spec.partial_paths) and U_a > 0
    np.testing.assert_array_equal(Us[0], U1)
    if rank == spec.n_paths:  # full rank: the factors are the Cholesky factors
        _, Fs = jax.jit(functools.partial(factors, target))(_position(n_dims, 3))
        for F, U in zip(Fs, Us):
            np.testing.assert_allclose(F, np.linalg.cholesky(np.asarray(U)), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- 3. prior moments
def _draws(heads, widths, variances, n=20000):
    spec = smt.ModelSpec(heads=heads, widths=widths, variances=variances)
    target = overlap_target(random_problem(heads=heads, P=20, seed=4), spec, likelihood=False)
    keys = jax.random.split(jax.random.key(5), n)
    U_a, Us = jax.jit(jax.vmap(lambda k: hierarchy(target, target.init(k))))(keys)
    return spec, np.asarray(U_a), [np.asarray(U) for U in Us]


def _assert_mean(samples, expected, z=5.0):
    se = samples.std(axis=0) / np.sqrt(samples.shape[0])
    assert np.all(np.abs(samples.mean(axis=0) - expected) < z * se + 1e-12), (samples.mean(axis=0), expected)


def _assert_conditional_variance(U, Sigma, N):
    """``E[(U_ij − Σ_ij)²] = E[Σ_ij² + Σ_ii Σ_jj] / N`` for ``N U | Σ ~ Wishart(N, Σ)``."""
    d = np.einsum("nii->ni", Sigma)
    predicted = (Sigma**2 + d[:, :, None] * d[:, None, :]) / N
    _assert_mean(U - Sigma, 0.0)
    _assert_mean((U - Sigma) ** 2 - predicted, 0.0)


def test_single_wishart_moments():
    """L = 1: ``U_1 | U_a`` is one Wishart, ``4 U_1 ~ W(4, 0.6 U_a I)``, ``7 U_a/1.5 ~ χ²(7)``."""
    spec, U_a, (U1,) = _draws((2,), (4, 7), (1.0, 0.6, 1.5))
    _assert_mean(U_a, 1.5)
    _assert_mean((U_a - 1.5) ** 2, 2 * 1.5**2 / 7)
    _assert_mean(U1, 0.9 * np.eye(2))
    _assert_conditional_variance(U1, 0.6 * U_a[:, None, None] * np.eye(2), 4)


@pytest.mark.parametrize("widths", [(6, 4, 5), (2, 5, 5)])  # (2, 5, 5): N_1 = 2 < D_1 = 4, singular
def test_two_layer_wishart_moments(widths):
    spec, U_a, (U1, U2) = _draws((2, 2), widths, (1.0, 0.7, 1.3, 0.8))
    _assert_mean(U_a, 0.8)
    _assert_mean((U_a - 0.8) ** 2, 2 * 0.8**2 / widths[-1])  # N_a U_a/σa² ~ χ²(N_a)
    _assert_mean(U2, 1.3 * 0.8 * np.eye(2))
    _assert_mean(U1, spec.gp_u1_scale() * np.eye(4))  # the GP value
    _assert_conditional_variance(U2, 1.3 * U_a[:, None, None] * np.eye(2), widths[1])
    _assert_conditional_variance(U1, 0.7 * np.einsum("gh,nij->nhigj", np.eye(2), U2).reshape(-1, 4, 4), widths[0])


def test_chi2_coordinates_are_drawn_exactly():
    """One path: ``N_a U_a/σa² ~ χ²(N_a)`` and ``N_1 U_1/(σ1² U_a) ~ χ²(N_1)``, both routes of the χ² draw
    (sum of squares for ν ≤ 64, here ν = 1; Marsaglia–Tsang above), against scipy by Kolmogorov–Smirnov."""
    widths = (1, 200)
    assert min(widths) <= SUM_OF_SQUARES_MAX_DOF < max(widths)
    spec, U_a, (U1,) = _draws((1,), widths, (1.0, 0.6, 1.5))
    for x, nu in ((widths[1] * U_a / 1.5, widths[1]), (widths[0] * U1[:, 0, 0] / (0.6 * U_a), widths[0])):
        assert st.kstest(x, st.chi2(nu).cdf).pvalue > 1e-3


# ---------------------------------------------------------------- 4. log density of the coordinates
def _hierarchy_logpdf(spec, U_a, Us):
    """log χ²(U_a) + Σ_ℓ log Wishart(U_ℓ | U_{ℓ+1}) as densities of (U_a, triu U_ℓ), from scipy."""
    N, var = spec.widths, spec.variances
    out = st.chi2.logpdf(N[-1] * U_a / var[-1], N[-1]) + np.log(N[-1] / var[-1])
    parent = np.array([[U_a]])
    for l in reversed(range(spec.n_layers)):
        scale = var[l + 1] * np.kron(np.eye(spec.heads[l]), parent)
        D = scale.shape[0]
        out += st.wishart.logpdf(N[l] * Us[l], df=N[l], scale=scale) + D * (D + 1) / 2 * np.log(N[l])
        parent = Us[l]
    return out


@pytest.mark.parametrize("heads, widths", [((3,), (3, 6)), ((2,), (9, 4)), ((2, 2), (4, 3, 5))])
def test_prior_logdensity_is_the_wishart_hierarchy(heads, widths):
    spec = smt.ModelSpec(heads=heads, widths=widths, variances=(1.0, 0.7, 1.3, 0.8)[: len(heads) + 2])
    target = overlap_target(random_problem(heads=heads, P=20, seed=6), spec, likelihood=False)

    def flat(pos):
        U_a, Us = hierarchy(target, pos)
        return jnp.concatenate([U_a[None]] + [U[np.triu_indices(U.shape[0])] for U in reversed(Us)])

    evaluate = jax.jit(lambda p: (target.logdensity(p), hierarchy(target, p), jax.jacfwd(flat)(p)))
    values = []
    for k in range(3):
        logp, (U_a, Us), jac = evaluate(0.7 * _position(target.n_dims, 10 + k))
        log_jac = np.linalg.slogdet(np.asarray(jac))[1]
        reference = _hierarchy_logpdf(spec, float(U_a), [np.asarray(U) for U in Us]) + log_jac
        values.append((float(logp), reference))
    values = np.array(values)
    np.testing.assert_allclose(np.diff(values[:, 0]), np.diff(values[:, 1]), rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------- 5. likelihood
@pytest.mark.parametrize("P, widths, kw, route", [(25, (6, 4, 5), {"route": "pair"}, "pair"),
                                                  (25, (6, 4, 5), {"route": "factored"}, "factored"),
                                                  (25, (6, 4, 5), {}, "dual"),  # auto: r = 4·6 < P
                                                  (25, (3, 4, 5), {}, "dual"),  # singular U_1: r = 3·6
                                                  (20, (6, 4, 5), {}, "pair"),  # auto: r = 24 ≥ P, blocks fit
                                                  (20, (6, 4, 5), {"memory_budget": 0}, "factored")])
def test_likelihood_is_the_gaussian_marginal(P, widths, kw, route):
    prob = random_problem(heads=(2, 2), P=P, N0=6, seed=7)
    spec = smt.ModelSpec(heads=(2, 2), widths=widths, temperature=0.3)
    full = overlap_target(prob, spec, **kw)
    prior = overlap_target(prob, spec, likelihood=False)
    assert full.name == f"overlap-{route}" and prior.name == "overlap-prior"
    evaluate = jax.jit(lambda p: (full.logdensity(p) - prior.logdensity(p), full.order_parameter(p)))
    for k in range(2):
        difference, U1 = evaluate(_position(full.n_dims, 20 + k))
        K = np.asarray(renormalized_kernel(jnp.asarray(prob.scaled_train(spec)), np.asarray(U1)))
        ref = st.multivariate_normal.logpdf(prob.y_train, np.zeros(P), 0.3 * np.eye(P) + K)
        assert abs(float(difference) - ref) < 1e-9 * abs(ref)


def test_gradient_matches_finite_differences_and_float32_is_close():
    prob = random_problem(heads=(2, 2), P=25, N0=6, seed=8)
    spec = smt.ModelSpec(heads=(2, 2), widths=6, temperature=0.3)
    pair, single = overlap_target(prob, spec), overlap_target(prob, spec, "float32")
    assert pair.name == "overlap-dual"  # r = 4·6 < P = 25
    evaluate = jax.jit(lambda p: (jax.value_and_grad(pair.logdensity)(p), single.logdensity(p.astype(jnp.float32))))
    pos, h = _position(pair.n_dims, 30), 1e-5
    (v, grad), v32 = evaluate(pos)
    assert np.all(np.isfinite(grad))
    for k in range(2):
        e = _position(pair.n_dims, 31 + k)
        numeric = (evaluate(pos + h * e)[0][0] - evaluate(pos - h * e)[0][0]) / (2 * h)
        assert abs(numeric - grad @ e) < 1e-6 * np.abs(grad).sum()
    assert v32.dtype == jnp.float32 and jax.eval_shape(single.init, jax.random.key(0)).dtype == jnp.float32
    assert abs(float(v32) - float(v)) < 1e-4 * abs(float(v))


# ---------------------------------------------------------------- 6. bad input
def test_bad_input():
    prob = random_problem(heads=(2, 2), P=20, seed=9)
    spec = smt.ModelSpec(heads=(2, 2), widths=6)
    with pytest.raises(smt.InputError, match="problem"):
        overlap_target({"xi": 1}, spec)
    with pytest.raises(smt.InputError, match="spec"):
        overlap_target(prob, {"heads": (2, 2)})
    with pytest.raises(smt.InputError, match="heads"):
        overlap_target(prob, smt.ModelSpec(heads=(4,), widths=6))
    with pytest.raises(smt.InputError, match="dtype"):
        overlap_target(prob, spec, "float16")
    with pytest.raises(smt.InputError, match="likelihood"):
        overlap_target(prob, spec, likelihood="yes")
    with pytest.raises(smt.InputError, match="memory_budget"):
        overlap_target(prob, spec, memory_budget=-1)
    with pytest.raises(smt.InputError, match="route"):
        overlap_target(prob, spec, route="blocks")
    with pytest.raises(smt.InputError, match="memory_budget"):
        overlap_target(prob, spec, route="pair", memory_budget=100)
    target = overlap_target(prob, spec, likelihood=False)
    with pytest.raises(smt.InputError, match="position"):
        target.logdensity(jnp.zeros(target.n_dims + 1))
    with pytest.raises(smt.InputError, match="target_or_layout"):
        hierarchy("not a target", jnp.zeros(target.n_dims))
