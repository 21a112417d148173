"""Theory versus sampling on the one-shot digits task (docs/theory.md §6, validated as in §4 and §8).

The paper's second experiment, as one seeded, resumable driver on the experiment engine
(:mod:`smtheory.validation.engine`); every stage is a task whose result is one JSON file in ``OUT/tasks/``:

1. **teacher** — a network with learned query/key weights trained by gradient descent
   (:mod:`smtheory.validation.digits_models`; checkpoint in ``OUT/models/``); its Q/K are then fixed
   (qk-style attention, mean-pool readout);
2. **theory** — one task per width N: the saddle point of docs/theory.md §3 on ``n_train`` (P ≥ 600) training
   sequences along the temperature grid, T chosen on the **validation** split
   (:func:`smtheory.validation.pruning_fit.choose_temperature`; the test splits never enter), then the
   predictor statistics on the in-distribution test split and on the held-out classes;
3. **GP** — the infinite-width kernel, its T chosen on the validation split the same way;
4. **kernels** — the kernel–task alignment of the GP and renormalised kernels (docs/theory.md §3);
5. **sampling** — one task per sampled width: the exact order-parameter posterior (``overlap``
   sampler, docs/theory.md §8.2, Rao-Blackwellised predictor §8.3) at the theory's chosen T, and exact
   Gibbs on all weights at the ``gibbs_check`` widths (the weight-space check); runs whose R-hat exceeds
   the target are extended and flagged honestly.

The predictor of a sampling run is computed on the in-distribution test set and the held-out set
together; the accuracy of each split is read from the posterior predictive mean, and its Monte-Carlo
error is the jackknife error of the pooled accuracy scaled by ``√(n_pooled / n_split)`` (the sampler
reports the jackknife of one test set only; see :func:`split_accuracy`).
:func:`run_digits` returns the assembled results (also ``OUT/digits_results.json``);
:mod:`smtheory.validation.digits_report` writes the figures and the Markdown report.
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

__all__ = ["DigitsConfig", "DEMO", "FULL", "run_digits", "theory_width", "gp_baseline", "split_accuracy",
           "compare_sampled"]

#: The widths of the paper-scale grid.
PAPER_WIDTHS = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


@dataclass(frozen=True)
class DigitsConfig:
    """Settings of the digits theory-versus-sampling experiment (docs/theory.md §6).

    Parameters
    ----------
    heads : tuple of int
        Heads per layer of the teacher (and of the theory).
    model_width, qk_dim, train_steps, learning_rate, batch_size, model_seed
        The teacher's width N, query/key dimension G and Adam training (:class:`TrainConfig`).
    n_train, n_val, n_test : int
        P theory training sequences (≥ 600 in the presets), validation sequences (choice of T) and
        sequences per test set (in-distribution test; held-out classes).
    data_seed : int
        Seed of the theory's data sets.
    widths : tuple of int
        Theory widths N.
    temperatures : tuple of float
        Temperature grid; T is chosen per N on the validation split.
    sampling, gibbs_check : tuple of (N, burnin, steps)
        Widths sampled with the ``overlap`` sampler, and with exact Gibbs (weight-space check).
    chains, sample_seed, rhat_target, max_extensions, chunk
        Sampling: chains per width, seed, R-hat target, extensions (steps doubled) while it is missed,
        draws per block.
    alignment_top : int
        Principal components in the kernel–task alignment.
    """

    heads: tuple = (4, 4)
    model_width: int = 32
    qk_dim: int = 8
    train_steps: int = 2000
    learning_rate: float = 3e-3
    batch_size: int = 64
    model_seed: int = 0
    n_train: int = 600
    n_val: int = 500
    n_test: int = 1000
    data_seed: int = 0
    widths: tuple = PAPER_WIDTHS
    temperatures: tuple = (0.001, 0.01, 0.1, 1.0)
    sampling: tuple = tuple((n, 500, 1000) for n in PAPER_WIDTHS)
    gibbs_check: tuple = ((10, 1000, 4000),)
    chains: int = 4
    sample_seed: int = 0
    rhat_target: float = 1.01
    max_extensions: int = 2
    chunk: int = 100
    alignment_top: int = 30

    def __post_init__(self):
        from .markov import MarkovConfig

        object.__setattr__(self, "heads", tuple(positive_int("heads", h) for h in self.heads))
        for name in ("model_width", "qk_dim", "train_steps", "batch_size", "chains", "chunk", "alignment_top"):
            positive_int(name, getattr(self, name))
        for name in ("n_train", "n_val", "n_test"):
            v = positive_int(name, getattr(self, name))
            if v < 4 or v % 2:
                raise InputError(f"{name} must be an even number >= 4, got {v}")
        temps = tuple(float(t) for t in self.temperatures)
        if not temps or not all(math.isfinite(t) and t > 0 for t in temps):
            raise InputError(f"temperatures must be positive numbers, got {self.temperatures!r}")
        object.__setattr__(self, "temperatures", temps)
        if not self.widths:
            raise InputError("widths must name at least one width")
        object.__setattr__(self, "widths", tuple(sorted({positive_int("widths", w) for w in self.widths})))
        # the sampling plans and bounds are validated exactly as in the Markov experiment
        mc = MarkovConfig(n_train=self.n_train, widths=self.widths, sampling=self.sampling,
                          gibbs_check=self.gibbs_check, chains=self.chains, rhat_target=self.rhat_target,
                          max_extensions=self.max_extensions, chunk=self.chunk, kernel_examples=4)
        object.__setattr__(self, "sampling", mc.sampling)
        object.__setattr__(self, "gibbs_check", mc.gibbs_check)

    @property
    def theory_widths(self):
        """The theory grid, with every sampled width included."""
        return tuple(sorted(set(self.widths) | {p[0] for p in self.sampling + self.gibbs_check}))

    def plan(self, width, kind="sample"):
        """``(burnin, steps)`` of a sampled width (``kind`` "sample" or "gibbs")."""
        for n, b, s in (self.sampling if kind == "sample" else self.gibbs_check):
            if n == width:
                return b, s
        raise InputError(f"width {width} is not among the {kind} widths")

    def train_config(self):
        """The teacher's :class:`~smtheory.sims.training.TrainConfig`."""
        from smtheory.sims.training import TrainConfig

        return TrainConfig(task="digits", heads=self.heads, width=self.model_width, qk_dim=self.qk_dim,
                           steps=self.train_steps, batch_size=self.batch_size, learning_rate=self.learning_rate,
                           seed=self.model_seed)

    def to_dict(self):
        return dataclasses.asdict(self)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


