"""A registry of token-mixing rules computed from the bare input (docs/theory.md §1).

The theory needs only that every layer mixes tokens by a matrix ``Ω^{ℓ,h}(x)`` that depends on the
bare input x alone and acts linearly on the values: output token t is ``Σ_s x_s Ω_st``.  Given x the
network is then a deep linear network in its Bayesian weights, the path features ``ξ^π(x)`` of
docs/theory.md §2 are fixed, and the theory, the solvers and the samplers run unchanged.  A *mixing rule* is
any such map ``(x, layer) ↦ Ω`` returning ``[example, head, key s, query t]`` (the convention of
:func:`smtheory.attention.attention_matrices`).

Place in the attention stack: :mod:`smtheory.attention_primitives` (scores, softmax/hardmax over keys) and
:mod:`smtheory.fast_weights` (feature maps, recurrences) → ``mixing`` (the registry, the built-in rules and
their fast-weight programs) → :mod:`smtheory.attention` (:class:`~smtheory.attention.AttentionLayer`) and
:mod:`smtheory.fast_weight_paths`.  Rules see a layer only through its attributes (``style``, ``W``, ``Q``,
``K``, ``n_heads``, ``scores``, ``rule``, ``rule_options``, ``name``), so this module never imports the layer.

Built-in rules (:func:`available_rules`):

* ``"softmax"``, ``"hardmax"`` — the scores of the layer (w-style or qk-style) normalised over keys;
* ``"linear"`` — kernelised linear attention ``Ω_st = φ(k_s)·φ(q_t)`` with feature map ``φ`` =
  ``"elu1"`` (ELU + 1), ``"dpfp"`` (DPFP-ν, option ``nu``), ``"random"`` (frozen positive random
  features, options ``n_features``, ``seed``) or ``"identity"``; optional column normalisation;
* ``"delta"`` — the delta-rule fast-weight update with a fixed learning rate ``beta`` or one computed
  from the bare input, ``β_t = sigmoid(b_h·x_t + c)`` (``beta="input"``, ``beta_weights`` [H, N0],
  ``beta_bias``); see :mod:`smtheory.fast_weights`.

Keys and queries: qk-style layers use ``k_s = K x_s``, ``q_t = Q x_t``; w-style layers use ``k_s = x_s``,
``q_t = W x_t`` (so that ``k_s·q_t`` is the bilinear score).  Options every rule accepts:
``causal`` (keys s ≤ t only) and ``rms_heads`` (divide every query column of every head by the RMS over
heads of the column norms, ``Ω^h_{:t} / √((1/H) Σ_h' |Ω^{h'}_{:t}|² + ε)`` — an input-only analogue of
RMS normalisation across heads; normalising the head *outputs* would depend on hidden states and is
not allowed).

Registering a rule — :func:`register_rule` accepts two forms:

* ``form="matrix"``: ``fn(x, layer, *, opt=default, ...) -> Ω`` [P, H, T, T] (NumPy or JAX);
* ``form="values"``: ``fn(x, layer, values, *, ...) -> mixed`` with values ``[P, H, n, T]`` and
  output ``[P, H, n, T]`` — a token-mixing *program* such as a fast-weight recurrence.  The mixing
  matrix is read off by feeding the token basis as values.

Why hidden-state dependence is refused: if Ω depended on the hidden states ``x^ℓ`` (on the Bayesian
weights), the output would no longer be linear in each layer's weights given x, the path features
would depend on the weights, and neither the kernel of docs/theory.md §2 nor the action of §3 would hold.
:func:`register_rule` therefore (i) inspects the signature and refuses any argument the theory cannot
supply (anything besides x, the layer and — for value programs — the values; names such as
``hidden``, ``h``, ``state``, ``weights`` are refused outright, also as options), and (ii) for value
programs, a runtime probe (:func:`check_rule`, run whenever such a layer is evaluated) verifies that the
output is exactly ``values @ Ω(x)`` for random values — a program whose gates or normalisers read the
values (i.e. the hidden states) fails it.  Both raise :class:`smtheory.InputError`.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from . import fast_weights as fw
from .attention_primitives import hardmax_keys, softmax_keys
from .checks import InputError, finite_array

__all__ = ["MixingRule", "register_rule", "unregister_rule", "get_rule", "available_rules", "mixing_matrices",
           "check_rule", "keys_queries", "fast_weight_program", "validate_options", "GENERIC_OPTIONS"]

#: Options handled by the registry for every rule (a rule may also handle ``causal`` itself).
GENERIC_OPTIONS = {"causal": False, "rms_heads": False, "rms_eps": 1e-12}

#: Argument names that would mean hidden-state (or weight) dependence; refused in any rule signature.
HIDDEN_NAMES = frozenset({"h", "hidden", "hiddens", "hidden_state", "hidden_states", "state", "states", "x_l", "xl",
                          "activations", "weights", "params", "theta", "V", "V0", "a", "residual", "layer_input"})

_REGISTRY = {}


@dataclass(frozen=True)
class MixingRule:
    """A registered token-mixing rule.

    Attributes
    ----------
    name : str
    fn : callable
    form : {"matrix", "values"}
    defaults : dict
        The rule's own options and their defaults (from ``fn``'s keyword arguments).
    handles_causal : bool
        True when ``fn`` takes ``causal`` itself (else the registry masks Ω after the rule).
    description : str
    """

    name: str
    fn: object
    form: str
    defaults: dict
    handles_causal: bool
    description: str = ""

    @property
    def options(self):
        """All options accepted: the rule's own plus :data:`GENERIC_OPTIONS`."""
        return {**GENERIC_OPTIONS, **self.defaults}


