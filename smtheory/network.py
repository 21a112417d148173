"""The network of docs/theory.md §1 and its path form (docs/theory.md §2).

The Bayesian weights are a dict pytree (or the equivalent typed pytree
:class:`smtheory.path_model.PathWeights`)::

    {"V0": [N1, N0],                       # input projection, prior variance σ0²
     "V":  [[H_1, N2, N1], ..., [H_L, N_a, N_L]],   # attention-layer values, σℓ²
     "a":  [N_a]}                          # readout, σa²

with ``V[ℓ-1][h]`` the matrix ``V^{ℓ,h} ∈ R^{N_{ℓ+1}×N_ℓ}`` (``N_{L+1} ≡ N_a``).

Two equivalent evaluations of the network output are provided:

* :func:`forward` — the plain layer-by-layer pass of docs/theory.md §1;
* :func:`path_form` — ``f(x) = (D N1 N0)^{-1/2} Σ_π w_π^T V⁰ ξ^π(x)`` of docs/theory.md §2, with the
  effective weights ``w_π`` of :func:`effective_weights` and the raw path features
  ``ξ^π(x)`` of :func:`smtheory.paths.path_features`.  This is what a sampler should use.

:func:`sampled_order_parameters` gives ``U_ℓ = (1/N_ℓ) w^{(ℓ)} w^{(ℓ)T}`` and
``U_a = |a|²/N_a`` for one weight sample (docs/theory.md §3, "Meaning"); their posterior
average is the sampled order parameter.

The path-form functions here validate their inputs (:func:`check_weights`) and then call the
single, unvalidated model of :mod:`smtheory.path_model`, which the samplers use directly.

All computations are float64 and vectorised over examples.  They run in NumPy when
every array argument is a NumPy array (or list), and in ``jax.numpy`` as soon as one
of them is a JAX array; the JAX path can be traced by ``jax.jit`` / ``jax.grad`` /
``jax.vmap`` (on traced values only shapes are checked, not finiteness).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .checks import InputError, positive_int
from .attention import readout_vector
from .model import ModelSpec
from . import path_model
from .path_model import PathWeights
from .precision import needs_float64

__all__ = ["init_weights", "forward", "effective_weights", "path_form", "sampled_order_parameters",
           "check_weights"]


# --------------------------------------------------------------------------- validation helpers
def _xp(*trees):
    """``jax.numpy`` if any leaf of the arguments is a JAX array (or tracer), else ``numpy``."""
    for leaf in jax.tree_util.tree_leaves(trees):
        if isinstance(leaf, jax.Array):
            return jnp
    return np


def _as_array(name, value, ndim, xp=np):
    """A float64 array of namespace ``xp`` with ``ndim`` dimensions; concrete values must be finite."""
    if isinstance(value, jax.core.Tracer):
        arr = value
    else:
        try:
            arr = xp.asarray(value, dtype=xp.float64)
        except (TypeError, ValueError):
            raise InputError(f"{name} must be a numeric array, got {type(value).__name__}") from None
    if arr.ndim != ndim:
        raise InputError(f"{name} must have {ndim} dimensions, got shape {tuple(arr.shape)}")
    if arr.size == 0:
        raise InputError(f"{name} must not be empty, got shape {tuple(arr.shape)}")
    # finiteness only for concrete values, checked in NumPy (a jnp op would be staged out under jit)
    if not isinstance(arr, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(arr))):
        raise InputError(f"{name} contains NaN or infinite values")
    return arr


def check_weights(weights, xp=np):
    """Validate a weight pytree of docs/theory.md §1 and return it as a :class:`~smtheory.path_model.PathWeights`.

    Parameters
    ----------
    weights : dict or PathWeights
        ``{"V0": [N1, N0], "V": list of [H_ℓ, N_{ℓ+1}, N_ℓ], "a": [N_a]}``; the shapes must chain
        (``V[ℓ-1]`` takes the output width of the layer below, ``a`` that of the last layer).
    xp : module
        ``numpy`` (default) or ``jax.numpy``: the namespace of the returned float64 arrays.

    Returns
    -------
    PathWeights
        The validated arrays; heads, widths ``(N_1, ..., N_L, N_a)`` and ``N0`` are its properties.

    Raises
    ------
    InputError
        On a missing key, a wrong number of dimensions, mismatched shapes, an empty array or (for
        concrete values) NaN or infinite entries.
    """
    if isinstance(weights, PathWeights):
        weights = weights.as_dict()
    if not isinstance(weights, dict):
        raise InputError(f"weights must be a dict with keys 'V0', 'V', 'a', got {type(weights).__name__}")
    missing = [k for k in ("V0", "V", "a") if k not in weights]
    if missing:
        raise InputError(f"weights is missing key(s) {missing}; expected 'V0', 'V', 'a'")
    V0 = _as_array("weights['V0']", weights["V0"], 2, xp)
    Vs_in = weights["V"]
    if not isinstance(Vs_in, (list, tuple)) or len(Vs_in) == 0:
        raise InputError("weights['V'] must be a non-empty list of arrays [H_ℓ, N_{ℓ+1}, N_ℓ], one per layer")
    a = _as_array("weights['a']", weights["a"], 1, xp)
    n1, n0 = V0.shape
    widths = [n1]
    heads = []
    Vs = []
    for l, V in enumerate(Vs_in):
        V = _as_array(f"weights['V'][{l}]", V, 3, xp)
        if V.shape[2] != widths[-1]:
            raise InputError(
                f"weights['V'][{l}] (layer {l + 1}) must have shape [H_{l + 1}, N_{l + 2}, N_{l + 1}={widths[-1]}] "
                f"to match the previous layer, got {tuple(V.shape)}"
            )
        heads.append(int(V.shape[0]))
        widths.append(int(V.shape[1]))
        Vs.append(V)
    if a.shape[0] != widths[-1]:
        raise InputError(
            f"weights['a'] must have length N_a = {widths[-1]} (output width of the last layer), "
            f"got {a.shape[0]}"
        )
    return PathWeights(V0, tuple(Vs), a)


def _readout(readout, T, xp=np):
    if isinstance(readout, str):
        return xp.asarray(readout_vector(T, readout))
    r = _as_array("readout", readout, 1, xp)
    if r.shape != (T,):
        raise InputError(f"readout vector must have length T = {T}, got shape {tuple(r.shape)}")
    return r


# --------------------------------------------------------------------------- prior draw
@needs_float64
def init_weights(spec: ModelSpec, n0, seed=0):
    """Draw Bayesian weights from the Gaussian prior of docs/theory.md §1.

    Parameters
    ----------
    spec : ModelSpec
        Heads ``(H_1..H_L)``, widths ``(N_1..N_L, N_a)`` and prior variances
        ``(σ0², σ1²..σL², σa²)``.
    n0 : int
        Input width ``N0``.
    seed : int, None or numpy.random.Generator
        Seed of the NumPy random generator.

    Returns
    -------
    dict
        ``{"V0": [N1, N0], "V": [[H_ℓ, N_{ℓ+1}, N_ℓ] for ℓ = 1..L], "a": [N_a]}`` (NumPy float64),
        entries i.i.d. ``N(0, σ0²)``, ``N(0, σℓ²)``, ``N(0, σa²)`` respectively.
    """
    if not isinstance(spec, ModelSpec):
        raise InputError(f"spec must be a smtheory.ModelSpec, got {type(spec).__name__}")
    n0 = positive_int("n0", n0)
    if isinstance(seed, np.random.Generator):
        rng = seed
    else:
        if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer))):
            raise InputError(f"seed must be an int, None or a numpy Generator, got {seed!r}")
        rng = np.random.default_rng(seed)
    var = spec.variances
    widths = spec.widths
    V0 = math.sqrt(var[0]) * rng.standard_normal((widths[0], n0))
    Vs = [
        math.sqrt(var[l + 1]) * rng.standard_normal((spec.heads[l], widths[l + 1], widths[l]))
        for l in range(spec.n_layers)
    ]
    a = math.sqrt(var[-1]) * rng.standard_normal(widths[-1])
    return {"V0": V0, "V": Vs, "a": a}


# --------------------------------------------------------------------------- forward pass
@needs_float64
def forward(weights, x, omegas, readout="last"):
    """Plain layer-by-layer forward pass (docs/theory.md §1).

    ``x¹ = V⁰ x/√N0``;  ``x^{ℓ+1} = (H_ℓ N_ℓ)^{-1/2} Σ_h V^{ℓ,h} x^ℓ Ω^{ℓ,h}(x)``;
    ``f(x) = a · x^{L+1} r / √N_a``.

    Parameters
    ----------
    weights : dict or PathWeights
        ``{"V0": [N1, N0], "V": list of [H_ℓ, N_{ℓ+1}, N_ℓ], "a": [N_a]}``.
    x : array [P, N0, T]
        Bare inputs.
    omegas : list of arrays [P, H_ℓ, T, T]
        Attention matrices ``[example, head, key s, query t]`` of every layer; output token
        ``t`` is ``Σ_s x_s Ω_st``.
    readout : {"last", "first", "mean"} or array [T]
        Token readout ``r``.

    Returns
    -------
    array [P]
        ``f(x^μ)`` for every example.
    """
    xp = _xp(weights, x, omegas, readout)
    pw = check_weights(weights, xp)
    V0, Vs, a, heads, widths, n0 = pw.V0, pw.V, pw.a, pw.heads, pw.widths, pw.n0
    x = _as_array("x", x, 3, xp)
    P, N0, T = x.shape
    if N0 != n0:
        raise InputError(f"x has input width N0 = {N0}, but weights['V0'] expects N0 = {n0}")
    if not isinstance(omegas, (list, tuple)) or len(omegas) != len(heads):
        got = len(omegas) if isinstance(omegas, (list, tuple)) else type(omegas).__name__
        raise InputError(f"omegas must be a list of {len(heads)} attention-matrix arrays (one per layer), got {got}")
    r = _readout(readout, T, xp)
    h = xp.einsum("ij,pjt->pit", V0, x) / math.sqrt(N0)  # x¹ [P, N1, T]
    for l, (V, om) in enumerate(zip(Vs, omegas)):
        om = _as_array(f"omegas[{l}]", om, 4, xp)
        if tuple(om.shape) != (P, heads[l], T, T):
            raise InputError(
                f"omegas[{l}] (layer {l + 1}) must have shape [P={P}, H_{l + 1}={heads[l]}, {T}, {T}], "
                f"got {tuple(om.shape)}"
            )
        mixed = xp.einsum("pjs,phst->phjt", h, om)  # x^ℓ Ω^{ℓ,h}
        h = xp.einsum("hij,phjt->pit", V, mixed) / math.sqrt(heads[l] * widths[l])
    return xp.einsum("i,pit,t->p", a, h, r) / math.sqrt(widths[-1])


# --------------------------------------------------------------------------- path form
@needs_float64
def effective_weights(weights):
    """Partial effective weights of every layer (docs/theory.md §2).

    ``w^{(ℓ)}_{h_ℓ…h_L} = (N_a N_L ⋯ N_{ℓ+1})^{-1/2} (V^{ℓ,h_ℓ})^T ⋯ (V^{L,h_L})^T a``,
    built recursively from the top: ``w^{(L+1)} = a``,
    ``w^{(ℓ)}_{(h, η)} = N_{ℓ+1}^{-1/2} (V^{ℓ,h})^T w^{(ℓ+1)}_η``.  The validated front end of
    :func:`smtheory.path_model.effective_weights`.

    Parameters
    ----------
    weights : dict or PathWeights
        ``{"V0", "V", "a"}`` as returned by :func:`init_weights`.

    Returns
    -------
    list of arrays
        Element ``ℓ-1`` is ``[D_ℓ, N_ℓ]`` with ``D_ℓ = Π_{k≥ℓ} H_k`` and the partial paths
        ``(h_ℓ, …, h_L)`` flattened with ``h_ℓ`` most significant (C order).  Element 0 is
        the full effective weight ``w_π``, ``[D, N1]``.
    """
    xp = _xp(weights)
    return path_model.effective_weights(check_weights(weights, xp), xp)


@needs_float64
def path_form(weights, xi_raw):
    """Network output in path form (docs/theory.md §2): ``f(x) = (D N1 N0)^{-1/2} Σ_π w_π^T V⁰ ξ^π(x)``.

    Exactly equal to :func:`forward` for the same inputs, at a cost independent of ``T``
    once the path features are precomputed.  The validated front end of
    :func:`smtheory.path_model.output`.

    Parameters
    ----------
    weights : dict or PathWeights
        ``{"V0", "V", "a"}`` as returned by :func:`init_weights`.
    xi_raw : array [P, D, N0]
        Raw path features ``ξ^π(x^μ)`` from :func:`smtheory.paths.path_features`
        (unscaled; the readout ``r`` is already folded in).

    Returns
    -------
    array [P]
    """
    xp = _xp(weights, xi_raw)
    pw = check_weights(weights, xp)
    heads, n0 = pw.heads, pw.n0
    xi = _as_array("xi_raw", xi_raw, 3, xp)
    D = math.prod(heads)
    if xi.shape[1] != D:
        raise InputError(
            f"xi_raw has {xi.shape[1]} paths, but the weights have D = Π H_ℓ = {D} paths (heads {list(heads)})"
        )
    if xi.shape[2] != n0:
        raise InputError(f"xi_raw has input width N0 = {xi.shape[2]}, but weights['V0'] expects N0 = {n0}")
    return path_model.output(pw, xi, xp)


@needs_float64
def sampled_order_parameters(weights):
    """Order parameters of one weight sample (docs/theory.md §3, "Meaning").

    ``U_ℓ[η, η'] = (1/N_ℓ) w^{(ℓ)}_η · w^{(ℓ)}_{η'}`` for ℓ = 1..L and ``U_a = |a|²/N_a``.
    Averaged over posterior samples these are the sampled order parameters that the
    saddle point predicts (``U_1`` is the path-path order parameter).  The validated front end
    of :func:`smtheory.path_model.sampled_order_parameters`.

    Parameters
    ----------
    weights : dict or PathWeights
        ``{"V0", "V", "a"}``.

    Returns
    -------
    Us : list of arrays
        ``[U_1, ..., U_L]``, ``U_ℓ`` of size ``D_ℓ × D_ℓ`` (partial paths, ``h_ℓ`` most significant).
    U_a : float array (0-d)
    """
    xp = _xp(weights)
    return path_model.sampled_order_parameters(check_weights(weights, xp), xp)
