"""Cholesky factor, inverse factor and SPD inverse from matrix products (smtheory.spd_inverse) against LAPACK."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smtheory.spd_inverse import LEAF, cholesky_and_inverse, lower_gram, lower_row_norms, spd_inverse


def _spd(n, cond, seed):
    """A random SPD matrix with condition number ``cond`` (random eigenvectors, log-spaced eigenvalues)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (Q * np.logspace(0, -np.log10(cond), n)) @ Q.T


@pytest.mark.parametrize("n", [1, 7, LEAF, LEAF + 1, 97, 130])
@pytest.mark.parametrize("cond", [1e2, 1e8])
def test_factor_inverse_factor_and_inverse_match_lapack(n, cond):
    A = _spd(n, cond, n)
    L_ref = np.linalg.cholesky(A)
    L, Linv = jax.jit(cholesky_and_inverse)(jnp.asarray(A))
    np.testing.assert_allclose(L, L_ref, rtol=0, atol=1e-13 * np.sqrt(cond))
    assert np.all(np.triu(np.asarray(L), 1) == 0) and np.all(np.triu(np.asarray(Linv), 1) == 0)
    # the inverse factor: residual relative to its size, as a backward-stable solve would give
    assert np.abs(np.asarray(Linv) @ L_ref - np.eye(n)).max() <= 1e-12 * np.sqrt(cond)
    L2, G = jax.jit(spd_inverse)(jnp.asarray(A))
    np.testing.assert_array_equal(L2, L)
    G = np.asarray(G)
    np.testing.assert_array_equal(G, G.T)  # exactly symmetric
    G_ref = np.linalg.inv(A)
    np.testing.assert_allclose(G, G_ref, rtol=0, atol=1e-14 * cond * np.abs(G_ref).max())  # relative error ≤ ε κ
    assert np.abs(G @ A - np.eye(n)).max() <= 1e-12 * cond
    logdet = 2 * np.sum(np.log(np.diag(np.asarray(L))))
    assert abs(logdet - 2 * np.sum(np.log(np.diag(L_ref)))) <= 1e-13 * n * np.sqrt(cond)  # n ε κ(L)


def test_lapack_route_beyond_direct_max_agrees():
    A = jnp.asarray(_spd(70, 1e4, 0))
    L_rec, G_rec = spd_inverse(A)
    L_lap, G_lap = spd_inverse(A, direct_max=16)  # 70 > 16: LAPACK factorisation and cho_solve
    np.testing.assert_allclose(L_rec, L_lap, atol=1e-13)
    np.testing.assert_allclose(G_rec, G_lap, rtol=1e-9, atol=1e-9 * np.abs(G_lap).max())


def test_lower_gram_is_the_gram_of_a_triangle():
    M = np.tril(np.random.default_rng(1).standard_normal((150, 150)))
    np.testing.assert_allclose(lower_gram(jnp.asarray(M)), M.T @ M, rtol=1e-12, atol=1e-12)


def test_lower_row_norms_are_the_norms_of_the_products():
    rng = np.random.default_rng(3)
    M, X = np.tril(rng.standard_normal((101, 101))), rng.standard_normal((13, 101))
    np.testing.assert_allclose(lower_row_norms(jnp.asarray(X), jnp.asarray(M)), np.sum((X @ M.T) ** 2, axis=1),
                               rtol=1e-12)


def test_differentiable_like_the_inverse():
    """Second derivatives of the energy differentiate through the recursion: d(A⁻¹) = −A⁻¹ dA A⁻¹."""
    A, dA = jnp.asarray(_spd(80, 10, 1)), jnp.asarray(_spd(80, 3, 2))
    G, dG = jax.jvp(lambda a: spd_inverse(a)[1], (A,), (dA,))
    np.testing.assert_allclose(dG, -G @ dA @ G, rtol=1e-9, atol=1e-10 * np.abs(dG).max())


def test_not_positive_definite_gives_nan():
    A = jnp.asarray(_spd(80, 10, 2) - 2 * np.eye(80))  # indefinite
    L, G = spd_inverse(A)
    assert np.isnan(np.asarray(L)).any() and np.isnan(np.asarray(G)).any()
