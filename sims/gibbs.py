"""Exact blocked Gibbs sampler for the weight posterior (docs/theory.md §1, §4).

The network output is linear in each block of weights taken alone

    blocks:  "V0"  (input projection V⁰, [N1, N0]),
             "V1", …, "VL"  (attention layer ℓ, ``params["V"][ℓ-1]``, all H_ℓ heads together),
             "a"   (readout, [N_a]),

so with the Gaussian prior ``N(0, σ_b² I)`` and the Gaussian likelihood
``exp(−(1/2T) Σ_μ (f_μ − y_μ)²)`` the conditional of one block given all the others is
exactly Gaussian,

    θ_b | rest ~ N(m, Σ),   Σ = (JᵀJ/T + I/σ_b²)⁻¹,   m = Σ Jᵀ y / T,   J = ∂f/∂θ_b  (P × n_b).

``f`` is *linear* (not affine) in every block: each path term ``w_πᵀ V⁰ ξ^π`` contains every
block exactly once as a factor, so ``f = 0`` when a block is zero and the "rest" contributes
no offset (checked in ``tests/test_gibbs.py``).

One Gibbs *step* is one full sweep that draws every block once, exactly, from its
conditional, in the fixed order ``V0, V1, …, VL, a`` (input to readout) unless another
order is passed to :func:`build`.  A fixed-order sweep leaves the posterior invariant
(each block update does) but is not reversible; nothing here needs reversibility.

How a block is drawn
--------------------
Write ``M(θ) = w(θ) V⁰ ∈ R^{D×N0}`` (``w`` the effective path weights of docs/theory.md §2;
:func:`smtheory.path_model.path_matrix`) so that
``f = c Ξ vec(M)`` with ``c = (D N1 N0)^{-1/2}`` and ``Ξ`` the ``P × K`` matrix of raw path
features, ``K = D·N0``.  With the other blocks fixed ``vec(M)`` is a linear map
``L_b: R^{n_b} → R^K`` of the block, so ``J = c Ξ L_b``.  ``L_b`` and its transpose are
evaluated matrix-free (the function itself, and :func:`jax.linear_transpose`); they do not
touch the data.

- ``method="sample"`` (sample space, Matheron's rule): draw ``θ0 ~ N(0, σ_b² I)`` and
  ``ε ~ N(0, T I_P)``, then ``θ = θ0 + σ_b² Jᵀ (σ_b² J Jᵀ + T I_P)⁻¹ (y − J θ0 − ε)``,
  an exact draw from the conditional.  ``J Jᵀ = c² Ξ (L_b L_bᵀ) Ξᵀ`` is formed by applying
  ``G = L_b L_bᵀ`` to the ``min(P, K)`` vectors that are cheaper (the rows of Ξ, or the K unit
  vectors), chunked with :func:`jax.lax.map`; then one P × P Cholesky solve.
- ``method="param"`` (parameter space): explicit ``J`` (``P × n_b``, from ``min(n_b, K)``
  applications of ``L_b`` or ``L_bᵀ``), Cholesky of the ``n_b × n_b`` precision, draw
  ``m + R⁻ᵀ z``.  Cheaper when ``n_b < P`` (typically the readout ``a``).
- ``method="auto"`` (default) picks ``"param"`` when ``n_b < P`` and ``"sample"`` otherwise.

Cost per block (flops, leading terms): sample space ``min(P,K)·C_L + P²K (+ P K² if K ≤ P) + P³/3``;
parameter space ``min(n_b,K)·C_L + P K n_b + P n_b² + n_b³/3``, where ``C_L ≈ D N1 N0 +
Σ_ℓ D_ℓ N_ℓ N_{ℓ+1}`` is the cost of one application of ``L_b`` or ``L_bᵀ``.  A sweep is the sum
over the L + 2 blocks plus one evaluation of the potential.  Memory per chain: ``P² + batch·n_b``
plus ``P·n_b`` for the parameter-space route.

Randomness: :func:`draw_block` is a deterministic map of a vector of standard normals
(:func:`noise_size` of them); a sweep makes one ``jax.random.normal`` call and hands each block a
disjoint slice (this also keeps compile time down).  :func:`update_block` is the keyed version.

Scale moves
-----------
Every block draw is exact, but block-by-block sweeps can mix slowly along directions coupled across
blocks.  One such direction is known exactly: the rescaling of adjacent blocks (``θ_b → c θ_b``,
``θ_{b+1} → θ_{b+1}/c``) leaves f — hence the likelihood — unchanged and is pinned down by the prior
alone.  After each sweep, :func:`scale_move` moves along that orbit for every adjacent pair (V0,V1),
…, (VL,a).  Measured effect (``benchmarks/bench_gibbs_moves.py``, Markov task, N = 10, T = 0.01):
ESS per second ×1.07 — within noise; the slowest observables there (the large diagonal entries of
U_1) decorrelate slowly for another reason, so the scale moves are kept as a cheap exact move, not
as a cure.  It is a generalised Gibbs move (Liu & Sabatti
2000): on the multiplicative group with Haar measure dc/c the conditional of ``u = log c²`` is::

    p(u) ∝ exp(λ u − A eᵘ − B e⁻ᵘ),   λ = (n_b − n_{b+1})/2,  A = |θ_b|²/(2σ_b²),  B = |θ_{b+1}|²/(2σ_{b+1}²)

(a generalised inverse Gaussian in c²), log-concave with the mode in closed form; it is sampled
by one independence Metropolis–Hastings step from the Laplace approximation at the mode, which
accepts almost always because the n_b are large.  Check R-hat/ESS all the same: exact updates
do not by themselves imply fast mixing.

The sampler follows :mod:`smtheory.sims.base`: ``build(posterior).init(position)`` and
``.step(key, state) -> (state, info)`` for one chain; vmap over chains.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from smtheory.checks import InputError
from smtheory import path_model

from .base import SamplingAlgorithm, all_finite
from .posterior import Posterior, prior_stds

__all__ = [
    "GibbsState", "GibbsInfo", "ConditionalMoments", "block_names", "get_block", "set_block",
    "block_std", "conditional_moments", "noise_size", "draw_block", "update_block", "scale_move", "build",
]

_METHODS = ("auto", "sample", "param")
# default chunk for lax.map: about this many scalars of per-vector intermediates per chain
_CHUNK_ELEMENTS = 1 << 22


class GibbsState(NamedTuple):
    position: dict
    potential: jax.Array


class GibbsInfo(NamedTuple):
    is_finite: jax.Array
    scale_acceptance: jax.Array  # mean acceptance of the sweep's scale moves (1 when there are none)


class ConditionalMoments(NamedTuple):
    """Exact Gaussian conditional of one block, flattened in C order."""

    mean: jax.Array  # [n_b]
    cov: jax.Array  # [n_b, n_b]


# ----------------------------------------------------------------------------- blocks


def block_names(spec):
    """The blocks of a model in the default sweep order: ``("V0", "V1", …, "VL", "a")``.

    ``"Vℓ"`` (ℓ = 1..L, as in docs/theory.md §1) is ``params["V"][ℓ-1]``, all heads of layer ℓ.
    """
    return ("V0",) + tuple(f"V{l + 1}" for l in range(spec.n_layers)) + ("a",)


def _layer(name, n_layers):
    """0-based index into ``params["V"]`` for ``"Vℓ"`` (ℓ ≥ 1), None for "V0"/"a"; validates."""
    if name in ("V0", "a"):
        return None
    if isinstance(name, str) and name.startswith("V") and name[1:].isdigit():
        l = int(name[1:])
        if 1 <= l <= n_layers:
            return l - 1
    raise InputError(
        f"unknown block {name!r}: expected one of 'V0', 'V1'..'V{n_layers}' (attention layers), 'a'")


def get_block(params, name):
    """The array of block ``name`` in the weight pytree."""
    l = _layer(name, len(params["V"]))
    return params[name] if l is None else params["V"][l]


def set_block(params, name, value):
    """A new weight pytree with block ``name`` replaced (the input is not modified)."""
    l = _layer(name, len(params["V"]))
    new = {"V0": params["V0"], "V": list(params["V"]), "a": params["a"]}
    if l is None:
        new[name] = value
    else:
        new["V"][l] = value
    return new


def block_std(spec, n0, name):
    """Prior standard deviation σ_b of a block."""
    stds = prior_stds(spec, n0)
    l = _layer(name, spec.n_layers)
    return stds[name] if l is None else stds["V"][l]


def _block_shape(posterior, name):
    spec, n0 = posterior.spec, posterior.n0
    N = spec.widths
    l = _layer(name, spec.n_layers)
    if name == "V0":
        return (N[0], n0)
    if name == "a":
        return (N[-1],)
    return (spec.heads[l], N[l + 1], N[l])


# ----------------------------------------------------------------------------- linear maps


def _scale(posterior):
    spec = posterior.spec
    return 1.0 / math.sqrt(math.prod(spec.heads) * spec.widths[0] * posterior.n0)


class _BlockMaps(NamedTuple):
    L: object  # θ_b [shape] -> vec(M) [K]
    LT: object  # [K] -> θ_b [shape]
    Xi: jax.Array  # [P, K]
    c: float
    W: object = None  # V0 only: w wᵀ [D, D], so that L Lᵀ = W ⊗ I_N0 (closed-form Gram)


def _block_maps(posterior, params, name):
    shape = _block_shape(posterior, name)

    def L(theta):  # M = w V⁰ [D, N0] (path_model.path_matrix): f = c Σ_{d,m} M[d,m] ξ[μ,d,m]
        return path_model.path_matrix(set_block(params, name, theta)).reshape(-1)

    primal = jnp.zeros(shape, posterior.dtype)
    lt = jax.linear_transpose(L, primal)

    def LT(u):
        return lt(u)[0]

    P = posterior.xi.shape[0]
    W = None
    if name == "V0":  # M = w V0 is V0 itself mapped by w: L Lᵀ = (w wᵀ) ⊗ I
        w = path_model.effective_weights(params)[0]
        W = w @ w.T
    return _BlockMaps(L, LT, posterior.xi.reshape(P, -1), _scale(posterior), W)


def _map_rows(fn, xs, batch_size):
    """``fn`` over the leading axis of ``xs``, in chunks of ``batch_size`` (lax.map)."""
    n = xs.shape[0]
    if batch_size is None or batch_size >= n:
        return jax.vmap(fn)(xs)
    return jax.lax.map(fn, xs, batch_size=int(batch_size))


def _auto_batch(n_b, K, batch_size):
    if batch_size is not None:
        return max(int(batch_size), 1)
    return max(1, _CHUNK_ELEMENTS // max(n_b + K, 1))


def _gram(maps, n_b, batch_size):
    """``J Jᵀ = c² Ξ (L Lᵀ) Ξᵀ`` [P, P], matrix-free in the block."""
    Xi, c = maps.Xi, maps.c
    P, K = Xi.shape
    if maps.W is not None:  # V0: J Jᵀ = c² Σ_de W_de Ξ_d Ξ_eᵀ, the renormalised-kernel contraction
        D = maps.W.shape[0]
        X = Xi.reshape(P, D, K // D)
        C = Xi @ jnp.einsum("de,pen->pdn", maps.W, X).reshape(P, K).T
        return (c * c) * (0.5 * (C + C.T))
    bs = _auto_batch(n_b, K, batch_size)

    def G(u):
        return maps.L(maps.LT(u))

    if K <= P:
        GI = _map_rows(G, jnp.eye(K, dtype=Xi.dtype), bs)  # [K, K] = L Lᵀ (symmetric)
        C = Xi @ GI @ Xi.T
    else:
        GX = _map_rows(G, Xi, bs)  # [P, K] rows (L Lᵀ ξ_p)ᵀ
        C = Xi @ GX.T
    C = 0.5 * (C + C.T)
    return (c * c) * C


def _explicit_jacobian(maps, shape, batch_size):
    """Dense ``J = c Ξ L`` [P, n_b] (block flattened in C order)."""
    Xi, c = maps.Xi, maps.c
    K = Xi.shape[1]
    n_b = math.prod(shape)
    bs = _auto_batch(n_b, K, batch_size)
    if n_b <= K:
        Lcols = _map_rows(lambda e: maps.L(e.reshape(shape)), jnp.eye(n_b, dtype=Xi.dtype), bs)  # [n_b, K]
        Lmat = Lcols.T
    else:
        Lmat = _map_rows(lambda e: maps.LT(e).reshape(-1), jnp.eye(K, dtype=Xi.dtype), bs)  # [K, n_b]
    return c * (Xi @ Lmat)


# ----------------------------------------------------------------------------- exact conditional


def conditional_moments(posterior: Posterior, params, block):
    """Exact conditional mean and covariance of one block given the others (dense; for tests).

    Uses the dense Jacobian ``J = ∂f/∂θ_b`` (:func:`jax.jacfwd` of the network output),
    ``Σ = (JᵀJ/T + I/σ_b²)⁻¹`` and ``m = Σ Jᵀ y / T``.  No offset term is needed because f
    is linear (not affine) in each block: f = 0 when the block is zero.

    Returns
    -------
    ConditionalMoments
        ``mean`` [n_b] and ``cov`` [n_b, n_b], the block flattened in C order.
    """
    shape = _block_shape(posterior, block)
    sigma = block_std(posterior.spec, posterior.n0, block)
    T = posterior.temperature

    def f_of(theta_flat):
        return posterior.output(set_block(params, block, theta_flat.reshape(shape)))

    x0 = get_block(params, block).reshape(-1)
    J = jax.jacfwd(f_of)(x0)  # [P, n_b]
    n_b = J.shape[1]
    prec = J.T @ J / T + jnp.eye(n_b, dtype=J.dtype) / sigma**2
    cov = jnp.linalg.inv(prec)
    cov = 0.5 * (cov + cov.T)
    mean = cov @ (J.T @ posterior.y) / T
    return ConditionalMoments(mean, cov)


# ----------------------------------------------------------------------------- block update


def _choose(method, n_b, P):
    if method not in _METHODS:
        raise InputError(f"method must be one of {_METHODS}, got {method!r}")
    if method == "auto":
        return "param" if n_b < P else "sample"
    return method


def noise_size(posterior: Posterior, block, method="auto"):
    """Number of standard normals one exact draw of ``block`` consumes (see :func:`draw_block`)."""
    n_b = math.prod(_block_shape(posterior, block))
    P = posterior.xi.shape[0]
    return n_b + P if _choose(method, n_b, P) == "sample" else n_b


def draw_block(posterior: Posterior, noise, params, block, method="auto", batch_size=None):
    """Exact draw of one block from its Gaussian conditional, from given standard normal noise.

    ``noise`` is a vector of :func:`noise_size` i.i.d. ``N(0, 1)`` numbers; the result is a
    deterministic function of it, so one random call can serve a whole sweep.  The other blocks
    are returned unchanged (the same arrays).
    """
    shape = _block_shape(posterior, block)
    n_b = math.prod(shape)
    P = posterior.xi.shape[0]
    sigma = block_std(posterior.spec, posterior.n0, block)
    T = posterior.temperature
    y = posterior.y
    dt = posterior.dtype
    maps = _block_maps(posterior, params, block)
    how = _choose(method, n_b, P)
    noise = jnp.asarray(noise, dt)
    if noise.shape != (noise_size(posterior, block, how),):
        raise InputError(f"noise for block {block!r} must have shape ({noise_size(posterior, block, how)},), "
                         f"got {noise.shape}")
    if how == "sample":
        # Matheron: θ = θ0 + σ² Jᵀ (σ² J Jᵀ + T I)⁻¹ (y − J θ0 − ε),  θ0 ~ N(0, σ²I), ε ~ N(0, T I)
        theta0 = sigma * noise[:n_b].reshape(shape)
        eps = math.sqrt(T) * noise[n_b:]
        f0 = maps.c * (maps.Xi @ maps.L(theta0))
        A = sigma**2 * _gram(maps, n_b, batch_size) + T * jnp.eye(P, dtype=dt)
        cf = jsl.cho_factor(A, lower=True)
        alpha = jsl.cho_solve(cf, y - f0 - eps)
        theta = theta0 + sigma**2 * maps.LT(maps.c * (maps.Xi.T @ alpha))
    else:
        # parameter space: precision Λ = JᵀJ/T + I/σ² = R Rᵀ, θ = Λ⁻¹ Jᵀy/T + R⁻ᵀ z
        J = _explicit_jacobian(maps, shape, batch_size)  # [P, n_b]
        prec = J.T @ J / T + jnp.eye(n_b, dtype=dt) / sigma**2
        R = jnp.linalg.cholesky(prec)
        mean = jsl.cho_solve((R, True), J.T @ y / T)
        theta = (mean + jsl.solve_triangular(R.T, noise, lower=False)).reshape(shape)
    return set_block(params, block, theta.astype(dt))


def update_block(posterior: Posterior, key, params, block, method="auto", batch_size=None):
    """Draw one block exactly from its Gaussian conditional; the other blocks are untouched.

    Parameters
    ----------
    posterior : Posterior
    key : PRNG key
    params : dict weight pytree of one chain
    block : str
        ``"V0"``, ``"V1"``..``"VL"`` or ``"a"``.
    method : {"auto", "sample", "param"}
        Sample space (Matheron's rule, P × P solve) or parameter space (n_b × n_b solve);
        ``"auto"`` takes parameter space when ``n_b < P``.
    batch_size : int, optional
        Chunk size for the matrix-free Gram / Jacobian construction (default: automatic,
        about 4M scalars of intermediates per chain).

    Returns
    -------
    dict
        The new weight pytree.
    """
    noise = jax.random.normal(key, (noise_size(posterior, block, method),), dtype=posterior.dtype)
    return draw_block(posterior, noise, params, block, method, batch_size)


# ----------------------------------------------------------------------------- scale move


def _scale_log_density(u, lam, A, B):
    return lam * u - A * jnp.exp(u) - B * jnp.exp(-u)


def scale_move(posterior: Posterior, noise, params, lower, upper):
    """Rescale two adjacent blocks along the likelihood-invariant orbit (see module docstring).

    ``θ_lower → e^{u/2} θ_lower`` and ``θ_upper → e^{-u/2} θ_upper`` leave the network output
    unchanged; ``u`` is drawn by one independence Metropolis–Hastings step targeting the exact
    conditional ``p(u) ∝ exp(λu − A eᵘ − B e⁻ᵘ)`` (Laplace proposal at its closed-form mode).

    Parameters
    ----------
    posterior : Posterior
    noise : array [2]
        Two standard normals (proposal, acceptance); the move is a deterministic function of them.
    params : dict
        Weight pytree of one chain.
    lower, upper : str
        Adjacent blocks, e.g. ``"V0", "V1"`` or ``"VL", "a"``.

    Returns
    -------
    (dict, jax.Array)
        The new pytree and the acceptance probability of the move.
    """
    dt = posterior.dtype
    lo, hi = get_block(params, lower), get_block(params, upper)
    s_lo = block_std(posterior.spec, posterior.n0, lower)
    s_hi = block_std(posterior.spec, posterior.n0, upper)
    A = jnp.sum(lo.astype(jnp.float64) ** 2) / (2 * s_lo**2)
    B = jnp.sum(hi.astype(jnp.float64) ** 2) / (2 * s_hi**2)
    lam = 0.5 * (lo.size - hi.size)
    # mode of p(u): A x² − λ x − B = 0 with x = eᵘ, in the cancellation-free form for either sign of λ
    root = jnp.sqrt(lam**2 + 4 * A * B)
    x = (lam + root) / (2 * A) if lam >= 0 else 2 * B / (root - lam)
    mode = jnp.log(x)
    curv = A * x + B / x  # −d²/du² log p at the mode
    sd = 1.0 / jnp.sqrt(curv)
    z = noise[0].astype(jnp.float64)
    u = mode + sd * z

    def log_q(v):
        return -0.5 * ((v - mode) / sd) ** 2

    log_alpha = (_scale_log_density(u, lam, A, B) - _scale_log_density(0.0, lam, A, B)
                 + log_q(0.0) - log_q(u))
    alpha = jnp.minimum(1.0, jnp.exp(jnp.minimum(log_alpha, 0.0)))
    accept = jnp.log(jax.scipy.special.ndtr(noise[1].astype(jnp.float64))) < log_alpha
    ok = accept & jnp.isfinite(u)
    u = jnp.where(ok, u, 0.0)
    new = set_block(params, lower, (lo * jnp.exp(0.5 * u)).astype(dt))
    new = set_block(new, upper, (hi * jnp.exp(-0.5 * u)).astype(dt))
    return new, alpha


# ----------------------------------------------------------------------------- sampler


def build(posterior: Posterior, blocks=None, method="auto", batch_size=None, scale_moves=True) -> SamplingAlgorithm:
    """Exact blocked Gibbs sampler (one full sweep per step, then the scale moves).

    Parameters
    ----------
    posterior : Posterior
    blocks : sequence of str, optional
        Sweep order; default :func:`block_names` ``(V0, V1, …, VL, a)``.  A subset samples only
        those blocks and keeps the rest fixed (a conditional chain).
    method : {"auto", "sample", "param"} or dict block -> method
    batch_size : int, optional
        See :func:`update_block`.
    scale_moves : bool
        After each sweep, apply :func:`scale_move` to every adjacent pair of the full block order
        ``V0, V1, …, VL, a`` (default True; only with the default ``blocks``, since a conditional
        chain that keeps some blocks fixed must not rescale them).

    Returns
    -------
    SamplingAlgorithm
        ``init(position) -> GibbsState``; ``step(key, state) -> (GibbsState, GibbsInfo)``.
    """
    order = tuple(block_names(posterior.spec) if blocks is None else blocks)
    if not order:
        raise InputError("blocks must name at least one block")
    for b in order:
        _layer(b, posterior.spec.n_layers)
    if isinstance(method, dict):
        for b in method:
            _layer(b, posterior.spec.n_layers)
    methods = {b: (method.get(b, "auto") if isinstance(method, dict) else method) for b in order}
    for m in methods.values():
        _choose(m, 1, 1)

    def init(position):
        return GibbsState(position, posterior.potential(position))

    full = block_names(posterior.spec)
    if scale_moves and blocks is not None and tuple(blocks) != full:
        raise InputError(f"scale_moves=True needs the full block order {full}; pass scale_moves=False "
                         f"to sample a subset of blocks")
    pairs = tuple(zip(full[:-1], full[1:])) if scale_moves else ()
    sizes = [noise_size(posterior, b, methods[b]) for b in order]
    offsets = [sum(sizes[:i]) for i in range(len(order))]
    n_sweep = sum(sizes)

    def step(key, state):
        # one random call per step (disjoint slices are independent): cheaper to compile
        noise = jax.random.normal(key, (n_sweep + 2 * len(pairs),), dtype=posterior.dtype)
        params = state.position
        for b, o, n in zip(order, offsets, sizes):
            params = draw_block(posterior, noise[o:o + n], params, b, methods[b], batch_size)
        alphas = []
        for i, (lo, hi) in enumerate(pairs):
            params, alpha = scale_move(posterior, noise[n_sweep + 2 * i:n_sweep + 2 * i + 2], params, lo, hi)
            alphas.append(alpha)
        acc = jnp.mean(jnp.stack(alphas)) if alphas else jnp.ones((), jnp.float64)
        pot = posterior.potential(params)
        finite = jnp.isfinite(pot) & all_finite(params)
        return GibbsState(params, pot), GibbsInfo(finite, acc)

    return SamplingAlgorithm(init, step)