#: ``smtheory compare digits``: the paper's P = 600, theory at 5 widths, ``overlap`` sampling at the
#: smallest and the largest (one extension allowed), Gibbs at N = 10.  With the feature-space likelihood
#: (docs/theory.md §8.2) about 10-15 minutes on 2 cores (4 chains x 250 steps took 5-6 min per width before the
#: extension was allowed; N = 10000 then missed R-hat 1.01 at 1.039).
DEMO = DigitsConfig(widths=(10, 50, 200, 1000, 10000), sampling=((10, 200, 400), (10000, 200, 400)),
                    gibbs_check=((10, 500, 1500),), max_extensions=1, n_test=500, temperatures=(0.01, 0.1, 1.0))

#: ``smtheory compare digits --full``: every width of the paper grid sampled, longer chains (hours on 2 cores).
FULL = DigitsConfig(sampling=tuple((n, 500, 1000) for n in PAPER_WIDTHS),
                    gibbs_check=((10, 2000, 8000), (20, 1000, 6000)), max_extensions=3,
                    temperatures=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0))


# ----------------------------------------------------------------------------- data


def _log(progress, message):
    if progress:
        print(message, file=sys.stderr, flush=True)


def _data_key(config):
    """What the data and the teacher of every stage depend on."""
    return dict(train=config.train_config().to_dict(), n_train=config.n_train, n_val=config.n_val,
                n_test=config.n_test, data_seed=config.data_seed, record_schema=RECORD_SCHEMA)


