"""The exact finite-width posterior of the order parameters as a collapsed target (docs/theory.md §8.2).

Every Gaussian integral behind the theory is exact, so the posterior of the order-parameter hierarchy

    p(U_a, U_L, …, U_1 | data) ∝ χ²(U_a) · Π_ℓ Wishart(U_ℓ | U_{ℓ+1}) · N(Y; 0, T I + K_{U_1})

(``N_a U_a/σa² ~ χ²(N_a)``; ``N_ℓ U_ℓ | U_{ℓ+1} ~ Wishart_{D_ℓ}(N_ℓ, σℓ² I_{H_ℓ} ⊗ U_{ℓ+1})``, ``U_{L+1} ≡ U_a``)
can be sampled at a cost that does not grow with the widths N.  :func:`overlap_target` writes it on
standardised, non-centred (Bartlett) coordinates in which the *prior* is (close to) standard normal in
every coordinate whatever N is; the order parameters are built from the top down:

- ``u_a``: ``N_a U_a/σa² = ν e^{c u_a}``, ``ν = N_a``, ``c = √(2/ν)``; log prior ``(ν/2)(c u − e^{c u})``
  (+ const), ``≈ −u²/2`` for large ν.
- layer ℓ = L, …, 1: with ``B_ℓ = σℓ (I_{H_ℓ} ⊗ F_{ℓ+1})`` (``F_{L+1} = √U_a``), ``U_ℓ = F_ℓ F_ℓᵀ`` and

  - Bartlett (``N_ℓ ≥ m_ℓ``): ``F_ℓ = B_ℓ A/√N_ℓ``, ``A`` lower triangular ``m_ℓ × m_ℓ``,
    ``A_ii² = ν_i e^{c_i u_i}``, ``ν_i = N_ℓ − i + 1`` (i = 1..m_ℓ), ``c_i = √(2/ν_i)`` (the χ² log prior
    above), ``A_ij`` (i > j) standard normal.  When every layer above is full rank, ``m_ℓ = D_ℓ``,
    ``B_ℓ = chol(σℓ² I ⊗ U_{ℓ+1})`` and ``F_ℓ = chol(U_ℓ)`` (products of lower-triangular factors), so no
    Cholesky factorisation is ever computed.
  - singular (``N_ℓ < m_ℓ``, rank ``N_ℓ``): ``F_ℓ = B_ℓ Z/√N_ℓ``, ``Z ∈ R^{m_ℓ × N_ℓ}`` standard normal.
    Only such a layer pays ``m_ℓ N_ℓ`` coordinates instead of ``m_ℓ(m_ℓ + 1)/2``.

  Here ``m_ℓ = H_ℓ · rank(U_{ℓ+1})`` is the rank of the parent covariance: ``m_ℓ = D_ℓ = Π_{k≥ℓ} H_k``
  unless a layer above is singular (then the Wishart lives on the parent's column space).

Without singular layers this is ``1 + Σ_ℓ D_ℓ(D_ℓ + 1)/2`` coordinates (14 for heads (2, 2)).  Positions
are flat: ``[u_a, layer L, layer L−1, …, layer 1]``; a Bartlett block is its ``m`` log-χ² coordinates
followed by the ``m(m−1)/2`` strict lower entries of ``A`` (row-major), a singular block is ``Z`` row-major.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from smtheory.checks import InputError
from smtheory.action import energy_term
from smtheory.dual_energy import dual_data, dual_energy, dual_is_cheaper
from smtheory.model import ModelSpec
from smtheory.pair_blocks import pair_block_nbytes, pair_blocks
from smtheory.pair_energy import PAIR_BLOCK_BUDGET, pair_energy
from smtheory.problem import KernelProblem

from .collapsed_base import CollapsedTarget

__all__ = ["LayerBlock", "OverlapLayout", "overlap_layout", "factors", "hierarchy", "prior_logdensity", "prior_draw",
           "overlap_target", "LayoutStructure", "structure", "layout_values", "overlap_parts", "target_from_parts"]


class LayerBlock(NamedTuple):
    """Coordinates of one attention layer ℓ (static): ``m`` = rank of the parent covariance."""

    heads: int  # H_ℓ
    width: int  # N_ℓ
    variance: float  # σℓ²
    m: int
    bartlett: bool  # N_ℓ ≥ m
    offset: int
    size: int


@dataclass(frozen=True)
class OverlapLayout:
    """Static layout of the position vector (hashable; build it with :func:`overlap_layout`).

    Attributes
    ----------
    spec : ModelSpec
    blocks : tuple of LayerBlock
        Layers ``ℓ = 1..L`` (bottom first), each with its slice of the position.
    n_dims : int
    chi2_index, gauss_index : tuple of int
        Positions of the log-χ² and of the standard-normal coordinates.
    chi2_dof : tuple of int
        ``ν`` of each log-χ² coordinate (same order as ``chi2_index``).
    """

    spec: ModelSpec
    blocks: tuple
    n_dims: int
    chi2_index: tuple
    gauss_index: tuple
    chi2_dof: tuple


def overlap_layout(spec):
    """The coordinate layout of :func:`overlap_target` for a model (docs/theory.md §8.2).

    Parameters
    ----------
    spec : smtheory.ModelSpec

    Returns
    -------
    OverlapLayout
        ``n_dims = 1 + Σ_ℓ [m_ℓ(m_ℓ+1)/2 if N_ℓ ≥ m_ℓ else m_ℓ N_ℓ]`` with ``m_L = H_L`` and
        ``m_ℓ = H_ℓ min(m_{ℓ+1}, N_{ℓ+1})`` (``= D_ℓ`` while no layer above is singular).
    """
    if not isinstance(spec, ModelSpec):
        raise InputError(f"spec must be a smtheory.ModelSpec, got {type(spec).__name__}")
    N, var = spec.widths, spec.variances
    chi_idx, chi_dof, gauss_idx = [0], [N[-1]], []
    blocks, offset, rank = [], 1, 1  # rank of U_{ℓ+1}, starting from the scalar U_a
    for l in reversed(range(spec.n_layers)):
        H, n = spec.heads[l], N[l]
        m = H * rank
        bartlett = n >= m
        size = m * (m + 1) // 2 if bartlett else m * n
        if bartlett:
            chi_idx += list(range(offset, offset + m))
            chi_dof += [n - i for i in range(m)]  # ν_i = N − i + 1, i = 1..m
            gauss_idx += list(range(offset + m, offset + size))
        else:
            gauss_idx += list(range(offset, offset + size))
        blocks.append(LayerBlock(H, n, float(var[l + 1]), m, bartlett, offset, size))
        offset += size
        rank = min(m, n)
    return OverlapLayout(spec, tuple(reversed(blocks)), offset, tuple(chi_idx), tuple(gauss_idx),
                         tuple(chi_dof))


def _layout_of(obj):
    """An :class:`OverlapLayout` from a layout, a ModelSpec or a target built by :func:`overlap_target`."""
    if isinstance(obj, OverlapLayout):
        return obj
    if isinstance(obj, ModelSpec):
        return overlap_layout(obj)
    fn = getattr(obj, "order_parameter", None)
    if isinstance(getattr(fn, "layout", None), OverlapLayout):
        return fn.layout
    raise InputError("target_or_layout must be a target from smtheory.sims.overlap.overlap_target, an OverlapLayout "
                     f"or a ModelSpec, got {type(obj).__name__}")


def _check_position(layout, position):
    position = jnp.asarray(position)
    if position.shape != (layout.n_dims,):
        raise InputError(f"position must be a flat vector of {layout.n_dims} coordinates, got shape "
                         f"{position.shape}")
    return position


def _bartlett(seg, diagonal, m):
    """Lower-triangular Bartlett factor: ``diagonal`` on the diagonal, ``seg[m:]`` below it (row-major)."""
    rows, cols = np.tril_indices(m, -1)
    return jnp.diag(diagonal).at[rows, cols].set(seg[m:])


def factors(layout, position):
    """``U_a`` and the factors ``[F_1, …, F_L]`` with ``U_ℓ = F_ℓ F_ℓᵀ`` (docs/theory.md §8.2).

    Parameters
    ----------
    layout : OverlapLayout, ModelSpec or a target from :func:`overlap_target`
    position : array [n_dims]

    Returns
    -------
    U_a : scalar
    Fs : list of arrays
        ``F_ℓ`` of shape ``[D_ℓ, m_ℓ]`` (Bartlett layer; lower triangular, the Cholesky factor of
        ``U_ℓ`` when all layers above are full rank) or ``[D_ℓ, N_ℓ]`` (singular layer), bottom first.
    """
    layout = _layout_of(layout)
    return _factors(structure(layout), layout_values(layout, position.dtype),
                    _check_position(layout, position))


def _factors(struct, vals, position):
    """:func:`factors` from the static structure and the (possibly traced) values of a layout."""
    dt = position.dtype
    nu = vals["nu"]
    c = jnp.sqrt(2.0 / nu)
    # diagonal entries √(ν e^{c u}) of every χ² coordinate (U_a first)
    root = jnp.sqrt(nu) * jnp.exp(0.5 * c * position[np.asarray(struct.chi2_index)])
    sa2, N_a = vals["variances"][-1], vals["widths"][-1]
    U_a = sa2 * root[0] ** 2 / N_a
    F, Fs, k = jnp.reshape(jnp.sqrt(sa2 / N_a) * root[0], (1, 1)), [], 1
    for l, blk in reversed(list(enumerate(struct.blocks))):
        B = jnp.sqrt(vals["variances"][l + 1]) * jnp.kron(jnp.eye(blk.heads, dtype=dt), F)
        seg = position[blk.offset:blk.offset + blk.size]
        if blk.bartlett:
            A = _bartlett(seg, root[k:k + blk.m], blk.m)
            k += blk.m
        else:
            A = seg.reshape(blk.m, blk.width)
        F = B @ A / jnp.sqrt(vals["widths"][l])
        Fs.append(F)
    return U_a, Fs[::-1]


class LayoutStructure(NamedTuple):
    """The static part of a layout: shapes and routes, no widths of Bartlett layers (hashable).

    Two models whose layouts share a structure (e.g. the same heads at different widths, all layers
    Bartlett) share compiled code: the widths, ν's, variances enter as traced values
    (:func:`layout_values`).
    """

    blocks: tuple  # LayerBlock with width/variance zeroed where they are values
    n_dims: int
    chi2_index: tuple
    gauss_index: tuple


def structure(layout):
    """:class:`LayoutStructure` of a layout (singular layers keep their width: it is a shape)."""
    layout = _layout_of(layout)
    blocks = tuple(b._replace(width=b.width if not b.bartlett else 0, variance=0.0) for b in layout.blocks)
    return LayoutStructure(blocks, layout.n_dims, layout.chi2_index, layout.gauss_index)


def layout_values(layout, dtype=jnp.float64):
    """The numeric part of a layout as arrays: ``nu`` (χ² dofs), ``widths``, ``variances``."""
    layout = _layout_of(layout)
    return {"nu": jnp.asarray(np.asarray(layout.chi2_dof, dtype=float), dtype),
            "widths": jnp.asarray(np.asarray(layout.spec.widths, dtype=float), dtype),
            "variances": jnp.asarray(np.asarray(layout.spec.variances, dtype=float), dtype)}


def hierarchy(target_or_layout, position):
    """The order parameters ``(U_a, [U_1, …, U_L])`` at a position (docs/theory.md §8.2).

    Parameters
    ----------
    target_or_layout : CollapsedTarget, OverlapLayout or ModelSpec
        A target from :func:`overlap_target` (or its layout, or the model it was built for).
    position : array [n_dims]

    Returns
    -------
    U_a : scalar
    Us : list of arrays
        ``U_ℓ`` of size ``D_ℓ × D_ℓ``, bottom first (``Us[0] = U_1``, the path-path order parameter);
        symmetric positive semi-definite, exactly symmetric.
    """
    U_a, Fs = factors(target_or_layout, position)
    return U_a, [_gram(F) for F in Fs]


def _gram(F):
    G = F @ F.T
    return 0.5 * (G + G.T)


def _order_parameter(layout, position):
    return _gram(factors(layout, position)[1][0])


def prior_logdensity(layout, position):
    """Log prior density of the standard coordinates, up to a constant (docs/theory.md §8.2).

    ``Σ_χ² (ν/2)(c u − e^{c u}) − Σ_Gauss z²/2``: the pushforward of this density through
    :func:`hierarchy` is exactly ``χ²(U_a) · Π_ℓ Wishart(U_ℓ | U_{ℓ+1})``.

    Parameters
    ----------
    layout : OverlapLayout, ModelSpec or a target from :func:`overlap_target`
    position : array [n_dims]

    Returns
    -------
    scalar
    """
    layout = _layout_of(layout)
    return _prior_logdensity(structure(layout), layout_values(layout, jnp.asarray(position).dtype),
                             _check_position(layout, position))


def _prior_logdensity(struct, vals, position):
    nu = vals["nu"]
    cu = jnp.sqrt(2.0 / nu) * position[np.asarray(struct.chi2_index)]
    chi = jnp.sum(0.5 * nu * (cu - jnp.exp(cu)))
    z = position[np.asarray(struct.gauss_index, dtype=int)]
    return chi - 0.5 * jnp.sum(z * z)


#: Up to this many degrees of freedom a χ² variable is drawn as a sum of ν squared standard normals;
#: above it by Marsaglia–Tsang rejection from :data:`GAMMA_ROUNDS` pre-drawn proposals (:func:`_log_gamma`).
SUM_OF_SQUARES_MAX_DOF = 64
#: Proposals per Gamma variable; each is rejected with probability < 10⁻³ for shape ν/2 > 32, so all
#: are rejected with probability < 10⁻²⁴ (then the last proposal is kept: the only inexact event).
GAMMA_ROUNDS = 8


def _log_gamma(g, shape):
    """``ln y``, ``y ~ Gamma(a)`` for ``a ≥ 1`` (static), from standard normals ``g`` [2, R, n].

    Marsaglia–Tsang: ``d = a − 1/3``, ``v = (1 + x/√(9d))³``, accept if ``ln u < x²/2 + d − d v + d ln v``
    with ``u = Φ(w)`` uniform; the first accepted of the ``R`` i.i.d. proposals is an exact draw
    (rejection probability ≈ 0.05 at a = 1, < 10⁻³ for a > 32, the only case used here).
    """
    d = np.asarray(shape, dtype=float) - 1.0 / 3.0
    c = 1.0 / np.sqrt(9.0 * d)
    d, c = d.astype(g.dtype), c.astype(g.dtype)
    x, w = g[0], g[1]
    v = (1.0 + c * x) ** 3
    log_v = jnp.log(jnp.where(v > 0, v, 1.0))
    accept = (v > 0) & (jax.scipy.special.log_ndtr(w) < 0.5 * x * x + d - d * v + d * log_v)
    accept = accept.at[-1].set(True)  # all R rejected (probability < 10⁻²⁴): keep the last proposal
    first = accept & (jnp.cumsum(accept, axis=0) == 1)
    return jnp.log(d) + jnp.sum(jnp.where(first, log_v, 0.0), axis=0)


def _standard_draw(key, layout, dtype):
    """Exact ``(ln x, z)``: ``x ~ χ²(ν)`` for each log-χ² coordinate, ``z`` standard normal for the others.

    ``x`` is a sum of ν squared normals for ν ≤ :data:`SUM_OF_SQUARES_MAX_DOF`, else ``2 Gamma(ν/2)``
    (:func:`_log_gamma`).  One ``jax.random.normal`` call supplies every random number (cheap to compile).
    """
    nu = np.asarray(layout.chi2_dof, dtype=int)
    small = np.flatnonzero(nu <= SUM_OF_SQUARES_MAX_DOF)
    large = np.flatnonzero(nu > SUM_OF_SQUARES_MAX_DOF)
    n_gauss, k = len(layout.gauss_index), int(nu[small].max()) if small.size else 0
    n_sq, n_mt = small.size * k, 2 * GAMMA_ROUNDS * large.size
    g = jax.random.normal(key, (n_gauss + n_sq + n_mt,), dtype=dtype)
    log_x = jnp.zeros(nu.size, dtype=dtype)
    if small.size:
        sq = jnp.where(np.arange(k) < nu[small, None], jnp.square(g[n_gauss:n_gauss + n_sq].reshape(-1, k)), 0.0)
        log_x = log_x.at[small].set(jnp.log(jnp.sum(sq, axis=1)))
    if large.size:
        mt = g[n_gauss + n_sq:].reshape(2, GAMMA_ROUNDS, large.size)
        log_x = log_x.at[large].set(math.log(2.0) + _log_gamma(mt, 0.5 * nu[large]))
    return log_x, g[:n_gauss]


def prior_draw(layout, key, dtype=jnp.float64):
    """An exact prior draw of the coordinates: ``u = ln(x/ν)/c`` with ``x ~ χ²(ν)`` drawn exactly.

    The χ² variables are drawn exactly (not through the map), so chains started here are over-dispersed
    draws from the prior (docs/theory.md §8.2).

    Parameters
    ----------
    layout : OverlapLayout, ModelSpec or a target from :func:`overlap_target`
    key : jax PRNG key
    dtype : jnp.float64 or jnp.float32

    Returns
    -------
    array [n_dims]
    """
    layout = _layout_of(layout)
    nu = np.asarray(layout.chi2_dof, dtype=float)
    log_x, z = _standard_draw(key, layout, dtype)
    u = (log_x - np.log(nu).astype(dtype)) / np.sqrt(2.0 / nu).astype(dtype)
    pos = jnp.zeros(layout.n_dims, dtype=dtype).at[np.asarray(layout.chi2_index)].set(u)
    return pos.at[np.asarray(layout.gauss_index, dtype=int)].set(z)


def _check_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise InputError(f'dtype must be "float64" (default, recommended) or "float32", got {dtype!r}')
    return jnp.float64 if dt == np.float64 else jnp.float32


#: Routes of the likelihood (:func:`overlap_target`).
ROUTES = ("auto", "dual", "pair", "factored")


def _bottom_rank(layout):
    """Number of columns of the factor ``F_1`` of ``U_1`` (its rank): ``m_1``, or ``N_1`` if singular."""
    blk = layout.blocks[0]
    return blk.m if blk.bartlett else blk.width


def _choose_route(route, layout, problem, itemsize, memory_budget):
    if route not in ROUTES:
        raise InputError(f"route must be one of {', '.join(map(repr, ROUTES))}, got {route!r}")
    if route != "auto":
        return route
    if dual_is_cheaper(problem.n_train, _bottom_rank(layout), problem.input_dim):
        return "dual"
    fits = pair_block_nbytes(problem.n_train, problem.n_paths, itemsize) <= memory_budget
    return "pair" if fits else "factored"


def _energy_data(problem, spec, dtype, route, memory_budget):
    """The likelihood's data for a route: feature Gram matrix, pair blocks (within the budget) or features."""
    xi = jnp.asarray(problem.scaled_train(spec), dtype=dtype)
    y = jnp.asarray(problem.y_train, dtype=dtype)
    data = {"y": y, "T": jnp.asarray(spec.temperature, dtype=dtype)}
    if route == "dual":
        return dict(data, dual=dual_data(xi, y))
    if route == "pair":
        return dict(data, C=pair_blocks(xi, memory_budget))
    return dict(data, xi=xi)


