"""The scaled action ``S(θ)/scale`` whose value, gradient, Hessian and Hessian-vector products share one
Cholesky factor of ``T I + K`` per point (docs/theory.md §3).

``S(θ) = S_prior(U(θ)) + E(U_1(θ))`` in the log-Cholesky parameters θ (:mod:`.parameterization`).  The
prior part is small (matrices of size ``D``) and differentiated by JAX; the energy ``E`` and its
derivatives come from :mod:`smtheory.energy_factor`: the value from ``L`` (one kernel and one
factorisation), the gradient ``Φ`` from ``X = L⁻¹ Ξ`` of the same factor, and second derivatives by the
chain rule

    ∇²S = ∇²_θ [S_prior(U(θ)) + ⟨Φ, U_1(θ)⟩]|_{Φ fixed} + J_1ᵀ H_E J_1,        J_1 = ∂ vec U_1 / ∂θ,

with ``H_E`` the closed-form energy Hessian (dense) or its products with a direction (Hessian-vector
products).  A line search asks only for values; the gradient and the Hessian at an accepted point reuse
its factor (:class:`FactoredObjective` keeps the last one).
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from smtheory import energy_factor as ef
from smtheory.action import ActionConstants, prior_action

from . import parameterization as par


def _sizes(heads):
    return tuple(int(np.prod(heads[l:])) for l in range(len(heads)))


def _unpacker(entries):
    return par.unpack_entries if entries else par.unpack


def _linear_part(x, phi, c, entries):
    """``S_prior(U(x)) + ⟨Φ, U_1(x)⟩``: the action with the energy replaced by its tangent plane at Φ."""
    Us = _unpacker(entries)(x, _sizes(c.heads))
    return prior_action(Us, c) + jnp.sum(phi * Us[0])


@partial(jax.jit, static_argnames=("heads", "entries"))
def _u1(x, heads, entries=False):
    return _unpacker(entries)(x, _sizes(heads))[0]


@partial(jax.jit, static_argnames=("entries",))
def _prior_value(x, c, entries=False):
    return prior_action(_unpacker(entries)(x, _sizes(c.heads)), c)


@partial(jax.jit, static_argnames=("entries",))
def _grad(x, phi, c, entries=False):
    return jax.grad(_linear_part)(x, phi, c, entries)


@partial(jax.jit, static_argnames=("entries",))
def _small_hessian(x, phi, c, entries=False):
    """Prior Hessian plus the curvature ``Σ Φ_ab ∇² U_1,ab`` (all of ∇²S but ``J_1ᵀ H_E J_1``)."""
    H = jax.hessian(_linear_part)(x, phi, c, entries)
    return 0.5 * (H + H.T)


@partial(jax.jit, static_argnames=("heads", "entries"))
def _u1_jacobian(x, heads, entries=False):
    D = _sizes(heads)[0]
    return jax.jacfwd(lambda t: _unpacker(entries)(t, _sizes(heads))[0].reshape(D * D))(x)


@partial(jax.jit, static_argnames=("entries",))
def _full_hessian(x, phi, X, beta, c, entries=False):
    J = _u1_jacobian(x, c.heads, entries)
    H = _small_hessian(x, phi, c, entries) + J.T @ ef.dense_hessian(X, beta) @ J
    return 0.5 * (H + H.T)


@partial(jax.jit, static_argnames=("entries",))
def _hvp(x, v, phi, X, Xt, beta, c, entries=False):
    small = jax.jvp(lambda t: jax.grad(_linear_part)(t, phi, c, entries), (x,), (v,))[1]
    dU = jax.jvp(lambda t: _u1(t, c.heads, entries), (x,), (v,))[1]
    back = jax.vjp(lambda t: _u1(t, c.heads, entries), x)[1]
    return small + back(ef.hvp(X, Xt, beta, 0.5 * (dU + dU.T)))[0]


class FactoredObjective:
    """``x ↦ S/scale`` in θ (``entries=False``) or in the independent entries of the ``U_ℓ`` (``True``).

    Parameters
    ----------
    data : smtheory.energy_factor.EnergyData
    c : ActionConstants
    scale : float
        Positive divisor of the action (it does not move the minimiser, docs/theory.md §3).
    entries : bool

    Attributes
    ----------
    n_factor, n_gradient, n_hessian, n_hvp : int
        How many factorisations, gradients, dense Hessians and Hessian-vector products were computed.
    """

    def __init__(self, data, c: ActionConstants, scale, entries=False):
        self.data, self.c, self.scale, self.entries = data, c, float(scale), bool(entries)
        self.n_factor = self.n_gradient = self.n_hessian = self.n_hvp = 0
        self._point = self._factor = self._grad = None

    def _at(self, x):
        x = np.asarray(x, dtype=np.float64)
        if self._point is None or not np.array_equal(x, self._point):
            xj = jnp.asarray(x)
            L, a, energy = ef.factor(_u1(xj, self.c.heads, self.entries), self.data, self.c.temperature)
            self.n_factor += 1
            value = float(_prior_value(xj, self.c, self.entries)) + float(energy)
            self._point, self._factor, self._grad = x.copy(), (L, a, value), None
        return self._factor

    def value(self, x):
        """``S(x)/scale`` (``inf`` where not finite); one kernel and one factorisation."""
        v = self._at(x)[2] / self.scale
        return v if np.isfinite(v) else np.inf

    def solved(self, x):
        """``(Φ, X, X_t, β)`` at ``x`` (:func:`smtheory.energy_factor.gradient`), from the factor of ``x``."""
        L, a, _ = self._at(x)
        if self._grad is None:
            self._grad = ef.gradient(L, a, self.data)
            self.n_gradient += 1
        return self._grad

    def gradient(self, x):
        """``∇S(x)/scale`` as a NumPy array."""
        phi = self.solved(x)[0]
        return np.asarray(_grad(jnp.asarray(x, dtype=jnp.float64), phi, self.c, self.entries)) / self.scale

    def value_and_gradient(self, x):
        v = self.value(x)
        return v, (self.gradient(x) if np.isfinite(v) else np.zeros_like(np.asarray(x, dtype=np.float64)))

    def hessian(self, x):
        """The exact dense Hessian ``∇²S(x)/scale`` (needs the closed-form ``[D², D²]`` energy Hessian)."""
        phi, X, _, beta = self.solved(x)
        self.n_hessian += 1
        return np.asarray(_full_hessian(jnp.asarray(x, dtype=jnp.float64), phi, X, beta, self.c, self.entries)) \
            / self.scale

    def hessian_without_energy(self, x):
        """``∇²S/scale`` without ``J_1ᵀ H_E J_1`` (the prior Hessian and the curvature term; cheap)."""
        phi = self.solved(x)[0]
        return np.asarray(_small_hessian(jnp.asarray(x, dtype=jnp.float64), phi, self.c, self.entries)) / self.scale

    def energy_hessian(self, x):
        """The closed-form energy Hessian ``H_E / scale`` in the full entries of ``U_1`` (``[D², D²]``)."""
        _, X, _, beta = self.solved(x)
        self.n_hessian += 1
        return np.asarray(ef.dense_hessian(X, beta)) / self.scale

    def u1_and_phi(self, x):
        """``vec U_1(x)`` and ``vec Φ(x) / scale`` (a secant pair's ingredients)."""
        phi = self.solved(x)[0]
        u1 = _u1(jnp.asarray(x, dtype=jnp.float64), self.c.heads, self.entries)
        return np.asarray(u1).ravel(), np.asarray(phi).ravel() / self.scale

    def u1_jacobian(self, x):
        """``J_1 = ∂ vec U_1 / ∂x`` (``[D², n]``)."""
        return np.asarray(_u1_jacobian(jnp.asarray(x, dtype=jnp.float64), self.c.heads, self.entries))

    def hvp(self, x, v):
        """``∇²S(x) v / scale`` (``4 P² D N0`` flops for the energy part)."""
        phi, X, Xt, beta = self.solved(x)
        self.n_hvp += 1
        out = _hvp(jnp.asarray(x, dtype=jnp.float64), jnp.asarray(v, dtype=jnp.float64), phi, X, Xt, beta, self.c,
                   self.entries)
        return np.asarray(out) / self.scale
