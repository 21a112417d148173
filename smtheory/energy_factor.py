"""The energy term and its derivatives from one Cholesky factor of ``T I + K`` (docs/theory.md §3).

The data enter the action only through the energy ``E(U_1) = ln det(T I + K) + Yᵀ (T I + K)⁻¹ Y``.  Its
value, its gradient ``Φ`` (eq-saddle-bottom), its Hessian-vector products and its dense Hessian are
computed here from a single factorisation ``T I + K = L Lᵀ`` and the solved features ``X = L⁻¹ Ξ``
(``[P, D·N0]``), without any reverse pass through the factorisation:

- value: ``2 Σ ln L_pp + |a|²`` with ``a = L⁻¹ Y``;
- gradient: ``Φ_{ab} = Σ_{p,i} X_{p,a,i} X_{p,b,i} − β_a·β_b`` with ``β_a = X_aᵀ a = Ξ_aᵀ G Y``;
- Hessian-vector product in a symmetric direction ``dU``: with ``dK̃ = X (dU ⊗ I) Xᵀ`` and
  ``r = Σ_{cd} dU_{cd} X_c β_d``, ``dΦ_{ab} = −Tr(X_bᵀ dK̃ X_a) + β_b·(X_aᵀ r) + β_a·(X_bᵀ r)``;
- dense Hessian: :func:`smtheory.action.energy_hessian_from_solved`, with the Gram matrix ``Xᵀ X`` formed on
  its lower block triangle.

Two routes assemble ``K``, and nothing else differs between them:

- ``"blocks"``: from the ``D(D+1)/2`` path-pair blocks formed once (:mod:`smtheory.pair_blocks`),
  ``D(D+1) P²`` flops per kernel;
- ``"factored"``: ``K = Ξ (U ⊗ I) Ξᵀ`` with the lower block triangle only (the factorisation reads no
  more), about ``(5/8) · 2 P² D N0`` flops per kernel and memory ``O(P² + P D N0)``.

:func:`choose_route` picks the blocks when the whole working set fits the memory budget, the factored
form otherwise, and refuses (naming the budget) when even that does not fit.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .checks import InputError, check_memory
from .pair_blocks import blocks_kernel, pair_block_nbytes, pair_blocks
from .action import energy_hessian_from_solved

__all__ = ["ROUTES", "KERNEL_CHUNKS", "factored_nbytes", "route_nbytes", "choose_route", "EnergyData",
           "energy_data", "factor", "gradient", "hvp", "dense_hessian"]

ROUTES = ("auto", "blocks", "factored")
#: Row blocks of the factored kernel assembly: only the lower block triangle is formed, (c + 1)/(2c) of the flops.
KERNEL_CHUNKS = 4


def factored_nbytes(P, D, N0):
    """Bytes of the factored route's working set: about four ``P × P`` and twelve ``P × D N0`` float64 arrays.

    (``K``, its factor and two temporaries of a Hessian-vector product; ``Ξ`` in two layouts and its copies,
    ``X = L⁻¹ Ξ`` in two layouts for the optimiser's and the certificate's factor, and temporaries.)  The
    dense Hessian's ``(D N0)²`` Gram matrix is counted by the solver where it is used.
    """
    return 8 * (4 * P * P + 12 * P * D * N0)


def route_nbytes(route, P, D, N0):
    """Bytes of a route's working set: the factored one, plus the blocks for ``"blocks"``."""
    extra = pair_block_nbytes(P, D) if route == "blocks" else 0
    return factored_nbytes(P, D, N0) + extra


def choose_route(route, P, D, N0, memory_budget, extra_bytes=0):
    """The energy route for a problem of ``P`` examples, ``D`` paths and input width ``N0``.

    Parameters
    ----------
    route : {"auto", "blocks", "factored"}
        ``auto``: ``"blocks"`` when the blocks and the working set fit ``memory_budget``, else ``"factored"``.
    memory_budget : int
        Bytes.
    extra_bytes : int
        What the caller needs besides the route's working set (counted against the budget for either route).

    Returns
    -------
    str
        ``"blocks"`` or ``"factored"``.

    Raises
    ------
    InputError
        Unknown ``route``; or the chosen route (for ``auto``: the factored one) does not fit the budget — the
        message gives the estimate and names ``memory_budget``.
    """
    if route not in ROUTES:
        raise InputError(f"route must be one of {', '.join(map(repr, ROUTES))}, got {route!r}")
    if route == "auto":
        route = "blocks" if route_nbytes("blocks", P, D, N0) + extra_bytes <= memory_budget else "factored"
    what = "the path-pair blocks and the factored working set" if route == "blocks" else \
        "the factored working set (about 4 P × P and 12 P × D·N0 float64 arrays)"
    hint = f"memory_budget = {memory_budget} bytes: raise it, or reduce P, the number of paths D or N0"
    check_memory(f"{what} of route {route!r} (P = {P}, D = {D}, N0 = {N0})",
                 route_nbytes(route, P, D, N0) + extra_bytes, memory_budget,
                 hint=hint + (", or use route='auto'" if route == "blocks" else ""))
    return route


@jax.tree_util.register_pytree_node_class
class EnergyData:
    """Training data of the energy as a JAX pytree: features ``xi`` [P, D, N0] (also path-major, ``xi_t``
    [D, P·N0], for the products that mix paths), labels ``y`` [P] and, on the blocks route, ``blocks``
    [D(D+1)/2, P, P] (else None).  The route is static (part of the tree structure)."""

    def __init__(self, xi, y, blocks=None, xi_t=None):
        self.xi, self.y, self.blocks = xi, y, blocks
        self.xi_t = _path_major(xi) if xi_t is None else xi_t

    @property
    def route(self):
        return "factored" if self.blocks is None else "blocks"

    def tree_flatten(self):
        return (self.xi, self.y, self.blocks, self.xi_t), None

    @classmethod
    def tree_unflatten(cls, _, children):
        return cls(*children)