_PROBLEMS = {}  # per process: (data key, checkpoint) -> problems


def problems_for(config, model_result):
    """Kernel problems on the teacher's Q/K: ``val``, ``test``, ``ood`` and ``both`` (test ⊕ ood), one train set.

    Returns
    -------
    dict
        Split -> :class:`smtheory.problem.KernelProblem`; also ``"U1_trained"``: the teacher's ``U_1``.
    """
    import json

    from smtheory.problem import KernelProblem
    from smtheory.sims.training import attention_layers, effective_u1, make_task, sample_data

    from .digits_models import load_trained
    from .pruning_fit import features

    cache_key = json.dumps(_data_key(config), sort_keys=True, default=str) + model_result["checkpoint"]
    if cache_key in _PROBLEMS:
        return _PROBLEMS[cache_key]
    model = load_trained(model_result)
    task, layers = make_task(model.config), attention_layers(model.params)
    base = 2_000_000 + 131 * config.data_seed
    sizes = (("train", config.n_train), ("val", config.n_val), ("test", config.n_test), ("ood", config.n_test))
    data = {s: sample_data(task, n, s, seed=base + k) for k, (s, n) in enumerate(sizes, 1)}
    xi = {s: features(x, layers, "mean") for s, (x, _) in data.items()}
    out = {s: KernelProblem(xi["train"], data["train"][1], config.heads, xi[s], data[s][1])
           for s in ("val", "test", "ood")}
    out["both"] = KernelProblem(xi["train"], data["train"][1], config.heads, np.concatenate([xi["test"], xi["ood"]]),
                                np.concatenate([data["test"][1], data["ood"][1]]))
    out["U1_trained"] = np.asarray(effective_u1(model.params))
    _PROBLEMS[cache_key] = out
    return out


# ----------------------------------------------------------------------------- theory and GP


def _split_stats(problem, spec, U1=None, gp=False):
    from smtheory.predictor import predictor_statistics

    st = predictor_statistics(problem, spec, U1, gp=gp)
    return dict(accuracy=st.accuracy, generalization_error=st.generalization_error,
                gaussian_accuracy=st.gaussian_accuracy)


def theory_width(config, width, model_result):
    """The theory task at one width: solve along the T grid, choose T on validation, evaluate the tests.

    Returns
    -------
    dict
        ``width``, ``converged`` (some T converged), ``grid`` (per T: convergence and validation
        statistics), and for the chosen T: ``temperature``, ``U1``, ``solve`` (certificate), ``val``,
        ``test``, ``ood`` statistics.
    """
    import smtheory.solvers
    from smtheory.model import ModelSpec

    from .pruning_fit import NoConvergedTheory, choose_temperature

    pr = problems_for(config, model_result)
    spec = ModelSpec(heads=config.heads, widths=width, temperature=config.temperatures[0], readout="mean")
    sols = smtheory.solvers.continuation(pr["val"], spec, temperatures=list(config.temperatures))
    grid = []
    for T, res in zip(config.temperatures, sols):
        row = dict(temperature=T, converged=bool(res.converged), message=res.message,
                   max_residual=res.max_residual, hessian_min_eig=res.hessian_min_eig)
        if res.converged:
            st = _split_stats(pr["val"], res.spec, res.U1)
            row.update(val_accuracy=st["accuracy"], val_generalization_error=st["generalization_error"])
        grid.append(row)
    try:
        best = choose_temperature(grid)
    except NoConvergedTheory as exc:
        return dict(width=width, converged=False, grid=grid, message=str(exc))
    sol = sols[best]
    rec = sol.to_record()
    return dict(width=width, converged=True, grid=grid, temperature=config.temperatures[best],
                U1=rec["U1"], solve={k: rec[k] for k in ("max_residual", "hessian_min_eig", "iterations", "solve_time")},
                **{s: _split_stats(pr[s], sol.spec, sol.U1) for s in ("val", "test", "ood")})


