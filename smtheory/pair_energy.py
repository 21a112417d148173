"""The data term of the order-parameter posterior from precomputed path-pair blocks (docs/theory.md §8.2).

The likelihood of the exact order-parameter posterior (docs/theory.md §8.2) depends on the data only
through the energy

    E(U_1) = ln det(T I_P + K) + Yᵀ (T I_P + K)⁻¹ Y,        K = Σ_{ππ'} U_{ππ'} C_{ππ'},

with the ``P × P`` path-pair kernels ``C_{ππ'}`` of the scaled training features (docs/theory.md §2).
:func:`smtheory.action.energy_term` evaluates it in factored form (cost ``O(P² D N0)`` per call, memory
``O(P D N0)``).  A sampler evaluates ``E`` thousands of times at fixed data, so here the ``D² P²`` numbers of
all pair blocks are built once (:func:`pair_blocks`) and every evaluation (:func:`pair_energy`) costs
``O(D² P² + P³)``, independent of the input width ``N0``.  Use it when the blocks fit in memory
(:data:`PAIR_BLOCK_BUDGET`); otherwise fall back to :func:`smtheory.action.energy_term`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from .checks import InputError, check_memory

__all__ = ["PAIR_BLOCK_BUDGET", "pair_blocks_nbytes", "pair_blocks", "pair_kernel", "pair_energy"]

#: Default memory budget (bytes) of the pair-block tensor ``[D, D, P, P]``: 512 MiB
#: (float64: e.g. D = 4 paths up to P ≈ 2000, D = 16 up to P ≈ 500).
PAIR_BLOCK_BUDGET = 512 * 2**20


def pair_blocks_nbytes(n_train, n_paths, dtype=jnp.float64):
    """Bytes of the pair-block tensor: ``itemsize · D² · P²`` (8 D² P² in float64)."""
    return int(np.dtype(dtype).itemsize) * int(n_paths) ** 2 * int(n_train) ** 2


def pair_blocks(xi_scaled, memory_budget=PAIR_BLOCK_BUDGET):
    """All path-pair kernel blocks ``C[π, π', μ, ν] = ξ̃^π(x_μ) · ξ̃^{π'}(x_ν)`` on the training set.

    Parameters
    ----------
    xi_scaled : array [P, D, N0]
        Scaled training path features ``ξ̃ = σ0 ξ / √(N0 D)`` (docs/theory.md §2); float64 or float32
        (the blocks keep its dtype).
    memory_budget : int, optional
        Refuse (``InputError``) when the tensor, ``itemsize · D² · P²`` bytes, exceeds it.
        Default (or None) :data:`PAIR_BLOCK_BUDGET` (512 MiB).

    Returns
    -------
    array [D, D, P, P]
        Symmetrised exactly, ``C[π, π'] = C[π', π]ᵀ``, so ``K = Σ U_{ππ'} C_{ππ'}`` is exactly symmetric
        for symmetric ``U``.  Cost ``O(D² P² N0)`` once.
    """
    xi = jnp.asarray(xi_scaled)
    if xi.ndim != 3:
        raise InputError(f"xi_scaled must be scaled path features [P, D, N0], got shape {xi.shape}")
    if xi.dtype not in (jnp.float64, jnp.float32):
        xi = xi.astype(jnp.float64)
    P, D, _ = xi.shape
    memory_budget = PAIR_BLOCK_BUDGET if memory_budget is None else memory_budget
    check_memory("the path-pair blocks [D, D, P, P]", pair_blocks_nbytes(P, D, xi.dtype), memory_budget)
    C = jnp.einsum("pdi,qei->depq", xi, xi)
    return 0.5 * (C + jnp.transpose(C, (1, 0, 3, 2)))


def pair_kernel(U1, C):
    """``K = Σ_{ππ'} U_{ππ'} C_{ππ'}`` (``[P, P]``) from the pair blocks; cost ``O(D² P²)``."""
    D, P = C.shape[0], C.shape[2]
    return (jnp.reshape(U1, (D * D,)) @ jnp.reshape(C, (D * D, P * P))).reshape(P, P)


def _factor(U1, C, temperature):
    """Cholesky factor of ``T I + K`` and ``ln det(T I + K)``."""
    K = pair_kernel(U1, C)
    cf = jax.scipy.linalg.cho_factor(K + temperature * jnp.eye(K.shape[0], dtype=K.dtype), lower=True)
    return cf, 2.0 * jnp.sum(jnp.log(jnp.diag(cf[0])))


def _phi(C, G, alpha):
    """``Φ_{ππ'} = Tr(G C_{ππ'}) − αᵀ C_{ππ'} α`` (``G`` symmetric, ``α = G Y``) as two matrix products."""
    D, P = C.shape[0], C.shape[2]
    trace = jnp.reshape(C, (D * D, P * P)) @ jnp.reshape(G, (P * P,))
    quad = (jnp.reshape(C, (D * D * P, P)) @ alpha).reshape(D * D, P) @ alpha
    return (trace - quad).reshape(D, D)


@jax.custom_jvp
def pair_energy(U1, C, y, temperature):
    """``E = ln det(T I + K) + Yᵀ G Y``, ``G = (T I + K)⁻¹``, ``K = Σ U_{ππ'} C_{ππ'}`` (docs/theory.md §8.2).

    Equal to :func:`smtheory.action.energy_term` on the same data, from the blocks of :func:`pair_blocks`.

    Parameters
    ----------
    U1 : array [D, D]
        Symmetric positive semi-definite path-path order parameter.
    C : array [D, D, P, P]
        Pair blocks from :func:`pair_blocks` (with ``C[π, π'] = C[π', π]ᵀ``, also for a tangent of ``C``:
        the factorisation reads one triangle of ``K``).
    y : array [P]
        Training labels.
    temperature : float
        ``T > 0``.

    Returns
    -------
    scalar

    Notes
    -----
    Cost per evaluation ``O(D² P²)`` (assembling ``K``; twice that for the tangent) plus one Cholesky
    factorisation of ``T I + K`` (``P³/3`` flops); the derivative needs in addition the explicit inverse
    ``G`` from the same factor (two triangular solves, about ``P³`` flops) — no second factorisation and
    no reverse pass through the factorisation.  The JVP is closed-form:
    ``dE = Σ_{ππ'} Φ_{ππ'} dU_{ππ'}`` with ``Φ_{ππ'} = Tr(G C_{ππ'}) − (GY)ᵀ C_{ππ'} (GY)`` (docs/theory.md §3),
    plus ``Tr(G dK_C) − (GY)ᵀ dK_C (GY)`` for a tangent of ``C`` (``dK_C = Σ U dC``), ``2 (GY)·dY`` for ``Y``
    and ``(Tr G − |GY|²) dT`` for ``T``; zero tangents cost nothing.  Second derivatives differentiate
    ``Φ`` with ordinary autodiff.
    """
    cf, logdet = _factor(U1, C, temperature)
    return logdet + jnp.dot(y, jax.scipy.linalg.cho_solve(cf, y))


def _pair_energy_jvp(primals, tangents):
    U1, C, y, temperature = primals
    dU, dC, dy, dT = tangents
    cf, logdet = _factor(U1, C, temperature)
    alpha = jax.scipy.linalg.cho_solve(cf, y)  # G Y
    value = logdet + jnp.dot(y, alpha)
    G = jax.scipy.linalg.cho_solve(cf, jnp.eye(y.shape[0], dtype=cf[0].dtype))
    G = 0.5 * (G + G.T)  # exactly symmetric, so Φ is
    tangent = jnp.zeros_like(value)
    if not isinstance(dU, SymbolicZero):
        tangent = tangent + jnp.sum(_phi(C, G, alpha) * dU)
    if not isinstance(dC, SymbolicZero):
        dK = pair_kernel(U1, dC)
        tangent = tangent + jnp.sum(G * dK) - alpha @ dK @ alpha
    if not isinstance(dy, SymbolicZero):
        tangent = tangent + 2.0 * jnp.dot(alpha, dy)
    if not isinstance(dT, SymbolicZero):
        tangent = tangent + (jnp.trace(G) - jnp.dot(alpha, alpha)) * dT
    return value, tangent


pair_energy.defjvp(_pair_energy_jvp, symbolic_zeros=True)
