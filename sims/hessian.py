"""The loss Hessian of the weight posterior (docs/theory.md §1, §4), after Ormaniec, Dangel & Singh (2024).

The negative log posterior of :mod:`smtheory.sims.posterior` is
``U(θ) = (1/2T) Σ_μ (f_μ(θ) − y_μ)² + Σ_b |θ_b|²/(2σ_b²)``, so its Hessian splits exactly into

    ∇²U = G + F + Π,   G = JᵀJ / T  (Gauss–Newton),   F = (1/T) Σ_μ r_μ ∇²f_μ  (functional),
                       Π = diag(1/σ_b²)  (prior),       J = ∂f/∂θ (P × n),  r = f − y.

Blocks are indexed per (layer, head): ``"V0"``, ``"V1[h]"`` for each head of each layer, ``"a"``
(:func:`block_layout`).  Exact facts, each tested in ``tests/test_hessian.py``:

* f is linear in each layer's weights (all heads of a layer together), so the functional part
  vanishes on every within-layer block (docs/theory.md §4);
* at zero residual (``y = f(θ)``) the loss Hessian equals the Gauss–Newton part;
* the sample-space Gauss–Newton matrix of the input projection is the path kernel at the current
  weights' order parameter: ``σ0² J_{V⁰} J_{V⁰}ᵀ = K_{U(θ)}`` with ``U(θ) = w wᵀ/N1``
  (:func:`v0_gauss_newton_kernel`; docs/theory.md §2–3);
* with attention held fixed, the input enters f linearly, so the Gauss–Newton blocks grow as s² with
  the input scale s (and the functional part as ``s·|r|``); :func:`input_scale_study` measures this with
  attention fixed or recomputed from the scaled input (softmax sharpens with s).

Dense matrices (:func:`dense_hessian`) are for small models (n ≲ a few thousand); for large ones use
the matrix-free products :func:`hvp`, :func:`gauss_newton_vp`, :func:`functional_vp` and the Hutchinson
estimates :func:`hutchinson` (trace per block and diagonal).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from smtheory.checks import InputError, positive_int
from smtheory import path_model

__all__ = ["block_layout", "flatten_params", "unflatten_params", "HessianParts", "dense_hessian", "hvp",
           "gauss_newton_vp", "functional_vp", "hutchinson", "v0_gauss_newton_kernel", "input_scale_study",
           "scaled_posterior_builder", "plot_hessian_blocks"]


# --------------------------------------------------------------------------- flattening and blocks
def _shapes(params):
    return {"V0": tuple(params["V0"].shape), "V": [tuple(v.shape) for v in params["V"]], "a": tuple(params["a"].shape)}


def block_layout(params):
    """Blocks of the flat weight vector: list of ``(label, layer, start, stop)``.

    Order ``V0, V1[0..H_1−1], …, VL[0..H_L−1], a``; ``layer`` is 0 for V0, ℓ for ``Vℓ[h]``, L + 1 for a.
    """
    out = []
    n = int(np.prod(params["V0"].shape))
    out.append(("V0", 0, 0, n))
    pos = n
    for l, V in enumerate(params["V"]):
        H, Nout, Nin = V.shape
        for h in range(H):
            out.append((f"V{l + 1}[{h}]", l + 1, pos, pos + Nout * Nin))
            pos += Nout * Nin
    na = int(params["a"].shape[0])
    out.append(("a", len(params["V"]) + 1, pos, pos + na))
    return out


def flatten_params(params):
    """Flat vector in :func:`block_layout` order (heads contiguous)."""
    return jnp.concatenate([jnp.ravel(params["V0"])] + [jnp.ravel(v) for v in params["V"]] + [jnp.ravel(params["a"])])


def unflatten_params(vec, shapes):
    """Inverse of :func:`flatten_params` for the shapes of :func:`_shapes` (pure JAX)."""
    pos = 0

    def take(shape):
        nonlocal pos
        n = math.prod(shape)
        out = jnp.reshape(vec[pos:pos + n], shape)
        pos += n
        return out

    V0 = take(shapes["V0"])
    Vs = [take(s) for s in shapes["V"]]
    a = take(shapes["a"])
    return {"V0": V0, "V": Vs, "a": a}


def _prior_diag(post, params):
    var = post.spec.variances
    parts = [jnp.full(int(np.prod(params["V0"].shape)), 1.0 / var[0])]
    parts += [jnp.full(int(np.prod(v.shape)), 1.0 / var[l + 1]) for l, v in enumerate(params["V"])]
    parts.append(jnp.full(int(params["a"].shape[0]), 1.0 / var[-1]))
    return jnp.concatenate(parts)


def _as_jax(params):
    return {"V0": jnp.asarray(params["V0"], dtype=jnp.float64), "V": [jnp.asarray(v, dtype=jnp.float64)
                                                                      for v in params["V"]],
            "a": jnp.asarray(params["a"], dtype=jnp.float64)}


def _static(params):
    shapes = _shapes(params)
    return (shapes["V0"], tuple(shapes["V"]), shapes["a"])


def _unfreeze(frozen):
    return {"V0": frozen[0], "V": list(frozen[1]), "a": frozen[2]}


def _output_flat(vec, xi, frozen):
    return path_model.output(unflatten_params(vec, _unfreeze(frozen)), xi)


def _data_loss_flat(vec, xi, y, temperature, frozen):
    r = _output_flat(vec, xi, frozen) - y
    return 0.5 * jnp.dot(r, r) / temperature


_dense_jit = jax.jit(lambda vec, xi, y, t, frozen: (
    jax.hessian(_data_loss_flat)(vec, xi, y, t, frozen),
    jax.jacfwd(_output_flat)(vec, xi, frozen),
    _output_flat(vec, xi, frozen) - y), static_argnums=(4,))


def _hvp_impl(vec, v, xi, y, t, frozen):
    return jax.jvp(lambda u: jax.grad(_data_loss_flat)(u, xi, y, t, frozen), (vec,), (v,))[1]


def _gnvp_impl(vec, v, xi, y, t, frozen):
    def f(u):
        return _output_flat(u, xi, frozen)

    _, Jv = jax.jvp(f, (vec,), (v,))
    _, vjp = jax.vjp(f, vec)
    return vjp(Jv)[0] / t


_hvp_jit = jax.jit(_hvp_impl, static_argnums=(5,))
_gnvp_jit = jax.jit(_gnvp_impl, static_argnums=(5,))


def _setup(post, params, y=None, xi=None):
    params = _as_jax(params)
    frozen = _static(params)
    xi = post.xi if xi is None else jnp.asarray(xi, dtype=jnp.float64)
    y = post.y if y is None else jnp.asarray(y, dtype=jnp.float64)
    if y.shape != (xi.shape[0],):
        raise InputError(f"y must have one target per example: expected shape ({xi.shape[0]},), got {y.shape}")
    return params, flatten_params(params), xi, y, float(post.temperature), (frozen,)


# --------------------------------------------------------------------------- dense (small models)
@dataclass
class HessianParts:
    """Dense Hessian of the negative log posterior and its exact parts (all ``n × n``, NumPy).

    Attributes
    ----------
    full : ∇²U = gauss_newton + functional + prior
    gauss_newton : JᵀJ / T
    functional : (1/T) Σ_μ r_μ ∇²f_μ
    prior : diag(1/σ_b²)
    layout : list of (label, layer, start, stop) — :func:`block_layout`
    jacobian : J = ∂f/∂θ, [P, n]
    residual : r = f − y, [P]
    """

    full: np.ndarray
    gauss_newton: np.ndarray
    functional: np.ndarray
    prior: np.ndarray
    layout: list
    jacobian: np.ndarray
    residual: np.ndarray

    @property
    def labels(self):
        return [b[0] for b in self.layout]

    def block(self, part, i, j):
        """Block ``(i, j)`` (indices or labels) of ``part`` ∈ {"full", "gauss_newton", "functional", "prior"}."""
        M = getattr(self, part)
        bi = self.layout[self.labels.index(i) if isinstance(i, str) else i]
        bj = self.layout[self.labels.index(j) if isinstance(j, str) else j]
        return M[bi[2]:bi[3], bj[2]:bj[3]]

    def block_norms(self, part="full"):
        """Frobenius norms of all blocks of ``part`` as a ``[n_blocks, n_blocks]`` array."""
        nb = len(self.layout)
        out = np.empty((nb, nb))
        for i in range(nb):
            for j in range(nb):
                out[i, j] = np.linalg.norm(self.block(part, i, j))
        return out


def dense_hessian(post, params, y=None, xi=None, max_params=6000):
    """Dense Hessian of ``U(θ)`` split into Gauss–Newton, functional and prior parts.

    Parameters
    ----------
    post : smtheory.sims.posterior.Posterior
    params : dict weight pytree ``{"V0", "V", "a"}``
    y : array [P], optional
        Targets (default: the posterior's labels; pass ``post.output(params)`` for zero residual).
    xi : array [P, D, N0], optional
        Raw path features (default: the posterior's training features).
    max_params : int
        Refuse dense matrices above this many weights (use :func:`hutchinson` instead).

    Returns
    -------
    HessianParts
    """
    params, vec, xi, y, T, static = _setup(post, params, y, xi)
    n = vec.shape[0]
    if n > positive_int("max_params", max_params):
        raise InputError(f"the model has n = {n} weights, more than max_params = {max_params} for a dense Hessian; "
                         f"use hvp / hutchinson")
    H_data, J, r = (np.asarray(a) for a in _dense_jit(vec, xi, y, T, *static))
    GN = J.T @ J / T
    prior = np.diag(np.asarray(_prior_diag(post, params)))
    return HessianParts(H_data + prior, GN, H_data - GN, prior, block_layout(params), J, r)


# --------------------------------------------------------------------------- matrix-free (large models)
def hvp(post, params, v, y=None):
    """Hessian-vector product ``∇²U v`` (flat ``v`` in :func:`block_layout` order; forward-over-reverse)."""
    params, vec, xi, y, T, static = _setup(post, params, y)
    v = jnp.asarray(v, dtype=jnp.float64)
    return _hvp_jit(vec, v, xi, y, T, *static) + _prior_diag(post, params) * v


def gauss_newton_vp(post, params, v, y=None):
    """Gauss–Newton-vector product ``Jᵀ(J v)/T`` (one jvp and one vjp)."""
    params, vec, xi, y, T, static = _setup(post, params, y)
    return _gnvp_jit(vec, jnp.asarray(v, dtype=jnp.float64), xi, y, T, *static)


def functional_vp(post, params, v, y=None):
    """Functional-part product ``F v = ∇²U v − G v − Π v``."""
    params_j = _as_jax(params)
    return hvp(post, params, v, y) - gauss_newton_vp(post, params, v, y) - _prior_diag(post, params_j) * jnp.asarray(v)


def hutchinson(post, params, key, n_samples=64, part="full", y=None):
    """Hutchinson estimates of the trace (per block) and the diagonal of a Hessian part.

    Uses Rademacher probes z: ``tr(A) ≈ mean zᵀAz``, ``diag(A) ≈ mean z ⊙ Az``; per-block traces are
    sums of the diagonal estimate over each block of :func:`block_layout`.

    Parameters
    ----------
    post, params : as in :func:`dense_hessian`
    key : jax.random key
    n_samples : int
    part : {"full", "gauss_newton", "functional"}

    Returns
    -------
    dict with ``"trace"`` (float), ``"diag"`` [n], ``"block_trace"`` {label: float}, ``"n_samples"``
    """
    n_samples = positive_int("n_samples", n_samples)
    prods = {"full": hvp, "gauss_newton": gauss_newton_vp, "functional": functional_vp}
    if part not in prods:
        raise InputError(f"part must be one of {sorted(prods)}, got {part!r}")
    params_j = _as_jax(params)
    n = int(flatten_params(params_j).shape[0])
    Z = jax.random.rademacher(key, (n_samples, n), dtype=jnp.float64)
    prod = prods[part]
    AZ = jax.lax.map(lambda z: prod(post, params_j, z, y), Z)
    diag = np.asarray(jnp.mean(Z * AZ, axis=0))
    layout = block_layout(params_j)
    return {"trace": float(diag.sum()), "diag": diag, "n_samples": n_samples,
            "block_trace": {lab: float(diag[s:e].sum()) for lab, _, s, e in layout}}


# --------------------------------------------------------------------------- identities and studies
def v0_gauss_newton_kernel(post, params, xi=None):
    """Sample-space Gauss–Newton matrix of V⁰ and the path kernel at the weights' order parameter.

    Returns ``(σ0² J_{V⁰} J_{V⁰}ᵀ, K_{U(θ)})`` (both ``[P, P]``) with ``U(θ) = w wᵀ/N1`` the sampled order
    parameter of these weights (docs/theory.md §3) and ``K_U = Ξ̃ (U ⊗ I) Ξ̃ᵀ`` (docs/theory.md §2).  They are equal
    exactly: ``∂f_μ/∂V⁰ = (D N1 N0)^{-1/2} Σ_π w_π ξ^π(x_μ)ᵀ``.
    """
    from smtheory.kernels import renormalized_kernel
    from smtheory.paths import scaled_path_features

    params = _as_jax(params)
    xi = post.xi if xi is None else jnp.asarray(xi)

    def f_v0(V0):
        return post.output({"V0": V0, "V": params["V"], "a": params["a"]}, xi)

    J = jax.jacrev(f_v0)(params["V0"]).reshape(xi.shape[0], -1)
    sigma0_sq = post.spec.sigma0_sq
    gn = sigma0_sq * np.asarray(J @ J.T)
    U = path_model.order_parameter(params)
    K = np.asarray(renormalized_kernel(jnp.asarray(scaled_path_features(np.asarray(xi), sigma0_sq)), U))
    return gn, K


def input_scale_study(post_builder, params, scales, fixed_attention=True):
    """Block norms of the Hessian parts versus the input scale s (x → s x).

    Parameters
    ----------
    post_builder : callable ``(scale, fixed_attention) -> Posterior``
        Builds the posterior for inputs ``s·x``; with ``fixed_attention`` the attention matrices are
        those of the unscaled x (so ``ξ → s ξ``), else they are recomputed from ``s·x``.
        :func:`scaled_posterior_builder` makes one from bare inputs and layers.
    params : dict weight pytree
    scales : sequence of float
    fixed_attention : bool

    Returns
    -------
    dict with ``"scales"``, ``"labels"``, and ``"gauss_newton"`` / ``"functional"`` / ``"full"``: arrays
    ``[n_scales, n_blocks, n_blocks]`` of Frobenius block norms, and ``"slope_gauss_newton"``: the
    log-log slope of every Gauss–Newton block norm between the smallest and largest scale (2 exactly
    with fixed attention).
    """
    scales = [float(s) for s in scales]
    if len(scales) < 2 or any(not s > 0 for s in scales):
        raise InputError(f"scales must hold at least two positive numbers, got {scales}")
    out = {"gauss_newton": [], "functional": [], "full": []}
    labels = None
    for s in scales:
        parts = dense_hessian(post_builder(s, fixed_attention), params)
        labels = parts.labels
        for k in out:
            out[k].append(parts.block_norms(k))
    res = {k: np.array(v) for k, v in out.items()}
    gn = res["gauss_newton"]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.log(gn[-1] / gn[0]) / math.log(scales[-1] / scales[0])
    return {"scales": np.array(scales), "labels": labels, **res, "slope_gauss_newton": slope,
            "fixed_attention": fixed_attention}


def scaled_posterior_builder(x, y, layers, spec, readout="last"):
    """A ``post_builder`` for :func:`input_scale_study` from bare inputs x [P, N0, T] and attention layers."""
    from smtheory.attention import attention_matrices
    from smtheory.paths import path_features
    from smtheory.problem import KernelProblem

    from .posterior import make_posterior

    x = np.asarray(x, dtype=np.float64)
    base = attention_matrices(x, layers)

    def build(scale, fixed_attention):
        xs = scale * x
        oms = base if fixed_attention else attention_matrices(xs, layers)
        xi = path_features(xs, oms, readout)
        return make_posterior(KernelProblem(xi, y, tuple(l.n_heads for l in layers)), spec)

    return build


def plot_hessian_blocks(parts, out_base, title=None):
    """Heat maps of the block Frobenius norms (log10) of the Gauss–Newton, functional and full Hessian.

    docs/theory.md §4 (``∇²U = G + F + Π``).  The three panels share one logarithmic colour scale (one colour bar;
    the figure says so); blocks that vanish up to round-off are left blank.

    Parameters
    ----------
    parts : HessianParts
        From :func:`dense_hessian`.
    out_base : str
        Writes ``out_base + ".png"`` and ``".pdf"``.
    title : str, optional

    Returns
    -------
    list of str
        The two paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = parts.labels
    mats = [(r"Gauss–Newton $G = J^\top J/T$", parts.block_norms("gauss_newton")),
            (r"functional $F = T^{-1}\,\Sigma_\mu\, r_\mu \nabla^2 f_\mu$", parts.block_norms("functional")),
            (r"full $\nabla^2 U = G + F + \Pi$ (incl. prior)", parts.block_norms("full"))]
    top = max(float(m.max()) for _, m in mats)
    mats = [(name, np.where(m > 1e-12 * top, m, 0.0)) for name, m in mats]  # round-off zeros shown blank
    allv = np.concatenate([m[m > 0].ravel() for _, m in mats if np.any(m > 0)])
    vmin, vmax = np.log10(allv.min()), np.log10(allv.max())
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), layout="constrained")
    for ax, (name, m) in zip(axes, mats):
        with np.errstate(divide="ignore"):
            im = ax.imshow(np.where(m > 0, np.log10(np.where(m > 0, m, 1)), np.nan), vmin=vmin, vmax=vmax,
                           cmap="viridis")
        ax.set_xticks(range(len(labels)), labels, rotation=60, fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlabel("parameter block (layer, head)")
        ax.set_title(name, fontsize=10)
    axes[0].set_ylabel("parameter block (layer, head)")
    fig.colorbar(im, ax=axes, label=r"$\log_{10}\|H_{\mathrm{block}}\|_F$ (blank: zero up to round-off)")
    fig.suptitle((title + "\n" if title else "") + "one colour scale shared by the three panels", fontsize=11)
    paths = [out_base + ".png", out_base + ".pdf"]
    for p in paths:
        fig.savefig(p, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths
