"""Theory versus sampling on the hidden-Markov task (docs/theory.md §5, validated as in §4).

The experiment of the paper's first figure, as one seeded, resumable driver:

1. **theory** — the saddle point of docs/theory.md §3 at every width of the grid, warm-started along the
   grid (:func:`smtheory.solvers.numeric.continuation`), each point certified (residuals, Hessian); predictor
   statistics on the test set (docs/theory.md §3 "Metrics");
2. **GP baselines** — the infinite-width kernel of the whole network and of the sub-networks named in
   docs/theory.md §5 (path g alone, g + d);
3. **kernels** — the path-pair kernels, the GP and the renormalised kernels on a class-sorted subset
   of the training set, and the kernel–task alignment of the top principal components (docs/theory.md §3);
4. **sampling** — the exact finite-N posterior of the order parameters at the chosen widths with the
   ``overlap`` sampler (NUTS on the Wishart hierarchy, docs/theory.md §8.2; cost independent of N;
   Rao-Blackwellised predictor §8.3), 4 chains by default, and — as the weight-space cross-check —
   exact blocked Gibbs on all weights at the ``gibbs_check`` widths; a run whose R-hat exceeds the
   target is *extended* (the same chains continue, :func:`smtheory.sims.run.sample` doubles ``steps``) up to
   ``max_extensions`` times, and the result says honestly whether the target was met;
5. **comparison** — per sampled width, ``|theory − sampled|`` in units of the Monte-Carlo standard
   error for the accuracy, the generalisation error and every entry of U_1; at the Gibbs widths also
   Gibbs versus overlap (z with both MCSEs).

Every stage is a :class:`~smtheory.validation.engine.Task` of the experiment engine
(:mod:`smtheory.validation.engine`): its result is one atomic JSON file in ``OUT/tasks/`` (with its key —
the part of the configuration it depends on, including the record schema — and the versions and commit),
and a rerun reuses a stage only if the stored key equals its key, so a changed configuration recomputes
it; an interrupted sampling stage continues from its checkpoint in ``OUT/checkpoints/``.
:func:`run_markov` returns the assembled results dict (also written as ``OUT/markov<paths>_results.json``);
:mod:`smtheory.validation.markov_figures` and :mod:`smtheory.validation.markov_report` turn it into
figures and a Markdown report.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np

from smtheory.checks import InputError, positive_int
from smtheory.records import RECORD_SCHEMA

__all__ = ["MarkovConfig", "DEMO", "FULL", "run_markov", "run_experiments", "sample_stage", "compare_width",
           "compare_samplers"]


@dataclass(frozen=True)
class MarkovConfig:
    """Settings of the Markov theory-versus-sampling experiment (docs/theory.md §5 protocol by default).

    Parameters
    ----------
    paths : {4, 2}
        The 4-path network or the noisier 2-path network of docs/theory.md §5.
    n_train, n_test : int
        P training and test sequences (balanced; even).
    data_seed, head_seed : int
        Seeds of the data (train uses ``data_seed``, test ``data_seed + 1``) and of the random heads.
    temperature : float
        T (0.01 in the paper).
    widths : tuple of int
        Theory grid of equal widths N.
    sampling : tuple of (N, burnin, steps)
        Widths to sample with ``sampler`` and the initial transitions for each (warm-up / burn-in,
        then recorded transitions).
    sampler : str
        ``"overlap"`` (default; exact order-parameter posterior), ``"langevin"`` or ``"gibbs"``.
    gibbs_check : tuple of (N, burnin, steps)
        Widths also sampled with exact Gibbs on all weights (the weight-space cross-check).
    chains : int
        Independent chains per width (≥ 4 for R-hat).
    sample_seed : int
        Seed of the sampler.
    rhat_target : float
        R-hat required of every traced observable (U_1 entries, train energy, test MSE).
    max_extensions : int
        How many times a run that misses the target is extended (steps doubled each time).
    chunk : int
        Draws per compiled block / checkpoint (also the batch unit of the accuracy's jackknife error).
    kernel_examples : int
        Class-sorted training examples shown in the kernel figures.
    alignment_top : int
        Principal components in the kernel–task alignment.
    """

    paths: int = 4
    n_train: int = 100
    n_test: int = 1000
    data_seed: int = 0
    head_seed: int = 0
    temperature: float = 0.01
    widths: tuple = (10, 30, 50, 100, 300, 500, 1000)
    sampling: tuple = tuple((n, 300, 400) for n in (10, 30, 50, 100, 300, 500, 1000))
    sampler: str = "overlap"
    gibbs_check: tuple = ((10, 1000, 6000),)
    chains: int = 4
    sample_seed: int = 0
    rhat_target: float = 1.01
    max_extensions: int = 2
    chunk: int = 100
    kernel_examples: int = 40
    alignment_top: int = 30

    def __post_init__(self):
        if self.paths not in (2, 4):
            raise InputError(f"paths must be 4 or 2 (the networks of docs/theory.md §5), got {self.paths!r}")
        for name in ("n_train", "n_test"):
            v = positive_int(name, getattr(self, name))
            if v % 2:
                raise InputError(f"{name} must be even (balanced classes), got {v}")
        positive_int("chains", self.chains)
        positive_int("chunk", self.chunk)
        positive_int("kernel_examples", self.kernel_examples)
        positive_int("alignment_top", self.alignment_top)
        if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature)
                and self.temperature > 0):
            raise InputError(f"temperature must be a positive finite number, got {self.temperature!r}")
        if not self.widths:
            raise InputError("widths must name at least one width")
        object.__setattr__(self, "widths", tuple(sorted({positive_int("widths", w) for w in self.widths})))
        object.__setattr__(self, "sampling", _plan("sampling", self.sampling))
        object.__setattr__(self, "gibbs_check", _plan("gibbs_check", self.gibbs_check))
        from smtheory.sims.config import SAMPLERS

        if self.sampler not in SAMPLERS:
            raise InputError(f"sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if not (self.rhat_target > 1.0):
            raise InputError(f"rhat_target must be > 1, got {self.rhat_target!r}")
        if not isinstance(self.max_extensions, (int, np.integer)) or self.max_extensions < 0:
            raise InputError(f"max_extensions must be a non-negative integer, got {self.max_extensions!r}")
        if self.kernel_examples > self.n_train:
            raise InputError(f"kernel_examples ({self.kernel_examples}) must be at most n_train ({self.n_train})")

    @property
    def sample_widths(self):
        return tuple(p[0] for p in self.sampling)

    @property
    def gibbs_widths(self):
        return tuple(p[0] for p in self.gibbs_check)

    def plan(self, width, kind="sample"):
        """``(burnin, steps)`` of a sampled width (``kind`` "sample" or "gibbs")."""
        for n, b, st in (self.sampling if kind == "sample" else self.gibbs_check):
            if n == width:
                return b, st
        widths = self.sample_widths if kind == "sample" else self.gibbs_widths
        raise InputError(f"width {width} is not among the {kind} widths {list(widths)}")

    def sampler_of(self, kind):
        return self.sampler if kind == "sample" else "gibbs"

    @property
    def theory_widths(self):
        """The theory grid, with every sampled width included."""
        return tuple(sorted(set(self.widths) | set(self.sample_widths) | set(self.gibbs_widths)))

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["widths"] = list(d["widths"])
        d["sampling"] = [list(p) for p in d["sampling"]]
        d["gibbs_check"] = [list(p) for p in d["gibbs_check"]]
        return d

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def _plan(name, items):
    """Validated, sorted ``(N, burnin, steps)`` triples."""
    plan = []
    for item in items:
        if len(item) != 3:
            raise InputError(f"{name} entries must be (N, burnin, steps), got {item!r}")
        n, b, s = item
        positive_int(f"{name} width N", n)
        positive_int(f"{name} steps", s)
        if not isinstance(b, (int, np.integer)) or b < 0:
            raise InputError(f"{name} burn-in must be a non-negative integer, got {b!r}")
        plan.append((int(n), int(b), int(s)))
    if len({p[0] for p in plan}) != len(plan):
        raise InputError(f"{name} names a width twice")
    return tuple(sorted(plan))


#: ``smtheory demo``: the paper's protocol for the theory (P = 100, 1000 test sequences, all widths),
#: the exact order-parameter posterior (``overlap`` sampler) at every width N = 10 … 1000 of both networks,
#: and exact Gibbs on all weights at N = 10 as the weight-space cross-check; sized to finish within
#: 10 minutes on 2 CPU cores (see docs/validation.md for the measured time).
DEMO = {
    4: MarkovConfig(paths=4),
    2: MarkovConfig(paths=2, gibbs_check=((10, 1000, 4000),)),
}

#: ``smtheory compare markov --full``: paper scale plus N = 3000 and 10 000, longer chains, Gibbs at
#: N = 10, 30 and 100 (about an hour on 2 cores).
_FULL_SAMPLING = tuple((n, 1000, 4000) for n in (10, 30, 50, 100, 300, 500, 1000, 3000, 10000))
FULL = {
    4: MarkovConfig(paths=4, widths=(10, 30, 50, 100, 300, 500, 1000, 3000, 10000), sampling=_FULL_SAMPLING,
                    gibbs_check=((10, 2000, 16000), (30, 1000, 6000), (100, 500, 3000)), max_extensions=3),
    2: MarkovConfig(paths=2, widths=(10, 30, 50, 100, 300, 500, 1000, 3000, 10000), sampling=_FULL_SAMPLING,
                    gibbs_check=((10, 2000, 12000), (30, 1000, 6000), (100, 500, 3000)), max_extensions=3),
}


# ----------------------------------------------------------------------------- provenance / files


def _provenance(config):
    from smtheory.io import git_commit, versions

    return dict(config=config.to_dict(), versions=versions(), commit=git_commit(),
                seeds=dict(data_seed=config.data_seed, head_seed=config.head_seed, sample_seed=config.sample_seed))


def _stage_key(config, stage, width=None):
    """The part of the configuration a stage depends on: the key of its task (reused only if it matches)."""
    d = config.to_dict()
    common = {k: d[k] for k in ("paths", "n_train", "n_test", "data_seed", "head_seed", "temperature")}
    common["record_schema"] = RECORD_SCHEMA
    if stage == "theory":
        return dict(common, widths=list(config.theory_widths))
    if stage == "kernels":
        return dict(common, widths=list(config.theory_widths), kernel_examples=config.kernel_examples,
                    alignment_top=config.alignment_top)
    if stage in ("sample", "gibbs"):
        burnin, steps = config.plan(width, stage)
        return dict(common, width=width, burnin=burnin, steps=steps, chains=config.chains,
                    sampler=config.sampler_of(stage),
                    sample_seed=config.sample_seed, rhat_target=config.rhat_target,
                    max_extensions=config.max_extensions, chunk=config.chunk)
    raise ValueError(stage)


def _tag(config):
    return f"markov{config.paths}"


def _store(out_dir):
    """The task store of the experiment: ``OUT/tasks/``."""
    from .engine import TaskStore

    return TaskStore(os.path.join(out_dir, "tasks"))


def _log(progress, message):
    if progress:
        print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- stages


def _problem(config):
    from smtheory.tasks import markov

    return markov.markov_problem(config.paths, config.n_train, config.n_test, seed=config.data_seed,
                                 head_seed=config.head_seed)


def _spec(config, problem, width):
    from smtheory.model import ModelSpec

    return ModelSpec(heads=problem.heads, widths=width, temperature=config.temperature, readout="last")


def _theory_stage(config, problem, progress):
    from smtheory.solvers.numeric import continuation
    from smtheory.predictor import predictor_statistics

    spec = _spec(config, problem, config.theory_widths[0])
    t0 = time.perf_counter()

    def report(i, n, res):
        flag = "converged" if res.converged else "NOT CONVERGED"
        _log(progress, f"  theory N={max(res.spec.widths):>5}: {flag}, max residual {res.max_residual:.1e}, "
                       f"min Hessian eigenvalue {res.hessian_min_eig:.2e}")

    results = continuation(problem, spec, widths=list(config.theory_widths), progress=report)
    rows = []
    for w, res in zip(config.theory_widths, results):
        stats = predictor_statistics(problem, res.spec, res.U1)
        rows.append({"width": w, **res.to_record(), **stats.to_record()})
    gp = {}
    from smtheory.paths import subnetwork_paths
    from smtheory.tasks import markov

    subnets = {"all": None}
    subnets.update({k: subnetwork_paths(problem.heads, v) for k, v in markov.SUBNETWORKS[config.paths].items()
                    if k != "all"})
    for name, paths in subnets.items():
        stats = predictor_statistics(problem, spec, gp=True, subnetwork=paths)
        gp[name] = dict(paths=None if paths is None else [int(p) for p in paths], **stats.to_record())
        _log(progress, f"  GP({name}): accuracy {stats.accuracy:.3f}, generalisation error "
                       f"{stats.generalization_error:.4f}")
    return dict(theory=rows, gp=gp, time=time.perf_counter() - t0)


def _class_sorted_subset(y, n):
    """``n`` training indices, half per class, class +1 first (for the kernel figures)."""
    y = np.asarray(y)
    pos, neg = np.where(y > 0)[0], np.where(y < 0)[0]
    k = n // 2
    return np.concatenate([pos[:n - k], neg[:k]])


def _kernel_stage(config, problem, theory_rows):
    from smtheory.kernels import path_pair_kernels, renormalized_kernel
    from smtheory.predictor import kernel_task_alignment

    spec = _spec(config, problem, config.theory_widths[0])
    xi = np.asarray(problem.scaled_train(spec))
    idx = _class_sorted_subset(problem.y_train, config.kernel_examples)
    sub = xi[idx]
    C = np.asarray(path_pair_kernels(sub))  # [D, D, n, n]
    U_gp = spec.gp_u1_scale() * np.eye(problem.n_paths)
    small = theory_rows[0]  # smallest width
    U_small = np.asarray(small["U1"])
    K_gp = np.asarray(renormalized_kernel(sub, U_gp))
    K_ren = np.asarray(renormalized_kernel(sub, U_small))
    top = min(config.alignment_top, problem.n_train)
    al_gp, ev_gp = kernel_task_alignment(xi, np.asarray(problem.y_train), U_gp, top=top)
    al_ren, ev_ren = kernel_task_alignment(xi, np.asarray(problem.y_train), U_small, top=top)
    return dict(indices=idx.tolist(), labels=np.asarray(problem.y_train)[idx].tolist(),
                path_pair=C.tolist(), gp=K_gp.tolist(), renormalized=K_ren.tolist(), renormalized_width=small["width"],
                alignment=dict(gp=np.asarray(al_gp).tolist(), renormalized=np.asarray(al_ren).tolist(),
                               eigenvalues_gp=np.asarray(ev_gp).tolist(),
                               eigenvalues_renormalized=np.asarray(ev_ren).tolist(),
                               width=small["width"]))


def _sample_width(config, problem, width, kind, ckpt_dir, progress):
    """One sampling run (``kind`` "sample": ``config.sampler``; "gibbs": the weight-space check)."""
    from smtheory.sims.run import SampleConfig, sample

    burnin, steps = config.plan(width, kind)
    spec = _spec(config, problem, width)
    sampler = config.sampler_of(kind)
    ck = os.path.join(ckpt_dir, f"markov{config.paths}_{kind}_N{width}.npz")
    cfg = SampleConfig(sampler=sampler, chains=config.chains, steps=steps, burnin=burnin, seed=config.sample_seed,
                       chunk=min(config.chunk, steps), max_steps=steps * 2**config.max_extensions,
                       rhat_target=config.rhat_target)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence is judged below and reported
        try:
            res = sample(problem, spec, cfg, checkpoint=ck, resume=os.path.exists(ck), progress=progress)
        except InputError:  # a checkpoint of another configuration or version: start afresh
            os.unlink(ck)
            res = sample(problem, spec, cfg, checkpoint=ck, progress=progress)
    _log(progress, f"  {sampler} N={width:>5}: {config.chains} chains x {res.config.steps} steps "
                   f"({res.extensions} extension(s)), R-hat max {res.rhat_max:.4f}, ESS min {res.ess_min:.0f}")
    out = res.to_record(traces=False)
    out.pop("spec", None)
    out["sample_config"] = out.pop("config")  # "config" is the experiment's (provenance)
    out.update(width=width, sampler=sampler, wall_time=time.perf_counter() - t0)
    return out


def compare_width(theory_row, sampled):
    """``|theory − sampled|`` and the same in units of the Monte-Carlo error, at one width.

    Parameters
    ----------
    theory_row : dict
        A row of the theory stage (``U1``, ``test_accuracy``, ``generalization_error``).
    sampled : dict
        A sampling result (:meth:`smtheory.sims.run.SampleResult.to_dict` fields).

    Returns
    -------
    dict
        ``accuracy``, ``generalization_error``: ``{"theory", "sampled", "mcse", "abs_diff", "z"}``;
        ``U1``: the same with [D, D] lists; ``max_abs_z_U1``.  ``z = |Δ| / MCSE``; for the accuracy NaN when its
        MCSE is below half a test point (``sampled`` holding ``predictor_mean``, one value per test point): then it
        only says that no prediction changed sign between batches, and a z against it is meaningless (infinite for a
        one-point difference).
    """
    out = {}
    n_test = int(np.size(sampled.get("predictor_mean", [])))
    for key, mc in (("accuracy", "test_accuracy_mcse"), ("generalization_error", "generalization_error_mcse")):
        th = float(theory_row["test_accuracy" if key == "accuracy" else key])
        sa = float(sampled["test_accuracy" if key == "accuracy" else key])
        se = float(sampled[mc])
        d = abs(th - sa)
        unresolved = key == "accuracy" and n_test > 0 and not se >= 0.5 / n_test  # NaN compares False
        out[key] = dict(theory=th, sampled=sa, mcse=se, abs_diff=d, z=float("nan") if unresolved else _z(d, se))
    Ut, Us = np.asarray(theory_row["U1"], float), np.asarray(sampled["U1_sampled"], float)
    Se = np.asarray(np.where(np.equal(sampled["U1_mcse"], None), np.nan, sampled["U1_mcse"]), float)
    d = np.abs(Ut - Us)
    z = np.vectorize(_z)(d, Se)
    out["U1"] = dict(theory=Ut.tolist(), sampled=Us.tolist(), mcse=Se.tolist(), abs_diff=d.tolist(), z=z.tolist())
    out["max_abs_z_U1"] = float(np.nanmax(z)) if np.any(np.isfinite(z)) else float("nan")
    return out


def _z(d, se):
    """``|Δ| / MCSE``; 0 when both vanish (equal to resolution), NaN when the MCSE is unknown."""
    if se is None or not np.isfinite(se):
        return float("nan")
    if se > 0:
        return float(d / se)
    return 0.0 if d == 0 else float("inf")


def compare_samplers(a, b):
    """Two samplers of the same posterior (e.g. Gibbs vs overlap): ``z = |Δ| / √(MCSE_a² + MCSE_b²)``."""
    out = {}
    for key, mc in (("test_accuracy", "test_accuracy_mcse"), ("generalization_error", "generalization_error_mcse")):
        d = abs(float(a[key]) - float(b[key]))
        se = math.hypot(float(a[mc] or 0.0), float(b[mc] or 0.0))
        out[key] = dict(a=float(a[key]), b=float(b[key]), abs_diff=d, z=_z(d, se))
    Ua, Ub = np.asarray(a["U1_sampled"], float), np.asarray(b["U1_sampled"], float)
    se = np.hypot(np.asarray(a["U1_mcse"], float), np.asarray(b["U1_mcse"], float))
    z = np.vectorize(_z)(np.abs(Ua - Ub), se)
    out["U1"] = dict(a=Ua.tolist(), b=Ub.tolist(), z=z.tolist())
    out["max_abs_z_U1"] = float(np.nanmax(z))
    return out


# ----------------------------------------------------------------------------- driver


def _check_out(out_dir):
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputError(f"out_dir {out_dir!r} exists and is not a folder")
    os.makedirs(os.path.join(out_dir, "checkpoints"), exist_ok=True)


def _inline(store, task, progress, computing=None, name=None):
    """Run one task in this process, or reuse its stored result; logs ``computing`` before computing it,
    ``"<name>: reusing <task file>"`` when reusing it (nothing where None)."""
    from .engine import run_tasks

    if store.is_done(task):
        computing = f"{name}: reusing {store.path(task)}" if name else None
    if computing:
        _log(progress, computing)
    return run_tasks([task], store).results[task.id]


def _prepare(config, store, progress):
    """Data, theory and kernel tasks (computed in this process or reused); returns (problem, theory, kernels)."""
    from .engine import Task

    tag = _tag(config)
    _log(progress, f"[{tag}] data: P={config.n_train}, {config.n_test} test sequences, seeds "
                   f"data={config.data_seed} heads={config.head_seed}")
    problem = _problem(config)
    task = Task(key=_stage_key(config, "theory"), fn=_theory_stage, args=(config, problem, progress),
                label=f"{tag}-theory")
    theory = _inline(store, task, progress,
                     computing=f"[{tag}] theory over N = {list(config.theory_widths)} (continuation, certified)",
                     name=f"[{tag}] theory")
    task = Task(key=_stage_key(config, "kernels"), fn=_kernel_stage, args=(config, problem, theory["theory"]),
                label=f"{tag}-kernels")
    return problem, theory, _inline(store, task, progress)


def _sample_stage(config, width, kind, ckpt_dir, progress, problem=None):  # may run in a spawned worker
    """Compute one sampling stage (resuming its checkpoint in ``ckpt_dir``); the function of its task."""
    burnin, steps = config.plan(width, kind)
    _log(progress, f"[{_tag(config)}] {config.sampler_of(kind)} sampling at N={width}: {config.chains} chains, "
                   f"burn-in {burnin}, {steps} steps (extended up to {2**config.max_extensions}x while R-hat > "
                   f"{config.rhat_target})")
    problem = _problem(config) if problem is None else problem
    return _sample_width(config, problem, width, kind, ckpt_dir, progress)


def _sample_task(config, out_dir, width, kind="sample", progress=True, problem=None):
    """The task of one sampling stage (key :func:`_stage_key`, label ``markov4-sample-N100``)."""
    from .engine import Task

    return Task(key=_stage_key(config, kind, width), fn=_sample_stage,
                args=(config, width, kind, os.path.join(out_dir, "checkpoints"), progress, problem),
                label=f"{_tag(config)}-{kind}-N{width}", cost=_cost(config, kind, width))


def sample_stage(config, out_dir, width, progress=True, problem=None, kind="sample"):
    """One sampling stage (``kind`` "sample" or "gibbs"), computed in this process or reused.

    Parameters
    ----------
    config : MarkovConfig
    out_dir : str
        The experiment folder: the task file is in ``OUT/tasks/`` (reused when its key matches), the
        sampler checkpoint in ``OUT/checkpoints/`` (an interrupted stage resumes from it).
    width : int
    progress : bool
    problem : smtheory.problem.KernelProblem, optional
        The experiment's data (drawn from ``config`` when omitted).
    kind : {"sample", "gibbs"}

    Returns
    -------
    dict
        The sampling record (:meth:`smtheory.sims.config.SampleResult.to_record` without traces, with
        ``sample_config``, ``width``, ``sampler``, ``wall_time``), as stored.
    """
    _check_out(out_dir)
    task = _sample_task(config, out_dir, width, kind, progress, problem)
    return _inline(_store(out_dir), task, progress, name=f"[{_tag(config)}] {kind} N={width}")


def _jobs(config):
    return [("sample", w) for w in config.sample_widths] + [("gibbs", w) for w in config.gibbs_widths]


def _cost(config, kind, width):
    """Rough relative cost of a sampling stage, to schedule the longest first."""
    b, s = config.plan(width, kind)
    per_step = (1.0 + (width / 10.0) ** 1.3) if config.sampler_of(kind) != "overlap" else 8.0
    return config.chains * (b + s) * per_step * config.n_train


def _run_sampling(configs, problems, out_dir, store, workers, progress):
    """Every sampling task of ``configs``: reused, or run longest first (a process pool of ``workers`` when
    more than one is pending, else in this process with ``problems``); returns ``{(paths, kind, width): result}``."""
    from .engine import make_executor, run_tasks

    jobs = [(c, k, w) for c in configs for k, w in _jobs(c)]
    pending = [(c.paths, k, w) for c, k, w in jobs if not store.is_done(_sample_task(c, out_dir, w, k))]
    parallel = workers > 1 and len(pending) > 1
    tasks = {(c.paths, k, w): _sample_task(c, out_dir, w, k, progress, None if parallel else problems[c.paths])
             for c, k, w in jobs}
    for (paths, kind, width), t in tasks.items():
        if (paths, kind, width) not in pending:
            _log(progress, f"[markov{paths}] {kind} N={width}: reusing {store.path(t)}")
    executor = make_executor("process" if parallel else "inline", workers=min(workers, len(pending)))
    run = run_tasks(list(tasks.values()), store, executor)
    return {job: run.results[t.id] for job, t in tasks.items()}


def _assemble(config, out_dir, problem, theory, kernels, samples, t_start):
    rows = {r["width"]: r for r in theory["theory"]}
    comparison = {str(w): compare_width(rows[w], samples[str(w)]) for w in config.sample_widths}
    gibbs = samples.pop("gibbs", {})
    cross = {w: dict(vs_theory=compare_width(rows[int(w)], g),
                     vs_sampler=compare_samplers(g, samples[w]) if w in samples else None)
             for w, g in gibbs.items()}
    tag = f"markov{config.paths}"
    results = dict(_provenance(config), name=tag, path_names=list(problem.path_names), heads=list(problem.heads),
                   theory=theory["theory"], gp=theory["gp"], theory_time=theory["time"], kernels=kernels,
                   samples=samples, comparison=comparison, gibbs=gibbs, gibbs_comparison=cross,
                   sampler=config.sampler, y_test=np.asarray(problem.y_test).tolist(),
                   wall_time=time.perf_counter() - t_start)
    from smtheory.io import write_json_atomic

    write_json_atomic(os.path.join(out_dir, f"{tag}_results.json"), results)
    return results


def run_experiments(configs, out_dir="smtheory-markov", *, workers=1, progress=True):
    """Run (or resume) several Markov experiments, sharing a pool of worker processes for sampling.

    The theory and kernel tasks run first, in this process; then every (network, width) sampling
    task — the expensive part — is scheduled longest first on ``workers`` processes (each is an
    independent, checkpointed task of :mod:`smtheory.validation.engine`); finally the results are assembled.

    Parameters
    ----------
    configs : sequence of MarkovConfig
        Different networks (``paths``) each, so that their task labels and checkpoints do not collide.
    out_dir : str
        The task files go to ``OUT/tasks/`` (one per stage, reused when its key matches), sampler
        checkpoints to ``OUT/checkpoints/``, the assembled results to ``OUT/markov<paths>_results.json``.
    workers : int
        Processes for the sampling tasks (1: everything in this process; 2 uses both cores of a
        2-core machine — each chain's linear algebra is small and runs on one core).
    progress : bool

    Returns
    -------
    list of dict
        One results dict per configuration (see :func:`run_markov`).
    """
    configs = list(configs)
    if not configs or not all(isinstance(c, MarkovConfig) for c in configs):
        raise InputError("configs must be a non-empty sequence of smtheory.validation.markov.MarkovConfig")
    if len({c.paths for c in configs}) != len(configs):
        raise InputError("configs must name different networks (paths); run others into another out_dir")
    positive_int("workers", workers)
    _check_out(out_dir)
    from smtheory.compile_cache import enable_compilation_cache

    enable_compilation_cache()
    t_start = time.perf_counter()
    store = _store(out_dir)
    prepared = [_prepare(c, store, progress) for c in configs]
    done = _run_sampling(configs, {c.paths: p[0] for c, p in zip(configs, prepared)}, out_dir, store, workers,
                         progress)
    out = []
    for config, (problem, theory, kernels) in zip(configs, prepared):
        samples = {str(w): done[(config.paths, "sample", w)] for w in config.sample_widths}
        samples["gibbs"] = {str(w): done[(config.paths, "gibbs", w)] for w in config.gibbs_widths}
        out.append(_assemble(config, out_dir, problem, theory, kernels, samples, t_start))
    return out


def run_markov(config: MarkovConfig = DEMO[4], out_dir="smtheory-markov", *, workers=1, progress=True):
    """Run (or resume) the Markov theory-versus-sampling experiment.

    Parameters
    ----------
    config : MarkovConfig
    out_dir : str
        Folder (created if missing) of the task files (``OUT/tasks/``: one per stage, reused when its
        key — the configuration it depends on — matches), the sampler checkpoints (``OUT/checkpoints/``)
        and ``OUT/markov<paths>_results.json``.
    workers : int
        Processes for the sampling stages (see :func:`run_experiments`).
    progress : bool
        Print one line per stage / width to standard error (and progress bars on a terminal).

    Returns
    -------
    dict
        ``config``, ``theory`` (rows per width), ``gp``, ``kernels``, ``samples`` (per sampled
        width), ``comparison`` (per sampled width, see :func:`compare_width`), provenance, timings.
    """
    if not isinstance(config, MarkovConfig):
        raise InputError("config must be a smtheory.validation.markov.MarkovConfig")
    return run_experiments([config], out_dir, workers=workers, progress=progress)[0]