def _signature_options(name, fn, form):
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        raise InputError(f"mixing rule {name!r}: fn must be a Python callable with an inspectable signature") from None
    params = list(sig.parameters.values())
    required = ["x", "layer"] + (["values"] if form == "values" else [])
    for p in params:
        if p.name in HIDDEN_NAMES:
            raise InputError(
                f"mixing rule {name!r} asks for {p.name!r}: a token-mixing rule may depend only on the bare input x "
                f"and the layer's fixed attention weights, never on hidden states or Bayesian weights (docs/theory.md §1; "
                f"hidden-state dependence breaks the path-kernel theory)")
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise InputError(f"mixing rule {name!r}: *args/**kwargs are not allowed; "
                             f"declare every option with a default")
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    if [p.name for p in positional] != required or any(
            p.default is p.empty for p in params if p.kind == p.KEYWORD_ONLY):
        extra = [p.name for p in params if p.default is p.empty and p.name not in required]
        raise InputError(
            f"mixing rule {name!r} ({form} form) must have the signature fn({', '.join(required)}, *, option=default, "
            f"...); it asks for {extra or [p.name for p in positional]} which the theory cannot supply — rules see "
            f"only the bare input x (docs/theory.md §1)")
    defaults = {p.name: p.default for p in params if p.default is not p.empty}
    return defaults


def register_rule(name, fn, *, form="matrix", depends_on="input", description="", overwrite=False):
    """Register a token-mixing rule.

    Parameters
    ----------
    name : str
    fn : callable
        ``form="matrix"``: ``fn(x, layer, *, opt=default, ...)`` returning Ω ``[P, H, T, T]``
        (key, query) from bare inputs ``x`` [P, N0, T].  ``form="values"``:
        ``fn(x, layer, values, *, ...)`` mixing values ``[P, H, n, T]`` into ``[P, H, n, T]``.
    form : {"matrix", "values"}
    depends_on : {"input"}
        What Ω may depend on.  Only ``"input"`` (the bare input x) is accepted; anything else
        (e.g. ``"hidden"``) is refused because it breaks the theory (docs/theory.md §1).
    description : str
    overwrite : bool
        Replace an existing rule of the same name.

    Returns
    -------
    MixingRule

    Raises
    ------
    InputError
        On a bad name, a declared or signature-level dependence on hidden states, or an argument the
        theory cannot supply.
    """
    if not isinstance(name, str) or not name:
        raise InputError(f"name must be a non-empty string, got {name!r}")
    if depends_on != "input":
        raise InputError(
            f"mixing rule {name!r}: depends_on={depends_on!r} is refused — attention must depend only on the bare "
            f"input x (docs/theory.md §1); a rule that reads hidden states makes the network nonlinear in its weights "
            f"and breaks the path-kernel theory")
    if form not in ("matrix", "values"):
        raise InputError(f"form must be 'matrix' or 'values', got {form!r}")
    if not callable(fn):
        raise InputError(f"fn must be callable, got {type(fn).__name__}")
    if name in _REGISTRY and not overwrite:
        raise InputError(f"a mixing rule named {name!r} is already registered (pass overwrite=True to replace it)")
    defaults = _signature_options(name, fn, form)
    for key in ("rms_heads", "rms_eps"):
        if key in defaults:
            raise InputError(f"mixing rule {name!r}: option {key!r} is reserved for the registry")
    rule = MixingRule(name, fn, form, defaults, "causal" in defaults, description)
    _REGISTRY[name] = rule
    return rule


def unregister_rule(name):
    """Remove a registered rule (built-ins included); unknown names raise :class:`InputError`."""
    get_rule(name)
    del _REGISTRY[name]


