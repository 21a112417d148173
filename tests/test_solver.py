import numpy as np
import pytest
import scipy.optimize

import smtheory as smt
import smtheory.solvers
from tests.conftest import random_problem


@pytest.mark.parametrize("heads,widths", [((3,), 8), ((2, 2), (6, 9, 5)), ((2, 1, 2), 10)])
def test_saddle_point_equations_hold_and_hessian_is_positive_definite(heads, widths):
    prob = random_problem(heads=heads, P=30, seed=1)
    spec = smt.ModelSpec(heads=heads, widths=widths, temperature=0.05,
                         variances=(1.0,) + tuple(np.linspace(0.7, 1.3, len(heads) + 1)))
    res = smtheory.solvers.solve(prob, spec)
    assert res.converged, res.message
    assert res.max_residual < 1e-8
    assert res.hessian_min_eig > 0
    for U in res.U:
        np.testing.assert_allclose(U, U.T, atol=1e-14)
        assert np.linalg.eigvalsh(U).min() > 0
    # data moved U_1 away from the GP value (the test is not trivially satisfied)
    assert np.abs(res.U1 - spec.gp_u1_scale() * np.eye(spec.n_paths)).max() > 1e-3


def test_solution_tends_to_gp_as_width_grows():
    prob = random_problem(heads=(2, 2), P=30, seed=2)
    spec = smt.ModelSpec(heads=(2, 2), temperature=0.1, variances=(1.0, 1.5, 0.8, 1.2))
    gp = spec.gp_u1_scale() * np.eye(4)
    dist = []
    for N in (10**3, 10**4, 10**5):
        res = smtheory.solvers.solve(prob, spec.replace(widths=N))
        assert res.converged, res.message
        dist.append(np.abs(res.U1 - gp).max())
    assert dist[0] > dist[1] > dist[2]
    # O(1/N): each factor 10 in N shrinks the deviation by about 10
    assert 5 < dist[1] / dist[2] < 20 and dist[2] < 1e-3


