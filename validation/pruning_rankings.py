"""Head rankings, single-head drops and pruning curves of a trained model (docs/theory.md §7).

The second half of the pruning experiments, on a :class:`~smtheory.validation.pruning_fit.ModelFit`
whose theory is solved: the rankings of docs/theory.md §7 and its baselines (:func:`head_rankings`), the
measured and theory-side accuracy drop of every single-head removal (:func:`single_head_drops`), their
Spearman correlations (:func:`spearman_table`) and the pruning curves of the GD network without
retraining (:func:`pruning_curve`, :func:`random_curves`, :func:`pruning_curves`).
"""
from __future__ import annotations

import time

import numpy as np

from .pruning_fit import spearman

__all__ = ["RANKINGS", "LABELS", "ablation_ranking", "head_rankings", "single_head_drops", "spearman_table",
           "pruning_curve", "random_curves", "pruning_curves"]

RANKINGS = ("theory", "trained_u1", "gradient", "ablation")
LABELS = {"theory": "theory score (U_1)", "trained_u1": "U_1 of trained weights", "gradient": "gradient (Michel+19)",
          "ablation": "single-head ablation (oracle)", "random": "random order"}


def ablation_ranking(fit):
    """Oracle ranking by single-head ablation on the validation split (accuracy drop; loss increase breaks ties)."""
    from smtheory.pruning import prune, rank_heads
    from smtheory.sims.training import predict

    x_va, y_va = fit.data["val"]
    f_full = predict(fit.params, x_va, fit.readout)
    abl = [[0.0] * H for H in fit.heads]
    for l, h in fit.all_heads:
        f = predict(prune(fit.params, [(l, h)]), x_va, fit.readout)
        d_acc = fit.gd["val"] - float(np.mean(np.sign(f) == y_va))
        d_loss = float(np.mean((f - y_va) ** 2) - np.mean((f_full - y_va) ** 2))
        abl[l][h] = d_acc + 1e-6 * d_loss  # accuracy drop; loss increase breaks ties
    return rank_heads(scores=[np.asarray(a) for a in abl], heads=fit.heads, method="ablation")


def head_rankings(fit, U1_eff, t_solve_per_T):
    """Head rankings (docs/theory.md §7): theory, trained-weights ``U_1``, gradient and (if possible) ablation.

    Returns
    -------
    rankings : dict
        Name -> :class:`smtheory.pruning.HeadRanking`.
    timing : dict
        Seconds of the theory scores (including one temperature's share of the solve), the gradient
        importance and the single-head ablation.
    """
    from smtheory.pruning import gradient_importance, rank_heads
    from smtheory.sims.training import head_mask_gradient

    t0 = time.perf_counter()
    rankings = {"theory": rank_heads(fit.U1, fit.heads, method="theory")}
    t_theory_scores = time.perf_counter() - t0 + t_solve_per_T
    rankings["trained_u1"] = rank_heads(U1_eff, fit.heads, method="trained_u1")
    t0 = time.perf_counter()
    grad_raw = head_mask_gradient(fit.params, *fit.data["val"], fit.readout)
    rankings["gradient"] = rank_heads(scores=gradient_importance(grad_raw), heads=fit.heads, method="gradient")
    t_gradient = time.perf_counter() - t0
    t0 = time.perf_counter()
    if fit.can_single:
        rankings["ablation"] = ablation_ranking(fit)
    t_ablation = time.perf_counter() - t0
    return rankings, dict(theory_scores_s=t_theory_scores, gradient_importance_s=t_gradient,
                          single_head_ablation_s=t_ablation)


def single_head_drops(fit):
    """Measured and theory-side (docs/theory.md §7) accuracy drops of every single-head removal on ``test`` and ``ood``."""
    from smtheory.pruning import prune, theory_pruned_statistics
    from smtheory.sims.training import accuracy

    def drop(x, y, full_acc, head):
        return full_acc - accuracy(prune(fit.params, [head]), x, y, fit.readout)

    single = {}
    for split in ("test", "ood"):
        x, y = fit.data[split]
        single[split] = dict(
            measured=[drop(x, y, fit.gd[split], hd) for hd in fit.all_heads],
            theory_side=[fit.theory[split]["accuracy"]
                         - theory_pruned_statistics(fit.problems[split], fit.spec, fit.U1, [hd]).accuracy
                         for hd in fit.all_heads])
    return single


def spearman_table(rankings, single):
    """Spearman correlations of every ranking's scores (and of the theory-side drops) with the measured drops."""
    table = {}
    for name, rk in rankings.items():
        s = rk.flat_scores()
        table[name] = {split: spearman(s, single[split]["measured"]) for split in single}
    table["theory_side_vs_measured"] = {split: spearman(single[split]["theory_side"], single[split]["measured"])
                                           for split in single}
    return table


def pruning_curve(fit, order):
    """Accuracy of the GD network and the theory-side prediction (docs/theory.md §7) after each removal of ``order``."""
    from smtheory.pruning import prune, pruning_order, theory_pruned_statistics
    from smtheory.sims.training import accuracy

    steps = pruning_order(order, fit.heads)
    out = dict(removed=[list(p) for p in steps], test=[fit.gd["test"]], ood=[fit.gd["ood"]],
               theory_test=[fit.theory["test"]["accuracy"]], theory_ood=[fit.theory["ood"]["accuracy"]])
    for k in range(1, len(steps) + 1):
        pr = prune(fit.params, steps[:k])
        out["test"].append(accuracy(pr, *fit.data["test"], fit.readout))
        out["ood"].append(accuracy(pr, *fit.data["ood"], fit.readout))
        out["theory_test"].append(theory_pruned_statistics(fit.problems["test"], fit.spec, fit.U1, steps[:k]).accuracy)
        out["theory_ood"].append(theory_pruned_statistics(fit.problems["ood"], fit.spec, fit.U1, steps[:k]).accuracy)
    return out


def random_curves(fit, config):
    """Mean and standard deviation of the pruning curves of ``config.permutations`` random orders."""
    all_heads = fit.all_heads
    rng = np.random.default_rng([config.seed, 4242])
    rand = [pruning_curve(fit, [all_heads[i] for i in rng.permutation(len(all_heads))])
            for _ in range(config.permutations)]
    out = {key: dict(mean=np.mean([r[key] for r in rand], axis=0).tolist(),
                     sd=np.std([r[key] for r in rand], axis=0, ddof=1).tolist() if len(rand) > 1
                     else [0.0] * len(rand[0][key]))
           for key in ("test", "ood", "theory_test", "theory_ood")}
    out["n_permutations"] = config.permutations
    return out


def pruning_curves(fit, rankings, config, say):
    """Pruning curves of every ranking and of random orders; the test accuracies are reported through ``say``."""
    curves = {name: pruning_curve(fit, rk.order) for name, rk in rankings.items()}
    curves["random"] = random_curves(fit, config)
    say("pruning curves (test accuracy after k heads removed):")
    for name in list(rankings) + ["random"]:
        c = curves[name]["test"]
        vals = c["mean"] if name == "random" else c
        say(f"  {name:>11}: " + " ".join(f"{v:.3f}" for v in vals))
    return curves