def get_rule(name):
    """The :class:`MixingRule` registered under ``name``."""
    if name not in _REGISTRY:
        raise InputError(f"rule must be one of the registered mixing rules {available_rules()}, got {name!r}")
    return _REGISTRY[name]


def available_rules():
    """Names of the registered rules."""
    return sorted(_REGISTRY)


def validate_options(name, options, where="attention layer"):
    """Check option names of rule ``name``; return the full option dict (defaults filled in)."""
    rule = get_rule(name)
    options = {} if options is None else dict(options)
    unknown = sorted(set(options) - set(rule.options))
    if unknown:
        raise InputError(f"{where}: rule_options {unknown} are not options of mixing rule {name!r}; "
                         f"it accepts {sorted(rule.options)}")
    for key in ("causal", "rms_heads"):
        if key in options and not isinstance(options[key], (bool, np.bool_)):
            raise InputError(f"{where}: rule_options[{key!r}] must be True or False, got {options[key]!r}")
    return {**rule.options, **options}


# --------------------------------------------------------------------------- keys, queries, programs
def keys_queries(x, layer):
    """Keys and queries of a layer from the bare input.

    qk-style: ``k_s = K x_s``, ``q_t = Q x_t`` ([P, H, T, G]); w-style: ``k_s = x_s`` (shared by the heads),
    ``q_t = W x_t`` ([P, H, T, N0]), so that ``k_s·q_t`` is the layer's score (before any ``1/√G``).
    """
    x = jnp.asarray(x)
    if layer.style == "qk":
        k = jnp.einsum("hgi,pit->phtg", jnp.asarray(layer.K), x)
        q = jnp.einsum("hgi,pit->phtg", jnp.asarray(layer.Q), x)
    else:
        W = jnp.asarray(layer.W)
        q = jnp.einsum("hij,pjt->phti", W, x)
        k = jnp.broadcast_to(jnp.swapaxes(x, 1, 2)[:, None], q.shape)
    return k, q


def _layer_options(layer):
    return validate_options(layer.rule, layer.rule_options, layer.name)


def fast_weight_program(x, layer, *, allow_rms_heads=False):
    """Feature-mapped keys/queries and learning rates of a ``"linear"`` or ``"delta"`` layer.

    Returns
    -------
    dict with ``"arrays"`` = ``(φ(k) [P, H, T, m], φ(q) [P, H, T, m], β [P, H, T] or None)`` and
    ``"static"`` = ``(rule, causal, normalize)`` — the input of
    :func:`smtheory.fast_weights.fast_weight_scan`.  ``rms_heads`` (a normalisation across heads that
    the per-head recurrence cannot apply) is refused unless ``allow_rms_heads``.
    """
    if layer.rule not in fw.FAST_RULES:
        raise InputError(f"{layer.name}: fast-weight path features need the 'linear' or 'delta' mixing rule, "
                         f"got {layer.rule!r}")
    opts = _layer_options(layer)
    if opts["rms_heads"] and not allow_rms_heads:
        raise InputError(f"{layer.name}: rms_heads is not supported by the fast-weight recurrence; use "
                         f"attention_matrices")
    x = finite_array("x", x, ndim=3)
    k, q = keys_queries(x, layer)
    if layer.rule == "linear":
        fk, fq = _features(k, q, opts, layer)
        if opts["normalize"] and opts["feature_map"] == "identity":
            raise InputError(f"{layer.name}: normalize=True needs a positive feature map (elu1, dpfp, random)")
        return {"arrays": (fk, fq, None), "static": ("linear", bool(opts["causal"]), bool(opts["normalize"]))}
    if not opts["causal"]:
        raise InputError(f"{layer.name}: rule_options['causal'] must be True for the delta rule (a causal recurrence)")
    fk, fq = _features(k, q, opts, layer)
    if opts["normalize"]:
        fk = fk / jnp.sum(fk, axis=-1, keepdims=True)
        fq = fq / jnp.sum(fq, axis=-1, keepdims=True)
    beta = _delta_beta(x, layer, opts)
    return {"arrays": (fk, fq, beta), "static": ("delta", True, False)}


