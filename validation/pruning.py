"""Head ranking and pruning of a gradient-descent-trained network (docs/theory.md §6–7): one model.

Pipeline of :func:`run_pruning` for a model trained by :func:`smtheory.sims.training.train`:

1. Data: a theory training set (``n_train`` sequences of the training split), a validation
   set (``val`` split), an in-distribution test set (``test``) and an out-of-distribution
   test set (``ood``: held-out classes for digits, the noisier variant for Markov).
2. Theory on the trained query/key weights (qk-style attention, the model's token readout):
   the saddle point of docs/theory.md §3 along a grid of temperatures at the chosen width ``N``; ``T`` is
   chosen by the accuracy of the theory predictor on the *validation* set (ties: lower validation
   generalisation error), never on a test set (:mod:`smtheory.validation.pruning_fit`).
3. ``U_1`` of the trained weights (effective weights, docs/theory.md §2–3) next to the theory ``U_1``,
   with the Pearson correlation of their entries.
4. Head rankings, single-head drops and pruning curves (:mod:`smtheory.validation.pruning_rankings`):
   theory scores (docs/theory.md §7), the trained weights' ``U_1`` scores, gradient head importance (Michel et
   al. 2019), single-head ablation on the validation set (an oracle), random orders; the theory-side
   prediction (rows/columns of ``U_1`` zeroed); Spearman correlations with the measured drops.

:func:`write_outputs` (:mod:`smtheory.validation.pruning_outputs`) writes the figures (PNG + PDF),
``report.md`` and ``pruning.json``.  The statistics over many trained models and architectures are
:mod:`smtheory.validation.pruning_stats`.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from smtheory.checks import InputError, positive_int
from smtheory.checks import seed as seed_int

from .pruning_fit import (ModelFit, NoConvergedTheory, data_sets, features, fit_theory, gd_accuracy,
                          u1_comparison)
from .pruning_outputs import plot_training_curve, report_markdown, write_outputs
from .pruning_rankings import LABELS, RANKINGS, head_rankings, pruning_curves, single_head_drops, spearman_table

__all__ = ["PruningConfig", "NoConvergedTheory", "run_pruning", "write_outputs", "report_markdown",
           "plot_training_curve", "RANKINGS", "LABELS"]

#: Kept for ``benchmarks/bench_training.py`` (the path features of the trained attention).
_features = features


@dataclass
class PruningConfig:
    """Settings of the pruning experiment.

    Parameters
    ----------
    width : int, optional
        Width ``N`` of the theory (default: the trained model's width).
    temperatures : tuple of float
        Grid of temperatures ``T``; the one with the best validation accuracy is used.
    n_train, n_val, n_test : int
        Theory training set ``P``, validation set, and each test set (in- and out-of-distribution).
    permutations : int
        Random pruning orders.
    seed : int
        Seed of the data sets and the random orders (independent of the training stream).
    """

    width: int = None
    temperatures: tuple = (0.001, 0.01, 0.1, 1.0)
    n_train: int = 400
    n_val: int = 500
    n_test: int = 1000
    permutations: int = 20
    seed: int = 0

    def __post_init__(self):
        if self.width is not None:
            self.width = positive_int("width", self.width)
        try:
            temps = tuple(float(t) for t in self.temperatures)
        except (TypeError, ValueError):
            raise InputError(f"temperatures must be positive numbers, got {self.temperatures!r}") from None
        if not temps or not all(np.isfinite(t) and t > 0 for t in temps):
            raise InputError(f"temperatures must be a non-empty list of positive numbers, got {self.temperatures!r}")
        self.temperatures = temps
        for name in ("n_train", "n_val", "n_test"):
            v = positive_int(name, getattr(self, name))
            if v < 4 or v % 2:
                raise InputError(f"{name} must be an even number >= 4, got {v}")
            setattr(self, name, v)
        self.permutations = positive_int("permutations", self.permutations)
        self.seed = seed_int("seed", self.seed)



def run_pruning(model, config=None, progress=print):
    """Run the pruning experiment on a trained model (docs/theory.md §6–7).

    The steps are those of the module docstring: data sets (:func:`data_sets`), the theory on the trained
    attention (:func:`fit_theory`), the ``U_1`` comparison (:func:`u1_comparison`), head rankings
    (:func:`head_rankings`), single-head drops and their rank correlations (:func:`single_head_drops`,
    :func:`spearman_table`) and pruning curves (:func:`pruning_curves`).

    Parameters
    ----------
    model : smtheory.sims.training.TrainResult
        From :func:`smtheory.sims.training.train` or :func:`smtheory.sims.training.load_model`.
    config : PruningConfig, optional
    progress : callable(str) or None

    Returns
    -------
    dict
        All numbers (JSON-serialisable after :func:`jsonable`) and, under ``"_arrays"``, the
        matrices used by the figures.

    Raises
    ------
    NoConvergedTheory
        (a RuntimeError) If no temperature of the grid gives a converged saddle point (no theory
        result is reported).
    """
    from smtheory.paths import path_labels
    from smtheory.pruning import head_scores
    from smtheory.sims.training import effective_u1

    config = PruningConfig() if config is None else config
    if not isinstance(config, PruningConfig):
        raise InputError(f"config must be a PruningConfig, got {type(config).__name__}")
    say = progress or (lambda s: None)
    t_start = time.perf_counter()
    mc = model.config
    fit = ModelFit(params=model.params, heads=tuple(mc.heads), readout=mc.readout, data=data_sets(mc, config))
    N = config.width or mc.width
    fit.gd = gd = gd_accuracy(fit)
    say(f"GD model accuracy: val {gd['val']:.4f}  test {gd['test']:.4f}  ood {gd['ood']:.4f}")
    theory = fit_theory(fit, N, config.temperatures, say)
    U1, U1_eff = fit.U1, np.asarray(effective_u1(fit.params))
    u1_cmp = u1_comparison(U1, U1_eff)
    say(f"U_1 theory vs trained weights: Pearson r (all entries) {u1_cmp['pearson_all_entries']:.3f}, "
        f"off-diagonal {u1_cmp['pearson_offdiagonal']:.3f}")
    rankings, t_rank = head_rankings(fit, U1_eff, theory["grid_wall_time"] / max(len(config.temperatures), 1))
    single = single_head_drops(fit) if fit.can_single else {}
    spearman = spearman_table(rankings, single) if fit.can_single else {}
    curves = pruning_curves(fit, rankings, config, say)
    return dict(
        model=dict(config=mc.to_dict(), checkpoint=model.checkpoint, curve=model.curve,
                   initial_val_loss=model.initial_val_loss, initial_val_accuracy=model.initial_val_accuracy),
        config=asdict(config), gd_accuracy=gd, theory=theory, u1_comparison=u1_cmp,
        rankings={k: v.to_dict() for k, v in rankings.items()}, heads=list(fit.heads),
        head_labels=[f"L{l + 1}H{h + 1}" for l, h in fit.all_heads], single_head_drop=single, spearman=spearman,
        curves=curves,
        timing=dict(theory_scores_s=t_rank["theory_scores_s"], solve_grid_s=theory["grid_wall_time"],
                    gradient_importance_s=t_rank["gradient_importance_s"],
                    single_head_ablation_s=t_rank["single_head_ablation_s"], total_s=time.perf_counter() - t_start),
        _arrays=dict(U1=U1, U1_eff=U1_eff, path_labels=path_labels(fit.heads),
                     head_scores_eff=[s.tolist() for s in head_scores(U1_eff, fit.heads)]),
    )