def gp_baseline(config, model_result):
    """The GP (infinite-width) predictor with its T chosen on the validation split, on every split."""
    from smtheory.model import ModelSpec

    from .pruning_fit import choose_temperature

    pr = problems_for(config, model_result)
    grid = []
    for T in config.temperatures:
        spec = ModelSpec(heads=config.heads, widths=config.theory_widths[-1], temperature=T, readout="mean")
        st = _split_stats(pr["val"], spec, gp=True)
        grid.append(dict(temperature=T, converged=True, val_accuracy=st["accuracy"],
                         val_generalization_error=st["generalization_error"]))
    best = choose_temperature(grid)
    spec = ModelSpec(heads=config.heads, widths=config.theory_widths[-1], temperature=config.temperatures[best],
                     readout="mean")
    return dict(grid=grid, temperature=config.temperatures[best],
                **{s: _split_stats(pr[s], spec, gp=True) for s in ("val", "test", "ood")})


def kernel_alignment(config, model_result, theory_rows):
    """Kernel–task alignment (docs/theory.md §3) of the GP and the renormalised kernels at the smallest and largest N."""
    from smtheory.model import ModelSpec
    from smtheory.predictor import kernel_task_alignment

    pr = problems_for(config, model_result)["val"]
    ok = [r for r in theory_rows if r["converged"]]
    if not ok:
        return {}
    spec = ModelSpec(heads=config.heads, widths=ok[0]["width"], temperature=ok[0]["temperature"], readout="mean")
    xi, y = np.asarray(pr.scaled_train(spec)), np.asarray(pr.y_train)
    top = min(config.alignment_top, config.n_train)
    al_gp, ev_gp = kernel_task_alignment(xi, y, spec.gp_u1_scale() * np.eye(pr.n_paths), top=top)
    out = dict(gp=al_gp.tolist(), eigenvalues_gp=ev_gp.tolist(), renormalized={})
    for r in {id(ok[0]): ok[0], id(ok[-1]): ok[-1]}.values():
        al, ev = kernel_task_alignment(xi, y, np.asarray(r["U1"]), top=top)
        out["renormalized"][str(r["width"])] = dict(alignment=al.tolist(), eigenvalues=ev.tolist())
    return out


# ----------------------------------------------------------------------------- sampling


def sample_width(config, width, kind, temperature, model_result, ckpt_dir, progress=False):
    """One sampling task: ``overlap`` (``kind="sample"``) or exact Gibbs (``"gibbs"``) at the theory's T.

    The predictor is computed on the in-distribution test set and the held-out set together
    (:func:`split_accuracy` separates them).  Returns the sampling record without traces, with
    ``width``, ``sampler``, ``temperature`` and ``wall_time``.
    """
    from smtheory.model import ModelSpec
    from smtheory.sims.run import SampleConfig, sample

    burnin, steps = config.plan(width, kind)
    sampler = "overlap" if kind == "sample" else "gibbs"
    problem = problems_for(config, model_result)["both"]
    spec = ModelSpec(heads=config.heads, widths=width, temperature=temperature, readout="mean")
    cfg = SampleConfig(sampler=sampler, chains=config.chains, steps=steps, burnin=burnin, seed=config.sample_seed,
                       chunk=min(config.chunk, steps), max_steps=steps * 2 ** config.max_extensions,
                       rhat_target=config.rhat_target)
    ck = os.path.join(ckpt_dir, f"digits_{kind}_N{width}.npz")
    os.makedirs(ckpt_dir, exist_ok=True)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence is judged from the record and reported
        try:
            res = sample(problem, spec, cfg, checkpoint=ck, resume=os.path.exists(ck), progress=progress)
        except InputError:  # a checkpoint of another configuration or version: start afresh
            os.unlink(ck)
            res = sample(problem, spec, cfg, checkpoint=ck, progress=progress)
    _log(progress, f"  {sampler} N={width}: {config.chains} chains x {res.config.steps} steps "
                   f"({res.extensions} extension(s)), R-hat max {res.rhat_max:.4f}, ESS min {res.ess_min:.0f}")
    out = res.to_record(traces=False)
    out.pop("spec", None)
    out["sample_config"] = out.pop("config")
    out.update(width=width, sampler=sampler, temperature=temperature, wall_time=time.perf_counter() - t0)
    return out