def _features(k, q, opts, layer):
    name = opts["feature_map"]
    if name not in fw.FEATURE_MAPS:
        raise InputError(f"{layer.name}: rule_options['feature_map'] must be one of {fw.FEATURE_MAPS}, got {name!r}")
    nu = opts.get("nu", 1)
    if not isinstance(nu, (int, np.integer)) or isinstance(nu, bool) or nu < 1:
        raise InputError(f"{layer.name}: rule_options['nu'] (DPFP order ν) must be a positive integer, got {nu!r}")
    proj = None
    if name == "random":
        n_feat = opts.get("n_features", 64)
        if not isinstance(n_feat, (int, np.integer)) or n_feat < 1:
            raise InputError(f"{layer.name}: rule_options['n_features'] must be a positive integer, got {n_feat!r}")
        G = k.shape[-1]
        proj = fw.random_projection(G, n_feat, opts.get("seed", 0))
        scale = G ** -0.25  # E φ(q)·φ(k) = exp(q·k/√G), the softmax kernel
        k, q = k * scale, q * scale
    return fw.feature_map(k, name, nu, proj), fw.feature_map(q, name, nu, proj)


def _delta_beta(x, layer, opts):
    beta = opts["beta"]
    P, N0, T = x.shape
    H = layer.n_heads
    if isinstance(beta, str):
        if beta != "input":
            raise InputError(f"{layer.name}: rule_options['beta'] must be a number in (0, 1] or 'input', got {beta!r}")
        if opts["beta_weights"] is None:
            raise InputError(f"{layer.name}: beta='input' needs rule_options['beta_weights'] of shape [H={H}, N0={N0}]")
        bw = finite_array(f"{layer.name} rule_options['beta_weights']", opts["beta_weights"], ndim=2)
        if bw.shape != (H, N0):
            raise InputError(f"{layer.name}: rule_options['beta_weights'] must have shape [H={H}, N0={N0}], "
                             f"got {bw.shape}")
        bias = float(opts["beta_bias"])
        return jax.nn.sigmoid(jnp.einsum("hi,pit->pht", jnp.asarray(bw), jnp.asarray(x)) + bias)
    try:
        b = float(beta)
    except (TypeError, ValueError):
        raise InputError(f"{layer.name}: rule_options['beta'] must be a number in (0, 1] or 'input', "
                         f"got {beta!r}") from None
    if not 0.0 < b <= 1.0:
        raise InputError(f"{layer.name}: rule_options['beta'] must lie in (0, 1], got {beta!r}")
    return jnp.full((P, H, T), b)


_eff = jax.jit(jax.vmap(jax.vmap(lambda k, q, b, rule, causal, normalize: fw.effective_attention(
    k, q, b, rule=rule, causal=causal, normalize=normalize), in_axes=(0, 0, 0, None, None, None)),
    in_axes=(0, 0, 0, None, None, None)), static_argnums=(3, 4, 5))
_eff_nobeta = jax.jit(jax.vmap(jax.vmap(lambda k, q, rule, causal, normalize: fw.effective_attention(
    k, q, None, rule=rule, causal=causal, normalize=normalize), in_axes=(0, 0, None, None, None)),
    in_axes=(0, 0, None, None, None)), static_argnums=(2, 3, 4))


def _fast_matrix(x, layer):
    prog = fast_weight_program(x, layer, allow_rms_heads=True)  # rms_heads is applied afterwards
    k, q, b = prog["arrays"]
    rule, causal, normalize = prog["static"]
    if b is None:
        return np.asarray(_eff_nobeta(k, q, rule, causal, normalize))
    return np.asarray(_eff(k, q, b, rule, causal, normalize))


# --------------------------------------------------------------------------- built-in rules
def _masked_scores(x, layer, causal):
    s = layer.scores(x)
    if causal:
        T = s.shape[-1]
        s = np.where(np.triu(np.ones((T, T), dtype=bool)), s, -np.inf)
    return s


def _softmax_rule(x, layer, *, causal=False):
    return softmax_keys(_masked_scores(x, layer, causal))


def _hardmax_rule(x, layer, *, causal=False):
    return hardmax_keys(_masked_scores(x, layer, causal))


def _linear_rule(x, layer, *, causal=False, feature_map="elu1", nu=1, n_features=64, seed=0, normalize=True):
    return _fast_matrix(x, layer)


def _delta_rule(x, layer, *, causal=True, feature_map="elu1", nu=1, n_features=64, seed=0, normalize=True,
                beta=1.0, beta_weights=None, beta_bias=0.0):
    return _fast_matrix(x, layer)


def _register_builtins():
    register_rule("softmax", _softmax_rule, description="softmax of the scores over keys", overwrite=True)
    register_rule("hardmax", _hardmax_rule, description="one-hot on the top key (ties shared)", overwrite=True)
    register_rule("linear", _linear_rule, description="linear attention φ(k_s)·φ(q_t)", overwrite=True)
    register_rule("delta", _delta_rule, description="delta-rule fast weights", overwrite=True)


_register_builtins()


