"""Finite-size scaling of the sampled order parameter against the saddle point (docs/theory.md §8.4).

The saddle point ``U_1*`` of docs/theory.md §3 is exact as N, P → ∞ at fixed ``α = P/N``; the
exact finite-N posterior of the order parameters (docs/theory.md §8.2) is sampled by the ``overlap``
sampler (NUTS on the Wishart hierarchy, cost independent of N).  docs/theory.md §8.4 predicts that
``|⟨U_1⟩ − U_1*|`` falls like ``1/N`` at fixed α, and faster at fixed P (the paper's protocol, where α
falls with N as well).  This module measures it on the hidden-Markov task (docs/theory.md §5):

1. **points** — for every ``(α, N)`` with ``P = αN`` (and every ``N`` of the fixed-P series) and every
   data seed: draw the data, solve and certify the saddle point (unconverged solves are flagged and
   excluded, never used), sample the exact posterior with ``overlap`` (4 chains, extended until
   R-hat ≤ 1.01 or ``max_steps``) and record the differences *sampled − theory*:

   - ``rel_max``  = ``max_ij |⟨U_1⟩ − U_1*|_ij / max_ij |U_1*|_ij`` (the largest entry, relative);
   - ``rel_frob`` = ``‖⟨U_1⟩ − U_1*‖_F / ‖U_1*‖_F``;
   - ``dacc``, ``dgen`` = sampled − theory test accuracy of the mean predictor and generalisation error
     (Rao-Blackwellised on the sampled side), with ``abs_dacc``, ``abs_dgen`` their magnitudes;

   each with its Monte-Carlo standard error (MCSE) propagated from the sampler's MCSEs (linearised;
   for ``rel_max`` the MCSE of the maximising entry).  The *noise floor* ``rel_frob_noise =
   √(Σ MCSE²)/‖U_1*‖_F`` is what ``rel_frob`` would read if the true difference were zero.
   Every point is one :class:`~smtheory.validation.engine.Task` of the experiment engine
   (:mod:`smtheory.validation.engine`), stored as one atomic JSON file ``OUT/tasks/fs-N{N}-P{P}-s{seed}-<hash>.json``
   (a point shared by two series, e.g. α = 1, N = 100 and P = 100, N = 100, is computed once); a rerun
   reuses a point only if its stored key (:func:`_point_key`: the configuration it depends on) equals
   the point's, so a changed configuration recomputes it and an interrupted run loses at most the points
   in progress.
2. **groups** — per series and N, the mean over data seeds of every quantity with its standard error
   (see :func:`group_statistics`: the spread over seeds, which already contains the Monte-Carlo error,
   floored by the pooled MCSE).  Points whose sampler missed R-hat ≤ 1.01 (or whose theory did not
   converge) are excluded and counted.
3. **fits** — the exponent γ of ``|Δ| ∝ N^(−γ)`` per series by weighted least squares on log–log with
   a 95 % interval (:func:`fit_power_law`).

:func:`run_finite_size` returns the results dict (also written as ``finite_size_results.json``);
:mod:`smtheory.validation.finite_size_figures` and :mod:`smtheory.validation.finite_size_report` turn it into a figure,
a Markdown section and a CSV.
"""
from __future__ import annotations

import dataclasses
import math
import os
import resource
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np

from smtheory.checks import MAX_WIDTH, InputError, integer, positive_int, seed as check_seed
from smtheory.records import RECORD_SCHEMA

__all__ = ["FiniteSizeConfig", "DEMO_FS", "FULL_FS", "QUANTITIES", "run_finite_size", "point_stage",
           "point_differences", "group_statistics", "fit_power_law", "fit_series"]

#: Version of the point format (part of every point's task key, with the record schema).
STAGE_VERSION = 1
#: Quantities averaged over seeds and fitted: relative max-entry and Frobenius ``|ΔU_1|``, ``|Δ accuracy|``,
#: ``|Δ generalisation error|``.  Signed ``dacc`` / ``dgen`` are averaged too (not fitted).
QUANTITIES = ("rel_max", "rel_frob", "abs_dacc", "abs_dgen")
_AVERAGED = QUANTITIES + ("dacc", "dgen", "rel_frob_noise")
#: The Monte-Carlo noise level each fitted quantity is compared with (see :func:`fit_series`).
NOISE = {"rel_max": "rel_max_noise", "rel_frob": "rel_frob_noise", "abs_dacc": "abs_dacc_mcse",
         "abs_dgen": "abs_dgen_mcse"}
#: Point statuses; only ``ok`` points enter averages and fits.
STATUSES = ("ok", "theory_unconverged", "sampler_unconverged", "sampler_error")


def _float_tuple(name, values, positive=True):
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if any(isinstance(v, (str, bytes, bool, np.bool_)) for v in values) or \
            not all(math.isfinite(v) and (v > 0 or not positive) for v in out):
        raise InputError(f"{name} must hold finite positive numbers, got {values!r}")
    return out