def _energy(route, data, F1):
    """``ln det(T I + K) + Yᵀ(T I + K)⁻¹Y`` at ``U_1 = F_1 F_1ᵀ`` by the route's formula (closed-form JVPs)."""
    if route == "dual":
        return dual_energy(F1, data["dual"], data["T"])
    U1 = _gram(F1)
    if route == "pair":
        return pair_energy(U1, data["C"], data["y"], data["T"])
    return energy_term(U1, data["xi"], data["y"], data["T"]).astype(U1.dtype)


def overlap_parts(problem, spec, dtype="float64", *, likelihood=True, memory_budget=PAIR_BLOCK_BUDGET, route="auto"):
    """``(static, theta)``: the target of :func:`overlap_target` split into a hashable static part and a
    pytree of arrays (widths, ν's, variances, temperature, data), for :func:`target_from_parts`.

    Compiled code built from ``target_from_parts(static, theta)`` inside a traced function is reused for
    every ``theta`` of the same ``static`` (e.g. all widths of one network): the widths are values.
    """
    if not isinstance(problem, KernelProblem):
        raise InputError(f"problem must be a smtheory.KernelProblem, got {type(problem).__name__}")
    layout = overlap_layout(spec)
    problem.check_spec(spec)
    dt = _check_dtype(dtype)
    if not isinstance(likelihood, (bool, np.bool_)):
        raise InputError(f"likelihood must be True or False, got {likelihood!r}")
    memory_budget = PAIR_BLOCK_BUDGET if memory_budget is None else memory_budget
    if isinstance(memory_budget, (bool, np.bool_)) or not isinstance(memory_budget, (int, float, np.number)) \
            or not memory_budget >= 0:
        raise InputError(f"memory_budget must be a non-negative number of bytes, got {memory_budget!r}")
    theta = {"layout": layout_values(layout, dt)}
    route = _choose_route(route, layout, problem, np.dtype(dt).itemsize, memory_budget)
    if likelihood:
        theta["data"] = _energy_data(problem, spec, dt, route, memory_budget)
    else:
        route = "prior"
    static = (structure(layout), route, np.dtype(dt).name, problem.n_train)
    return static, theta