def split_accuracy(record, y_test, y_ood):
    """Per-split accuracy and generalisation error of a sampling record on the pooled test ⊕ held-out set.

    The accuracy is that of the posterior predictive mean on each split; its Monte-Carlo error is the
    pooled jackknife error ``× √(n_pooled / n_split)`` — exact when the Monte-Carlo errors of the test
    points are independent and alike, an approximation otherwise (the pooled value itself is exact).

    Returns
    -------
    dict
        ``test`` and ``ood``: ``accuracy``, ``accuracy_mcse``, ``generalization_error``,
        ``generalization_error_mcse``.
    """
    mean = np.asarray(record["predictor_mean"], float)
    var = np.asarray(record["predictor_variance"], float)
    n1, n = len(y_test), len(y_test) + len(y_ood)
    out = {}
    for name, sl, y in (("test", slice(0, n1), y_test), ("ood", slice(n1, n), y_ood)):
        y = np.asarray(y, float)
        scale = math.sqrt(n / len(y))
        mc_a, mc_g = record.get("test_accuracy_mcse"), record.get("generalization_error_mcse")
        out[name] = dict(accuracy=float(np.mean(np.sign(mean[sl]) == y)),
                         generalization_error=float(np.mean((mean[sl] - y) ** 2) + np.mean(var[sl])),
                         accuracy_mcse=None if mc_a is None else mc_a * scale,
                         generalization_error_mcse=None if mc_g is None else mc_g * scale)
    return out


def _z(diff, se):
    if se is None or not np.isfinite(se):
        return float("nan")
    return float(diff / se) if se > 0 else (0.0 if diff == 0 else float("inf"))


def compare_sampled(theory_row, record, y_test, y_ood):
    """Theory versus one sampling record: per split accuracy (z = |Δ|/MCSE) and every U_1 entry.

    Returns
    -------
    dict
        ``test``, ``ood``: ``theory``, ``sampled``, ``mcse``, ``z``; ``U1``: ``max_abs_z``,
        ``max_rel_diff``, ``pearson`` (entries, upper triangle).
    """
    from .pruning_fit import pearson

    acc = split_accuracy(record, y_test, y_ood)
    out = {}
    for s, y in (("test", y_test), ("ood", y_ood)):
        th, sa, se = theory_row[s]["accuracy"], acc[s]["accuracy"], acc[s]["accuracy_mcse"]
        # below half a test point the MCSE only says that no prediction changed sign between batches: a z
        # against it would be meaningless (and infinite for a one-point difference), so none is given
        resolved = se is not None and se >= 0.5 / max(len(y), 1)  # NaN compares False; _z handles the rest
        out[s] = dict(theory=th, sampled=sa, mcse=se, z=_z(abs(th - sa), se) if resolved else float("nan"))
    Ut, Us = np.asarray(theory_row["U1"], float), np.asarray(record["U1_sampled"], float)
    Se = np.asarray(np.where(np.equal(record["U1_mcse"], None), np.nan, record["U1_mcse"]), float)
    z = np.vectorize(_z)(np.abs(Ut - Us), Se)
    iu = np.triu_indices(Ut.shape[0])
    out["U1"] = dict(max_abs_z=float(np.nanmax(z)) if np.any(np.isfinite(z)) else float("nan"),
                     max_rel_diff=float(np.max(np.abs(Ut - Us)) / np.max(np.abs(Ut))),
                     pearson=pearson(Ut[iu], Us[iu]))
    return out


