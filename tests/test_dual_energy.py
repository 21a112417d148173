"""The feature-space energy (docs/theory.md §8.2, "Feature-space form") against the P × P energy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import smtheory as smt
from smtheory.action import energy_term
from smtheory.dual_energy import dual_data, dual_energy, dual_is_cheaper, dual_rank


def _data(P, D, N0, seed, in_span=False):
    rng = np.random.default_rng(seed)
    xi = rng.standard_normal((P, D, N0)) / np.sqrt(N0)
    y = np.sign(rng.standard_normal(P))
    if in_span:  # labels a linear function of the features: Y − Ψβ → 0 as T → 0
        y = xi.reshape(P, -1) @ rng.standard_normal(D * N0)
    return jnp.asarray(xi), jnp.asarray(y)


def _reference(F, xi, y, T):
    """``ln det(T I + K) + Yᵀ (T I + K)⁻¹ Y`` in numpy from the P × P kernel."""
    F, xi, y = (np.asarray(a) for a in (F, xi, y))
    P, D, N0 = xi.shape
    X = xi.reshape(P, D * N0)
    K = X @ np.kron(F @ F.T, np.eye(N0)) @ X.T
    A = T * np.eye(P) + K
    return np.linalg.slogdet(A)[1] + y @ np.linalg.solve(A, y)


_value_and_grads = jax.jit(lambda F, d, T: (dual_energy(F, d, T), jax.grad(dual_energy, argnums=(0, 2))(F, d, T)))


@pytest.mark.parametrize("P, D, N0, m, T", [(40, 4, 6, 4, 0.3),  # r = 24 < P, full rank
                                           (40, 4, 6, 2, 0.05),  # singular U_1 (m < D)
                                           (15, 3, 8, 3, 1.0),  # r = 24 > P: still exact
                                           (30, 2, 5, 2, 1e-3)])  # small T
def test_value_and_gradients_equal_the_kernel_energy(P, D, N0, m, T):
    xi, y = _data(P, D, N0, seed=P + m)
    rng = np.random.default_rng(m)
    F = jnp.asarray(rng.standard_normal((D, m)) / np.sqrt(m))
    data = dual_data(xi, y)
    value, (gF, gT) = _value_and_grads(F, data, T)
    ref = _reference(F, xi, y, T)
    assert abs(float(value) - ref) <= 1e-9 * abs(ref)
    # ∂E/∂F from the P × P route: E(U = F Fᵀ) through energy_term's closed-form gradient, then the chain rule
    U = F @ F.T
    gU = jax.grad(energy_term)(U, xi, y, T)
    gF_ref = (gU + gU.T) @ F
    np.testing.assert_allclose(gF, gF_ref, rtol=1e-8, atol=1e-8 * float(jnp.abs(gF_ref).max()))
    h = 1e-6 * T
    numeric = (_reference(F, xi, y, T + h) - _reference(F, xi, y, T - h)) / (2 * h)
    assert abs(float(gT) - numeric) <= 1e-5 * abs(numeric) + 1e-6


def test_small_temperature_with_labels_in_the_feature_span():
    # Y = Ξ w: the quadratic term is O(T) relative to |Y|²/T and the naive (|Y|² − bᵀβ)/T would cancel
    xi, y = _data(60, 2, 4, seed=3, in_span=True)
    F = jnp.asarray([[1.0, 0.0], [0.4, 0.8]])
    data = dual_data(xi, y)
    for T in (1e-2, 1e-5):
        value = float(jax.jit(dual_energy)(F, data, T))
        ref = _reference(F, xi, y, T)
        assert abs(value - ref) <= 1e-8 * abs(ref)


def test_rank_rule():
    assert dual_rank(16, 32) == 512
    assert dual_is_cheaper(600, 16, 32) and not dual_is_cheaper(100, 4, 231)


def test_bad_input():
    xi, y = _data(10, 2, 3, seed=0)
    with pytest.raises(smt.InputError, match="xi_scaled"):
        dual_data(xi[0], y)
    with pytest.raises(smt.InputError, match="y must"):
        dual_data(xi, y[:5])
    data = dual_data(xi, y)
    with pytest.raises(smt.InputError, match="differentiable in F"):
        jax.grad(lambda g: dual_energy(jnp.eye(2), data._replace(gram=g), 0.5))(data.gram)
