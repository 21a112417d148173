"""Linear attention as a fast-weight programmer (docs/theory.md §1–2).

Linear attention and the delta-rule fast-weight update (Schlag, Irie & Schmidhuber 2021, "Linear
transformers are secretly fast weight programmers") keep a memory matrix ``W_t ∈ R^{n×m}`` that is
written with the values ``v_t ∈ R^n`` and read with the feature-mapped query ``φ(q_t) ∈ R^m``:

* linear attention (sum update):   ``W_t = W_{t−1} + v_t φ(k_t)^T``,
  output ``y_t = W_t φ(q_t)`` (optionally divided by ``z_t·φ(q_t)``, ``z_t = Σ_{s≤t} φ(k_s)``);
* delta rule:   ``W_t = W_{t−1} + β_t (v_t − W_{t−1} φ(k_t)) φ(k_t)^T``,  ``y_t = W_t φ(q_t)``.

When keys, queries and the learning rates ``β_t`` are computed from the bare input x (never from the
hidden states), both are linear in the values: ``y_t = Σ_s v_s Ω_st`` with a fixed effective attention
matrix ``Ω(x)`` [key s, query t] (:func:`effective_attention`), so they fit the theory of docs/theory.md §1
unchanged.  For the delta rule the pseudo-values ``u_t = β_t (v_t − W_{t−1} φ(k_t))`` solve the unit
lower-triangular system ``(I + diag(β) tril(K K^T, −1)) U = diag(β) V``, which gives
``Ω^T = tril(Q K^T) (I + diag(β) tril(K K^T, −1))^{-1} diag(β)``.

:func:`smtheory.fast_weight_paths.fast_weight_path_features` computes the raw path features
``ξ^π(x) = x Ω^{1,h1} ⋯ Ω^{L,hL} r`` (docs/theory.md §2) by feeding the bare input as values through each layer's
recurrence (:func:`fast_weight_scan`, a :func:`jax.lax.scan`), in time linear in the number of tokens T and
without ever forming a T × T matrix.

Place in the attention stack: :mod:`smtheory.attention_primitives` → ``fast_weights`` (feature maps and the
recurrence, on arrays; no layers, no registry) → :mod:`smtheory.mixing` (the ``"linear"`` and ``"delta"``
rules built on it) → :mod:`smtheory.attention` and :mod:`smtheory.fast_weight_paths`.

All functions here are pure JAX (jit / vmap / scan).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .checks import InputError

__all__ = ["FEATURE_MAPS", "FAST_RULES", "elu_plus_one", "dpfp", "positive_random_features", "random_projection",
           "feature_map", "feature_dim", "fast_weight_scan", "effective_attention"]

#: Feature maps φ of linear attention.
FEATURE_MAPS = ("elu1", "dpfp", "random", "identity")
#: Fast-weight update rules.
FAST_RULES = ("linear", "delta")


# --------------------------------------------------------------------------- feature maps
def elu_plus_one(z):
    """``φ(z) = ELU(z) + 1`` (Katharopoulos et al. 2020), element-wise, positive."""
    return jax.nn.elu(z) + 1.0


def dpfp(z, nu=1):
    """Deterministic parameter-free projection DPFP-ν (Schlag et al. 2021, §5.3).

    ``r = [ReLU(z), ReLU(−z)] ∈ R^{2d}``; ``φ = [r ⊙ roll(r, 1), …, r ⊙ roll(r, ν)] ∈ R^{2dν}``.
    """
    r = jnp.concatenate([jax.nn.relu(z), jax.nn.relu(-z)], axis=-1)
    return jnp.concatenate([r * jnp.roll(r, j, axis=-1) for j in range(1, int(nu) + 1)], axis=-1)


def positive_random_features(z, proj):
    """Frozen positive random features (FAVOR+): ``φ(z) = exp(Ω z − |z|²/2)/√m``, ``Ω`` = ``proj`` [m, d].

    ``E[φ(q)·φ(k)] = exp(q·k)`` over Gaussian ``Ω``; here ``Ω`` is drawn once and frozen.
    """
    m = proj.shape[0]
    return jnp.exp(z @ proj.T - 0.5 * jnp.sum(z * z, axis=-1, keepdims=True)) / jnp.sqrt(m)


def random_projection(dim, n_features, seed=0):
    """The frozen Gaussian matrix ``Ω ∈ R^{m×d}`` of :func:`positive_random_features` (NumPy, seeded)."""
    return np.random.default_rng(seed).standard_normal((int(n_features), int(dim)))


def feature_dim(name, dim, nu=1, n_features=64):
    """Output width m of a feature map on inputs of width ``dim``."""
    return {"elu1": dim, "identity": dim, "dpfp": 2 * dim * int(nu), "random": int(n_features)}[name]


def feature_map(z, name, nu=1, proj=None):
    """Apply the feature map ``name`` ∈ :data:`FEATURE_MAPS` to the last axis of ``z``."""
    if name == "elu1":
        return elu_plus_one(z)
    if name == "dpfp":
        return dpfp(z, nu)
    if name == "random":
        if proj is None:
            raise InputError("feature map 'random' needs its frozen projection proj [m, d]")
        return positive_random_features(z, jnp.asarray(proj))
    if name == "identity":
        return z
    raise InputError(f"feature_map must be one of {FEATURE_MAPS}, got {name!r}")


def _check_rule(rule, causal):
    if rule not in FAST_RULES:
        raise InputError(f"rule must be one of {FAST_RULES}, got {rule!r}")
    if rule == "delta" and not causal:
        raise InputError("causal: the delta rule is a recurrence and is always causal; causal=False is not defined")


# --------------------------------------------------------------------------- recurrence and matrix form
def _safe_div(num, den):
    """``num / den`` where ``den > 0``, else 0 (a query that matches no key reads nothing)."""
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def fast_weight_scan(phik, phiq, values, beta=None, *, rule="linear", causal=True, normalize=False):
    """Run the fast-weight memory recurrence over the tokens (O(T), :func:`jax.lax.scan`).

    Parameters
    ----------
    phik, phiq : arrays [T, m]
        Feature-mapped keys ``φ(k_t)`` and queries ``φ(q_t)``.
    values : array [n, T]
        Values ``v_t`` as columns (layout of docs/theory.md §1: feature × token).
    beta : array [T], optional
        Delta-rule learning rates ``β_t`` (required for ``rule="delta"``).
    rule : {"linear", "delta"}
    causal : bool
        Linear attention only: ``False`` reads the final memory ``W_T`` at every query.
    normalize : bool
        Linear attention only: divide ``y_t`` by ``z_t·φ(q_t)`` (``z_t = Σ_{s≤t} φ(k_s)``, or the full
        sum when not causal); a query with ``z_t·φ(q_t) = 0`` (possible with DPFP) reads zero.

    Returns
    -------
    array [n, T]
        Outputs ``y_t = W_t φ(q_t)`` as columns; equal to ``values @ effective_attention(...)``.
    """
    _check_rule(rule, causal)
    n, m = values.shape[0], phik.shape[1]
    if rule == "linear" and not causal:
        W = values @ phik  # Σ_s v_s φ(k_s)^T
        y = W @ phiq.T
        return _safe_div(y, (phiq @ phik.sum(0))[None, :]) if normalize else y
    if rule == "delta" and beta is None:
        raise InputError("beta: the delta rule needs learning rates β_t")

    def step(carry, inp):
        W, z = carry
        k, q, v, b = inp
        if rule == "linear":
            W = W + jnp.outer(v, k)
            z = z + k
            y = W @ q
            if normalize:
                y = _safe_div(y, jnp.dot(z, q))
        else:
            W = W + jnp.outer(b * (v - W @ k), k)
            y = W @ q
        return (W, z), y

    b = jnp.zeros(phik.shape[0], dtype=phik.dtype) if beta is None else beta
    init = (jnp.zeros((n, m), dtype=values.dtype), jnp.zeros(m, dtype=phik.dtype))
    _, ys = jax.lax.scan(step, init, (phik, phiq, values.T, b))
    return ys.T


def effective_attention(phik, phiq, beta=None, *, rule="linear", causal=True, normalize=False):
    """The effective attention matrix ``Ω`` [key s, query t] of a fast-weight program (closed form).

    Linear attention: ``Ω_st = φ(k_s)·φ(q_t)`` (times ``[s ≤ t]`` if causal; columns divided by their
    sum if ``normalize``).  Delta rule:
    ``Ω^T = tril(Φ_q Φ_k^T) (I + diag(β) tril(Φ_k Φ_k^T, −1))^{-1} diag(β)`` (see the module docstring).
    Costs O(T² m + T³); :func:`fast_weight_scan` applies the same map in O(T).

    Parameters
    ----------
    phik, phiq : arrays [T, m]
    beta : array [T], optional (delta rule)
    rule, causal, normalize : see :func:`fast_weight_scan`

    Returns
    -------
    array [T, T]
    """
    _check_rule(rule, causal)
    T = phik.shape[0]
    S = phik @ phiq.T  # [s, t]
    if rule == "linear":
        if causal:
            S = jnp.triu(S)  # keep s <= t
        return _safe_div(S, S.sum(0, keepdims=True)) if normalize else S
    if beta is None:
        raise InputError("beta: the delta rule needs learning rates β_t")
    M = jnp.eye(T, dtype=phik.dtype) + beta[:, None] * jnp.tril(phik @ phik.T, -1)
    Lq = jnp.tril(S.T)  # [t, s] = φ(q_t)·φ(k_s), s <= t
    Minv_b = jax.scipy.linalg.solve_triangular(M, jnp.diag(beta), lower=True, unit_diagonal=True)
    return (Lq @ Minv_b).T