# ----------------------------------------------------------------------------- tasks and driver


def _task(config, label, fn, args, cost=1.0, **key):
    from .engine import Task

    return Task(key=dict(_data_key(config), stage=label.split("-")[1], **key), fn=fn, args=args,
                label=label, cost=cost)


def _theory_tasks(config, model):
    return [_task(config, f"digits-theory-N{w}", theory_width, (config, w, model), width=w,
                  temperatures=list(config.temperatures)) for w in config.theory_widths]


def _sample_tasks(config, model, theory, out_dir, progress):
    """One task per sampled width whose theory converged (at the theory's chosen T)."""
    rows = {r["width"]: r for r in theory}
    ckpt = os.path.join(out_dir, "checkpoints")
    tasks = {}
    for kind, plan in (("sample", config.sampling), ("gibbs", config.gibbs_check)):
        for w, b, s in plan:
            if not rows[w]["converged"]:
                continue
            T = rows[w]["temperature"]
            # relative cost per chain-step, measured at P = 600, heads (4, 4): overlap ≈ 0.7 s per 4-chain step
            # (feature-space likelihood, ~15-30 gradients), Gibbs ≈ 0.09 s per 4-chain sweep
            cost = config.chains * (b + s) * (8.0 if kind == "sample" else 1.0)
            tasks[(kind, w)] = _task(config, f"digits-{kind}-N{w}", sample_width,
                                     (config, w, kind, T, model, ckpt, progress), cost=cost, width=w, burnin=b,
                                     steps=s, temperature=T, chains=config.chains, seed=config.sample_seed,
                                     rhat_target=config.rhat_target, max_extensions=config.max_extensions,
                                     chunk=config.chunk)
    return tasks


def _u1_maps(config, theory, samples, U1_trained):
    """Theory, sampled and trained-weights ``U_1`` at the smallest and largest sampled N, with correlations."""
    from .pruning_fit import pearson

    rows = {r["width"]: r for r in theory}
    widths = sorted(w for k, w in samples if k == "sample")
    out = {}
    for w in sorted({widths[0], widths[-1]}) if widths else ():
        Ut, Us = np.asarray(rows[w]["U1"]), np.asarray(samples[("sample", w)]["U1_sampled"])
        iu = np.triu_indices(Ut.shape[0])
        out[str(w)] = dict(theory=Ut.tolist(), sampled=Us.tolist(),
                           pearson=dict(theory_sampled=pearson(Ut[iu], Us[iu]),
                                        theory_trained=pearson(Ut[iu], U1_trained[iu]),
                                        sampled_trained=pearson(Us[iu], U1_trained[iu])))
    return out


def _flagged(theory, samples):
    bad = [f"theory N={r['width']}" for r in theory if not r["converged"]]
    bad += [f"{k} N={w} (R-hat {s['rhat_max'] if s['rhat_max'] is None else round(s['rhat_max'], 4)})" for (k, w), s in sorted(samples.items()) if not s["converged"]]
    return bad