def _int_tuple(name, values, check):
    if isinstance(values, (str, bytes, int, float)):
        raise InputError(f"{name} must be a sequence of integers, got {values!r}")
    return tuple(sorted({check(name, v) for v in values}))


def _width(name, v):
    return integer(name, v, minimum=1, maximum=MAX_WIDTH)


@dataclass(frozen=True)
class FiniteSizeConfig:
    """Settings of the finite-size-scaling experiment (docs/theory.md §8.4).

    Parameters
    ----------
    paths : {4, 2}
        The 4-path network or the noisier 2-path network of docs/theory.md §5.
    alphas : tuple of float
        Load factors ``α = P/N`` of the fixed-α series.
    widths : tuple of int
        Widths N of the fixed-α series.  A point is run only where ``P = αN`` is an even integer
        (balanced classes) and at most ``max_train``; the others are listed as skipped.
    max_train : int
        Largest P of the fixed-α series (the per-point cost grows like P³: the P × P Cholesky
        inside NUTS).
    data_seeds : tuple of int
        Data draws; seed ``s`` draws the training set with ``s`` and the test set with ``s + 1``,
        so seeds must differ by at least 2.
    head_seed : int
        Seed of the random heads (the same network for every point).
    n_test : int
        Test sequences (even).
    temperature : float
        T (0.01 in the paper).
    chains, burnin, steps, max_steps, chunk : int
        ``overlap`` sampler settings (:class:`smtheory.sims.SampleConfig`): chains (≥ 2 for R-hat), adaptive
        warm-up (≥ 50), recorded draws, cap of the automatic extension, draws per compiled block.
    sample_seed : int
        The sampler of the point with data seed ``s`` uses seed ``sample_seed + s``.
    rhat_target : float
        R-hat every traced observable must meet for a point to count (1.01).
    fixed_train : int
        P of the fixed-P series (the paper's protocol, α = P/N falls with N); 0 turns it off.
    fixed_widths : tuple of int
        Widths of the fixed-P series.
    fit_min_width : int
        Smallest N entering the exponent fits (every N is still averaged and tabulated).
    fit_min_snr : float
        A width enters a fit only where the mean difference is at least ``fit_min_snr`` times its
        Monte-Carlo noise level (:data:`NOISE`); below it the measured ``|Δ|`` is dominated by sampling
        noise (a positive bias that flattens the fitted exponent).  0 keeps every width.
    """

    paths: int = 4
    alphas: tuple = (0.5, 1.0, 2.0)
    widths: tuple = (10, 20, 40, 80, 160, 320, 640, 1280)
    max_train: int = 1280
    data_seeds: tuple = (0, 2, 4, 6, 8)
    head_seed: int = 0
    n_test: int = 1000
    temperature: float = 0.01
    chains: int = 4
    burnin: int = 200
    steps: int = 400
    max_steps: int = 3200
    chunk: int = 100
    sample_seed: int = 0
    rhat_target: float = 1.01
    fixed_train: int = 100
    fixed_widths: tuple = (10, 30, 100, 300, 1000, 3000, 10000)
    fit_min_width: int = 1
    fit_min_snr: float = 2.0

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen: keep converted values)
        if self.paths not in (2, 4) or isinstance(self.paths, bool):
            raise InputError(f"paths must be 4 or 2 (the networks of docs/theory.md §5), got {self.paths!r}")
        alphas = _float_tuple("alphas", self.alphas)
        if not alphas or len(set(alphas)) != len(alphas):
            raise InputError(f"alphas must name at least one load factor, each once, got {self.alphas!r}")
        set_("alphas", tuple(sorted(alphas)))
        set_("widths", _int_tuple("widths", self.widths, _width))
        if not self.widths:
            raise InputError("widths must name at least one width")
        set_("max_train", positive_int("max_train", self.max_train))
        seeds = _int_tuple("data_seeds", self.data_seeds, lambda n, v: check_seed(n, v, span=2))
        if not seeds:
            raise InputError("data_seeds must name at least one seed")
        if any(s + 1 in seeds for s in seeds):
            raise InputError(f"data_seeds must differ by at least 2 (seed s draws the test set with s + 1), "
                             f"got {list(seeds)}")
        set_("data_seeds", seeds)
        set_("head_seed", check_seed("head_seed", self.head_seed))
        set_("n_test", positive_int("n_test", self.n_test))
        if self.n_test % 2:
            raise InputError(f"n_test must be even (balanced classes), got {self.n_test}")
        t = self.temperature
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            raise InputError(f"temperature must be a positive finite number, got {t!r}")
        self._check_sampler(set_)
        self._check_fixed(set_)
        set_("fit_min_width", positive_int("fit_min_width", self.fit_min_width))
        r = self.fit_min_snr
        if isinstance(r, (bool, np.bool_)) or not isinstance(r, (int, float)) or not math.isfinite(r) or r < 0:
            raise InputError(f"fit_min_snr must be a non-negative number, got {r!r}")
        if not any(p["series"] == "alpha" for p in self.points()):
            raise InputError("no (alpha, N) point has P = alpha*N an even integer <= max_train; "
                             "change alphas, widths or max_train")

    def _check_sampler(self, set_):
        chains = positive_int("chains", self.chains)
        if chains < 2:
            raise InputError(f"chains must be at least 2 (R-hat needs several chains), got {chains}")
        set_("chains", chains)
        set_("burnin", integer("burnin", self.burnin, minimum=50,
                               what="an integer >= 50 (the NUTS warm-up adapts step size and mass matrix)"))
        set_("steps", positive_int("steps", self.steps))
        set_("chunk", positive_int("chunk", self.chunk))
        set_("max_steps", positive_int("max_steps", self.max_steps))
        if self.max_steps < self.steps:
            raise InputError(f"max_steps ({self.max_steps}) must be at least steps ({self.steps})")
        set_("sample_seed", check_seed("sample_seed", self.sample_seed))
        if self.sample_seed + max(self.data_seeds) >= 2**32:
            raise InputError("sample_seed + max(data_seeds) must be below 2**32")
        r = self.rhat_target
        if isinstance(r, (bool, np.bool_)) or not isinstance(r, (int, float)) or not 1.0 < float(r) < 2.0:
            raise InputError(f"rhat_target must be a number in (1, 2), got {r!r}")

    def _check_fixed(self, set_):
        p = integer("fixed_train", self.fixed_train, minimum=0)
        if p % 2:
            raise InputError(f"fixed_train must be even (balanced classes) or 0 (off), got {p}")
        set_("fixed_train", p)
        set_("fixed_widths", _int_tuple("fixed_widths", self.fixed_widths, _width))
        if p and not self.fixed_widths:
            raise InputError("fixed_widths must name at least one width when fixed_train > 0")

    # ------------------------------------------------------------------ the grid
    def points(self):
        """Every point to run: dicts ``series`` ("alpha" or "fixed"), ``alpha``, ``N``, ``P``, ``seed``."""
        out = []
        for a in self.alphas:
            for n in self.widths:
                P = _train_size(a, n)
                if P is not None and P <= self.max_train:
                    out += [dict(series="alpha", alpha=a, N=n, P=P, seed=s) for s in self.data_seeds]
        if self.fixed_train:
            for n in self.fixed_widths:
                out += [dict(series="fixed", alpha=self.fixed_train / n, N=n, P=self.fixed_train, seed=s)
                        for s in self.data_seeds]
        return out

    def skipped(self):
        """The ``(α, N)`` pairs of the grid not run, with the reason."""
        out = []
        for a in self.alphas:
            for n in self.widths:
                P = _train_size(a, n)
                if P is None:
                    out.append(dict(alpha=a, N=n, reason=f"alpha*N = {a * n:g} is not an even integer"))
                elif P > self.max_train:
                    out.append(dict(alpha=a, N=n, reason=f"P = {P} > max_train = {self.max_train}"))
        return out

    def to_dict(self):
        d = dataclasses.asdict(self)
        for k in ("alphas", "widths", "data_seeds", "fixed_widths"):
            d[k] = list(d[k])
        return d

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def _train_size(alpha, n):
    """``P = αN`` if it is an even integer ≥ 2 (to 1e-9), else None."""
    P = alpha * n
    k = round(P)
    return int(k) if abs(P - k) <= 1e-9 * max(1.0, P) and k >= 2 and k % 2 == 0 else None


