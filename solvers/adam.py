"""The authors' optimisation protocol, as a reference baseline.

Adam (learning rate 0.1) on the raw order-parameter matrices, symmetrised as
``U = (M + M^T)/2``, on the action divided by the largest width, stopped when
``max |∂S/∂M| < 1e-5`` or after 50 000 steps, in float64.  Nothing keeps the ``U_ℓ``
positive definite: a step that leaves the domain makes the action NaN, which is
reported.  The whole loop is one jitted ``lax.while_loop`` so that the comparison
with :func:`smtheory.solvers.numeric.solve` measures the method, not Python overhead.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from smtheory.action import ActionConstants, action
from smtheory.model import ModelSpec
from smtheory.problem import KernelProblem


@dataclass
class AdamResult:
    U: list
    action: float
    max_abs_grad: float
    steps: int
    time: float
    converged: bool

    @property
    def U1(self):
        return self.U[0]


def _loss(Ms, xi, y, c, scale):
    Us = [0.5 * (M + M.T) for M in Ms]
    return action(Us, xi, y, c) / scale


def _make_runner(lr):
    opt = optax.adam(lr)

    @jax.jit
    def run(Ms, xi, y, c, scale, gtol, max_steps):
        grad_fn = jax.grad(_loss)

        def cond(state):
            Ms, s, k, gmax = state
            return (k < max_steps) & (gmax >= gtol) & jnp.isfinite(gmax)

        def body(state):
            Ms, s, k, _ = state
            g = grad_fn(Ms, xi, y, c, scale)
            gmax = jnp.max(jnp.stack([jnp.max(jnp.abs(x)) for x in g]))
            upd, s = opt.update(g, s, Ms)
            Ms_new = optax.apply_updates(Ms, upd)
            # do not step once converged: keep the iterate whose gradient passed the test
            done = gmax < gtol
            Ms_new = jax.tree_util.tree_map(lambda a, b: jnp.where(done, a, b), Ms, Ms_new)
            return Ms_new, s, k + jnp.where(done, 0, 1), gmax

        init = (Ms, opt.init(Ms), jnp.asarray(0), jnp.asarray(1e300))
        return jax.lax.while_loop(cond, body, init)

    return run


_RUNNERS = {}


def solve_adam(problem: KernelProblem, spec: ModelSpec, init=None, *, lr=0.1, gtol=1e-5, max_steps=50_000):
    """Run the authors' protocol; returns :class:`AdamResult` (time excludes JIT compilation)."""
    xi = jnp.asarray(problem.scaled_train(spec))
    y = jnp.asarray(problem.y_train)
    c = ActionConstants.from_spec(spec)
    scale = float(max(spec.widths))
    if init is None:
        Ms = [jnp.asarray(U) for U in spec.gp_order_parameters()[0]]
    else:
        Ms = [jnp.asarray(U) for U in (init.U if hasattr(init, "U") else init)]
    run = _RUNNERS.setdefault(lr, _make_runner(lr))
    # compile with a 1-step budget, then time the real run
    jax.block_until_ready(run(Ms, xi, y, c, scale, gtol, 1))
    t0 = time.perf_counter()
    Ms_out, _, steps, gmax = jax.block_until_ready(run(Ms, xi, y, c, scale, gtol, max_steps))
    elapsed = time.perf_counter() - t0
    Us = [np.asarray(0.5 * (M + M.T)) for M in Ms_out]
    S = float(action([jnp.asarray(U) for U in Us], xi, y, c))
    gmax = float(gmax)
    return AdamResult(U=Us, action=S, max_abs_grad=gmax, steps=int(steps), time=elapsed,
                      converged=bool(np.isfinite(S) and gmax < gtol))