def target_from_parts(static, theta, init=None):
    """A :class:`CollapsedTarget` from :func:`overlap_parts` (``init`` None: no prior draws)."""
    struct, route, dt_name, n_train = static
    dt = jnp.dtype(dt_name)
    vals = theta["layout"]
    shift = -0.5 * n_train * math.log(2.0 * math.pi)

    def checked(position):
        position = jnp.asarray(position, dtype=dt)
        if position.shape != (struct.n_dims,):
            raise InputError(f"position must be a flat vector of {struct.n_dims} coordinates, got shape "
                             f"{position.shape}")
        return position

    def order_parameter(position):
        return _gram(_factors(struct, vals, checked(position))[1][0])

    def logdensity(position):
        position = checked(position)
        prior = _prior_logdensity(struct, vals, position)
        if route == "prior":
            return prior
        F1 = _factors(struct, vals, position)[1][0]
        return prior - 0.5 * _energy(route, theta["data"], F1) + shift

    return CollapsedTarget(logdensity=logdensity, init=init, order_parameter=order_parameter,
                           n_dims=struct.n_dims, dtype=dt, name=f"overlap-{route}")


def overlap_target(problem, spec, dtype="float64", *, likelihood=True, memory_budget=PAIR_BLOCK_BUDGET, route="auto"):
    """The exact posterior of the order parameters as a :class:`CollapsedTarget` (docs/theory.md §8.2).

    Parameters
    ----------
    problem : smtheory.KernelProblem
        Training path features and labels.
    spec : smtheory.ModelSpec
        Heads (must match the problem's), widths, variances and temperature.
    dtype : {"float64", "float32"}
        Precision of features and coordinates.  float64 is the default and recommended; float32 is
        for speed experiments only (the ``T I + K`` Cholesky loses digits at small T).
    likelihood : bool
        If False the data term is dropped: the target is the prior (tests, prior predictive checks).
    memory_budget : int, optional
        Byte budget of the pair blocks (``itemsize · D(D+1)/2 · P²``, :mod:`smtheory.pair_blocks`).
    route : {"auto", "dual", "pair", "factored"}
        How the likelihood is evaluated (name suffix of the target; the same numbers to rounding):

        - ``"dual"``: in feature space from the factor ``F_1`` (:mod:`smtheory.dual_energy`), ``O(r³)`` with
          ``r = rank(U_1) · N0``, no ``P × P`` matrix (docs/theory.md §8.2, "Feature-space form");
        - ``"pair"``: from the pair blocks, ``O(D² P² + P³)``, independent of ``N0`` (refused beyond
          ``memory_budget``);
        - ``"factored"``: :func:`smtheory.action.energy_term`, ``O(P² D N0)``, memory ``O(P D N0)``.

        ``"auto"`` (default): ``"dual"`` when ``r < P``, else ``"pair"`` within ``memory_budget``, else
        ``"factored"`` (``memory_budget=0`` forces it when ``r ≥ P``).

    Returns
    -------
    CollapsedTarget
        ``logdensity(position) = prior_logdensity + log N(Y; 0, T I + K_{U_1})`` (the Gaussian
        normalisation ``−(P/2) ln 2π`` included, prior constants dropped); ``init(key)`` an exact prior
        draw; ``order_parameter(position) = U_1``; see :func:`hierarchy` for all of ``U_a, U_1..U_L``.
        Gradients never pass through a Cholesky factorisation (closed-form JVPs of the energy).
    """
    static, theta = overlap_parts(problem, spec, dtype, likelihood=likelihood, memory_budget=memory_budget,
                                  route=route)
    layout = overlap_layout(spec)
    target = target_from_parts(static, theta, init=functools.partial(prior_draw, layout, dtype=jnp.dtype(static[2])))
    # keep the layout reachable for hierarchy()/factors(target, ...)
    return target._replace(order_parameter=_OrderParameter(layout, target.order_parameter))


class _OrderParameter:
    """``U_1`` of a position, remembering the layout (so :func:`hierarchy` accepts the target)."""

    def __init__(self, layout, fn):
        self.layout, self.fn = layout, fn

    def __call__(self, position):
        return self.fn(position)