#: The demo (``smtheory demo``): α ∈ {0.5, 1, 2} at N ∈ {20, 50, 100} while P = αN is even and ≤ 100
#: (7 points) and the fixed-P series P = 100 at N ∈ {10, 100, 1000} (N = P = 100 is shared: 9 points in
#: all) for THREE data seeds, 0, 2 and 4 (the full experiment has 5; 27 points); 200 test sequences; short chains
#: (warm-up 100, 200 draws, extended up to 800).  With ``workers=2`` about 3 minutes on 2 free cores
#: (docs/validation.md).
DEMO_FS = FiniteSizeConfig(alphas=(0.5, 1.0, 2.0), widths=(20, 50, 100), max_train=100, data_seeds=(0, 2, 4),
                           n_test=200,
                           burnin=100, steps=200, max_steps=800, fixed_train=100, fixed_widths=(10, 100, 1000))

#: The full experiment: 5 data seeds, α ∈ {0.5, 1, 2} at N ∈ {20, 80, 320, 1280} while P ≤ 640 (so N
#: up to 1280 at α = 0.5, 320 at α = 1 and α = 2), 1000 test sequences, warm-up 200 + 400 draws
#: (extended up to 1600); fixed-P series P = 100 at N = 10, 30, 100, …, 10000.  85 points; the ten at
#: P = 640 dominate (the P × P Cholesky inside NUTS).  Sized to about an hour of 2 free cores.
FULL_FS = FiniteSizeConfig(widths=(20, 80, 320, 1280), max_train=640, max_steps=1600)


