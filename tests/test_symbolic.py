"""Cross-checks of the symbolic solver (smtheory.solvers.symbolic) against the numeric code (docs/theory.md §3)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import smtheory as smt
import smtheory.solvers
from smtheory.action import ActionConstants, action, phi_matrix, readout_scalar
from smtheory.solvers import parameterization as par
from smtheory.solvers.symbolic import (architecture, build_action, check_theory_equations, commuting_kernel_solution,
                              deep_linear_solution, from_spec, gp_solution, kernels_from_problem, lambdify,
                              numeric_saddle_point, readout_closed_form, saddle_point_equations,
                              theory_matrix_gradient)
from smtheory.solvers.symbolic.latex import document, equations_latex
from tests.conftest import random_problem


def _spd(rng, d, shift=0.4):
    A = rng.standard_normal((d, d))
    return A @ A.T / d + shift * np.eye(d)


def _case(heads, P, widths, seed=1):
    prob = random_problem(heads=heads, P=P, seed=seed)
    spec = smt.ModelSpec(heads=heads, widths=widths, temperature=0.05,
                         variances=(1.2,) + tuple(np.linspace(0.7, 1.3, len(heads) + 1)))
    C, y = kernels_from_problem(prob, spec)
    return prob, spec, build_action(from_spec(spec), C, y=y)


@pytest.fixture(scope="module")
def case22():
    return _case((2, 2), 2, (6, 9, 5))


@pytest.fixture(scope="module")
def case3():
    return _case((3,), 3, (7, 4))


def _jax_action(prob, spec):
    xi, y, c = jnp.asarray(prob.scaled_train(spec)), jnp.asarray(prob.y_train), ActionConstants.from_spec(spec)
    return lambda Us: action([jnp.asarray(U) for U in Us], xi, y, c), xi, y, c


@pytest.mark.parametrize("which", ["case22", "case3"])
def test_symbolic_action_equals_numeric_action(which, request):
    prob, spec, sa = request.getfixturevalue(which)
    f, *_ = _jax_action(prob, spec)
    ns = numeric_saddle_point(sa)
    rng = np.random.default_rng(0)
    for _ in range(3):
        Us = [_spd(rng, d) for d in spec.partial_paths]
        np.testing.assert_allclose(ns.action_eliminated(Us), float(f(Us)), rtol=1e-12)
        # with U_a free, S at the closed-form root is the same number
        ua = float(readout_scalar(jnp.asarray(Us[-1]), ActionConstants.from_spec(spec)))
        np.testing.assert_allclose(ns.action(Us, ua), float(f(Us)), rtol=1e-12)


@pytest.mark.parametrize("which", ["case22", "case3"])
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_symbolic_gradient_equals_jax_autodiff(which, backend, request):
    prob, spec, sa = request.getfixturevalue(which)
    _, xi, y, c = _jax_action(prob, spec)
    sizes = spec.partial_paths
    jgrad = jax.jit(jax.grad(lambda v: action(par.unpack_entries(v, sizes), xi, y, c)))
    ns = numeric_saddle_point(sa, backend=backend)
    rng = np.random.default_rng(1)
    for _ in range(3):
        Us = [_spd(rng, d) for d in sizes]
        g_ad = np.asarray(jgrad(jnp.asarray(par.pack_entries(Us))))
        g_sym = np.asarray(ns.gradient_eliminated(Us))
        np.testing.assert_allclose(g_sym, g_ad, rtol=1e-10, atol=1e-12 * np.abs(g_ad).max())
        # envelope theorem: the gradient at fixed U_a, evaluated at the root, is the same vector
        ua = float(ns.readout_root(Us))
        np.testing.assert_allclose(np.asarray(ns.gradient(Us, ua)), g_ad, rtol=1e-10,
                                   atol=1e-12 * np.abs(g_ad).max())


def test_lambdified_jax_function_is_differentiable(case3):
    prob, spec, sa = case3
    ns = numeric_saddle_point(sa, backend="jax")
    f = ns.function("action_eliminated")
    rng = np.random.default_rng(2)
    Us = [_spd(rng, 3)]
    v = jnp.asarray(par.pack_entries(Us))
    np.testing.assert_allclose(np.asarray(jax.grad(f)(v)), np.asarray(ns.gradient_eliminated(Us)), rtol=1e-10)


def test_energy_gradient_is_phi(case22):
    """The SymPy derivative of ln det(T+K) + Yᵀ(T+K)⁻¹Y in U_1 is (2 − δ_ij) Φ_ij of smtheory.action.phi_matrix."""
    prob, spec, sa = case22
    rng = np.random.default_rng(3)
    Us = [_spd(rng, d) for d in spec.partial_paths]
    f = lambdify(list(sa.entries), sa.energy_gradient[:10])
    g = np.array(f(*par.pack_entries(Us)), dtype=float)
    phi = np.asarray(phi_matrix(jnp.asarray(Us[0]), jnp.asarray(prob.scaled_train(spec)),
                                jnp.asarray(prob.y_train), spec.temperature))
    expect = np.array([phi[i, j] * (1 if i == j else 2) for i in range(4) for j in range(i, 4)])
    np.testing.assert_allclose(g, expect, rtol=1e-10, atol=1e-12 * np.abs(expect).max())


def test_generic_kernels_match_given_kernels():
    """Generic symbols C^{(ππ')}_{μν}, y_μ substituted by numbers give the same action as given matrices."""
    prob, spec, sa_num = _case((2,), 2, (5, 3), seed=4)
    sa_gen = build_action(from_spec(spec), "generic", n_train=2)
    C, y = kernels_from_problem(prob, spec)
    sub = {}
    for a in range(2):
        for b in range(2):
            for i in range(2):
                for j in range(2):
                    e = sa_gen.C[a][b][i, j]
                    if isinstance(e, sp.Symbol):
                        sub[e] = sp.Float(C[a, b, i, j], 17)
    sub.update({s: sp.Float(v, 17) for s, v in zip(sa_gen.Y, y)})
    rng = np.random.default_rng(5)
    U = _spd(rng, 2)
    pt = {s: sp.Float(v, 17) for s, v in zip(sa_gen.entries, par.pack_entries([U]))}
    e_gen = float(sa_gen.energy.xreplace(sub).xreplace(pt))
    e_num = float(sa_num.energy.xreplace(pt))
    np.testing.assert_allclose(e_gen, e_num, rtol=1e-12)


@pytest.mark.parametrize("heads", [(2,), (1, 2), (2, 1)])
def test_derived_equations_equal_theory_matrix_form_exactly(heads):
    sa = build_action(architecture(heads))  # widths, variances, T symbolic
    eq = saddle_point_equations(sa, simplify="none")
    assert check_theory_equations(sa, eq, method="exact")


def test_derived_equations_equal_theory_matrix_form_22():
    sa = build_action(architecture((2, 2)))
    eq = saddle_point_equations(sa)
    assert check_theory_equations(sa, eq, method="random")
    # the check is able to fail: a wrong sign in one stated term is detected
    stated = theory_matrix_gradient(sa)
    wrong = list(eq.gradient)
    wrong[-1] = wrong[-1] + 2 * sa.arch.widths[1] / sa.Ua
    assert any(sp.cancel(a - b) != 0 for a, b in zip(wrong, stated))


def test_readout_closed_form_matches_theory_and_numeric():
    rc = readout_closed_form(architecture((2, 2)))
    assert rc.matches_theory
    # exactly one positive root for positive γ (symbolic parameters replaced by numbers)
    spec = smt.ModelSpec(heads=(2, 2), widths=(6, 9, 5), variances=(1.0, 0.8, 1.1, 1.3))
    rcn = readout_closed_form(spec)
    U_L = _spd(np.random.default_rng(6), 2)
    num = float(readout_scalar(jnp.asarray(U_L), ActionConstants.from_spec(spec)))
    np.testing.assert_allclose(rcn.evaluate(U_L), num, rtol=1e-13)
    subs = {s: sp.Float(v, 17) for s, v in zip(rcn.U_L, U_L.ravel())}
    vals = sorted(float(r.xreplace(subs)) for r in rcn.roots)
    assert vals[0] < 0 < vals[1]


def test_gp_solution_symbolic_and_numeric():
    gp = gp_solution(architecture((2, 2)))
    assert gp.verified
    s1, s2, sa_ = sp.symbols("sigma_1^2 sigma_2^2 sigma_a^2", positive=True)
    assert sp.simplify(gp.scales[0] - s1 * s2 * sa_) == 0 and sp.simplify(gp.Ua - sa_) == 0
    # numeric solver with no data signal (zero features: Φ = 0) lands on the same point
    spec = smt.ModelSpec(heads=(2, 2), widths=(6, 9, 5), variances=(1.0, 0.8, 1.1, 1.3), temperature=0.1)
    Us, Ua = gp_solution(spec).numeric()
    prob = smt.KernelProblem(np.zeros((2, 4, 6)), np.ones(2), (2, 2))  # shapes of case22: compiled once
    res = smtheory.solvers.solve(prob, spec)
    assert res.converged, res.message
    for a, b in zip(res.U, Us):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * np.abs(b).max())
    np.testing.assert_allclose(res.U_a, Ua, rtol=1e-10)
    np.testing.assert_allclose(Us[0], spec.gp_order_parameters()[0][0], rtol=1e-14)


@pytest.mark.parametrize("L", [1, 2, pytest.param(3, marks=pytest.mark.slow)])
def test_deep_linear_closed_form_matches_numeric_solver(L):
    rng = np.random.default_rng(4)
    P, N0 = 6, 4
    x = rng.standard_normal((P, N0, 1))
    y = np.sign(x[:, :, 0] @ rng.standard_normal(N0))
    var = (1.3,) + (1.1,) * L + (0.9,)
    widths = tuple(range(5, 5 + L)) + (7,)
    spec = smt.ModelSpec(heads=(1,) * L, widths=widths, variances=var, temperature=0.2)
    prob = smt.KernelProblem.from_inputs(x, y, [smt.AttentionLayer(W=np.zeros((1, N0, N0))) for _ in range(L)])
    exact = deep_linear_solution(spec, prob)
    assert exact.reduction_verified
    assert exact.degree == 1 + 2 * N0 * (L + 1)
    assert len(exact.physical) >= 1 and "physical" in exact.reason
    res = smtheory.solvers.solve(prob, spec)
    assert res.converged, res.message
    for a, b in zip(exact.U, res.U):
        np.testing.assert_allclose(a, b, rtol=1e-10)
    np.testing.assert_allclose(exact.U_a, res.U_a, rtol=1e-10)


def _orthogonal_problem(heads, P=8, b=3, seed=0):
    """Path features on disjoint coordinate blocks (C_ππ' = 0) with commuting same-path kernels."""
    rng = np.random.default_rng(seed)
    D = int(np.prod(heads))
    Q, _ = np.linalg.qr(rng.standard_normal((P, b)))
    xi = np.zeros((P, D, D * b))
    for a in range(D):
        xi[:, a, a * b:(a + 1) * b] = 3 * Q * np.sqrt(rng.uniform(0.5, 2.0, b))
    return smt.KernelProblem(xi, np.sign(rng.standard_normal(P)), heads)


@pytest.mark.parametrize("heads,widths", [((2,), (4, 3)), pytest.param((2, 2), (6, 9, 5), marks=pytest.mark.slow)])
def test_commuting_kernels_match_numeric_solver(heads, widths):
    prob = _orthogonal_problem(heads)
    spec = smt.ModelSpec(heads=heads, widths=widths, temperature=0.05,
                         variances=(1.0,) + tuple(np.linspace(0.7, 1.3, len(heads) + 1)))
    exact = commuting_kernel_solution(spec, prob)
    assert exact.offdiagonal_verified and exact.residual < 1e-25
    res = smtheory.solvers.solve(prob, spec)
    assert res.converged, res.message
    for a, b in zip(exact.U, res.U):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * np.abs(b).max())
    np.testing.assert_allclose(exact.U_a, res.U_a, rtol=1e-10)
    # data moved the solution away from the GP value
    assert np.abs(exact.U[0] - spec.gp_u1_scale() * np.eye(spec.n_paths)).max() > 1e-2


