"""The data term of the order-parameter posterior from precomputed path-pair blocks (docs/theory.md §8.2).

The likelihood of the exact order-parameter posterior (docs/theory.md §8.2) depends on the data only
through the energy

    E(U_1) = ln det(T I_P + K) + Yᵀ (T I_P + K)⁻¹ Y,        K = Σ_{ππ'} U_{ππ'} C_{ππ'},

with the ``P × P`` path-pair kernels ``C_{ππ'}`` of the scaled training features (docs/theory.md §2).
:func:`smtheory.action.energy_term` evaluates it in factored form (cost ``O(P² D N0)`` per call, memory
``O(P D N0)``).  A sampler evaluates ``E`` thousands of times at fixed data, so here the ``D(D+1)/2``
symmetrised blocks of :func:`smtheory.pair_blocks.pair_blocks` are built once and every evaluation
(:func:`pair_energy`) costs ``O(D² P² + P³)``, independent of the input width ``N0``.  Use it when the blocks
fit in memory (:data:`PAIR_BLOCK_BUDGET`); otherwise fall back to :func:`smtheory.action.energy_term`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from .pair_blocks import blocks_contract, blocks_kernel
from .spd_inverse import spd_inverse

__all__ = ["PAIR_BLOCK_BUDGET", "pair_energy"]

#: Default memory budget (bytes) of the pair blocks ``[D(D+1)/2, P, P]``: 512 MiB
#: (float64: e.g. D = 4 paths up to P ≈ 2500, D = 16 up to P ≈ 700).
PAIR_BLOCK_BUDGET = 512 * 2**20


def _system(U1, blocks, temperature):
    K = blocks_kernel(U1, blocks)
    return K + temperature * jnp.eye(K.shape[0], dtype=K.dtype)


def _logdet(L):
    return 2.0 * jnp.sum(jnp.log(jnp.diag(L)))


@jax.custom_jvp
def pair_energy(U1, blocks, y, temperature):
    """``E = ln det(T I + K) + Yᵀ G Y``, ``G = (T I + K)⁻¹``, ``K = Σ U_{ππ'} C_{ππ'}`` (docs/theory.md §8.2).

    Equal to :func:`smtheory.action.energy_term` on the same data, from the blocks of
    :func:`smtheory.pair_blocks.pair_blocks`.

    Parameters
    ----------
    U1 : array [D, D]
        Symmetric positive semi-definite path-path order parameter (its symmetric part is used).
    blocks : array [D(D+1)/2, P, P]
        Symmetrised pair blocks from :func:`smtheory.pair_blocks.pair_blocks` (a tangent of them must be
        symmetric blocks too: the factorisation reads one triangle of ``K``).
    y : array [P]
        Training labels.
    temperature : float
        ``T > 0``.

    Returns
    -------
    scalar

    Notes
    -----
    Cost per evaluation ``D(D+1) P²`` flops (assembling ``K``) plus one Cholesky factorisation of ``T I + K``.
    The derivative needs in addition the explicit inverse ``G`` from the same factorisation
    (:func:`smtheory.spd_inverse.spd_inverse`: matrix products, about ``P³`` multiply-adds) and one more pass
    over the blocks — no reverse pass through the factorisation.  The JVP is closed-form:
    ``dE = Σ_{ππ'} Φ_{ππ'} dU_{ππ'}`` with ``Φ_{ππ'} = ⟨G − ααᵀ, C_{ππ'}⟩``, ``α = G Y`` (docs/theory.md §3;
    :func:`smtheory.pair_blocks.blocks_contract`), plus ``Tr(G dK_C) − αᵀ dK_C α`` for a tangent of the blocks
    (``dK_C = Σ U dS``), ``2 α·dY`` for ``Y`` and ``(Tr G − |α|²) dT`` for ``T``; zero tangents cost
    nothing.  Second derivatives differentiate ``Φ`` with ordinary autodiff.
    """
    A = _system(U1, blocks, temperature)
    L = jax.lax.linalg.cholesky(A, symmetrize_input=False)
    a = jax.lax.linalg.triangular_solve(L, y[:, None], left_side=True, lower=True)[:, 0]
    return _logdet(L) + jnp.dot(a, a)


def _pair_energy_jvp(primals, tangents):
    U1, blocks, y, temperature = primals
    dU, dB, dy, dT = tangents
    L, G = spd_inverse(_system(U1, blocks, temperature))
    alpha = G @ y
    value = _logdet(L) + jnp.dot(y, alpha)
    tangent = jnp.zeros_like(value)
    if not isinstance(dU, SymbolicZero):
        M = G - jnp.outer(alpha, alpha)
        tangent = tangent + jnp.sum(blocks_contract(M, blocks) * dU)
    if not isinstance(dB, SymbolicZero):
        dK = blocks_kernel(U1, dB)
        tangent = tangent + jnp.sum(G * dK) - alpha @ dK @ alpha
    if not isinstance(dy, SymbolicZero):
        tangent = tangent + 2.0 * jnp.dot(alpha, dy)
    if not isinstance(dT, SymbolicZero):
        tangent = tangent + (jnp.trace(G) - jnp.dot(alpha, alpha)) * dT
    return value, tangent


pair_energy.defjvp(_pair_energy_jvp, symbolic_zeros=True)