# ----------------------------------------------------------------------------- tasks


def _provenance(config):
    from smtheory.io import git_commit, versions

    return dict(config=config.to_dict(), versions=versions(), commit=git_commit(),
                seeds=dict(data_seeds=list(config.data_seeds), head_seed=config.head_seed,
                           sample_seed=config.sample_seed))


def _point_key(config, N, P, seed):
    """What a point depends on: the key of its task (a stored point is reused only when it matches)."""
    d = config.to_dict()
    keep = ("paths", "head_seed", "n_test", "temperature", "chains", "burnin", "steps", "max_steps", "chunk",
            "sample_seed", "rhat_target")
    return dict({k: d[k] for k in keep}, N=int(N), P=int(P), seed=int(seed), version=STAGE_VERSION,
                record_schema=RECORD_SCHEMA)


def _point_task(config, N, P, seed):
    """The task of one point: :func:`_compute_point`, label ``fs-N100-P100-s0``, cost ∝ P³ (largest first)."""
    from .engine import Task

    return Task(key=_point_key(config, N, P, seed), fn=_compute_point, args=(config, N, P, seed),
                label=f"fs-N{N}-P{P}-s{seed}", cost=float(P) ** 3)


def _store(out_dir):
    """The task store of the experiment: ``OUT/tasks/``."""
    from .engine import TaskStore

    return TaskStore(os.path.join(out_dir, "tasks"))


def _log(progress, message):
    if progress:
        print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- one point


def _problem(config, P, seed):
    from smtheory.tasks import markov

    return markov.markov_problem(config.paths, P, config.n_test, seed=seed, head_seed=config.head_seed)


def _spec(config, problem, N):
    import smtheory

    return smtheory.ModelSpec(heads=problem.heads, widths=N, temperature=config.temperature, readout="last")


def _solve_theory(problem, spec):
    """Certified saddle point: a direct solve from the GP value, else a continuation down to N.

    Returns the solve record (:meth:`smtheory.solvers.numeric.SaddlePointResult.to_record`) merged with the
    predictor statistics (:meth:`smtheory.predictor.PredictorStats.to_record`: ``test_accuracy``,
    ``generalization_error``, …; None when the solve is not certified), plus ``route`` ("direct" or
    "continuation") and ``time``; ``converged`` is False when neither route certifies a minimum.
    """
    import smtheory
    import smtheory.solvers

    t0 = time.perf_counter()
    res, route = smtheory.solvers.solve(problem, spec), "direct"
    N = max(spec.widths)
    if not res.converged:
        grid = sorted({min(N * f, MAX_WIDTH) for f in (1, 4, 16, 64, 256)}, reverse=True)
        res, route = smtheory.solvers.continuation(problem, spec, widths=grid)[-1], "continuation"
    out = dict(res.to_record(), route=route, test_accuracy=None, generalization_error=None)
    if res.converged:
        out.update(smtheory.predictor_statistics(problem, spec, res.U1).to_record())
    out["time"] = time.perf_counter() - t0
    return out


def _sample(config, problem, spec, seed):
    """The ``overlap`` run of one point as a JSON-ready dict (``error`` set on a SamplingError)."""
    import smtheory.sims

    cfg = smtheory.sims.SampleConfig(sampler="overlap", chains=config.chains, steps=config.steps, burnin=config.burnin,
                            seed=config.sample_seed + seed, chunk=config.chunk, max_steps=config.max_steps,
                            rhat_target=config.rhat_target)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence is judged from rhat_max and flagged
            r = smtheory.sims.sample(problem, spec, cfg, progress=False)
    except smtheory.sims.SamplingError as exc:
        return dict(error=str(exc), converged=False, wall_time=time.perf_counter() - t0)
    f = lambda v: float(v) if v is not None and math.isfinite(float(v)) else None  # noqa: E731
    return dict(U1_sampled=np.asarray(r.U1_sampled).tolist(), U1_mcse=np.asarray(r.U1_mcse).tolist(),
                test_accuracy=f(r.test_accuracy), test_accuracy_mcse=f(r.test_accuracy_mcse),
                generalization_error=f(r.generalization_error),
                generalization_error_mcse=f(r.generalization_error_mcse),
                rhat_max=f(r.rhat_max), ess_min=f(r.ess_min), converged=bool(r.converged),
                extensions=int(r.extensions), steps=int(r.config.steps), run_time=f(r.run_time),
                compile_time=f(r.compile_time), wall_time=time.perf_counter() - t0)