@pytest.fixture(scope="module")
def solved22(case22):
    prob, spec, sa = case22
    res = smtheory.solvers.solve(prob, spec)
    assert res.converged, res.message
    return prob, spec, sa, res


def test_symbolic_residuals_vanish_at_numeric_solution(solved22):
    prob, spec, sa, res = solved22
    ns = numeric_saddle_point(sa)
    r = ns.residuals(res.U, res.U_a)
    assert len(r) == 3 and max(r) < 1e-8, r
    # and they do not vanish elsewhere
    moved = [res.U[0] * 1.05, res.U[1]]
    assert max(ns.residuals(moved, res.U_a)[:2]) > 1e-3
    # the numeric code's own residuals agree that this is a solution
    assert max(res.residuals) < 1e-8


def test_phi_mode_residuals_with_numeric_phi(solved22):
    """Residuals in 'phi' mode, with Φ from the numeric code at the numeric solution, vanish too."""
    prob, spec, _, res = solved22
    sa = build_action(from_spec(spec))
    phi = np.asarray(phi_matrix(jnp.asarray(res.U[0]), jnp.asarray(prob.scaled_train(spec)),
                                jnp.asarray(prob.y_train), spec.temperature))
    ns = numeric_saddle_point(sa, params={"Phi": phi})
    assert max(ns.residuals(res.U, res.U_a)) < 1e-8
    assert max(ns.residuals(res.U, res.U_a * 1.1)) > 1e-3
    with pytest.raises(smt.InputError, match="abstract"):
        ns.action(res.U, res.U_a)


