"""The path-form model of the network: one typed weights pytree and its pure functions (docs/theory.md §2–3).

The Bayesian weights of docs/theory.md §1 are the pytree :class:`PathWeights` ``(V0, V, a)``::

    V0 : [N1, N0]                                   input projection
    V  : ([H_1, N2, N1], ..., [H_L, N_a, N_L])      attention-layer values, one array per layer
    a  : [N_a]                                      readout

with ``V[ℓ-1][h]`` the matrix ``V^{ℓ,h} ∈ R^{N_{ℓ+1}×N_ℓ}`` (``N_{L+1} ≡ N_a``).  The widths, heads and
input width are read off the shapes (:attr:`PathWeights.widths`, :attr:`PathWeights.heads`,
:attr:`PathWeights.n0`).  Every function here also accepts the equivalent dict
``{"V0": …, "V": [...], "a": …}`` (the sampler positions of :mod:`smtheory.sims`), and ``V0`` may be
``None`` (or absent from a dict) where it is not used, as for the upper weights of the collapsed
posterior (docs/theory.md §8.1).

Written once and used by :mod:`smtheory.network` (after validation), :mod:`smtheory.hypernetwork`
and the samplers and analyses of :mod:`smtheory.sims`:

* :func:`effective_weights` — the partial effective weights ``w^{(ℓ)}`` of docs/theory.md §2
  (docs/theory.md, "Paths and kernels (§2)");
* :func:`path_matrix` — ``M = w_π V⁰`` ``[D, N0]``, the product every path term contains;
* :func:`output` — the path form ``f(x) = (D N1 N0)^{-1/2} Σ_π w_π^T V⁰ ξ^π(x)`` from raw path
  features ``ξ`` ``[P, D, N0]`` (:func:`smtheory.paths.path_features`);
* :func:`order_parameter` and :func:`sampled_order_parameters` — the sampled order parameters
  ``U_ℓ = (1/N_ℓ) w^{(ℓ)} w^{(ℓ)T}`` and ``U_a = |a|²/N_a`` of one weight sample (docs/theory.md §3,
  "Meaning"; docs/theory.md §8.1 for ``Û = U_1``).

Nothing is validated here: the functions are pure, shape-static and traceable by ``jax.jit`` /
``jax.grad`` / ``jax.vmap`` / ``jax.linear_transpose``.  They run in ``jax.numpy`` by default and in
NumPy with ``xp=numpy`` (the validated NumPy front end of :mod:`smtheory.network` needs that).
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax.numpy as jnp


__all__ = ["PathWeights", "as_path_weights", "effective_weights", "path_matrix", "output", "order_parameter",
           "sampled_order_parameters"]


class PathWeights(NamedTuple):
    """The Bayesian weights ``(V⁰, (V^1, …, V^L), a)`` of docs/theory.md §1 as a typed pytree.

    Attributes
    ----------
    V0 : array [N1, N0] or None
        Input projection (``None`` for upper weights only, docs/theory.md §8.1).
    V : tuple of arrays [H_ℓ, N_{ℓ+1}, N_ℓ]
        Attention-layer values, ``V[ℓ-1][h] = V^{ℓ,h}``.
    a : array [N_a]
        Readout.
    """

    V0: Any
    V: tuple
    a: Any

    @property
    def heads(self):
        """``(H_1, …, H_L)`` from the shapes of ``V``."""
        return tuple(int(v.shape[0]) for v in self.V)

    @property
    def widths(self):
        """``(N_1, …, N_L, N_a)`` from the shapes of ``V``."""
        return (int(self.V[0].shape[2]),) + tuple(int(v.shape[1]) for v in self.V)

    @property
    def n0(self):
        """Input width ``N0`` from the shape of ``V0``."""
        return int(self.V0.shape[1])

    @property
    def n_paths(self):
        """Number of paths ``D = Π_ℓ H_ℓ``."""
        return math.prod(self.heads)

    def as_dict(self):
        """The dict pytree ``{"V0", "V": [...], "a"}`` used as a sampler position."""
        return {"V0": self.V0, "V": list(self.V), "a": self.a}


def as_path_weights(weights):
    """A :class:`PathWeights` from itself or from the dict ``{"V0", "V", "a"}`` (``"V0"`` optional).

    Parameters
    ----------
    weights : PathWeights or dict
        The arrays are taken as they are (no copy, no dtype change, no validation).

    Returns
    -------
    PathWeights
    """
    if isinstance(weights, PathWeights):
        return weights
    return PathWeights(weights.get("V0"), tuple(weights["V"]), weights["a"])


def effective_weights(weights, xp=jnp):
    """Partial effective weights of every layer (docs/theory.md §2; docs/theory.md "Paths and kernels (§2)").

    ``w^{(ℓ)}_{h_ℓ…h_L} = (N_a N_L ⋯ N_{ℓ+1})^{-1/2} (V^{ℓ,h_ℓ})^T ⋯ (V^{L,h_L})^T a``, built
    recursively from the top: ``w^{(L+1)} = a``, ``w^{(ℓ)}_{(h, η)} = N_{ℓ+1}^{-1/2} (V^{ℓ,h})^T w^{(ℓ+1)}_η``.
    Cost: ``Σ_ℓ D_ℓ N_ℓ N_{ℓ+1}`` multiply-adds (a chain of matrix-vector products).

    Parameters
    ----------
    weights : PathWeights or dict
        Only ``V`` and ``a`` are used.
    xp : module
        Array namespace, ``jax.numpy`` (default) or ``numpy``.

    Returns
    -------
    list of arrays
        Element ``ℓ-1`` is ``[D_ℓ, N_ℓ]`` with ``D_ℓ = Π_{k≥ℓ} H_k`` and the partial paths
        ``(h_ℓ, …, h_L)`` flattened with ``h_ℓ`` most significant (C order).  Element 0 is the full
        effective weight ``w_π``, ``[D, N1]``.
    """
    weights = as_path_weights(weights)
    Vs, widths = weights.V, weights.widths
    w = weights.a[None, :]  # w^{(L+1)} = a: one (empty) partial path
    out = []
    for l in reversed(range(len(Vs))):
        # w^{(ℓ)}[(h, η), i] = N_{ℓ+1}^{-1/2} Σ_j V^{ℓ,h}[j, i] w^{(ℓ+1)}[η, j]
        w = xp.einsum("hji,ej->hei", Vs[l], w) / math.sqrt(widths[l + 1])
        w = w.reshape(-1, widths[l])
        out.append(w)
    return out[::-1]


def path_matrix(weights, xp=jnp):
    """``M = w_π V⁰`` ``[D, N0]``, so that ``f = (D N1 N0)^{-1/2} Σ_{π,m} M[π, m] ξ^π_m`` (docs/theory.md §2).

    Parameters
    ----------
    weights : PathWeights or dict
    xp : module
        ``jax.numpy`` (default) or ``numpy``.

    Returns
    -------
    array [D, N0]
    """
    weights = as_path_weights(weights)
    return effective_weights(weights, xp)[0] @ weights.V0


def output(weights, xi, xp=jnp):
    """Network output in path form, ``f(x) = (D N1 N0)^{-1/2} Σ_π w_π^T V⁰ ξ^π(x)`` (docs/theory.md §2).

    Exactly equal to the layer-by-layer pass :func:`smtheory.network.forward`, at a cost independent
    of the number of tokens once the path features are computed (docs/theory.md "Paths and kernels (§2)").

    Parameters
    ----------
    weights : PathWeights or dict
    xi : array [P, D, N0]
        Raw path features ``ξ^π(x^μ)`` (:func:`smtheory.paths.path_features`; unscaled, the readout
        already folded in).
    xp : module
        ``jax.numpy`` (default) or ``numpy``.

    Returns
    -------
    array [P]
    """
    weights = as_path_weights(weights)
    scale = math.sqrt(weights.n_paths * weights.widths[0] * weights.n0)
    return xp.einsum("dm,pdm->p", path_matrix(weights, xp), xi) / scale


def order_parameter(weights, xp=jnp):
    """The path-path order parameter ``U_1 = (1/N1) w_π · w_π'`` ``[D, D]`` of one sample (docs/theory.md §3).

    The first element of :func:`sampled_order_parameters` (docs/theory.md §8.1: ``Û``).

    Parameters
    ----------
    weights : PathWeights or dict
        Only ``V`` and ``a`` are used.
    xp : module
        ``jax.numpy`` (default) or ``numpy``.

    Returns
    -------
    array [D, D]
    """
    weights = as_path_weights(weights)
    w = effective_weights(weights, xp)[0]
    return w @ w.T / weights.widths[0]


def sampled_order_parameters(weights, xp=jnp):
    """Order parameters of one weight sample (docs/theory.md §3, "Meaning").

    ``U_ℓ[η, η'] = (1/N_ℓ) w^{(ℓ)}_η · w^{(ℓ)}_{η'}`` for ℓ = 1..L and ``U_a = |a|²/N_a``.  Averaged
    over posterior samples these are the sampled order parameters that the saddle point predicts.

    Parameters
    ----------
    weights : PathWeights or dict
        Only ``V`` and ``a`` are used.
    xp : module
        ``jax.numpy`` (default) or ``numpy``.

    Returns
    -------
    Us : list of arrays
        ``[U_1, …, U_L]``, ``U_ℓ`` of size ``D_ℓ × D_ℓ`` (partial paths, ``h_ℓ`` most significant).
    U_a : 0-d array
    """
    weights = as_path_weights(weights)
    widths = weights.widths
    Us = [w @ w.T / widths[l] for l, w in enumerate(effective_weights(weights, xp))]
    return Us, xp.dot(weights.a, weights.a) / widths[-1]
