"""Multi-seed, multi-architecture pruning experiment on the engine (docs/theory.md §6–7).

For every architecture and seed one task trains a model (:mod:`smtheory.validation.digits_models`;
checkpoint in ``OUT/models/``) and one task evaluates it (:func:`smtheory.validation.pruning_eval.evaluate_model`);
both are :class:`~smtheory.validation.engine.Task` objects in ``OUT/tasks/``, so an interrupted run
resumes.  :func:`run_pruning_seeds` then computes the statistics of
:mod:`smtheory.validation.pruning_stats` and writes ``OUT/pruning_seeds.json``;
:mod:`smtheory.validation.pruning_stats_report` writes the figures and ``OUT/report.md``.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass

from smtheory.checks import InputError, positive_int
from smtheory.records import RECORD_SCHEMA

__all__ = ["PruneSeedsConfig", "DEMO", "FULL", "run_pruning_seeds", "summarise"]


@dataclass(frozen=True)
class PruneSeedsConfig:
    """Settings of the multi-model pruning statistics.

    Parameters
    ----------
    architectures : tuple of tuple of int
        Heads per layer of each architecture (e.g. ``((4, 4), (2, 2, 2))``).
    seeds : int
        Independently trained models per architecture (seeds ``0 … seeds−1``; ≥ 1).
    width, qk_dim, train_steps, learning_rate, batch_size
        The models (:class:`~smtheory.sims.training.TrainConfig`).
    theory_widths, temperatures : tuple
        The grid on which (N, T) is chosen on the validation split.
    n_train, n_val, n_test : int
        Theory training set P, validation and test sets.
    permutations : int
        Random pruning orders per model.
    seed : int
        Seed of the evaluation data and the random orders.
    lowest, threshold : int, float
        The claim: the ``lowest`` lowest-scoring heads cost ≤ ``threshold`` accuracy each, the others more.
    n_boot : int
        Bootstrap resamples.
    """

    architectures: tuple = ((4, 4), (2, 2, 2))
    seeds: int = 5
    width: int = 32
    qk_dim: int = 8
    train_steps: int = 2000
    learning_rate: float = 3e-3
    batch_size: int = 64
    theory_widths: tuple = (32, 1000)
    temperatures: tuple = (0.01, 0.1, 1.0)
    n_train: int = 400
    n_val: int = 500
    n_test: int = 1000
    permutations: int = 20
    seed: int = 0
    lowest: int = 2
    threshold: float = 0.02
    n_boot: int = 2000

    def __post_init__(self):
        archs = []
        try:
            for a in self.architectures:
                archs.append(tuple(positive_int("architectures", h) for h in a))
        except TypeError:
            raise InputError(f"architectures must be a list of head tuples, got {self.architectures!r}") from None
        if not archs or any(min(a) < 2 for a in archs):
            raise InputError(f"architectures must name at least one architecture with >= 2 heads in every layer "
                             f"(single-head removals), got {self.architectures!r}")
        object.__setattr__(self, "architectures", tuple(archs))
        positive_int("seeds", self.seeds)
        for name in ("width", "qk_dim", "train_steps", "batch_size", "permutations", "n_boot", "lowest"):
            positive_int(name, getattr(self, name))
        for name in ("n_train", "n_val", "n_test"):
            v = positive_int(name, getattr(self, name))
            if v < 4 or v % 2:
                raise InputError(f"{name} must be an even number >= 4, got {v}")
        object.__setattr__(self, "theory_widths", tuple(positive_int("theory_widths", w) for w in self.theory_widths))
        temps = tuple(float(t) for t in self.temperatures)
        if not temps or not all(math.isfinite(t) and t > 0 for t in temps):
            raise InputError(f"temperatures must be positive numbers, got {self.temperatures!r}")
        object.__setattr__(self, "temperatures", temps)
        if not 0 < self.threshold < 1:
            raise InputError(f"threshold must be in (0, 1), got {self.threshold!r}")

    def train_config(self, heads, seed):
        """The :class:`~smtheory.sims.training.TrainConfig` of one model."""
        from smtheory.sims.training import TrainConfig

        return TrainConfig(task="digits", heads=heads, width=self.width, qk_dim=self.qk_dim, steps=self.train_steps,
                           learning_rate=self.learning_rate, batch_size=self.batch_size, seed=seed)

    def to_dict(self):
        return dataclasses.asdict(self)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


#: ``smtheory prune --seeds 5``: 5 seeds × (2 × 4, 3 × 2 heads), short training, P = 200 (≈ 30 min on 2 cores).
DEMO = PruneSeedsConfig(train_steps=800, n_train=200, n_val=300, n_test=600, permutations=10,
                        theory_widths=(32, 1000), temperatures=(0.1, 1.0), n_boot=1000)
#: ``--full``: 2 × 4 and 3 × 3 heads, 2000 steps, P = 400, a wider (N, T) grid.
FULL = PruneSeedsConfig(architectures=((4, 4), (3, 3, 3)), theory_widths=(10, 32, 100, 1000),
                        temperatures=(0.001, 0.01, 0.1, 1.0))


def _eval_key(config, train_config):
    keys = ("theory_widths", "temperatures", "n_train", "n_val", "n_test", "permutations", "seed")
    return dict(stage="prune-eval", train=train_config.to_dict(), record_schema=RECORD_SCHEMA,
                **{k: getattr(config, k) for k in keys})


def _tasks(config, out_dir):
    from .digits_models import model_tag, model_task

    cfgs = [config.train_config(a, s) for a in config.architectures for s in range(config.seeds)]
    return [(model_tag(c), c, model_task(c, out_dir)) for c in cfgs]


def _log(progress, message):
    if progress:
        print(message, file=sys.stderr, flush=True)


def summarise(config, results):
    """The statistics of :mod:`smtheory.validation.pruning_stats` over the per-model results.

    Returns ``{"all": ..., "<arch>": ...}``: per group the Spearman summaries per ranking and split, the
    claim tables, the curve bands, the monotonicity diagnosis and the prediction errors.
    """
    from . import pruning_stats as ps

    groups = {"all": ps.usable(results)}
    for a in config.architectures:
        groups["x".join(map(str, a))] = [r for r in ps.usable(results) if tuple(r["heads"]) == a]
    out = {}
    for g, rs in groups.items():
        if not rs:
            continue
        s = dict(n_models=len(rs),
                 spearman={n: {sp: ps.spearman_summary(rs, n, sp, config.n_boot) for sp in ("test", "ood")}
                           for n in ps.RANKED},
                 monotonicity=ps.monotonicity(rs), predictions={sp: ps.prediction_errors(rs, sp, config.n_boot)
                                                                 for sp in ("test", "ood")})
        if g != "all":
            s["bands"] = {k: ps.curve_bands(rs, k if k in ("test", "ood") else "test", None if k in ("test", "ood")
                                            else k) for k in ("test", "ood", "recentred", "no_rescale")}
        out[g] = s
    out["claims"] = {n: ps.claim_table(results, n, config.lowest, config.threshold) for n in ps.RANKED}
    return out


def run_pruning_seeds(config=DEMO, out_dir="smtheory-prune-seeds", *, workers=1, progress=True):
    """Train (or reuse) every model, evaluate it, and summarise (docs/theory.md §7); returns the results dict."""
    from smtheory.io import git_commit, versions, write_json_atomic

    from .engine import Task, TaskStore, make_executor, run_tasks
    from .pruning_eval import evaluate_model

    if not isinstance(config, PruneSeedsConfig):
        raise InputError("config must be a smtheory.validation.pruning_seeds.PruneSeedsConfig")
    positive_int("workers", workers)
    t0 = time.perf_counter()
    store = TaskStore(os.path.join(out_dir, "tasks"))
    models = _tasks(config, out_dir)
    _log(progress, f"[prune] {len(models)} models: architectures {config.architectures} x {config.seeds} seeds")
    ex = lambda n: make_executor("process" if workers > 1 and n > 1 else "inline", workers=min(workers, max(n, 1)))  # noqa: E731
    pending = [t for _, _, t in models if not store.is_done(t)]
    trained = run_tasks([t for _, _, t in models], store, ex(len(pending)),
                        on_done=lambda t, r: _log(progress, f"  {t.label}: trained")).results
    evals = [Task(key=_eval_key(config, c), fn=evaluate_model, args=(config, trained[t.id]), label=f"prune-eval-{tag}",
                  cost=sum(c.heads) ** 2) for tag, c, t in models]
    pending = [t for t in evals if not store.is_done(t)]
    run = run_tasks(evals, store, ex(len(pending)), on_done=lambda t, r: _log(progress, f"  {t.label}: evaluated"))
    results = [run.results[t.id] for t in evals]
    res = dict(name="prune-seeds", config=config.to_dict(), versions=versions(), commit=git_commit(),
               models=results, summary=summarise(config, results), wall_time=time.perf_counter() - t0,
               training={t.label: trained[t.id]["summary"] for _, _, t in models})
    write_json_atomic(os.path.join(out_dir, "pruning_seeds.json"), res)
    return res
