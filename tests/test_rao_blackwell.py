"""The Rao-Blackwellised conditional predictor (docs/theory.md §8.3) against an independent kernel regression,
on every route of :func:`smtheory.sims.rao_blackwell.predictor_data` (pair blocks or features)."""
import jax.numpy as jnp
import numpy as np
import pytest

import smtheory as smt
from smtheory.kernels import renormalized_kernel
from smtheory.sims import rao_blackwell as rb
from tests.conftest import random_problem


def _reference(problem, spec, U):
    """Kernel regression written out with NumPy solves (no Cholesky, no pair blocks)."""
    xtr, xte = np.asarray(problem.scaled_train(spec)), np.asarray(problem.scaled_test(spec))
    K = np.asarray(renormalized_kernel(jnp.asarray(xtr), jnp.asarray(U)))
    ks = np.asarray(renormalized_kernel(jnp.asarray(xte), jnp.asarray(U), jnp.asarray(xtr)))
    kss = np.einsum("qdi,de,qei->q", xte, U, xte)
    T, y = spec.temperature, np.asarray(problem.y_train)
    A = K + T * np.eye(len(y))
    mean = ks @ np.linalg.solve(A, y)
    var = kss - np.einsum("qp,pq->q", ks, np.linalg.solve(A, ks.T))
    G = np.linalg.inv(A)
    energy = 0.5 * (T**2 * (G @ y) @ (G @ y) + T * len(y) - T**2 * np.trace(G))
    return dict(f_mean=mean, f_var=var, train_energy=energy,
                test_mse=np.mean((mean - np.asarray(problem.y_test)) ** 2 + var))


def _route(data):
    if data.dual is not None:
        return "dual"
    return ("pairs" if data.c_train.shape[0] > 0 else "features", "pairs" if data.c_test.shape[0] > 0 else "features")


@pytest.mark.parametrize("P, N0, budget, route, rank", [
    (6, 8, None, ("pairs", "pairs"), 4),  # P < D N0: train and test blocks
    (40, 12, 50_000, ("features", "pairs"), 4),  # P < D N0 = 48; the test blocks fit the budget, the train ones not
    (6, 8, 0, ("features", "features"), 4),  # nothing fits the budget
    (40, 8, None, "dual", 4),  # D N0 = 32 < P: in feature space
    (40, 8, None, "dual", 2),  # ... with a singular U_1
])
def test_conditional_moments_equal_kernel_regression_on_every_route(P, N0, budget, route, rank):
    problem = random_problem(heads=(2, 2), P=P, Q=9, N0=N0, T=1, seed=3)
    spec = smt.ModelSpec(heads=(2, 2), widths=5, temperature=0.3)
    kw = {} if budget is None else {"budget": budget}
    data = rb.predictor_data(problem, spec, **kw)
    D = 4
    assert _route(data) == route
    rng = np.random.default_rng(P)
    F = rng.normal(size=(D, rank))
    U = F @ F.T / D + (0.1 * np.eye(D) if rank == D else 0.0)
    got = rb.conditional_moments(jnp.asarray(U), data)
    ref = _reference(problem, spec, U)
    for k, v in ref.items():
        np.testing.assert_allclose(np.asarray(got[k]), v, rtol=1e-9, atol=1e-12, err_msg=k)

