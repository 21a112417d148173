"""The solver path for large training sets: one Cholesky factorisation per iteration (docs/theory.md §3).

:func:`solve_scaled` minimises the action with :func:`.factored_newton.minimise` on
:class:`.factored_objective.FactoredObjective` and certifies the result with
:func:`.certificate.certificate_fields`.  The energy route (:func:`smtheory.energy_factor.choose_route`) is
``"blocks"`` (the ``D(D+1)/2`` path-pair blocks formed once) when its working set fits ``memory_budget``
and ``"factored"`` otherwise; a problem whose factored working set, ``O(P² + P D N0)``, exceeds the budget is
refused with an :class:`~smtheory.checks.InputError` that names it.  :func:`smtheory.solvers.solve` calls
this path for ``method="scaled"`` and, with ``method="auto"``, from :data:`SCALED_MIN_P` training examples on.
"""
from __future__ import annotations

import contextlib
import time

import jax.numpy as jnp
import numpy as np

from smtheory.action import ActionConstants
from smtheory.checks import DEFAULT_MEMORY_BUDGET, integer
from smtheory.compile_timer import CompileClock, compile_seconds
from smtheory.energy_factor import choose_route, energy_data, route_nbytes
from smtheory.pair_blocks import n_pairs

from .certificate import certificate_fields
from .factored_newton import choose_hessian, minimise
from .factored_objective import FactoredObjective

__all__ = ["SCALED_MIN_P", "DENSE_ENTRIES_MAX", "GRAM_BYTES_MAX", "scaled_plan", "solve_scaled"]

#: ``solve(method="auto")`` takes this path from this many training examples on.
SCALED_MIN_P = 500
#: Entries of ``U_1`` up to which the closed-form (dense) energy Hessian is formed (``D(D+1)/2``).
DENSE_ENTRIES_MAX = 600
#: Largest ``(D N0)²`` Gram matrix (bytes) of the dense energy Hessian.
GRAM_BYTES_MAX = 512 * 2**20


def _partial_sizes(heads):
    return [int(np.prod(heads[l:])) for l in range(len(heads))]


def scaled_plan(P, D, N0, memory_budget=None, route="auto", hessian="auto", heads=None):
    """The route, curvature mode and memory of a scaled solve, decided before anything is built.

    Parameters
    ----------
    P, D, N0 : int
        Training examples, paths and input width.
    memory_budget : int, optional
        Bytes (default :data:`smtheory.checks.DEFAULT_MEMORY_BUDGET`, 8 GiB).
    route : {"auto", "blocks", "factored"}
    hessian : {"auto", "newton", "secant", "newton-cg"}
    heads : tuple of int, optional
        Heads per layer (for the size of the parameter vector; default: ``U_1`` only).

    Returns
    -------
    dict
        ``route``, ``hessian``, ``dense`` (the dense energy Hessian is formed), ``memory_budget`` and
        ``estimated_bytes`` (working set of the route, the parameter-space Hessians and ``J_1``, plus the Gram
        matrix when dense) and ``route_bytes`` (what each route needs without the Gram matrix: the blocks are
        used when ``route_bytes["blocks"]`` fits the budget).

    Raises
    ------
    InputError
        Bad ``memory_budget``, ``route`` or ``hessian``, or a working set over the budget (named in the message).
    """
    budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else integer("memory_budget", memory_budget, minimum=1)
    n = sum(n_pairs(d) for d in _partial_sizes(heads)) if heads else n_pairs(D)
    params = 8 * (4 * n * n + D * D * n)  # parameter-space Hessians and eigenvectors, J_1
    route = choose_route(route, P, D, N0, budget, params)
    gram = 8 * (D * N0) ** 2 if P >= N0 else 8 * D * D * P * P
    estimate = route_nbytes(route, P, D, N0) + params
    dense = n_pairs(D) <= DENSE_ENTRIES_MAX and gram <= GRAM_BYTES_MAX and estimate + gram <= budget
    mode = choose_hessian(hessian, P, D, N0, route, dense)
    return dict(route=route, hessian=mode, dense=dense, memory_budget=budget,
                estimated_bytes=estimate + (gram if dense else 0),
                route_bytes={r: route_nbytes(r, P, D, N0) + params for r in ("blocks", "factored")})


def solve_scaled(problem, spec, theta0, tol, max_iter, memory_budget=None, route="auto", hessian="auto"):
    """Minimise and certify on one factorisation per iteration; returns the fields of a ``SaddlePointResult``.

    Parameters
    ----------
    problem : KernelProblem
    spec : ModelSpec
    theta0 : ndarray
        Initial log-Cholesky parameters.
    tol, max_iter : as in :func:`smtheory.solvers.solve`
    memory_budget, route, hessian : see :func:`scaled_plan`

    Returns
    -------
    dict
        The :class:`~smtheory.solvers.numeric.SaddlePointResult` fields but ``spec`` and ``theta``, plus
        ``theta``, ``route`` and ``profile``; ``solve_time`` includes forming the blocks and excludes JIT
        compilation (``profile`` gives the seconds of each phase, compilation apart).
    """
    xi = jnp.asarray(problem.scaled_train(spec))
    P, D, N0 = xi.shape
    plan = scaled_plan(P, D, N0, memory_budget, route, hessian, tuple(spec.heads))
    c = ActionConstants.from_spec(spec)
    clock, wall = CompileClock(), _PhaseClock()
    with clock:
        with wall("setup"):
            data = energy_data(xi, problem.y_train, plan["route"], plan["memory_budget"])
            data.xi.block_until_ready()
        obj = FactoredObjective(data, c, float(max(spec.widths) + problem.n_train))
        with wall("optimise"):
            theta, n_iter, opt_message = minimise(obj, theta0, max_iter, plan["hessian"])
        entries = FactoredObjective(data, c, 1.0, entries=True)
        with wall("certificate"):
            cert = certificate_fields(theta, spec.partial_paths, entries, c, tol, opt_message, plan["dense"])
    profile = dict(wall.seconds, factorisations=obj.n_factor, gradients=obj.n_gradient,
                   hessians=obj.n_hessian, hvps=obj.n_hvp, certificate_factorisations=entries.n_factor,
                   certificate_hvps=cert.pop("n_hessian_products"), estimated_bytes=plan["estimated_bytes"],
                   memory_budget=plan["memory_budget"])
    return dict(cert, iterations=n_iter, n_evaluations=obj.n_factor,
                solve_time=sum(v for k, v in wall.seconds.items() if k != "compile"), compile_time=clock.seconds,
                method=f"scaled-{plan['hessian']}", route=plan["route"], theta=np.asarray(theta), profile=profile)


class _PhaseClock:
    """Seconds per named phase, JIT compilation excluded: ``with clock("name"): ...`` adds to
    ``clock.seconds["name"]`` (compilation inside the phase goes to ``clock.seconds["compile"]``)."""

    def __init__(self):
        self.seconds = {}

    @contextlib.contextmanager
    def __call__(self, name):
        t0, c0 = time.perf_counter(), compile_seconds()
        try:
            yield
        finally:
            compiled = compile_seconds() - c0
            for key, value in ((name, max(0.0, time.perf_counter() - t0 - compiled)), ("compile", compiled)):
                self.seconds[key] = self.seconds.get(key, 0.0) + value