def point_differences(theory, sampled):
    """Sampled-minus-theory differences at one point, with their Monte-Carlo standard errors.

    Parameters
    ----------
    theory : dict
        ``U1`` (the saddle point), ``test_accuracy``, ``generalization_error`` (the record of
        :func:`_solve_theory`).
    sampled : dict
        ``U1_sampled``, ``U1_mcse``, ``test_accuracy`` (+ ``_mcse``), ``generalization_error`` (+ ``_mcse``).

    Returns
    -------
    dict
        For each of ``rel_max``, ``rel_frob``, ``dacc``, ``dgen``, ``abs_dacc``, ``abs_dgen`` a value and
        ``<name>_mcse``; ``rel_frob_noise`` (the Frobenius noise floor ``√(Σ MCSE²)/‖U_1*‖_F``) and
        ``rel_max_noise`` (``max MCSE / max|U_1*|``).  See docs/theory.md §8.4.

    Notes
    -----
    Off-diagonal entries of the symmetric U_1 appear twice in the Frobenius norm with the *same*
    Monte-Carlo error, so the linearised MCSE of ``‖ΔU‖_F`` sums the independent entries (i ≤ j) with
    weight 2 off the diagonal.  MCSEs of different entries are treated as independent.
    """
    Ut = np.asarray(theory["U1"], dtype=float)
    Us = np.asarray(sampled["U1_sampled"], dtype=float)
    Se = np.nan_to_num(np.asarray(sampled["U1_mcse"], dtype=float), nan=0.0)
    d = Us - Ut
    scale_max, scale_f = float(np.max(np.abs(Ut))), float(np.linalg.norm(Ut))
    i, j = np.unravel_index(np.argmax(np.abs(d)), d.shape)
    norm_d = float(np.linalg.norm(d))
    iu = np.triu_indices(d.shape[0])
    w = np.where(iu[0] == iu[1], 1.0, 2.0)
    noise = float(np.sqrt(np.sum(Se ** 2)))
    frob_se = float(np.sqrt(np.sum((w * d[iu] * Se[iu]) ** 2))) / norm_d if norm_d > 0 else noise
    out = dict(rel_max=float(np.abs(d[i, j])) / scale_max, rel_max_mcse=float(Se[i, j]) / scale_max,
               rel_frob=norm_d / scale_f, rel_frob_mcse=frob_se / scale_f,
               rel_frob_noise=noise / scale_f, rel_frob_noise_mcse=0.0,
               rel_max_noise=float(np.max(Se)) / scale_max, argmax_entry=[int(i), int(j)])
    for name, th, sa, se in (("dacc", "test_accuracy", "test_accuracy", "test_accuracy_mcse"),
                             ("dgen", "generalization_error", "generalization_error", "generalization_error_mcse")):
        delta = _num(sampled.get(sa)) - _num(theory.get(th))
        mc = _num(sampled.get(se))
        out.update({name: delta, f"{name}_mcse": mc, f"abs_{name}": abs(delta), f"abs_{name}_mcse": mc})
    return out


def _num(v):
    """``v`` as a float (None, as JSON writes a non-finite number, becomes NaN)."""
    return float("nan") if v is None else float(v)


def _status(theory, sampled):
    if not theory["converged"]:
        return "theory_unconverged"
    if sampled is None or sampled.get("error"):
        return "sampler_error"
    return "ok" if sampled["converged"] else "sampler_unconverged"


def _compute_point(config, N, P, seed):
    """Run one point (no file I/O): theory, sampling, differences, timings."""
    t0, c0 = time.perf_counter(), time.process_time()
    problem = _problem(config, P, seed)
    spec = _spec(config, problem, N)
    theory = _solve_theory(problem, spec)
    sampled = _sample(config, problem, spec, seed) if theory["converged"] else None
    status = _status(theory, sampled)
    diff = point_differences(theory, sampled) if sampled is not None and not sampled.get("error") and \
        theory["converged"] else None
    return dict(N=int(N), P=int(P), alpha=P / N, seed=int(seed), status=status, theory=theory, sampled=sampled,
                diff=diff, wall_time=time.perf_counter() - t0, cpu_time=time.process_time() - c0)


def _describe(point, rhat_target):
    """The progress line of a computed point (as stored: a non-finite number reads back as None)."""
    head = f"N={point['N']:>5} P={point['P']:>4} seed={point['seed']}"
    if point["status"] == "theory_unconverged":
        return f"{head}: theory NOT converged ({point['theory']['message']}); point excluded"
    s = point["sampled"]
    if point["status"] == "sampler_error":
        return f"{head}: sampler error ({s['error']}); point excluded"
    d = {k: _num(v) for k, v in point["diff"].items() if k != "argmax_entry"}
    flag = "" if point["status"] == "ok" else f"; R-hat above {rhat_target}: EXCLUDED"
    return (f"{head}: R-hat {_num(s['rhat_max']):.4f} ESS {_num(s['ess_min']):.0f} ({s['steps']} draws); rel max |dU1| "
            f"{d['rel_max']:.4f} +- {d['rel_max_mcse']:.4f}, Frobenius {d['rel_frob']:.4f}; dacc {d['dacc']:+.4f}, "
            f"dgen {d['dgen']:+.4f} ({point['wall_time']:.0f} s wall, {point['cpu_time']:.0f} s CPU){flag}")