def energy_data(xi, y, route, memory_budget):
    """:class:`EnergyData` for ``route`` (``"blocks"`` forms the blocks within ``memory_budget``)."""
    xi = jnp.asarray(xi, dtype=jnp.float64)
    blocks = pair_blocks(xi, memory_budget) if route == "blocks" else None
    return EnergyData(xi, jnp.asarray(y, dtype=jnp.float64), blocks)


@jax.jit
def _path_major(A):
    """``[P, D, N0] → [D, P·N0]``: the layout in which mixing paths (``A (U ⊗ I)``) is one matrix product."""
    P, D, N0 = A.shape
    return jnp.transpose(A, (1, 0, 2)).reshape(D, P * N0)


def _mixed(U, At, P):
    """``A (U ⊗ I)`` as ``[P, D·N0]`` from the path-major ``At`` [D, P·N0] (``U`` symmetric)."""
    D = At.shape[0]
    return jnp.transpose((U @ At).reshape(D, P, -1), (1, 0, 2)).reshape(P, -1)


def _lower_kernel(U1, data, chunks=KERNEL_CHUNKS):
    """``Ξ (U ⊗ I) Ξᵀ`` on and below the diagonal blocks of a ``chunks × chunks`` grid (zeros above)."""
    P, D, N0 = data.xi.shape
    Xf = data.xi.reshape(P, D * N0)
    Z = _mixed(U1, data.xi_t, P)
    if P < 256 * chunks:
        return Z @ Xf.T
    edges = [round(P * k / chunks) for k in range(chunks + 1)]
    rows = []
    for i in range(chunks):
        lo, hi = edges[i], edges[i + 1]
        part = Z[lo:hi] @ Xf[:hi].T
        rows.append(jnp.pad(part, ((0, 0), (0, P - hi))))
    return jnp.concatenate(rows, axis=0)


def _kernel(U1, data):
    return _lower_kernel(U1, data) if data.blocks is None else blocks_kernel(U1, data.blocks)


@jax.jit
def factor(U1, data, temperature):
    """Cholesky factor ``L`` of ``T I + K_{U_1}``, ``a = L⁻¹ Y`` and the energy ``2 Σ ln L_pp + |a|²``.

    Returns ``(L, a, energy)``; ``energy`` is NaN where ``T I + K`` is not numerically positive definite.
    """
    K = _kernel(U1, data)
    P = K.shape[0]
    L = jax.lax.linalg.cholesky(K + temperature * jnp.eye(P, dtype=K.dtype), symmetrize_input=False)
    a = jax.lax.linalg.triangular_solve(L, data.y[:, None], left_side=True, lower=True)[:, 0]
    return L, a, 2.0 * jnp.sum(jnp.log(jnp.diag(L))) + jnp.dot(a, a)


@jax.jit
def gradient(L, a, data):
    """``Φ`` (D × D, symmetric) and the solved features from the factor (module docstring).

    Returns ``(Φ, X, X_t, β)``: ``X = L⁻¹ Ξ`` [P, D, N0], the same path-major ``X_t`` [D, P·N0] and
    ``β = Xᵀ a`` [D, N0].
    """
    P, D, N0 = data.xi.shape
    X = jax.lax.linalg.triangular_solve(L, data.xi.reshape(P, D * N0), left_side=True, lower=True)
    beta = (a @ X).reshape(D, N0)
    Xt = _path_major(X.reshape(P, D, N0))
    phi = Xt @ Xt.T - beta @ beta.T
    return 0.5 * (phi + phi.T), X.reshape(P, D, N0), Xt, beta


@jax.jit
def hvp(X, Xt, beta, dU):
    """Directional derivative ``dΦ`` of ``Φ`` along a symmetric ``dU`` (module docstring); ``4 P² D N0`` flops."""
    P, D, N0 = X.shape
    Xf = X.reshape(P, D * N0)
    Z = _mixed(dU, Xt, P)  # X (dU ⊗ I)
    V = (Z @ Xf.T) @ Xf  # dK̃ X
    t1 = Xt @ _path_major(V.reshape(P, D, N0)).T
    r = Z @ beta.reshape(D * N0)
    s = (Xt.reshape(D, P, N0) * r[None, :, None]).sum(axis=1)
    d = -t1 + s @ beta.T + beta @ s.T
    return 0.5 * (d + d.T)


def _gram(A, chunks=KERNEL_CHUNKS):
    """``Aᵀ A`` for ``A`` [P, m] from the blocks on and below the diagonal of a ``chunks × chunks`` grid."""
    m = A.shape[1]
    if m < 256 * chunks:
        return A.T @ A
    edges = [round(m * k / chunks) for k in range(chunks + 1)]
    parts = [[None] * chunks for _ in range(chunks)]
    for i in range(chunks):
        lo, hi = edges[i], edges[i + 1]
        row = A[:, lo:hi].T @ A[:, :hi]
        for j in range(i + 1):
            parts[i][j] = row[:, edges[j]:edges[j + 1]]
            if j < i:
                parts[j][i] = parts[i][j].T
    return jnp.block(parts)


@jax.jit
def dense_hessian(X, beta):
    """Exact Hessian of the energy in the full entries of ``U_1`` (``[D², D²]``) from ``X`` and ``β``."""
    P, D, N0 = X.shape
    gram = _gram(X.reshape(P, D * N0)) if P >= N0 else None
    return energy_hessian_from_solved(X, beta, gram)
