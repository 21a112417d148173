"""Online observables of a weight-posterior sampler, without storing weights.

Two pieces:

* running moments — :class:`Moments` ``(count, mean, M2)`` with Welford's update
  (:func:`moments_update`) for one chain and Chan et al.'s parallel formula
  (:func:`moments_merge`, :func:`moments_merge_axis`) to combine chains.  ``mean`` and
  ``M2`` may be single arrays or any pytree (e.g. the dict of :func:`observe`), all
  leaves sharing one ``count``.  Everything is pure ``jax.numpy``: it can be carried in
  ``jax.lax.scan``, vectorised over chains with ``jax.vmap`` and jitted.
* per-step observables of docs/theory.md §4 — :func:`observe` gives the sampled order parameter
  ``U_1``, the predictor on test features and the train energy of one weight sample;
  :func:`trace_scalars` picks the few scalars worth keeping as full per-chain traces
  for R-hat / ESS (:mod:`smtheory.sims.diagnostics`).

Typical driver loop (one chain; ``jax.vmap`` over chains)::

    m = moments_init(observe(post, params0, xi_test))
    def body(carry, key):
        state, m = carry
        state, info = algo.step(key, state)
        obs = observe(post, state.position, xi_test)
        return (state, moments_update(m, obs)), trace_scalars(obs)
    (state, m), traces = jax.lax.scan(body, (state, m), keys)   # traces: [draws, ...]
    mean, var = moments_finalize(moments_merge_axis(m_per_chain))  # after vmap over chains
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from smtheory.checks import InputError

__all__ = [
    "Moments", "moments_init", "moments_update", "moments_merge", "moments_merge_axis", "moments_finalize",
    "observe", "trace_scalars", "N_TRACE_TEST_POINTS",
]

#: Number of leading test points whose mean prediction :func:`trace_scalars` traces.
N_TRACE_TEST_POINTS = 8


# --------------------------------------------------------------------------- running moments
class Moments(NamedTuple):
    """Running count, mean and sum of squared deviations ``M2`` (a JAX pytree).

    ``count`` is an integer scalar (or ``[chains]`` under ``vmap``); ``mean`` and ``M2``
    are arrays or pytrees of arrays of identical structure.
    """

    count: Any
    mean: Any
    M2: Any


def _float_dtype(dtype):
    dt = jnp.dtype(dtype)
    if jnp.issubdtype(dt, jnp.floating):
        return dt
    return jnp.dtype(jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)


def _is_shape(obj):
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, (bool, np.bool_)):
        return True
    return isinstance(obj, (tuple, list)) and all(
        isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)) for s in obj)


def moments_init(shape_or_example, dtype=None) -> Moments:
    """Empty running moments.

    Parameters
    ----------
    shape_or_example : int, tuple of int, array or pytree of arrays
        A shape (``()`` for a scalar) or an example observation whose structure, shapes
        and (floating) dtypes the accumulators copy.  Integer examples accumulate in the
        default float dtype (float64 with ``smtheory`` imported).
    dtype : dtype, optional
        Force the accumulator dtype of every leaf.

    Returns
    -------
    Moments
        ``count = 0``, ``mean = M2 = 0``.
    """
    if _is_shape(shape_or_example):
        shape = (int(shape_or_example),) if isinstance(shape_or_example, (int, np.integer)) else tuple(
            int(s) for s in shape_or_example)
        if any(s < 0 for s in shape):
            raise InputError(f"shape_or_example must be a valid shape, got {shape_or_example!r}")
        dt = _float_dtype(jnp.float64 if dtype is None else dtype)
        zeros = jnp.zeros(shape, dt)
        return Moments(jnp.zeros((), jnp.int64 if jax.config.jax_enable_x64 else jnp.int32), zeros, zeros)

    leaves = jax.tree_util.tree_leaves(shape_or_example)
    if not leaves:
        raise InputError("shape_or_example must be a shape or a non-empty pytree of arrays, got an empty pytree")

    def zero(leaf):
        try:
            shape, leaf_dtype = jnp.shape(leaf), jnp.result_type(leaf)
        except TypeError:
            raise InputError(
                f"shape_or_example must be a shape or a pytree of numeric arrays, got a leaf of type "
                f"{type(leaf).__name__}") from None
        return jnp.zeros(shape, _float_dtype(leaf_dtype if dtype is None else dtype))

    zeros = jax.tree_util.tree_map(zero, shape_or_example)
    count = jnp.zeros((), jnp.int64 if jax.config.jax_enable_x64 else jnp.int32)
    return Moments(count, zeros, zeros)


def moments_update(m: Moments, x) -> Moments:
    """Add one observation ``x`` (same structure as ``m.mean``) — Welford's update.

    ``n ← n + 1``, ``δ = x − μ``, ``μ ← μ + δ/n``, ``M2 ← M2 + δ (x − μ_new)``.
    Pure and shape-static; use inside ``lax.scan`` / ``vmap`` / ``jit``.
    """
    count = m.count + 1
    n = count.astype(jnp.result_type(float))

    def upd(mean, M2, xv):
        xv = jnp.asarray(xv).astype(mean.dtype)
        delta = xv - mean
        new_mean = mean + delta / n.astype(mean.dtype)
        return new_mean, M2 + delta * (xv - new_mean)

    treedef = jax.tree_util.tree_structure(m.mean)
    try:
        x_leaves = treedef.flatten_up_to(x)
    except (ValueError, TypeError) as e:
        raise InputError(f"x must have the structure of the moments' mean {treedef}: {e}") from None
    pairs = [upd(a, b, c) for a, b, c in zip(treedef.flatten_up_to(m.mean), treedef.flatten_up_to(m.M2), x_leaves)]
    mean = jax.tree_util.tree_unflatten(treedef, [p[0] for p in pairs])
    M2 = jax.tree_util.tree_unflatten(treedef, [p[1] for p in pairs])
    return Moments(count, mean, M2)


def moments_merge(a: Moments, b: Moments) -> Moments:
    """Combine the moments of two disjoint sample sets (Chan, Golub & LeVeque).

    ``n = n_a + n_b``, ``δ = μ_b − μ_a``, ``μ = μ_a + δ n_b/n``,
    ``M2 = M2_a + M2_b + δ² n_a n_b / n``.  Either side may be empty.
    """
    count = a.count + b.count
    fdt = jnp.result_type(float)
    na, nb = a.count.astype(fdt), b.count.astype(fdt)
    n = jnp.maximum(na + nb, 1.0)

    def mean_fn(ma, mb):
        return ma + (mb - ma) * (nb / n).astype(ma.dtype)

    def m2_fn(ma, mb, Ma, Mb):
        d = mb - ma
        return Ma + Mb + d * d * (na * nb / n).astype(ma.dtype)

    mean = jax.tree_util.tree_map(mean_fn, a.mean, b.mean)
    M2 = jax.tree_util.tree_map(m2_fn, a.mean, b.mean, a.M2, b.M2)
    return Moments(count, mean, M2)


def moments_merge_axis(m: Moments, axis: int = 0) -> Moments:
    """Merge moments stacked along ``axis`` (e.g. the chain axis after ``vmap``).

    Generalised Chan formula: ``μ = Σ_c n_c μ_c / n``, ``M2 = Σ_c [M2_c + n_c (μ_c − μ)²]``.
    ``m.count`` must have the stacked axis as its only axis.
    """
    counts = jnp.asarray(m.count)
    if counts.ndim != 1:
        raise InputError(f"m.count must be 1-d (one count per stacked set), got shape {tuple(counts.shape)}")
    fdt = jnp.result_type(float)
    nc = counts.astype(fdt)
    n = jnp.maximum(jnp.sum(nc), 1.0)

    def bshape(leaf):
        shape = [1] * leaf.ndim
        shape[axis] = -1
        return nc.reshape(shape).astype(leaf.dtype)

    mean = jax.tree_util.tree_map(lambda mu: jnp.sum(bshape(mu) * mu, axis=axis) / n.astype(mu.dtype), m.mean)

    def m2_fn(mu, M2, mu_tot):
        d = mu - jnp.expand_dims(mu_tot, axis)
        return jnp.sum(M2, axis=axis) + jnp.sum(bshape(mu) * d * d, axis=axis)

    M2 = jax.tree_util.tree_map(m2_fn, m.mean, m.M2, mean)
    return Moments(jnp.sum(counts), mean, M2)


def moments_finalize(m: Moments, ddof: int = 1):
    """``(mean, variance)`` with ``variance = M2 / (count − ddof)``.

    ``ddof = 1`` (default) gives the unbiased sample variance, ``ddof = 0`` the numpy
    ``np.var`` default.  The variance is NaN while ``count <= ddof``; the mean is NaN while
    ``count == 0``.  Works per chain (``count`` may carry a leading chain axis).
    """
    fdt = jnp.result_type(float)
    n = jnp.asarray(m.count).astype(fdt)
    denom = n - ddof

    def expand(v, leaf):
        return v.reshape(v.shape + (1,) * (leaf.ndim - v.ndim)).astype(leaf.dtype)

    mean = jax.tree_util.tree_map(lambda mu: jnp.where(expand(n, mu) > 0, mu, jnp.nan), m.mean)
    var = jax.tree_util.tree_map(
        lambda M2: jnp.where(expand(denom, M2) > 0, M2 / jnp.where(expand(denom, M2) > 0, expand(denom, M2), 1),
                             jnp.nan), m.M2)
    return mean, var


# --------------------------------------------------------------------------- observables
def observe(posterior, params, xi_test):
    """Per-step observables of one weight sample (docs/theory.md §4).

    Parameters
    ----------
    posterior : smtheory.sims.posterior.Posterior
    params : dict
        Weight pytree ``{"V0", "V", "a"}`` of one chain.
    xi_test : array [Q, D, N0]
        Raw test path features (:func:`smtheory.sims.posterior.test_features`).

    Returns
    -------
    dict
        ``"U1"`` ``[D, D]`` — ``(1/N1) w_π · w_π'``; ``"f_test"`` ``[Q]`` — the network output on
        the test features; ``"train_energy"`` ``[]`` — ``(1/2) Σ_μ (f(x^μ) − y^μ)²``.
        Pure JAX (jit / vmap over chains).
    """
    return {
        "U1": posterior.order_parameter(params),
        "f_test": posterior.output(params, xi_test),
        "train_energy": posterior.train_energy(params),
    }


def trace_scalars(obs):
    """The few scalars kept as full per-chain traces (for R-hat / ESS).

    Returns
    -------
    dict
        ``"U1_diag"`` ``[D]`` — diagonal of ``U1``; ``"train_energy"`` ``[]``;
        ``"f_test_mean8"`` ``[]`` — the mean of ``f_test`` over the first
        :data:`N_TRACE_TEST_POINTS` (8) test points (fewer if the test set is smaller).
    """
    return {
        "U1_diag": jnp.diagonal(obs["U1"], axis1=-2, axis2=-1),
        "train_energy": obs["train_energy"],
        "f_test_mean8": jnp.mean(obs["f_test"][..., :N_TRACE_TEST_POINTS], axis=-1),
    }
