"""Path features in O(T) through the fast-weight recurrences of ``"linear"``/``"delta"`` layers (docs/theory.md §2).

``ξ^π(x) = x Ω^{1,h1} ⋯ Ω^{L,hL} r`` without forming any T × T matrix: the bare input is fed as values through
every layer's memory recurrence (:func:`smtheory.fast_weights.fast_weight_scan`).  It sits above the mixing
registry because each layer's feature-mapped keys, queries and learning rates come from its rule options
(:func:`smtheory.mixing.fast_weight_program`); see docs/attention.md, §2 "Fast weights: path features in O(T)".
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .attention_primitives import readout_vector
from .checks import InputError, finite_array
from .fast_weights import fast_weight_scan
from .mixing import fast_weight_program

__all__ = ["fast_weight_path_features"]


def _layer_scan(Y, phik, phiq, beta, rule, causal, normalize):
    """One layer on one example: Y [D_prev, N0, T] -> [D_prev * H, N0, T] (heads fastest)."""
    Dp, N0, T = Y.shape
    vals = Y.reshape(Dp * N0, T)

    def head(k, q, b):
        return fast_weight_scan(k, q, vals, b, rule=rule, causal=causal, normalize=normalize)

    if beta is None:
        out = jax.vmap(lambda k, q: head(k, q, None))(phik, phiq)  # [H, Dp*N0, T]
    else:
        out = jax.vmap(head)(phik, phiq, beta)
    H = out.shape[0]
    return jnp.transpose(out.reshape(H, Dp, N0, T), (1, 0, 2, 3)).reshape(Dp * H, N0, T)


def fast_weight_path_features(x, layers, readout="last"):
    """Raw path features ``ξ^π(x)`` [P, D, N0] through the fast-weight recurrences (docs/theory.md §2).

    The bare input is the value stream of layer 1; the output of every head of layer ℓ (one per partial
    path) is the value stream of layer ℓ + 1; finally the readout ``r`` is applied.  Cost O(T) per
    example and path (memory ``N0 × m`` per head), against O(T²) for the attention-matrix form; the
    result equals :func:`smtheory.paths.path_features` on :func:`smtheory.attention.attention_matrices`.

    Parameters
    ----------
    x : array [P, N0, T]
        Bare inputs.
    layers : sequence of :class:`smtheory.attention.AttentionLayer`
        Every layer must use the ``"linear"`` or ``"delta"`` mixing rule (:mod:`smtheory.mixing`),
        without ``rms_heads``.
    readout : {"last", "first", "mean"} or array [T]

    Returns
    -------
    numpy array [P, D, N0]
    """
    x = finite_array("x", x, ndim=3)
    P, N0, T = x.shape
    if len(layers) == 0:
        raise InputError("layers must hold at least one attention layer")
    r = readout_vector(T, readout) if isinstance(readout, str) else finite_array("readout", readout, ndim=1)
    if r.shape != (T,):
        raise InputError(f"readout vector must have length T = {T}, got {r.shape}")
    progs = [fast_weight_program(x, layer) for layer in layers]
    return np.asarray(_path_features_jit(jnp.asarray(x), tuple(p["arrays"] for p in progs),
                                         tuple(p["static"] for p in progs), jnp.asarray(r)))


def _path_features_impl(x, arrays, statics, r):
    def one(xe, arrs):
        Y = xe[None]  # [1, N0, T]
        for (k, q, b), (rule, causal, normalize) in zip(arrs, statics):
            Y = _layer_scan(Y, k, q, b, rule, causal, normalize)
        return Y @ r  # [D, N0]

    return jax.vmap(one)(x, arrays)


_path_features_jit = jax.jit(_path_features_impl, static_argnums=(2,))