# --------------------------------------------------------------------------- evaluation
def _apply_generic(om, opts, handles_causal):
    if opts["causal"] and not handles_causal:
        T = om.shape[-1]
        om = om * np.triu(np.ones((T, T)))
    if opts["rms_heads"]:
        col = np.sum(om**2, axis=-2, keepdims=True)  # [P, H, 1, T]
        om = om / np.sqrt(np.mean(col, axis=1, keepdims=True) + float(opts["rms_eps"]))
    return om


def _values_matrix(fn, x, layer, own):
    P, N0, T = x.shape
    H = layer.n_heads
    eye = np.broadcast_to(np.eye(T), (P, H, T, T))
    return np.asarray(fn(x, layer, eye, **own), dtype=np.float64)


def check_rule(layer, x, n_probe=2, n_values=3, seed=0, rtol=1e-8):
    """Runtime probe that a value-program rule is a fixed input-dependent matrix applied to the values.

    Feeds random values ``V1``, ``V2`` and ``V1 + 2 V2`` to the rule and checks that each output equals
    ``V @ Ω(x)``, with Ω read off from the token basis.  A program whose gates, learning rates or
    normalisers read the values — i.e. the hidden states — fails.

    Parameters
    ----------
    layer : AttentionLayer
    x : array [P, N0, T]
        Bare inputs; the first ``n_probe`` examples are used.

    Raises
    ------
    InputError
        If the output is not ``values @ Ω(x)`` (relative error above ``rtol``) or has the wrong shape.
    """
    rule = get_rule(layer.rule)
    opts = _layer_options(layer)
    own = {k: v for k, v in opts.items() if k in rule.defaults}
    x = finite_array("x", x, ndim=3)[:n_probe]
    P, N0, T = x.shape
    H = layer.n_heads
    if rule.form == "matrix":
        om = np.asarray(rule.fn(x, layer, **own))
        if om.shape != (P, H, T, T):
            raise InputError(f"{layer.name}: mixing rule {rule.name!r} returned shape {om.shape}, expected "
                             f"[P={P}, H={H}, {T}, {T}]")
        return True
    om = _values_matrix(rule.fn, x, layer, own)
    if om.shape != (P, H, T, T):
        raise InputError(f"{layer.name}: mixing rule {rule.name!r} mixed the token basis into shape {om.shape}, "
                         f"expected [P={P}, H={H}, {T}, {T}]")
    rng = np.random.default_rng(seed)
    v1, v2 = (rng.standard_normal((P, H, n_values, T)) for _ in range(2))
    for v in (v1, v2, v1 + 2.0 * v2):
        got = np.asarray(rule.fn(x, layer, v, **own), dtype=np.float64)
        if got.shape != v.shape:
            raise InputError(f"{layer.name}: mixing rule {rule.name!r} returned shape {got.shape} for values "
                             f"of shape {v.shape}")
        want = np.einsum("phns,phst->phnt", v, om)
        err = np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-300)
        if not err <= rtol:
            raise InputError(
                f"{layer.name}: mixing rule {rule.name!r} is not a fixed matrix Ω(x) applied to the values "
                f"(relative error {err:.2e}): its mixing depends on the values, i.e. on hidden states, which breaks "
                f"the theory (docs/theory.md §1). Compute gates, learning rates and normalisers from the bare input x")
    return True


def mixing_matrices(x, layer):
    """Mixing matrices ``Ω^{h}(x)`` of one layer, ``[P, H, key, query]`` (NumPy float64).

    Dispatches on ``layer.rule`` with ``layer.rule_options`` and applies the generic options
    (``causal`` for rules that do not handle it, ``rms_heads``).  Value-program rules are probed with
    :func:`check_rule` (on the first two examples) every time.
    """
    rule = get_rule(layer.rule)
    opts = _layer_options(layer)
    own = {k: v for k, v in opts.items() if k in rule.defaults}
    x = finite_array("x", x, ndim=3)
    P, N0, T = x.shape
    if rule.form == "values":
        check_rule(layer, x)
        om = _values_matrix(rule.fn, x, layer, own)
    else:
        om = np.asarray(rule.fn(x, layer, **own), dtype=np.float64)
    if om.shape != (P, layer.n_heads, T, T):
        raise InputError(f"{layer.name}: mixing rule {rule.name!r} returned shape {om.shape}, expected "
                         f"[P={P}, H={layer.n_heads}, {T}, {T}]")
    if not np.all(np.isfinite(om)):
        raise InputError(f"{layer.name}: mixing rule {rule.name!r} produced NaN or infinite entries "
                         f"(check the scale of x and the rule options)")
    return _apply_generic(om, opts, rule.handles_causal)

