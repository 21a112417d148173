"""Attention layers and their attention matrices from the bare input (docs/theory.md §1).

Conventions: inputs are ``[example, feature, token]``; an attention matrix
``Ω[s, t]`` has the key ``s`` first and the query ``t`` second, the softmax runs
over keys (each column sums to one) and output token ``t`` is ``Σ_s x_s Ω_st``.
Attention matrices are returned as ``[example, head, key, query]``.

The top of the attention stack: :mod:`smtheory.attention_primitives` (scores, softmax/hardmax over keys,
readout vector, chunking) → :mod:`smtheory.fast_weights` (feature maps, recurrences) → :mod:`smtheory.mixing`
(the registry of token-mixing rules) → ``attention`` (:class:`AttentionLayer`, :func:`attention_matrices`).
The primitives are re-exported here (``from smtheory.attention import qk_scores, softmax_keys, ...``).

Other token-mixing rules that depend on the bare input alone (linear attention, delta-rule fast
weights, causal masks, RMS normalisation across heads, or your own) are chosen per layer with
``AttentionLayer(..., rule=..., rule_options=...)``; see :mod:`smtheory.mixing`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .attention_primitives import (NONLINEARITIES, hardmax_keys, qk_scores, readout_vector, softmax_keys,
                                   w_scores)
from .checks import InputError, finite_array
from .mixing import mixing_matrices, validate_options
from .precision import needs_float64

__all__ = ["AttentionLayer", "attention_matrices", "check_layers", "NONLINEARITIES", "w_scores", "qk_scores",
           "softmax_keys", "hardmax_keys", "readout_vector"]


@dataclass(frozen=True)
class AttentionLayer:
    """Fixed (non-Bayesian) attention weights of one layer.

    Give either ``W`` ([H, N0, N0], w-style) or both ``Q`` and ``K`` ([H, G, N0], qk-style).

    Parameters
    ----------
    W : array [H, N0, N0], optional
    Q, K : arrays [H, G, N0], optional
    nonlinearity : {"softmax", "hardmax"}
        Used when ``rule`` is not given (backwards compatible).
    name : str, optional
        Used in error messages (e.g. ``"layer 1"``).
    rule : str, optional
        A token-mixing rule registered in :mod:`smtheory.mixing` (``"softmax"``, ``"hardmax"``,
        ``"linear"``, ``"delta"``, or your own).  Default: ``nonlinearity``.
    rule_options : dict, optional
        Options of the rule (e.g. ``{"feature_map": "dpfp", "nu": 2, "causal": True}``); checked on
        construction.
    """

    W: np.ndarray = None
    Q: np.ndarray = None
    K: np.ndarray = None
    nonlinearity: str = "softmax"
    name: str = "attention layer"
    rule: str = None
    rule_options: dict = None

    def __post_init__(self):
        if self.nonlinearity not in NONLINEARITIES:
            raise InputError(f"{self.name}: nonlinearity must be one of {NONLINEARITIES}, got {self.nonlinearity!r}")
        rule = self.nonlinearity if self.rule is None else self.rule
        if not isinstance(rule, str):
            raise InputError(f"{self.name}: rule must be the name of a registered mixing rule, got {rule!r}")
        if self.rule_options is not None and not isinstance(self.rule_options, dict):
            raise InputError(f"{self.name}: rule_options must be a dict, got {type(self.rule_options).__name__}")
        validate_options(rule, self.rule_options, self.name)
        object.__setattr__(self, "rule", rule)
        object.__setattr__(self, "rule_options", dict(self.rule_options or {}))
        if self.W is not None:
            if self.Q is not None or self.K is not None:
                raise InputError(f"{self.name}: give either W or (Q, K), not both")
            W = finite_array(f"{self.name} W", self.W, ndim=3)
            if W.shape[1] != W.shape[2]:
                raise InputError(f"{self.name} W must have shape [H, N0, N0], got {W.shape}")
            object.__setattr__(self, "W", W)
        elif self.Q is not None and self.K is not None:
            Q = finite_array(f"{self.name} Q", self.Q, ndim=3)
            K = finite_array(f"{self.name} K", self.K, ndim=3)
            if Q.shape != K.shape:
                raise InputError(f"{self.name}: Q and K must have the same shape [H, G, N0], got {Q.shape} and {K.shape}")
            object.__setattr__(self, "Q", Q)
            object.__setattr__(self, "K", K)
        else:
            raise InputError(f"{self.name}: give W ([H, N0, N0]) or both Q and K ([H, G, N0])")

    @property
    def style(self) -> str:
        return "w" if self.W is not None else "qk"

    @property
    def n_heads(self) -> int:
        return (self.W if self.W is not None else self.Q).shape[0]

    @property
    def input_dim(self) -> int:
        return (self.W if self.W is not None else self.Q).shape[-1]

    def scores(self, x):
        """Scores ``[P, H, key, query]`` of the layer (:func:`w_scores` or :func:`qk_scores`; docs/theory.md §1)."""
        return w_scores(x, self.W) if self.style == "w" else qk_scores(x, self.Q, self.K)

    def __call__(self, x, name="x"):
        """Attention (mixing) matrices ``Ω^{ℓ,h}(x)`` as ``[P, H, key, query]``.

        ``name`` is what ``x`` is called in the error raised when the input is so large that the
        scores overflow float64 (:class:`InputError`, naming the input and this layer).
        """
        with np.errstate(over="ignore", invalid="ignore"):
            if self.rule in NONLINEARITIES and not self.rule_options:
                s = self.scores(x)
                omega = softmax_keys(s) if self.rule == "softmax" else hardmax_keys(s)
            else:
                omega = mixing_matrices(x, self)
        if not np.all(np.isfinite(omega)):
            big = float(np.max(np.abs(x)))
            raise InputError(f"{name} overflowed in the attention scores of {self.name} (largest |{name}| entry "
                             f"{big:.3g}; the scores are quadratic in the input and left the float64 range); "
                             f"rescale {name} (entries of order 1 are expected)")
        return omega


def check_layers(layers):
    """``layers`` as a list of :class:`AttentionLayer`, or an :class:`InputError` saying what is wrong."""
    expected = "layers must be a non-empty sequence of AttentionLayer"
    if isinstance(layers, AttentionLayer):
        raise InputError(f"{expected}, got one AttentionLayer (write [layer])")
    if isinstance(layers, (str, bytes, np.ndarray, dict)) or not hasattr(layers, "__len__"):
        raise InputError(f"{expected}, got {type(layers).__name__}")
    layers = list(layers)
    if not layers:
        raise InputError(f"{expected}, got an empty sequence")
    for i, layer in enumerate(layers):
        if not isinstance(layer, AttentionLayer):
            raise InputError(f"{expected}: layers[{i}] is a {type(layer).__name__} (wrap weights as "
                             "AttentionLayer(W=...) or AttentionLayer(Q=..., K=...))")
    return layers


@needs_float64
def attention_matrices(x, layers, name="x"):
    """Attention matrices of every layer from the bare input.

    Parameters
    ----------
    x : array [P, N0, T]
    layers : sequence of :class:`AttentionLayer`
    name : str
        What ``x`` is called in error messages (``"x_train"``, ``"x_test"``).

    Returns
    -------
    list of arrays [P, H_ℓ, T, T]

    Raises
    ------
    InputError
        If ``layers`` is not a non-empty sequence of :class:`AttentionLayer`, a layer's input width
        differs from ``x``'s, or ``x`` is so large that the attention scores overflow (the message
        names ``name`` and the layer).
    """
    x = finite_array(name, x, ndim=3)
    layers = check_layers(layers)
    out = []
    for i, layer in enumerate(layers):
        if layer.input_dim != x.shape[1]:
            raise InputError(
                f"attention layer {i + 1} expects input width N0 = {layer.input_dim}, but {name} has N0 = {x.shape[1]}"
            )
        out.append(layer(x, name))
    return out
