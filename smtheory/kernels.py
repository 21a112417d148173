"""Path-pair kernels and the renormalised kernel (docs/theory.md §2–3).

``C_{ππ'}(x, x') = ξ̃^π(x)·ξ̃^{π'}(x')`` and ``K_U = Σ_{ππ'} U_{ππ'} C_{ππ'}``.  With the
feature matrix ``Ξ`` of shape ``[P, D, N0]`` the renormalised kernel is assembled
in factored form ``K_U = Ξ (U ⊗ I_{N0}) Ξ^T``: cost ``O(P D² N0 + P P' D N0)`` and
memory ``O(P P' + P D N0)``; the ``D² P²`` tensor of all path-pair kernels is
never built (except on request by :func:`path_pair_kernels` for small problems).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .checks import InputError, check_memory
from .precision import needs_float64


def _check_u(U, D):
    U = jnp.asarray(U)
    if U.shape != (D, D):
        raise InputError(f"U must be a {D}x{D} matrix (one row per path), got shape {U.shape}")
    return U


@needs_float64
def renormalized_kernel(xi_a, U, xi_b=None):
    """``K_U(x_a, x_b) = Ξ_a (U ⊗ I) Ξ_b^T`` from scaled features.

    Parameters
    ----------
    xi_a : array [P, D, N0]
        Scaled path features ``ξ̃`` of the first set.
    U : array [D, D]
    xi_b : array [Q, D, N0], optional
        Second set (default: the first).

    Returns
    -------
    array [P, Q]
    """
    P, D, N0 = xi_a.shape
    U = _check_u(U, D)
    xi_b = xi_a if xi_b is None else xi_b
    Z = jnp.einsum("pdi,de->pei", xi_a, U).reshape(P, D * N0)
    return Z @ jnp.reshape(xi_b, (xi_b.shape[0], D * N0)).T


def kernel_diagonal(xi, U):
    """``K_U(x, x)`` for every row of ``xi`` ([P, D, N0]) without the full matrix."""
    D = xi.shape[1]
    U = _check_u(U, D)
    return jnp.einsum("pdi,de,pei->p", xi, U, xi)


@needs_float64
def gp_kernel(xi_a, spec, xi_b=None):
    """GP (infinite-width) kernel: ``U_1 = σa² Π σℓ² I`` (docs/theory.md §3)."""
    D = xi_a.shape[1]
    return renormalized_kernel(xi_a, spec.gp_u1_scale() * jnp.eye(D), xi_b)


def subnetwork_gp_u(spec, paths):
    """The ``U_1`` that reproduces the GP kernel of a sub-network on the full feature set.

    The sub-network keeps ``D'`` of the ``D`` paths; its own scaled features carry
    ``1/√D'`` instead of ``1/√D``, so on the full network's features its GP kernel is
    ``K_U`` with ``U = (D/D') σa² Π σℓ² diag(mask)``.
    """
    D = spec.n_paths
    paths = sorted(set(int(p) for p in paths))
    if not paths or paths[0] < 0 or paths[-1] >= D:
        raise InputError(f"paths must be a non-empty subset of 0..{D - 1}, got {paths}")
    mask = np.zeros(D)
    mask[paths] = 1.0
    return (D / len(paths)) * spec.gp_u1_scale() * np.diag(mask)


@needs_float64
def path_pair_kernels(xi_a, xi_b=None, memory_budget=2 * 2**30):
    """All path-pair kernels ``C[π, π', μ, ν]`` as a ``[D, D, P, Q]`` array (small problems only).

    Intended for inspection and figures; the solver never needs it.
    """
    xi_b = xi_a if xi_b is None else xi_b
    P, D, N0 = xi_a.shape
    Q = xi_b.shape[0]
    check_memory("the path-pair kernel tensor [D, D, P, Q]", 8 * D * D * P * Q, memory_budget)
    return jnp.einsum("pdi,qei->depq", xi_a, xi_b)
