import jax
import jax.numpy as jnp
import numpy as np
import pytest

import smtheory as smt
from smtheory.action import (ActionConstants, action, energy_hessian, phi_matrix, prior_action, readout_scalar,
                             saddle_point_residuals)
from smtheory.solvers import parameterization as par
from tests.conftest import random_problem


def _random_spd(rng, d, scale=1.0):
    A = rng.standard_normal((d, d))
    return scale * (A @ A.T / d + 0.5 * np.eye(d))


def test_gp_values_minimise_the_action_without_data():
    spec = smt.ModelSpec(heads=(2, 3), widths=(7, 5, 9), variances=(1.0, 1.7, 0.6, 1.3))
    c = ActionConstants.from_spec(spec)
    gp, ua = spec.gp_order_parameters()
    Us = [jnp.asarray(U) for U in gp]
    np.testing.assert_allclose(float(readout_scalar(Us[-1], c)), ua, rtol=1e-12)
    vec = jnp.asarray(par.pack_entries(gp))
    f = lambda v: prior_action(par.unpack_entries(v, spec.partial_paths), c)  # noqa: E731
    g = jax.grad(f)(vec)
    assert float(jnp.max(jnp.abs(g))) < 1e-10
    H = jax.hessian(f)(vec)
    assert np.linalg.eigvalsh(np.asarray(H)).min() > 0
    rng = np.random.default_rng(0)
    S0 = float(f(vec))
    for _ in range(20):  # any nearby SPD point has a larger action
        pert = [U + 0.05 * _random_spd(rng, U.shape[0]) * rng.choice([-1, 1]) for U in gp]
        if min(np.linalg.eigvalsh(U).min() for U in pert) <= 0:
            continue
        assert float(f(jnp.asarray(par.pack_entries(pert)))) > S0


def test_readout_scalar_solves_its_quadratic():
    spec = smt.ModelSpec(heads=(3,), widths=(20, 7), variances=(1.0, 2.0, 0.5))
    c = ActionConstants.from_spec(spec)
    U = jnp.asarray(_random_spd(np.random.default_rng(1), 3))
    ua = float(readout_scalar(U, c))
    beta = 0.5 * (3 * 20 / 7 - 1)
    gamma = float(jnp.trace(U)) * 20 * 0.5 / (7 * 2.0)
    assert ua > 0 and abs(ua**2 + beta * ua - gamma) < 1e-12 * gamma


@pytest.mark.parametrize("heads", [(3,), (2, 2), (2, 1, 2)])
def test_action_gradient_equals_finite_differences(heads):
    prob = random_problem(heads=heads, P=15, seed=2)
    spec = smt.ModelSpec(heads=heads, widths=tuple(range(4, 4 + len(heads) + 1)),
                         variances=(1.0,) + tuple(np.linspace(0.8, 1.4, len(heads) + 1)), temperature=0.1)
    c = ActionConstants.from_spec(spec)
    xi, y = jnp.asarray(prob.scaled_train(spec)), jnp.asarray(prob.y_train)
    rng = np.random.default_rng(3)
    Us = [_random_spd(rng, d) for d in spec.partial_paths]
    vec = par.pack_entries(Us)
    f = lambda v: float(action(par.unpack_entries(jnp.asarray(v), spec.partial_paths), xi, y, c))  # noqa: E731
    g = np.asarray(jax.grad(lambda v: action(par.unpack_entries(v, spec.partial_paths), xi, y, c))(jnp.asarray(vec)))
    h = 1e-6
    fd = np.array([(f(vec + h * e) - f(vec - h * e)) / (2 * h) for e in np.eye(vec.size)])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6 * np.abs(g).max())


@pytest.mark.parametrize("P,N0", [(20, 6), (8, 30)])  # feature-space and sample-space contractions
def test_phi_is_the_energy_gradient_and_energy_hessian_is_exact(P, N0):
    prob = random_problem(heads=(2, 2), P=P, N0=N0, seed=4)
    spec = smt.ModelSpec(heads=(2, 2), temperature=0.05)
    xi, y = jnp.asarray(prob.scaled_train(spec)), jnp.asarray(prob.y_train)
    U1 = jnp.asarray(_random_spd(np.random.default_rng(5), 4))
    from smtheory.action import energy_term

    # derivatives along symmetric directions (the cholesky-based energy reads one triangle only)
    sym = lambda v: par.unpack_entries(v, (4,))[0]  # noqa: E731
    vec = jnp.asarray(par.pack_entries([U1]))
    f = lambda v: energy_term(sym(v), xi, y, 0.05)  # noqa: E731
    J = jax.jacfwd(lambda v: sym(v).ravel())(vec)  # [16, 10]
    g = jax.grad(f)(vec)
    np.testing.assert_allclose(J.T @ np.asarray(phi_matrix(U1, xi, y, 0.05)).ravel(), np.asarray(g), rtol=1e-9,
                               atol=1e-11)
    H_ad = jax.hessian(f)(vec)
    H_an = J.T @ energy_hessian(U1, xi, y, 0.05) @ J
    np.testing.assert_allclose(np.asarray(H_an), np.asarray(H_ad), rtol=1e-8, atol=1e-10 * float(jnp.abs(H_ad).max()))


def test_residuals_vanish_at_gp_without_signal_and_not_elsewhere():
    prob = random_problem(heads=(2, 2), P=20, seed=6)
    spec = smt.ModelSpec(heads=(2, 2), widths=50)
    c = ActionConstants.from_spec(spec)
    xi, y = jnp.asarray(prob.scaled_train(spec)), jnp.asarray(prob.y_train)
    gp = [jnp.asarray(U) for U in spec.gp_order_parameters()[0]]
    res = saddle_point_residuals(gp, xi, y, c)
    assert res[1] < 1e-12 and res[2] < 1e-12  # upper layer and U_a equations hold at the GP point
    assert res[0] > 1e-6  # but data pull U_1 away from the GP value
