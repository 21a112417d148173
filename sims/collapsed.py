"""The collapsed weight posterior: the input projection V⁰ integrated out (docs/theory.md §8.1).

Given the upper weights ``θ_up = (V^{1,h}, …, V^{L,h}, a)`` the network output on any finite
set of inputs is linear in ``V⁰`` with the Gaussian prior ``N(0, σ0²)``, so ``f ~ N(0, K_Û)``
with ``Û = (1/N1) w wᵀ`` (``D × D``, ``w`` the effective path weights of docs/theory.md §2) and
``K_Û`` the renormalised kernel of the scaled training features.  Integrating ``V⁰`` together
with the Gaussian likelihood gives exactly (docs/theory.md §8.1)::

    log p(θ_up | data) = −½ [ln det(T I_P + K_Û) + Yᵀ (T I_P + K_Û)⁻¹ Y]
                         − Σ_blocks |θ_b|²/(2σ_b²) + const.

The stiff ``V⁰`` directions of the full posterior (precision up to ``λ_max(ΞᵀΞ)/T``) are gone,
which is what makes Langevin dynamics usable at the paper's temperature T = 0.01.

Cost of one log density and gradient: the effective weights are a chain of matrix-vector
products (``Σ_ℓ D_ℓ N_ℓ N_{ℓ+1}`` multiply-adds, about ``6 N²`` for the 4-path network), and
the ``P × P`` data term has its derivative in ``Û`` in closed form (``Φ``, docs/theory.md §3), so
automatic differentiation runs only through ``Û(θ_up)`` and never through the Cholesky
factorisation.  The data term is :func:`smtheory.action.energy_term` on the ``[P, D, N0]``
features (about ``4 P² D N0`` flops) or, when it is cheaper and small, the same function on the
precomputed ``[D, D, P, P]`` path-pair kernels, :func:`path_kernel_energy` (``3 D² P² + P³``
flops; about 1 ms instead of 6 ms per chain on the Markov task, D = 4, N0 = 231, P = 100); see
:func:`choose_data_term`.  Its cost does not depend on N.

Positions are flat 1-D arrays (:class:`smtheory.sims.collapsed_base.CollapsedTarget`); :func:`ravel`
and :func:`unravel` convert to and from the pytree ``{"V": [...], "a": ...}`` (C order,
``jax.flatten_util.ravel_pytree`` layout).  :func:`draw_input_projection` completes a
collapsed draw into a full weight sample ``{"V0", "V", "a"}`` by an exact draw of
``V⁰ | θ_up, data`` (Gaussian; the ``V0`` block of :mod:`smtheory.sims.gibbs`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from smtheory.checks import InputError
from smtheory.action import energy_term
from smtheory.kernels import path_pair_kernels
from smtheory.model import ModelSpec
from smtheory import path_model
from smtheory.problem import KernelProblem

from .collapsed_base import CollapsedTarget
from .gibbs import update_block
from .posterior import make_posterior, prior_stds, weight_shapes

__all__ = ["collapsed_target", "upper_template", "ravel", "unravel", "prior_std_vector",
           "order_parameter", "path_kernel_energy", "choose_data_term", "draw_input_projection"]

_DTYPES = {"float64": jnp.float64, "float32": jnp.float32}
_DATA_TERMS = ("auto", "features", "path_kernels")
#: largest path-pair kernel tensor [D, D, P, P] that ``data_term="auto"`` builds (bytes)
PATH_KERNEL_BUDGET = 256 * 2**20


def _check_inputs(problem, spec, dtype):
    if not isinstance(problem, KernelProblem):
        raise InputError(f"problem must be a smtheory.KernelProblem, got {type(problem).__name__}")
    if not isinstance(spec, ModelSpec):
        raise InputError(f"spec must be a smtheory.ModelSpec, got {type(spec).__name__}")
    problem.check_spec(spec)
    if dtype not in _DTYPES:
        raise InputError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    return _DTYPES[dtype]


def upper_template(spec: ModelSpec, n0: int, dtype=jnp.float64):
    """A zero pytree ``{"V": [[H_ℓ, N_{ℓ+1}, N_ℓ], …], "a": [N_a]}`` of the upper weights.

    Parameters
    ----------
    spec : ModelSpec
    n0 : int
        Input width ``N0`` (only used through :func:`smtheory.sims.posterior.weight_shapes`).
    dtype : jnp.float64 or jnp.float32

    Returns
    -------
    dict
    """
    shapes = weight_shapes(spec, n0)
    return {"V": [jnp.zeros(s, dtype) for s in shapes["V"]], "a": jnp.zeros(shapes["a"], dtype)}


def ravel(upper):
    """Flatten an upper-weight pytree ``{"V", "a"}`` to the 1-D position (docs/theory.md §8.1).

    Parameters
    ----------
    upper : dict
        ``{"V": list of [H_ℓ, N_{ℓ+1}, N_ℓ], "a": [N_a]}`` (a ``"V0"`` entry is ignored).

    Returns
    -------
    jax.Array [n_dims]
    """
    return ravel_pytree({"V": list(upper["V"]), "a": upper["a"]})[0]


def unravel(spec: ModelSpec, n0: int, position):
    """The upper-weight pytree ``{"V", "a"}`` of a flat position (inverse of :func:`ravel`).

    Parameters
    ----------
    spec : ModelSpec
    n0 : int
    position : array [n_dims]

    Returns
    -------
    dict
    """
    position = jnp.asarray(position)
    template = upper_template(spec, n0, position.dtype)
    flat, unflatten = ravel_pytree(template)
    if position.shape != flat.shape:
        raise InputError(f"position must have shape {flat.shape} for this model, got {position.shape}")
    return unflatten(position)


def prior_std_vector(spec: ModelSpec, n0: int, dtype=jnp.float64):
    """Prior standard deviation of every coordinate of the flat position, ``[n_dims]``."""
    stds = prior_stds(spec, n0)
    template = upper_template(spec, n0, dtype)
    filled = {"V": [jnp.full(v.shape, s, dtype) for v, s in zip(template["V"], stds["V"])],
              "a": jnp.full(template["a"].shape, stds["a"], dtype)}
    return ravel(filled)


def order_parameter(upper, widths):
    """``Û = (1/N1) w wᵀ`` [D, D] of an upper-weight pytree (docs/theory.md §8.1).

    Parameters
    ----------
    upper : dict
        ``{"V": list of [H_ℓ, N_{ℓ+1}, N_ℓ], "a": [N_a]}`` (a ``"V0"`` entry is ignored).
    widths : tuple of int
        ``(N_1, ..., N_L, N_a)``; must be the widths of ``upper``'s shapes.

    Returns
    -------
    jax.Array [D, D]
        :func:`smtheory.path_model.order_parameter` of the upper weights.
    """
    weights = path_model.PathWeights(None, tuple(upper["V"]), upper["a"])
    if weights.widths != tuple(widths):
        raise InputError(f"widths {tuple(widths)} do not match the upper weights' shapes {weights.widths}")
    return path_model.order_parameter(weights)


@jax.custom_jvp
def path_kernel_energy(U1, C, y, temperature):
    """``ln det(T I + K) + Yᵀ (T I + K)⁻¹ Y`` from precomputed path-pair kernels (docs/theory.md §8.1).

    The same function as :func:`smtheory.action.energy_term`, with ``K = Σ_ab U_ab C_ab``
    assembled from the ``[D, D, P, P]`` tensor ``C`` of path-pair kernels
    (:func:`smtheory.kernels.path_pair_kernels` of the scaled features) instead of the
    ``[P, D, N0]`` features.  Per evaluation with its gradient this costs ``3 D² P² + P³``
    instead of about ``4 P² D N0`` flops: for small D and large N0 (the Markov task: D = 4,
    N0 = 231, P = 100) some 25 times less.  Like ``energy_term`` its derivative in ``U_1`` is
    given in closed form, ``dE = Σ_ab Φ_ab dU_ab`` with ``Φ_ab = Tr(G C_ab) − αᵀ C_ab α``,
    ``G = (T I + K)⁻¹``, ``α = G Y``, so no gradient flows through the Cholesky factorisation.
    """
    return _path_kernel_energy_and_phi(U1, C, y, temperature)[0]


def _path_kernel_energy_and_phi(U1, C, y, temperature):
    P = C.shape[-1]
    K = jnp.einsum("ab,abpq->pq", U1, C)
    K = 0.5 * (K + K.T)
    L = jnp.linalg.cholesky(K + temperature * jnp.eye(P, dtype=K.dtype))
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diag(L)))
    W = jax.scipy.linalg.solve_triangular(L, jnp.eye(P, dtype=K.dtype), lower=True)  # L⁻¹
    G = W.T @ W  # (T I + K)⁻¹: one triangular solve and one product instead of two solves
    alpha = G @ y
    phi = jnp.einsum("pq,abpq->ab", G, C) - jnp.einsum("p,abpq,q->ab", alpha, C, alpha)
    return logdet + jnp.dot(y, alpha), 0.5 * (phi + phi.T)


@path_kernel_energy.defjvp
def _path_kernel_energy_jvp(primals, tangents):
    U1, C, y, temperature = primals
    value, phi = _path_kernel_energy_and_phi(U1, C, y, temperature)
    return value, jnp.sum(phi * tangents[0])  # C, y, T are data: no tangents


def choose_data_term(P, D, N0, data_term="auto", budget=PATH_KERNEL_BUDGET):
    """``"features"`` (:func:`smtheory.action.energy_term`) or ``"path_kernels"`` (:func:`path_kernel_energy`).

    ``"auto"`` takes the path-pair kernels when their tensor fits in ``budget`` bytes and
    their flop count ``3 D² P² + P³`` is below the factored route's ``4 P² D N0``.
    """
    if data_term not in _DATA_TERMS:
        raise InputError(f"data_term must be one of {_DATA_TERMS}, got {data_term!r}")
    if data_term != "auto":
        return data_term
    small = 8 * D * D * P * P <= budget
    cheaper = 3 * D * D * P * P + P**3 < 4 * P * P * D * N0
    return "path_kernels" if small and cheaper else "features"


def _data_term(problem, spec, dt, data_term):
    """``U -> ln det(T I + K_U) + Yᵀ(T I + K_U)⁻¹Y`` (float64 inside, result in ``dt``)."""
    xi64 = jnp.asarray(problem.scaled_train(spec), jnp.float64)  # [P, D, N0] scaled features
    y64 = jnp.asarray(problem.y_train, jnp.float64)
    T = spec.temperature
    P, D, N0 = xi64.shape
    how = choose_data_term(P, D, N0, data_term)
    if how == "path_kernels":
        C = path_pair_kernels(xi64)
        return how, lambda U: path_kernel_energy(U.astype(jnp.float64), C, y64, T).astype(dt)
    return how, lambda U: energy_term(U.astype(jnp.float64), xi64, y64, T).astype(dt)


def collapsed_target(problem: KernelProblem, spec: ModelSpec, dtype="float64", data_term="auto") -> CollapsedTarget:
    """The posterior of the upper weights with ``V⁰`` integrated out (docs/theory.md §8.1).

    ``log p(θ_up | data) = −½ [ln det(T I + K_Û) + Yᵀ(T I + K_Û)⁻¹Y] − Σ_b |θ_b|²/(2σ_b²)``
    up to a constant, ``Û = (1/N1) w wᵀ``, on the scaled training features.

    Parameters
    ----------
    problem : KernelProblem
        Training path features and labels.
    spec : ModelSpec
        Heads, widths, prior variances and temperature ``T``.
    dtype : {"float64", "float32"}
        Dtype of positions, log density and gradient.  The ``P × P`` data term (independent
        of N) is always evaluated in float64 and its value cast to ``dtype``.
    data_term : {"auto", "features", "path_kernels"}
        How the data term is evaluated: :func:`smtheory.action.energy_term` on the
        ``[P, D, N0]`` features, or :func:`path_kernel_energy` on the precomputed
        ``[D, D, P, P]`` path-pair kernels (the same function; see :func:`choose_data_term`).
        Both have a closed-form gradient in ``Û``; autodiff runs only through ``Û(θ_up)``.

    Returns
    -------
    CollapsedTarget
        ``logdensity(position)`` (up to a constant), ``init(key)`` (an exact prior draw),
        ``order_parameter(position) = Û`` [D, D], ``n_dims``, ``dtype``, ``name``
        (``"collapsed"``), and the Gaussian prior apart: ``log_likelihood`` (the data term) and
        ``prior_std``.
    """
    dt = _check_inputs(problem, spec, dtype)
    n0 = problem.input_dim
    widths = spec.widths
    _, energy = _data_term(problem, spec, dt, data_term)
    std = prior_std_vector(spec, n0, dt)
    inv_var = 1.0 / std**2
    n_dims = int(std.shape[0])

    def op(position):
        return order_parameter(unravel(spec, n0, position), widths)

    def log_likelihood(position):
        U = op(position)
        return -0.5 * energy(0.5 * (U + U.T))

    def logdensity(position):
        return log_likelihood(position) - 0.5 * jnp.sum(inv_var * position**2)

    def init(key):
        return std * jax.random.normal(key, (n_dims,), dt)

    return CollapsedTarget(logdensity, init, op, n_dims, dt, "collapsed", log_likelihood, std)


def draw_input_projection(problem: KernelProblem, spec: ModelSpec, key, position):
    """Complete a collapsed draw into a full weight sample: an exact draw of ``V⁰ | θ_up, data``.

    Given the upper weights the network is linear in ``V⁰`` with a Gaussian prior, so the
    conditional is Gaussian (docs/theory.md §8.1); it is drawn exactly by the ``V0`` block
    update of :mod:`smtheory.sims.gibbs` (Matheron's rule, one ``P × P`` solve).  If the positions are
    draws of :func:`collapsed_target`, the results are draws of the full weight posterior.

    Parameters
    ----------
    problem : KernelProblem
    spec : ModelSpec
    key : PRNG key
    position : array [n_dims]
        One flat upper-weight position (float64 or float32; the draw has its dtype).

    Returns
    -------
    dict
        The full weight pytree ``{"V0": [N1, N0], "V": [...], "a": [N_a]}``.
    """
    position = jnp.asarray(position)
    dname = {jnp.dtype(jnp.float64): "float64", jnp.dtype(jnp.float32): "float32"}.get(position.dtype)
    if dname is None:
        raise InputError(f"position must be float64 or float32, got dtype {position.dtype}")
    posterior = make_posterior(problem, spec, dname)
    upper = unravel(spec, problem.input_dim, position)
    params = {"V0": jnp.zeros((spec.widths[0], problem.input_dim), position.dtype),
              "V": list(upper["V"]), "a": upper["a"]}
    return update_block(posterior, key, params, "V0")