def _reporter(config, progress):
    """``on_done`` of the point tasks: one progress line per computed point."""
    def report(task, point):
        if progress and point is not None:
            _log(progress, "[finite-size] " + _describe(point, config.rhat_target))
    return report


def point_stage(config, out_dir, N, P, seed, progress=True):
    """One point (α = P/N, data seed), computed in this process or reused.

    The point is a task of :mod:`smtheory.validation.engine` stored in ``OUT/tasks/``; a stored point is
    reused only if its key (:func:`_point_key`) equals this one's.

    Parameters
    ----------
    config : FiniteSizeConfig
    out_dir : str
    N, P, seed : int
        Width, training-set size and data seed.
    progress : bool

    Returns
    -------
    dict
        ``N``, ``P``, ``alpha``, ``seed``, ``status`` (one of :data:`STATUSES`), ``theory`` (the record of
        the saddle point and its predictor statistics), ``sampled``, ``diff`` (:func:`point_differences`,
        None when the theory failed), timings, as stored, and ``reused`` (bool) (docs/theory.md §8.4).
    """
    from .engine import run_tasks

    task = _point_task(config, N, P, seed)
    run = run_tasks([task], _store(out_dir), on_done=_reporter(config, progress))
    return dict(run.results[task.id], reused=run.computed == 0)


# ----------------------------------------------------------------------------- averages and fits


def group_statistics(points):
    """Mean over data seeds of every quantity at one (series, N), with standard errors.

    Parameters
    ----------
    points : list of dict
        Point stages of one group (:func:`point_stage`); only ``status == "ok"`` points are used.

    Returns
    -------
    dict
        ``n`` (usable seeds), ``excluded`` (counts per status), ``rhat_max`` (largest over the used
        points), ``ess_min`` and, per quantity ``q`` of :data:`QUANTITIES` (and ``dacc``, ``dgen``,
        ``rel_frob_noise``), ``q`` (the mean) and ``q_se``.

    Notes
    -----
    The standard error is ``√max(s²/n, Σ_i MCSE_i²/n²)``: ``s`` is the spread over the n data seeds,
    which already contains each point's Monte-Carlo error (draws and chains are independent across
    seeds); the pooled MCSE ``√(Σ MCSE²)/n`` is a floor used when it is larger — always when n = 1,
    and when a few seeds happen to agree more closely than the sampling noise allows
    (docs/theory.md §8.4).
    """
    ok = [p for p in points if p["status"] == "ok"]
    excluded = {s: sum(p["status"] == s for p in points) for s in STATUSES if s != "ok"}
    out = dict(n=len(ok), seeds=[p["seed"] for p in ok], excluded=excluded,
               rhat_max=max((p["sampled"]["rhat_max"] for p in ok), default=None),
               ess_min=min((p["sampled"]["ess_min"] for p in ok), default=None))
    for q in _AVERAGED:
        x = np.array([p["diff"][q] for p in ok], dtype=float)
        m = np.nan_to_num(np.array([p["diff"][f"{q}_mcse"] for p in ok], dtype=float), nan=0.0)
        if x.size == 0:
            out[q], out[f"{q}_se"] = None, None
            continue
        spread = float(np.var(x, ddof=1)) / x.size if x.size > 1 else 0.0
        out[q] = float(np.mean(x))
        out[f"{q}_se"] = math.sqrt(max(spread, float(np.sum(m ** 2)) / x.size ** 2))
    for q, noise in NOISE.items():
        v = [p["diff"][noise] for p in ok if p["diff"].get(noise) is not None]
        out[f"{q}_noise"] = float(np.mean(v)) if v else None
    return out