def test_permuting_heads_permutes_u1():
    rng = np.random.default_rng(3)
    N0, T, P = 6, 5, 30
    W1 = rng.standard_normal((3, N0, N0)) / N0
    W2 = rng.standard_normal((2, N0, N0)) / N0
    x = rng.standard_normal((P, N0, T))
    y = np.sign(x[:, 0, -1] + 0.5 * x[:, 1, 0])
    perm = np.array([2, 0, 1])
    spec = smt.ModelSpec(heads=(3, 2), widths=10, temperature=0.05)
    a = smtheory.solvers.solve(smt.KernelProblem.from_inputs(x, y, [smt.AttentionLayer(W=W1), smt.AttentionLayer(W=W2)]), spec)
    b = smtheory.solvers.solve(smt.KernelProblem.from_inputs(x, y, [smt.AttentionLayer(W=W1[perm]), smt.AttentionLayer(W=W2)]),
                      spec)
    assert a.converged and b.converged
    # path (h1, h2) of the permuted model is path (perm[h1], h2) of the original
    idx = np.array([perm[h1] * 2 + h2 for h1, h2 in smt.path_index((3, 2))])
    np.testing.assert_allclose(b.U1, a.U1[np.ix_(idx, idx)], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(b.U[1], a.U[1], rtol=1e-7)


@pytest.mark.parametrize("L", [1, 2, 3])
def test_deep_linear_network_closed_form(L):
    """H_ℓ = 1, one token: Li & Sompolinsky's scalar equation r^{-(L+1)} - r^{-L} = s Φ(u_1)/N (docs/theory.md §3)."""
    rng = np.random.default_rng(4)
    P, N0, N = 40, 30, 20
    x = rng.standard_normal((P, N0, 1))
    y = np.sign(x[:, :, 0] @ rng.standard_normal(N0))
    var = (1.3,) + (1.1,) * L + (0.9,)
    spec = smt.ModelSpec(heads=(1,) * L, widths=N, variances=var, temperature=0.2)
    layers = [smt.AttentionLayer(W=np.zeros((1, N0, N0))) for _ in range(L)]
    prob = smt.KernelProblem.from_inputs(x, y, layers)
    res = smtheory.solvers.solve(prob, spec)
    assert res.converged, res.message
    # independent scalar computation with the eigen-decomposition of the linear kernel
    s = float(np.prod(var[1:]))
    C = var[0] * x[:, :, 0] @ x[:, :, 0].T / N0
    lam, V = np.linalg.eigh(C)
    yt = V.T @ y

    def phi(u1):
        d = 0.2 + u1 * lam
        return np.sum(lam / d) - np.sum(lam * yt**2 / d**2)

    def eq(r):
        return r ** (-(L + 1)) - r ** (-L) - s * phi(s * r ** (L + 1)) / N

    r = scipy.optimize.brentq(eq, 1e-3, 1e3, xtol=1e-15, rtol=1e-14)
    np.testing.assert_allclose(res.U1[0, 0], s * r ** (L + 1), rtol=1e-10)
    np.testing.assert_allclose(res.U_a, var[-1] * r, rtol=1e-10)


def test_non_convergence_is_reported_not_silent():
    prob = random_problem(heads=(2, 2), P=30, seed=5)
    spec = smt.ModelSpec(heads=(2, 2), widths=5, temperature=0.01)
    res = smtheory.solvers.solve(prob, spec, max_iter=1)
    assert not res.converged
    assert "not converged" in res.message
    with pytest.raises(RuntimeError, match="did not converge"):
        smtheory.solvers.solve(prob, spec, max_iter=1, raise_on_failure=True)


def test_continuation_matches_cold_solves_and_keeps_order():
    prob = random_problem(heads=(2, 2), P=30, seed=6)
    spec = smt.ModelSpec(heads=(2, 2), temperature=0.05)
    widths = [5, 50, 20]
    seen = []
    warm = smtheory.solvers.continuation(prob, spec, widths=widths, progress=lambda i, n, r: seen.append(r.spec.widths[0]))
    assert seen == [50, 20, 5]  # largest width first
    for w, r in zip(widths, warm):
        cold = smtheory.solvers.solve(prob, spec.replace(widths=w))
        assert r.converged and r.spec.widths[0] == w
        np.testing.assert_allclose(r.U1, cold.U1, rtol=1e-8, atol=1e-10)
    temps = smtheory.solvers.continuation(prob, spec.replace(widths=10), temperatures=[0.01, 0.1])
    assert all(t.converged for t in temps) and temps[0].spec.temperature == 0.01


def test_large_problem_uses_hessian_vector_products():
    prob = random_problem(heads=(5, 5), P=20, seed=7, N0=4)
    spec = smt.ModelSpec(heads=(5, 5), widths=20, temperature=0.1)
    res = smtheory.solvers.solve(prob, spec, method="trust-krylov")
    assert res.method == "trust-krylov"
    assert res.converged, res.message
    dense = smtheory.solvers.solve(prob, spec, method="trust-exact")
    np.testing.assert_allclose(res.U1, dense.U1, rtol=1e-6, atol=1e-8)


def test_solver_input_errors(small_problem):
    spec = smt.ModelSpec(heads=(2, 2))
    with pytest.raises(smt.InputError, match="heads"):
        smtheory.solvers.solve(small_problem, smt.ModelSpec(heads=(2, 3)))
    with pytest.raises(smt.InputError, match="method"):
        smtheory.solvers.solve(small_problem, spec, method="newton-raphson")
    with pytest.raises(smt.InputError, match="init"):
        smtheory.solvers.solve(small_problem, spec, init=[np.eye(4), -np.eye(2)])
    with pytest.raises(smt.InputError, match="tol"):
        smtheory.solvers.solve(small_problem, spec, tol=0)
    with pytest.raises(smt.InputError, match="exactly one"):
        smtheory.solvers.continuation(small_problem, spec)