def test_bad_input_and_size_limits():
    with pytest.raises(smt.InputError, match="D_ℓ"):
        architecture((2, 2, 2))
    with pytest.raises(smt.InputError, match="layers"):
        architecture((1,) * 5)
    with pytest.raises(smt.InputError, match="heads"):
        architecture(())
    with pytest.raises(smt.InputError, match="widths"):
        architecture((2,), widths=(3, 4, 5))
    with pytest.raises(smt.InputError, match="variances"):
        architecture((2,), variances=(1, -1, 1))
    with pytest.raises(smt.InputError, match="n_train"):
        build_action(architecture((2,)), "generic", n_train=3)
    with pytest.raises(smt.InputError, match="kernels"):
        build_action(architecture((2,)), np.zeros((2, 2, 5, 5)), y=np.ones(5))
    with pytest.raises(smt.InputError, match="SIMPLIFY_MAX_OPS"):
        saddle_point_equations(build_action(architecture((1, 4))), simplify="cancel")
    with pytest.raises(smt.InputError, match="no value"):
        numeric_saddle_point(build_action(architecture((2,))))
    with pytest.raises(smt.InputError, match="module map"):
        x = sp.Symbol("x")
        lambdify([x], sp.sin(x))
    spec = smt.ModelSpec(heads=(2,), widths=5)
    with pytest.raises(smt.InputError, match="one path"):
        deep_linear_solution(spec, random_problem(heads=(2,), P=5))
    with pytest.raises(smt.InputError, match="no closed form"):
        commuting_kernel_solution(spec, random_problem(heads=(2,), P=5))


def test_latex_export():
    sa = build_action(architecture((2, 2)))
    eq = saddle_point_equations(sa, simplify="none")
    lines = equations_latex(eq)
    assert len(lines) == 14
    assert r"\frac{\partial S}{\partial U^{(1)}_{11}}" in lines[0] and r"\Phi_{11}" in lines[0]
    doc = document(sa, eq, verified=True)
    assert r"\operatorname{Tr}_{h_{1}} U_{1}" in doc and "$$" in doc


def test_cli_equations(capsys):
    from smtheory.cli import main
    assert main(["equations", "--heads", "2", "2"]) == 0
    out = capsys.readouterr().out
    assert "dS/dU1[1,1]" in out and "dS/dU2[2,2]" in out and "random check): yes" in out
    assert main(["equations", "--heads", "1", "1", "--widths", "5", "--latex", "--expanded"]) == 0
    assert r"\frac{\partial S}" in capsys.readouterr().out
    assert main(["equations", "--heads", "2", "2", "2"]) == 2
    assert "D_ℓ" in capsys.readouterr().err