def fit_power_law(N, y, se, level=0.95):
    """Fit ``y = A N^(−γ)`` by weighted least squares on ``log y = log A − γ log N``.

    Parameters
    ----------
    N, y, se : array-like
        Widths, positive values and their standard errors (points with ``y ≤ 0``, ``se ≤ 0`` or
        non-finite entries are dropped; the log-scale error is ``se / y``).
    level : float
        Confidence level of the interval.

    Returns
    -------
    dict
        ``gamma``, ``gamma_se``, ``ci`` ([low, high]), ``amplitude`` (A), ``chi2_red``, ``n``, ``dof``,
        ``widths`` (the N used), ``level``; ``gamma`` None when fewer than 2 points remain, ``ci`` None
        when fewer than 3 (docs/theory.md §8.4).

    Notes
    -----
    Weights ``1/σ_i²`` with ``σ_i = se_i/y_i``.  The covariance ``(XᵀWX)⁻¹`` is scaled by the reduced
    χ² of the fit (the errors are treated as known up to a common factor, as with
    ``scipy.optimize.curve_fit(absolute_sigma=False)``) and the interval uses Student's t with
    ``n − 2`` degrees of freedom, so its coverage is exact for Gaussian log-errors of the given
    relative sizes.
    """
    from scipy import stats

    N, y, se = (np.asarray(v, dtype=float).ravel() for v in (N, y, se))
    if not (N.shape == y.shape == se.shape):
        raise InputError(f"N, y and se must have the same length, got {N.size}, {y.size}, {se.size}")
    if not 0 < level < 1:
        raise InputError(f"level must be in (0, 1), got {level!r}")
    keep = np.isfinite(N) & np.isfinite(y) & np.isfinite(se) & (N > 0) & (y > 0) & (se > 0)
    N, y, se = N[keep], y[keep], se[keep]
    out = dict(gamma=None, gamma_se=None, ci=None, amplitude=None, chi2_red=None, n=int(N.size),
               dof=int(max(N.size - 2, 0)), widths=N.astype(int).tolist(), level=level)
    if N.size < 2 or np.unique(N).size < 2:
        return out
    X = np.column_stack([np.ones_like(N), -np.log(N)])
    w = (y / se) ** 2
    A = X.T @ (w[:, None] * X)
    beta = np.linalg.solve(A, X.T @ (w * np.log(y)))
    out.update(gamma=float(beta[1]), amplitude=float(np.exp(beta[0])))
    if N.size < 3:
        return out
    r = np.log(y) - X @ beta
    chi2_red = float(np.sum(w * r ** 2)) / (N.size - 2)
    se_g = math.sqrt(float(np.linalg.inv(A)[1, 1]) * chi2_red)
    half = float(stats.t.ppf(0.5 + level / 2, N.size - 2)) * se_g
    out.update(gamma_se=se_g, ci=[float(beta[1] - half), float(beta[1] + half)], chi2_red=chi2_red)
    return out


def fit_series(groups, min_width=1, min_snr=2.0, level=0.95):
    """Exponent fits of every quantity of :data:`QUANTITIES` over the groups of one series.

    Parameters
    ----------
    groups : list of dict
        Group rows (``N`` plus the :func:`group_statistics` fields) of one series.
    min_width : int
        Groups with a smaller N are left out of the fit.
    min_snr : float
        Groups whose mean ``q`` is below ``min_snr`` times its noise level ``q_noise`` are left out
        (listed as ``noise_limited``).
    level : float

    Returns
    -------
    dict
        Quantity → :func:`fit_power_law` result plus ``noise_limited`` (the widths left out as
        noise-dominated); ``n_groups_excluded`` (groups without a usable point) (docs/theory.md §8.4).
    """
    out = {}
    for q in QUANTITIES:
        use, noisy = [], []
        for g in groups:
            if g["N"] < min_width or g["n"] == 0 or g[q] is None:
                continue
            if g.get(f"{q}_noise") is not None and g[q] < min_snr * g[f"{q}_noise"]:
                noisy.append(g["N"])
            else:
                use.append(g)
        fit = fit_power_law([g["N"] for g in use], [g[q] for g in use], [g[f"{q}_se"] for g in use], level)
        out[q] = dict(fit, noise_limited=sorted(noisy))
    out["n_groups_excluded"] = sum(1 for g in groups if g["n"] == 0)
    return out


# ----------------------------------------------------------------------------- driver


def _children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


#: Points of the same P share the solver's and sampler's compiled functions (their shapes depend on P
#: only), so on a process pool a job is a batch of up to this many same-P points, run one after another
#: in one worker (each point is still its own task in the store).  One job per point lets two workers
#: compile the same P at once: on a reduced demo (``DEMO_FS`` with 100 test sequences and 100 draws,
#: 2 workers) it took about 20 % more wall and CPU time (docs/validation.md).
BATCH = 5


def _compute_batch(config, batch):  # runs in a spawned worker
    """The points of one batch, in order (:func:`_compute_point`)."""
    return [_compute_point(config, *t) for t in batch]


def _batches(pending):
    """Pending points grouped by P (largest P first), in chunks of at most :data:`BATCH`."""
    out = []
    for P in sorted({t[1] for t in pending}, reverse=True):
        same = sorted((t for t in pending if t[1] == P), key=lambda t: (-t[0], t[2]))
        out += [same[i:i + BATCH] for i in range(0, len(same), BATCH)]
    return out


def _run_pool(config, store, tasks, batches, workers, report):
    """The batches on a pool of ``workers`` processes (largest P first); every point is stored, as its own
    task, when its batch returns."""
    from .engine import make_executor

    with make_executor("process", workers=workers) as executor:
        for i, ok, value in executor.imap_unordered([(_compute_batch, (config, b)) for b in batches]):
            if not ok:
                raise value
            points, provenance = value
            for t, point in zip(batches[i], points):
                report(tasks[t], store.save(tasks[t], point, dict(provenance, wall_time=point["wall_time"])))


