"""The solver path at scale (issue 17): precomputed path-pair blocks and the factored form agree, the memory
budget is respected, the Lanczos/LOBPCG certificate matches the dense one, and streamed predictor statistics
equal the unchunked ones.  Small sizes only; the speed goals live in benchmarks/bench_scaling.py."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import smtheory as smt
import smtheory.solvers
from smtheory import energy_factor as ef
from smtheory import predictor_stream as ps
from smtheory.action import ActionConstants, action
from smtheory.pair_blocks import pair_block_nbytes, pair_blocks
from smtheory.predictor import predictor_moments
from smtheory.solvers import parameterization as par
from smtheory.solvers.certificate import smallest_eigenvalue
from smtheory.solvers.factored_objective import FactoredObjective
from smtheory.solvers.scaled import scaled_plan
from tests.conftest import random_problem

RTOL = 1e-10


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _setup(P, heads=(2, 2), N0=6, seed=1, widths=None, T=0.05):
    prob = random_problem(heads=heads, P=P, Q=5, N0=N0, seed=seed)
    spec = smt.ModelSpec(heads=heads, widths=widths or P, temperature=T,
                         variances=(1.0,) + tuple(np.linspace(0.8, 1.2, len(heads) + 1)))
    xi = jnp.asarray(prob.scaled_train(spec))
    y = jnp.asarray(prob.y_train)
    theta = par.pack(spec.gp_order_parameters()[0])
    theta = theta + 0.2 * np.random.default_rng(seed).standard_normal(theta.size)
    return prob, spec, xi, y, ActionConstants.from_spec(spec), theta


# P = 1100 > 1024 exercises the lower-block-triangle assembly of the factored kernel
@pytest.mark.parametrize("P,heads,N0", [(40, (2, 2), 6), (30, (3,), 40), (1100, (2, 2), 3)])
def test_blocks_and_factored_give_the_same_action_gradient_and_hvp(P, heads, N0):
    _, spec, xi, y, c, theta = _setup(P, heads, N0)
    scale = float(max(spec.widths) + P)
    f = lambda t: action(par.unpack(t, spec.partial_paths), xi, y, c) / scale  # noqa: E731 (autodiff reference)
    value, grad = jax.value_and_grad(f)(jnp.asarray(theta))
    v = np.random.default_rng(2).standard_normal(theta.size)
    outs = {}
    for route in ("blocks", "factored"):
        obj = FactoredObjective(ef.energy_data(xi, y, route, 2**31), c, scale)
        outs[route] = (obj.value(theta), obj.gradient(theta), obj.hvp(theta, v), obj.hessian(theta))
        assert abs(outs[route][0] - float(value)) <= RTOL * abs(float(value))
        assert _rel(outs[route][1], grad) < RTOL
        assert _rel(outs[route][2], outs[route][3] @ v) < RTOL  # the HVP is the dense Hessian's action
    for k in range(4):
        assert _rel(outs["blocks"][k], outs["factored"][k]) < RTOL


def test_blocks_and_factored_give_the_same_solution_as_the_autodiff_solver():
    prob, spec, *_ = _setup(40, widths=10)
    ref = smtheory.solvers.solve(prob, spec, method="newton")
    assert ref.route == "autodiff"
    for route in ("blocks", "factored"):
        res = smtheory.solvers.solve(prob, spec, method="scaled", route=route)
        assert res.converged, res.message
        assert res.route == route and res.method.startswith("scaled-")
        assert _rel(res.U1, ref.U1) < RTOL and _rel(res.U[1], ref.U[1]) < RTOL
        assert abs(res.action - ref.action) <= RTOL * abs(ref.action)
        assert abs(res.hessian_min_eig - ref.hessian_min_eig) <= 1e-8 * abs(ref.hessian_min_eig)
        assert res.to_record()["route"] == route


@pytest.mark.parametrize("hessian", ["newton", "secant", "newton-cg"])
def test_every_curvature_mode_reaches_the_same_certified_minimum(hessian):
    prob, spec, *_ = _setup(40, widths=12)
    ref = smtheory.solvers.solve(prob, spec, method="newton")
    res = smtheory.solvers.solve(prob, spec, method="scaled", hessian=hessian)
    assert res.converged, res.message
    assert res.method == f"scaled-{hessian}"
    assert _rel(res.U1, ref.U1) < RTOL
    assert res.profile["factorisations"] == res.n_evaluations >= res.iterations


def test_auto_uses_the_scaled_path_for_large_training_sets():
    prob, spec, *_ = _setup(520, N0=3, widths=50)
    res = smtheory.solvers.solve(prob, spec)
    assert res.converged, res.message
    assert res.method.startswith("scaled-") and res.route == "blocks"


def _route_bytes(P, D, N0, heads=(2, 2)):
    return scaled_plan(P, D, N0, memory_budget=2**40, heads=heads)["route_bytes"]


def test_memory_budget_picks_the_route_and_is_respected():
    P, D, N0 = 300, 4, 6
    need = _route_bytes(P, D, N0)
    assert pair_block_nbytes(P, D) == 8 * (D * (D + 1) // 2) * P * P
    assert need["blocks"] - need["factored"] == pair_block_nbytes(P, D)
    assert scaled_plan(P, D, N0, memory_budget=need["blocks"], heads=(2, 2))["route"] == "blocks"
    small = scaled_plan(P, D, N0, memory_budget=need["blocks"] - 1, heads=(2, 2))
    assert small["route"] == "factored" and small["estimated_bytes"] <= need["blocks"] - 1
    # the block array really has the size the budget was checked against, and is refused just below it
    xi = jnp.asarray(random_problem(heads=(2, 2), P=P, N0=N0).scaled_train(smt.ModelSpec(heads=(2, 2))))
    assert pair_blocks(xi, memory_budget=pair_block_nbytes(P, D)).nbytes == pair_block_nbytes(P, D)
    with pytest.raises(smt.InputError, match="memory budget"):
        pair_blocks(xi, memory_budget=pair_block_nbytes(P, D) - 1)


def test_solve_stays_within_the_memory_budget():
    prob, spec, *_ = _setup(40, widths=10)
    budget = _route_bytes(*prob.xi_train.shape)["blocks"] - 1  # the blocks do not fit
    res = smtheory.solvers.solve(prob, spec, method="scaled", memory_budget=budget)
    assert res.converged and res.route == "factored"
    assert res.profile["estimated_bytes"] <= res.profile["memory_budget"] == budget


def test_a_problem_too_large_for_the_budget_is_refused_naming_the_budget():
    prob, spec, *_ = _setup(40, widths=10)
    with pytest.raises(smt.InputError, match=r"memory budget.*memory_budget = 1000 bytes"):
        smtheory.solvers.solve(prob, spec, method="scaled", memory_budget=1000)
    with pytest.raises(smt.InputError, match="route 'blocks'.*memory_budget"):  # forced blocks over the budget
        smtheory.solvers.solve(prob, spec, method="scaled", route="blocks",
                               memory_budget=_route_bytes(*prob.xi_train.shape)["factored"])
    with pytest.raises(smt.InputError, match="memory_budget"):
        smtheory.solvers.solve(prob, spec, method="scaled", memory_budget=-5)
    with pytest.raises(smt.InputError, match="route"):
        smtheory.solvers.solve(prob, spec, method="scaled", route="dense")
    with pytest.raises(smt.InputError, match="hessian"):
        smtheory.solvers.solve(prob, spec, method="scaled", hessian="bfgs")


def test_lanczos_certificate_matches_the_dense_smallest_eigenvalue():
    _, spec, xi, y, c, theta = _setup(40, widths=8)
    vec = par.pack_entries(par.unpack(jnp.asarray(theta), spec.partial_paths))
    obj = FactoredObjective(ef.energy_data(xi, y, "factored", 2**31), c, 1.0, entries=True)
    dense = float(np.linalg.eigvalsh(obj.hessian(vec))[0])
    for pre in (obj.hessian_without_energy(vec), None):  # LOBPCG, and the Lanczos fallback
        value, products = smallest_eigenvalue(lambda v: obj.hvp(vec, v), vec.size, pre)
        assert abs(value - dense) <= 1e-7 * max(1.0, abs(dense))
        assert 0 < products


@pytest.mark.parametrize("N0", [3, 40])  # feature-space (D·N0 ≤ P) and sample-space variance
def test_streamed_predictor_statistics_equal_the_unchunked_ones(N0):
    prob = random_problem(heads=(2, 2), P=50, Q=37, N0=N0, seed=4)
    spec = smt.ModelSpec(heads=(2, 2), widths=10, temperature=0.05)
    A = np.random.default_rng(0).standard_normal((4, 4))
    U1 = A @ A.T / 4 + 0.5 * np.eye(4)
    xtr, xte = prob.scaled_train(spec), prob.scaled_test(spec)
    factor = ps.TrainFactor(xtr, prob.y_train, U1, 0.05)
    assert factor.space == ("features" if 4 * N0 <= 50 else "samples")
    mean0, var0 = predictor_moments(xtr, prob.y_train, xte, U1, 0.05)
    chunks = [(xte[s:s + 8], prob.y_test[s:s + 8]) for s in range(0, 37, 8)]  # 5 chunks, the last short
    stats = ps.streamed_statistics(xtr, prob.y_train, U1, 0.05, iter(chunks))
    assert _rel(stats.mean, mean0) < RTOL and _rel(stats.variance, var0) < 1e-9
    whole = ps.streamed_statistics(xtr, prob.y_train, U1, 0.05, [(xte, prob.y_test)])
    assert stats.generalization_error == pytest.approx(whole.generalization_error, rel=RTOL)
    assert stats.accuracy == whole.accuracy and stats.task == "classification"
    kernels = np.concatenate(list(ps.test_kernel_chunks(xtr, U1, (c[0] for c in chunks))))
    assert _rel(kernels, smt.renormalized_kernel(xte, U1, xtr)) < RTOL


def test_feature_chunks_stream_raw_inputs():
    rng = np.random.default_rng(5)
    layers = [smt.AttentionLayer(W=rng.standard_normal((2, 6, 6)) / 6) for _ in range(2)]
    x = rng.standard_normal((23, 6, 4))
    y = np.sign(rng.standard_normal(23))
    prob = smt.KernelProblem.from_inputs(x[:10], y[:10], layers, x, y)
    spec = smt.ModelSpec(heads=(2, 2))
    streamed = np.concatenate([xi for xi, _ in ps.feature_chunks(x, y, layers, spec.sigma0_sq, chunk=7)])
    assert _rel(streamed, prob.scaled_test(spec)) < RTOL


def test_continuation_passes_the_memory_budget_and_route_through():
    prob, spec, *_ = _setup(40, widths=10)
    budget = _route_bytes(*prob.xi_train.shape)["factored"]  # the factored form fits, the blocks do not
    warm = smtheory.solvers.continuation(prob, spec, widths=[40, 10], method="scaled", memory_budget=budget)
    for w, res in zip([40, 10], warm):
        cold = smtheory.solvers.solve(prob, spec.replace(widths=w), method="newton")
        assert res.converged and res.route == "factored" and res.profile["memory_budget"] == budget
        assert _rel(res.U1, cold.U1) < 1e-9
