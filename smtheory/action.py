"""The order-parameter action and its saddle-point equations (docs/theory.md §3).

All functions are pure JAX (float64) functions of the order parameters
``U_1, ..., U_L`` (a list of symmetric positive-definite matrices, ``U_ℓ`` of size
``D_ℓ × D_ℓ``), with the readout scalar ``U_a`` eliminated in closed form.  The
training data enter only through the scaled path features ``ξ̃`` (``[P, D, N0]``)
and the labels ``Y``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .kernels import renormalized_kernel
from .model import ModelSpec


@jax.tree_util.register_pytree_node_class
class ActionConstants:
    """The numbers of a :class:`ModelSpec` that the action needs, as a JAX pytree.

    ``heads`` is static (it fixes array shapes); widths, variances and temperature
    are traced, so a continuation along N or T does not recompile.
    """

    def __init__(self, heads, widths, variances, temperature):
        self.heads = tuple(int(h) for h in heads)
        self.widths = jnp.asarray(widths, dtype=jnp.float64)
        self.variances = jnp.asarray(variances, dtype=jnp.float64)
        self.temperature = jnp.asarray(temperature, dtype=jnp.float64)

    @classmethod
    def from_spec(cls, spec: ModelSpec):
        return cls(spec.heads, spec.widths, spec.variances, spec.temperature)

    def tree_flatten(self):
        return (self.widths, self.variances, self.temperature), self.heads

    @classmethod
    def tree_unflatten(cls, heads, children):
        obj = object.__new__(cls)
        obj.heads = heads
        obj.widths, obj.variances, obj.temperature = children
        return obj


def partial_trace(U, n_heads):
    """``[Tr_h U]_{η,η'} = Σ_h U[(h, η), (h, η')]`` over the most significant index."""
    d = U.shape[0] // n_heads
    return jnp.einsum("hihj->ij", U.reshape(n_heads, d, n_heads, d))


def readout_scalar(U_L, c: ActionConstants):
    """Closed-form ``U_a`` from ``∂S/∂U_a = 0``: ``U_a² + β U_a − γ = 0`` (docs/theory.md §3).

    ``β = σa² (H_L N_L/N_a − 1)``, ``γ = Tr(U_L) N_L σa² / (N_a σL²)``.
    """
    H_L, N_L, N_a = c.heads[-1], c.widths[-2], c.widths[-1]
    sa2, sL2 = c.variances[-1], c.variances[-2]
    beta = sa2 * (H_L * N_L / N_a - 1.0)
    gamma = jnp.trace(U_L) * N_L * sa2 / (N_a * sL2)
    # numerically stable positive root of u² + βu − γ = 0 (γ > 0)
    disc = jnp.sqrt(beta**2 + 4.0 * gamma)
    return jnp.where(beta >= 0, 2.0 * gamma / (beta + disc), (-beta + disc) / 2.0)


def _logdet_and_solve(A, B=None):
    """``ln det A`` and (optionally) ``A^{-1} B`` for SPD ``A`` through one Cholesky factorisation."""
    cf = jax.scipy.linalg.cho_factor(A, lower=True)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diag(cf[0])))
    if B is None:
        return logdet, None
    return logdet, jax.scipy.linalg.cho_solve(cf, B)


def prior_action(Us, c: ActionConstants):
    """The entropic (data-independent) part of the action (all but the last line of docs/theory.md §3)."""
    L = len(c.heads)
    N = c.widths  # N_1..N_L, N_a
    var = c.variances  # s0², s1²..sL², sa²
    U_a = readout_scalar(Us[-1], c)
    S = N[-1] * (U_a / var[-1] - jnp.log(U_a))
    for l in range(L):
        H_l = c.heads[l]
        if l == L - 1:
            trace = jnp.trace(Us[l]) / U_a
            logdet_next = jnp.log(U_a)
            logdet_l, _ = _logdet_and_solve(Us[l])
        else:
            logdet_next, sol = _logdet_and_solve(Us[l + 1], partial_trace(Us[l], H_l))
            trace = jnp.trace(sol)
            logdet_l, _ = _logdet_and_solve(Us[l])
        S = S + N[l] * (trace / var[l + 1] - logdet_l + H_l * logdet_next)
    return S


@jax.custom_jvp
def energy_term(U1, xi, y, temperature):
    """``ln det(T I + K) + Y^T (T I + K)^{-1} Y`` with ``K = K_{U_1}`` on the training set.

    Its derivative in ``U_1`` is supplied in closed form, ``dE = Σ_ab Φ_ab dU_ab``
    (:func:`phi_matrix`), so gradients never back-propagate through the ``P × P``
    Cholesky factorisation; second derivatives differentiate ``Φ`` itself.
    """
    K = renormalized_kernel(xi, U1)
    A = K + temperature * jnp.eye(K.shape[0])
    logdet, sol = _logdet_and_solve(A, y)
    return logdet + jnp.dot(y, sol)


@energy_term.defjvp
def _energy_term_jvp(primals, tangents):
    U1, xi, y, temperature = primals
    dU1 = tangents[0]
    # xi, y and temperature are data: only U_1 carries a tangent in the solver and the tests
    value, phi = _energy_and_phi(U1, xi, y, temperature)
    return value, jnp.sum(phi * dU1)


def _energy_and_phi(U1, xi, y, temperature):
    """Energy and ``Φ`` from one kernel assembly and one Cholesky factorisation."""
    P, D, N0 = xi.shape
    K = renormalized_kernel(xi, U1)
    cf = jax.scipy.linalg.cho_factor(K + temperature * jnp.eye(P), lower=True)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diag(cf[0])))
    alpha = jax.scipy.linalg.cho_solve(cf, y)
    G_xi = jax.scipy.linalg.cho_solve(cf, xi.reshape(P, D * N0)).reshape(P, D, N0)
    b = jnp.einsum("p,pdi->di", alpha, xi)  # Ξ_π^T G Y
    phi = jnp.einsum("pdi,pei->de", G_xi, xi) - b @ b.T
    return logdet + jnp.dot(y, alpha), 0.5 * (phi + phi.T)


def action(Us, xi, y, c: ActionConstants):
    """The action ``S(U_1, ..., U_L)`` of docs/theory.md §3 with ``U_a`` eliminated.

    Parameters
    ----------
    Us : list of arrays
        ``[U_1, ..., U_L]``, symmetric positive definite, ``U_ℓ`` of size ``D_ℓ``.
    xi : array [P, D, N0]
        Scaled training path features ``ξ̃``.
    y : array [P]
        Training labels ``Y``.
    c : ActionConstants

    Returns
    -------
    scalar
    """
    return prior_action(Us, c) + energy_term(Us[0], xi, y, c.temperature)


def phi_matrix(U1, xi, y, temperature):
    """``Φ_{ππ'} = Tr(G C_{ππ'}) − Y^T G C_{ππ'} G Y`` with ``G = (T I + K)^{-1}`` (docs/theory.md §3).

    Computed in factored form: ``Tr(G C_{ππ'}) = Σ_{p,i} (G Ξ_π)_{p i} Ξ_{π' p i}``.
    """
    return _energy_and_phi(U1, xi, y, temperature)[1]


def saddle_point_residuals(Us, xi, y, c: ActionConstants):
    """Relative residuals of the saddle-point equations (see :func:`_residuals`), as floats."""
    return [float(v) for v in _residuals_jit(list(Us), xi, y, c)]


def _residuals(Us, xi, y, c: ActionConstants):
    """Relative residuals of the saddle-point equations of docs/theory.md §3, written out explicitly.

    Returns a list, one entry per layer ℓ = 1..L, followed by the ``U_a`` equation:

    - ℓ = 1: ``‖U_1^{-1} − (I⊗U_2)^{-1}/σ1² − Φ/N1‖ / ‖U_1^{-1}‖`` (for L = 1, ``U_2 ≡ U_a``);
    - 2 ≤ ℓ ≤ L: ``‖N_ℓ[(I⊗U_{ℓ+1})^{-1}/σℓ² − U_ℓ^{-1}] + N_{ℓ−1}[H_{ℓ−1}U_ℓ^{-1}
      − U_ℓ^{-1}(Tr U_{ℓ−1})U_ℓ^{-1}/σ_{ℓ−1}²]‖`` divided by the norm of the sum of the absolute terms;
    - ``U_a``: the quadratic's residual relative to its largest term.

    These are independent of automatic differentiation, so they check that the
    solver's minimiser solves the equations of the theory and not only its own gradient.
    """
    return residuals_from_phi(Us, phi_matrix(Us[0], xi, y, c.temperature), c)


def residuals_from_phi(Us, phi, c: ActionConstants):
    """The residuals of :func:`_residuals` with ``Φ`` given (e.g. from a factorisation the caller has), as a
    JAX array (docs/theory.md §3, eq-saddle-bottom and eq-saddle-upper)."""
    L = len(c.heads)
    N = c.widths
    var = c.variances
    U_a = readout_scalar(Us[-1], c)
    nxt = [jnp.kron(jnp.eye(c.heads[l]), Us[l + 1]) for l in range(L - 1)] + [U_a * jnp.eye(Us[-1].shape[0])]
    inv = [jnp.linalg.inv(U) for U in Us]
    inv_next = [jnp.linalg.inv(M) for M in nxt]
    out = []
    r = inv[0] - inv_next[0] / var[1] - phi / N[0]
    out.append(jnp.linalg.norm(r) / jnp.linalg.norm(inv[0]))
    for l in range(1, L):
        a = N[l] * inv_next[l] / var[l + 1]
        b = N[l] * inv[l]
        cc = N[l - 1] * c.heads[l - 1] * inv[l]
        d = N[l - 1] * inv[l] @ partial_trace(Us[l - 1], c.heads[l - 1]) @ inv[l] / var[l]
        scale = jnp.linalg.norm(a) + jnp.linalg.norm(b) + jnp.linalg.norm(cc) + jnp.linalg.norm(d)
        out.append(jnp.linalg.norm(a - b + cc - d) / scale)
    H_L, N_L, N_a = c.heads[-1], N[-2], N[-1]
    beta = var[-1] * (H_L * N_L / N_a - 1.0)
    gamma = jnp.trace(Us[-1]) * N_L * var[-1] / (N_a * var[-2])
    out.append(jnp.abs(U_a**2 + beta * U_a - gamma) / (U_a**2 + jnp.abs(beta * U_a) + gamma))
    return jnp.stack(out)


_residuals_jit = jax.jit(_residuals)


def energy_hessian(U1, xi, y, temperature):
    """Exact Hessian of the energy term in the full (non-symmetrised) entries of ``U_1``.

    With ``G = (T I + K)^{-1} = L^{-T} L^{-1}``, ``X_a = L^{-1} Ξ_a`` and ``β_a = Ξ_a^T G Y``:

    ``∂²E/∂U_ab ∂U_cd = −Tr(X_c X_d^T X_a X_b^T) + β_c^T M_da β_b + β_a^T M_bc β_d``, ``M_da = X_d^T X_a``.

    The trace is contracted in sample space (``W_ab = X_a X_b^T``, cost ``O(D² P² N0)``,
    memory ``O(D² P²)``) when ``P < N0`` and in feature space (``M``, cost ``O(P D² N0²)``,
    memory ``O(D² N0²)``) otherwise.  Returns a ``[D², D²]`` matrix.
    """
    P, D, N0 = xi.shape
    K = renormalized_kernel(xi, U1)
    Lc = jnp.linalg.cholesky(K + temperature * jnp.eye(P))
    solve = lambda B: jax.scipy.linalg.solve_triangular(Lc, B, lower=True)  # noqa: E731
    X = solve(xi.reshape(P, D * N0)).reshape(P, D, N0)
    beta = jnp.einsum("p,pdi->di", solve(y), X)  # β_a = X_a^T L^{-1} Y
    return energy_hessian_from_solved(X, beta)


def energy_hessian_from_solved(X, beta, gram=None):
    """The Hessian of :func:`energy_hessian` from the solved features ``X = L^{-1} Ξ`` [P, D, N0] and
    ``β = Xᵀ L^{-1} Y`` [D, N0] of a factorisation ``T I + K = L Lᵀ`` (docs/theory.md §3); ``[D², D²]``.

    ``gram``: ``Xᵀ X`` as ``[D·N0, D·N0]`` if the caller has it (used when ``P ≥ N0``)."""
    P, D, N0 = X.shape
    u = jnp.einsum("pai,bi->abp", X, beta)  # u_ab = X_a β_b, so β_c^T M_da β_b = u_dc · u_ab
    t2 = jnp.einsum("dcp,abp->abcd", u, u)
    if P < N0:
        W = jnp.einsum("pai,qbi->abpq", X, X)
        t4 = jnp.einsum("cdpq,abqp->abcd", W, W)
    else:
        M = jnp.einsum("pbi,pcj->bicj", X, X) if gram is None else gram.reshape(D, N0, D, N0)
        t4 = jnp.einsum("bicj,djai->abcd", M, M)
    H = -t4 + t2 + jnp.transpose(t2, (2, 3, 0, 1))
    return H.reshape(D * D, D * D)