def _run_points(config, out_dir, todo, workers, progress):
    """Every point of ``todo``: reused, or computed largest P first — in batches of the same P on a process
    pool when ``workers`` > 1 and there is more than one batch, else one task after another here.

    Returns ``({(N, P, seed): point}, pending)``.
    """
    from .engine import run_tasks

    store, report = _store(out_dir), _reporter(config, progress)
    tasks = {t: _point_task(config, *t) for t in sorted(todo, key=lambda t: (-t[1], -t[0], t[2]))}
    pending = [t for t, task in tasks.items() if not store.is_done(task)]
    _log(progress, f"[finite-size] {len(todo)} points ({len(todo) - len(pending)} on disk, {len(pending)} to run, "
                   f"{workers} worker(s))")
    batches = _batches(pending)
    if workers > 1 and len(batches) > 1:
        _run_pool(config, store, tasks, batches, min(workers, len(batches)), report)
    run = run_tasks(list(tasks.values()), store, on_done=report)  # the rest here; every point as stored
    return {t: run.results[task.id] for t, task in tasks.items()}, pending


def _groups(config, stages):
    rows = []
    for series, params in (("alpha", config.alphas), ("fixed", (config.fixed_train,) if config.fixed_train else ())):
        for a in params:
            for n in (config.widths if series == "alpha" else config.fixed_widths):
                P = _train_size(a, n) if series == "alpha" else config.fixed_train
                if P is None or (series == "alpha" and P > config.max_train):
                    continue
                pts = [stages[(n, P, s)] for s in config.data_seeds]
                rows.append(dict(series=series, alpha=a if series == "alpha" else P / n, N=n, P=P,
                                 **group_statistics(pts)))
    return rows


def _fits(config, groups):
    fits = {"alpha": {}, "fixed": None}
    for a in config.alphas:
        rows = [g for g in groups if g["series"] == "alpha" and g["alpha"] == a]
        fits["alpha"][f"{a:g}"] = fit_series(rows, config.fit_min_width, config.fit_min_snr)
    if config.fixed_train:
        fits["fixed"] = fit_series([g for g in groups if g["series"] == "fixed"], config.fit_min_width,
                                   config.fit_min_snr)
    return fits


def run_finite_size(config: FiniteSizeConfig = DEMO_FS, out_dir="smtheory-finite-size", *, progress=True,
                    workers=1):
    """Run (or resume) the finite-size-scaling experiment of docs/theory.md §8.4.

    Parameters
    ----------
    config : FiniteSizeConfig
        :data:`DEMO_FS` (default, about 3 minutes on 2 cores) or :data:`FULL_FS`, or your own.
    out_dir : str
        Folder (created if missing) of the point tasks (``OUT/tasks/``, one JSON file per point; a point is
        reused when its stored key — the configuration it depends on — matches) and
        ``OUT/finite_size_results.json``.
    progress : bool
        One line per computed point on standard error.
    workers : int
        Processes for the points (1: all in this process; 2 uses both cores of a 2-core machine).
        The workers are spawned, so a calling script must guard its entry point with
        ``if __name__ == "__main__":``.

    Returns
    -------
    dict
        ``points`` (every unique point, with ``status``, ``theory``, ``sampled``, ``diff``), ``groups``
        (per series and N: :func:`group_statistics` plus ``series``, ``alpha``, ``N``, ``P``), ``fits``
        (``{"alpha": {α: fit_series}, "fixed": fit_series}``), ``skipped`` (grid pairs not run),
        ``excluded`` (point counts per status), ``computed`` / ``reused`` (points this run computed /
        took from the task store), ``wall_time`` and ``cpu_time`` (this process and its workers),
        ``point_cpu_time`` / ``points_cpu_time`` (CPU time of the points computed now / of all points,
        as recorded in their tasks), provenance.
    """
    from smtheory.compile_cache import enable_compilation_cache
    from smtheory.io import write_json_atomic

    if not isinstance(config, FiniteSizeConfig):
        raise InputError("config must be a smtheory.validation.finite_size.FiniteSizeConfig")
    workers = positive_int("workers", workers)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputError(f"out_dir {out_dir!r} exists and is not a folder")
    os.makedirs(out_dir, exist_ok=True)
    enable_compilation_cache()
    t0, c0, cc0 = time.perf_counter(), time.process_time(), _children_cpu()
    todo = sorted({(p["N"], p["P"], p["seed"]) for p in config.points()})
    stages, pending = _run_points(config, out_dir, todo, workers, progress)
    groups = _groups(config, stages)
    statuses = [p["status"] for p in stages.values()]
    results = dict(_provenance(config), name=f"finite_size_markov{config.paths}",
                   points=[dict(stages[t], reused=t not in pending) for t in todo], groups=groups,
                   fits=_fits(config, groups),
                   skipped=config.skipped(), excluded={s: statuses.count(s) for s in STATUSES if s != "ok"},
                   computed=len(pending), reused=len(todo) - len(pending),
                   point_cpu_time=sum(stages[t]["cpu_time"] for t in pending),
                   points_cpu_time=sum(stages[t]["cpu_time"] for t in todo),
                   wall_time=time.perf_counter() - t0,
                   cpu_time=time.process_time() - c0 + _children_cpu() - cc0)
    write_json_atomic(os.path.join(out_dir, "finite_size_results.json"), results)
    return results