def _assemble(config, model, stages, samples, pr, t_start):
    from smtheory.io import git_commit, versions

    y_test, y_ood = pr["test"].y_test, pr["ood"].y_test
    theory = stages["theory"]
    rows = {r["width"]: r for r in theory}
    comparison = {f"{k}-{w}": dict(kind=k, width=w, **compare_sampled(rows[w], s, y_test, y_ood))
                  for (k, w), s in sorted(samples.items())}
    sampled = {f"{k}-{w}": dict(s, kind=k, splits=split_accuracy(s, y_test, y_ood))
               for (k, w), s in sorted(samples.items())}
    for s in sampled.values():
        for key in ("predictor_mean", "predictor_variance"):
            s.pop(key, None)
    from .markov import compare_samplers

    check = {str(w): compare_samplers(samples[("gibbs", w)], samples[("sample", w)])
             for (k, w) in samples if k == "gibbs" and ("sample", w) in samples}
    return dict(name="digits", config=config.to_dict(), gibbs_vs_overlap=check, versions=versions(), commit=git_commit(),
                seeds=dict(model_seed=config.model_seed, data_seed=config.data_seed, sample_seed=config.sample_seed),
                model=dict(checkpoint=model["checkpoint"], summary=model["summary"], curve=model["curve"],
                           config=model["config"]),
                theory=theory, gp=stages["gp"], kernels=stages["kernels"], samples=sampled, comparison=comparison,
                u1_maps=_u1_maps(config, theory, samples, pr["U1_trained"]), U1_trained=pr["U1_trained"].tolist(),
                flagged=_flagged(theory, samples), wall_time=time.perf_counter() - t_start)


def run_digits(config=DEMO, out_dir="smtheory-compare-digits", *, workers=1, progress=True):
    """Run (or resume) the digits theory-versus-sampling experiment (docs/theory.md §6).

    Parameters
    ----------
    config : DigitsConfig
    out_dir : str
        Task files in ``OUT/tasks/`` (reused when their key matches), the teacher in ``OUT/models/``,
        sampler checkpoints in ``OUT/checkpoints/``, the results in ``OUT/digits_results.json``.
    workers : int
        Processes for the sampling tasks (1: all in this process).
    progress : bool

    Returns
    -------
    dict
        Provenance, ``theory`` (one row per N), ``gp``, ``kernels``, ``samples`` and ``comparison``
        (per ``"<kind>-<N>"``), ``u1_maps``, ``flagged`` (what did not converge).
    """
    from smtheory.io import write_json_atomic

    from .digits_models import model_task
    from .engine import TaskStore, make_executor, run_tasks

    if not isinstance(config, DigitsConfig):
        raise InputError("config must be a smtheory.validation.digits.DigitsConfig")
    positive_int("workers", workers)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputError(f"out_dir {out_dir!r} exists and is not a folder")
    t_start = time.perf_counter()
    store = TaskStore(os.path.join(out_dir, "tasks"))
    _log(progress, f"[digits] teacher: heads {config.heads}, N = {config.model_width}, {config.train_steps} steps")
    mt = model_task(config.train_config(), out_dir)
    model = run_tasks([mt], store).results[mt.id]
    pr = problems_for(config, model)
    _log(progress, f"[digits] theory over N = {list(config.theory_widths)}, T grid {list(config.temperatures)}")
    tt = _theory_tasks(config, model)
    run = run_tasks(tt, store, on_done=lambda t, r: _log(progress, f"  {t.label}: T = {r and r.get('temperature')}"))
    theory = [run.results[t.id] for t in tt]
    extra = [_task(config, "digits-gp", gp_baseline, (config, model), temperatures=list(config.temperatures)),
             _task(config, "digits-kernels", kernel_alignment, (config, model, theory),
                   widths=[r["width"] for r in theory], top=config.alignment_top)]
    run = run_tasks(extra, store)
    stages = dict(theory=theory, gp=run.results[extra[0].id], kernels=run.results[extra[1].id])
    tasks = _sample_tasks(config, model, theory, out_dir, progress)
    pending = [t for t in tasks.values() if not store.is_done(t)]
    _log(progress, f"[digits] sampling: {len(tasks)} tasks, {len(pending)} to compute")
    executor = make_executor("process" if workers > 1 and len(pending) > 1 else "inline",
                             workers=min(workers, max(len(pending), 1)))
    run = run_tasks(list(tasks.values()), store, executor)
    samples = {job: run.results[t.id] for job, t in tasks.items()}
    results = _assemble(config, model, stages, samples, pr, t_start)
    write_json_atomic(os.path.join(out_dir, "digits_results.json"), results)
    return results
