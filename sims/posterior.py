"""The weight posterior of docs/theory.md §1 as pure JAX functions over a weight pytree.

Weights are the dict pytree of :mod:`smtheory.network`::

    {"V0": [N1, N0], "V": [[H_1, N2, N1], ..., [H_L, N_a, N_L]], "a": [N_a]}

(the sampler position; the model functions of :mod:`smtheory.path_model` read it as a
:class:`~smtheory.path_model.PathWeights`).  A dict is kept as the position type because the
key splits of :meth:`Posterior.init` and the raveled noise of the samplers follow its leaf order.

The posterior at temperature T is::

    p(θ | data) ∝ exp(−(1/2T) Σ_μ (f(x^μ) − y^μ)² − Σ_blocks |θ_b|² / (2 σ_b²)),

and the network output is evaluated in path form (docs/theory.md §2),
``f(x) = (D N1 N0)^{-1/2} Σ_π w_π^T V⁰ ξ^π(x)`` (:func:`smtheory.path_model.output`), from
precomputed raw path features ``ξ`` of shape ``[P, D, N0]`` — never by the layer-by-layer forward pass.

Energy convention: :meth:`Posterior.potential` is ``−log p`` up to a constant,
``U(θ) = (1/2T) Σ (f − y)² + Σ |θ_b|²/(2σ_b²)``.  The Langevin equation of issue 3,
``dθ = −∇E dt + √(2T) dW`` with ``E = T·U``, has the same stationary law ``∝ exp(−U)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from smtheory.checks import InputError
from smtheory.model import ModelSpec
from smtheory import path_model
from smtheory.problem import KernelProblem


def weight_shapes(spec: ModelSpec, n0: int):
    """Shapes of the weight pytree for a model and input width."""
    N = spec.widths
    V = [(h, N[l + 1], N[l]) for l, h in enumerate(spec.heads)]
    return {"V0": (N[0], n0), "V": V, "a": (N[-1],)}


def prior_stds(spec: ModelSpec, n0: int):
    """Pytree of prior standard deviations σ_b (one scalar per block, broadcast)."""
    var = spec.variances
    return {"V0": math.sqrt(var[0]), "V": [math.sqrt(var[l + 1]) for l in range(spec.n_layers)],
            "a": math.sqrt(var[-1])}


@dataclass(frozen=True)
class Posterior:
    """Posterior of the weights given training path features (docs/theory.md §1, §4).

    Build it with :func:`make_posterior`.  All methods are pure and jit-able.

    Attributes
    ----------
    spec : ModelSpec
    xi : jax array [P, D, N0]   raw training path features
    y : jax array [P]
    dtype : jnp.float64 or jnp.float32
    """

    spec: ModelSpec
    xi: jax.Array
    y: jax.Array
    dtype: object = jnp.float64

    @property
    def n0(self):
        return int(self.xi.shape[2])

    @property
    def temperature(self):
        return self.spec.temperature

    def output(self, params, xi=None):
        """``f`` on the training set (or on raw features ``xi``): :func:`smtheory.path_model.output`."""
        xi = self.xi if xi is None else xi
        return path_model.output(params, xi)

    def train_energy(self, params):
        """``(1/2) Σ_μ (f(x^μ) − y^μ)²`` (the data term times T)."""
        r = self.output(params) - self.y
        return 0.5 * jnp.dot(r, r)

    def prior_energy(self, params):
        """``Σ_b |θ_b|²/(2σ_b²)``."""
        stds = prior_stds(self.spec, self.n0)
        terms = jax.tree_util.tree_map(lambda p, s: jnp.sum(p**2) / (2 * s**2), params, stds)
        return sum(jax.tree_util.tree_leaves(terms))

    def potential(self, params):
        """``U(θ) = −log p(θ | data) + const``."""
        return self.train_energy(params) / self.temperature + self.prior_energy(params)

    def logdensity(self, params):
        """``log p(θ | data)`` up to a constant (BlackJAX / NumPyro convention)."""
        return -self.potential(params)

    def init(self, key):
        """A draw from the prior (a reasonable, over-dispersed chain start)."""
        shapes = weight_shapes(self.spec, self.n0)
        stds = prior_stds(self.spec, self.n0)
        leaves, tree = jax.tree_util.tree_flatten(shapes, is_leaf=lambda s: isinstance(s, tuple))
        keys = jax.random.split(key, len(leaves))
        std_leaves = jax.tree_util.tree_leaves(stds)
        draws = [s * jax.random.normal(k, shape, dtype=self.dtype) for k, shape, s in zip(keys, leaves, std_leaves)]
        return jax.tree_util.tree_unflatten(tree, draws)

    def order_parameter(self, params):
        """Sampled ``U_1 = (1/N1) w_π · w_π'`` of one weight sample (docs/theory.md §3).

        :func:`smtheory.path_model.order_parameter` of ``params``.
        """
        return path_model.order_parameter(params)


def make_posterior(problem: KernelProblem, spec: ModelSpec, dtype="float64") -> Posterior:
    """The posterior of the weights for a kernel problem's training set.

    Parameters
    ----------
    problem : KernelProblem
    spec : ModelSpec
    dtype : {"float64", "float32"}
    """
    problem.check_spec(spec)
    if dtype not in ("float64", "float32"):
        raise InputError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    dt = jnp.float64 if dtype == "float64" else jnp.float32
    return Posterior(spec, jnp.asarray(problem.xi_train, dtype=dt), jnp.asarray(problem.y_train, dtype=dt), dt)


def test_features(problem: KernelProblem, dtype=jnp.float64):
    """Raw test path features as a JAX array."""
    if problem.xi_test is None:
        raise InputError("this problem has no test set (give x_test and y_test)")
    return jnp.asarray(np.asarray(problem.xi_test), dtype=dtype)
