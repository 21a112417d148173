"""Attention primitives from the bare input: scores, normalisation over keys, token readout (docs/theory.md §1).

The bottom of the attention stack (``attention_primitives`` → :mod:`smtheory.fast_weights` →
:mod:`smtheory.mixing` → :mod:`smtheory.attention`); it imports no other attention module.

Conventions: inputs are ``[example, feature, token]``; an attention matrix ``Ω[s, t]`` has the key ``s``
first and the query ``t`` second, the softmax runs over keys (each column sums to one) and output token
``t`` is ``Σ_s x_s Ω_st``.  Scores and attention matrices are ``[example, head, key, query]``.

Two implementations of the qk-style scores and the softmax exist on purpose (see docs/theory.md, "Model"):

* NumPy float64 (:func:`w_scores`, :func:`qk_scores`, :func:`softmax_keys`, :func:`hardmax_keys`): the fixed
  attention of the theory, vectorised over examples and chunked (:func:`chunks`) so that the
  ``[P, H, N0, T]`` intermediate never exceeds a few hundred MB;
* JAX (:func:`qk_scores_jax`, :func:`softmax_keys_jax`): traceable and differentiable, for the learned
  query/key weights of :mod:`smtheory.sims.training`.

Both compute the same functions; they are not bit-identical to each other (different summation order).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .checks import InputError
from .model import READOUTS

__all__ = ["NONLINEARITIES", "chunks", "w_scores", "qk_scores", "softmax_keys", "hardmax_keys", "qk_scores_jax",
           "softmax_keys_jax", "readout_vector"]

#: Normalisations over keys of the scores (the two rules an :class:`smtheory.attention.AttentionLayer`
#: evaluates without the mixing registry).
NONLINEARITIES = ("softmax", "hardmax")


def chunks(n, per_item_bytes, budget=256 * 2**20):
    """Slices of ``range(n)`` whose items take at most ``budget`` bytes together (at least one item each).

    Parameters
    ----------
    n : int
        Number of items (examples).
    per_item_bytes : int
        Bytes of the intermediate per item.
    budget : int
        Bytes per chunk (default 256 MiB).

    Yields
    ------
    slice
    """
    step = max(1, int(budget // max(per_item_bytes, 1)))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def w_scores(x, W):
    """Bilinear "w-style" scores ``score_st = x_s^T W x_t`` (docs/theory.md, "Model (§1)").

    Parameters
    ----------
    x : array [P, N0, T]
    W : array [H, N0, N0]

    Returns
    -------
    array [P, H, T, T] indexed ``[example, head, key s, query t]``.
    """
    x = np.asarray(x, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    P, N0, T = x.shape
    H = W.shape[0]
    out = np.empty((P, H, T, T))
    for sl in chunks(P, 2 * H * N0 * T * 8):
        p = x[sl].shape[0]
        # one large GEMM for W x_t over all (example, token) pairs, then a batched x_s^T (W x_t)
        xt = np.ascontiguousarray(np.transpose(x[sl], (1, 0, 2))).reshape(N0, p * T)
        Wx = (W.reshape(H * N0, N0) @ xt).reshape(H, N0, p, T)
        Wx = np.ascontiguousarray(np.transpose(Wx, (2, 1, 0, 3))).reshape(p, N0, H * T)
        s = np.matmul(np.swapaxes(x[sl], 1, 2), Wx)  # [p, T(s), H*T(t)]
        out[sl] = np.transpose(s.reshape(p, T, H, T), (0, 2, 1, 3))
    return out


def qk_scores(x, Q, K):
    """Query–key scores ``score_st = (K x_s)·(Q x_t)/√G`` (docs/theory.md, "Model (§1)").

    Parameters
    ----------
    x : array [P, N0, T]
    Q, K : arrays [H, G, N0]

    Returns
    -------
    array [P, H, T, T] indexed ``[example, head, key s, query t]``.
    """
    x = np.asarray(x, dtype=np.float64)
    Q = np.asarray(Q, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    P, N0, T = x.shape
    H, G, _ = Q.shape
    out = np.empty((P, H, T, T))
    for sl in chunks(P, 2 * H * G * T * 8):
        p = x[sl].shape[0]
        xt = np.ascontiguousarray(np.transpose(x[sl], (1, 0, 2))).reshape(N0, p * T)
        kx = (K.reshape(H * G, N0) @ xt).reshape(H, G, p, T).transpose(2, 0, 3, 1)  # [p, H, T(s), G]
        qx = (Q.reshape(H * G, N0) @ xt).reshape(H, G, p, T).transpose(2, 0, 1, 3)  # [p, H, G, T(t)]
        out[sl] = np.matmul(kx, qx) / np.sqrt(G)
    return out


def softmax_keys(scores):
    """Softmax over the key axis (``-2``): every column of ``Ω`` sums to one (docs/theory.md, "Model (§1)")."""
    z = scores - scores.max(axis=-2, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-2, keepdims=True)


def hardmax_keys(scores):
    """Hardmax over keys: one-hot on the largest score; exact ties share the weight equally (docs/theory.md, §1)."""
    top = scores == scores.max(axis=-2, keepdims=True)
    return top / top.sum(axis=-2, keepdims=True)


def qk_scores_jax(x, Q, K):
    """JAX query–key scores ``score_st = (K x_s)·(Q x_t)/√G``, traceable and differentiable (docs/theory.md, §1).

    The twin of :func:`qk_scores` for learned query/key weights (:mod:`smtheory.sims.training`): unchunked,
    usable under :func:`jax.jit` and :func:`jax.grad`.

    Parameters
    ----------
    x : JAX array [P, N0, T]
    Q, K : JAX arrays [H, G, N0]

    Returns
    -------
    JAX array [P, H, T, T] indexed ``[example, head, key s, query t]``.
    """
    G = Q.shape[1]
    kx = jnp.einsum("hgi,pis->phsg", K, x)
    qx = jnp.einsum("hgi,pit->phgt", Q, x)
    return jnp.matmul(kx, qx) / math.sqrt(G)


def softmax_keys_jax(scores):
    """JAX softmax over the key axis (``-2``), :func:`jax.nn.softmax` (its stable custom derivative).

    The twin of :func:`softmax_keys` for differentiable attention (docs/theory.md, "Model (§1)").
    """
    return jax.nn.softmax(scores, axis=-2)


def readout_vector(n_tokens, readout="last"):
    """The fixed token-readout vector ``r ∈ R^T`` (docs/theory.md §1; docs/theory.md, "Model (§1)").

    Parameters
    ----------
    n_tokens : int
        Number of tokens T.
    readout : {"last", "first", "mean"}

    Returns
    -------
    numpy array [T]
    """
    if readout not in READOUTS:
        raise InputError(f"readout must be one of {', '.join(READOUTS)}, got {readout!r}")
    r = np.zeros(n_tokens)
    if readout == "last":
        r[-1] = 1.0
    elif readout == "first":
        r[0] = 1.0
    else:
        r[:] = 1.0 / n_tokens
    return r
