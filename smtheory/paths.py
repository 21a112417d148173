"""Attention paths and path features (docs/theory.md §2).

A path is one head per layer ``π = (h_1, ..., h_L)``; paths are flattened with
``h_1`` most significant and ``h_L`` fastest (C order).  The path-transformed
input is ``ξ^π(x) = x Ω^{1,h1} ⋯ Ω^{L,hL} r``, contracted from the top layer
down, and the scaled feature is ``ξ̃^π = σ0 ξ^π / √(N0 D)``.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from .checks import InputError, finite_array
from .attention import readout_vector
from .precision import needs_float64


def path_index(heads):
    """All paths as tuples ``(h_1, ..., h_L)`` in flattened order (h_1 most significant)."""
    return list(itertools.product(*[range(h) for h in heads]))


def path_labels(heads, head_names=None):
    """Human-readable path labels, e.g. ``"(good, uniform)"`` or ``"(0, 1)"``."""
    labels = []
    for path in path_index(heads):
        if head_names is None:
            labels.append("(" + ", ".join(str(h) for h in path) + ")")
        else:
            labels.append("(" + ", ".join(head_names[l][h] for l, h in enumerate(path)) + ")")
    return labels


def path_codes(omegas, readout="last"):
    """Path codes ``c^π_s(x) = (Ω^{1,h1} ⋯ Ω^{L,hL} r)_s``: the weight of token s in path π (docs/theory.md §2).

    The path features are ``ξ^π(x) = Σ_s c^π_s(x) x_s`` (:func:`path_features`); in the hypernetwork view
    (:mod:`smtheory.hypernetwork`) the codes are the latent code of each path.

    Parameters
    ----------
    omegas : list of arrays [P, H_ℓ, T, T]
        Attention matrices per layer (key, query).
    readout : {"last", "first", "mean"} or array [T]
        Token readout ``r``, folded into the last layer.

    Returns
    -------
    array [P, T, D]
        Paths flattened with h_1 most significant.
    """
    if not isinstance(omegas, (list, tuple)) or len(omegas) == 0:
        raise InputError("omegas must be a non-empty list of attention-matrix arrays [P, H, T, T]")
    omegas = [finite_array(f"omegas[{i}]", om, ndim=4) for i, om in enumerate(omegas)]
    P, _, T, _ = omegas[0].shape
    for i, om in enumerate(omegas):
        if om.shape[0] != P or om.shape[2:] != (T, T):
            raise InputError(f"omegas[{i}] must have shape [P={P}, H, {T}, {T}], got {om.shape}")
    r = readout_vector(T, readout) if isinstance(readout, str) else finite_array("readout", readout, ndim=1)
    if r.shape != (T,):
        raise InputError(f"readout vector must have length T = {T}, got {r.shape}")
    # v_L[p, h_L, s] = Σ_t Ω^{L,h_L}[p, s, t] r_t
    v = np.einsum("phst,t->phs", omegas[-1], r)
    for om in reversed(omegas[:-1]):
        # v[p, h_ℓ, (h_{ℓ+1}..h_L), s] = Σ_t Ω^{ℓ,h_ℓ}[p, s, t] v[p, (h_{ℓ+1}..), t]
        v = np.einsum("phst,pkt->phks", om, v).reshape(P, -1, T)
    return np.swapaxes(v, 1, 2)  # [P, T, D]


@needs_float64
def path_features(x, omegas, readout="last"):
    """Raw path features ``ξ^π(x)`` for all ``D`` paths.

    Parameters
    ----------
    x : array [P, N0, T]
        Bare inputs.
    omegas : list of arrays [P, H_ℓ, T, T]
        Attention matrices per layer (key, query), from
        :func:`smtheory.attention.attention_matrices`.
    readout : {"last", "first", "mean"} or array [T]
        Token readout ``r``, folded into the last layer.

    Returns
    -------
    array [P, D, N0]
        ``ξ^π(x^μ)`` with paths flattened h_1-most-significant.
    """
    x = finite_array("x", x, ndim=3)
    P, N0, T = x.shape
    if isinstance(omegas, (list, tuple)):
        for i, om in enumerate(omegas):
            shape = np.shape(om)
            if len(shape) != 4 or shape[0] != P or tuple(shape[2:]) != (T, T):
                raise InputError(f"attention matrices of layer {i + 1} must have shape [P={P}, H, {T}, {T}], "
                                 f"got {shape}")
    codes = path_codes(omegas, readout)  # [P, T, D]
    D = codes.shape[2]
    xi = np.matmul(np.swapaxes(codes, 1, 2), np.swapaxes(x, 1, 2))  # [P, D, T] @ [P, T, N0] -> [P, D, N0]
    assert xi.shape == (P, D, N0)
    return xi


def feature_scale(sigma0_sq, n0, n_paths):
    """Scale factor ``σ0 / √(N0 D)`` of docs/theory.md §2."""
    return math.sqrt(sigma0_sq / (n0 * n_paths))


@needs_float64
def scaled_path_features(xi, sigma0_sq):
    """``ξ̃^π = σ0 ξ^π / √(N0 D)`` from raw features ``[P, D, N0]``."""
    P, D, N0 = xi.shape
    return xi * feature_scale(sigma0_sq, N0, D)


def subnetwork_paths(heads, kept_heads):
    """Indices of the paths of a sub-network that keeps only some heads per layer.

    Parameters
    ----------
    heads : sequence of int
    kept_heads : sequence of sequences of int
        For each layer, the heads kept.

    Returns
    -------
    list of int — flattened indices of the kept paths.
    """
    if len(kept_heads) != len(heads):
        raise InputError(f"kept_heads must list kept heads for each of the {len(heads)} layers, got {len(kept_heads)}")
    for l, (k, h) in enumerate(zip(kept_heads, heads)):
        if len(k) == 0 or any((not 0 <= int(i) < h) for i in k):
            raise InputError(f"kept_heads[{l}] must be a non-empty subset of 0..{h - 1}, got {list(k)}")
    keep = [set(int(i) for i in k) for k in kept_heads]
    return [i for i, p in enumerate(path_index(heads)) if all(p[l] in keep[l] for l in range(len(heads)))]
