"""Pruning statistics over many trained models and architectures (docs/theory.md §7).

Pure functions on the per-model results of :func:`smtheory.validation.pruning_eval.evaluate_model`:

* :func:`mean_interval` — mean and two-sided 95 % Student-t interval over models;
* :func:`curve_bands` — the pruning curves of every ranking as mean ± 95 % interval over models;
* :func:`spearman_summary` — Spearman ρ of a ranking's scores with the measured single-head drops, per
  model and pooled over models, each with a cluster-bootstrap interval (models resampled);
* :func:`claim_table` — the paper's claim ("the ``m`` lowest-scoring heads cost ≤ ``threshold`` each, the
  others more"), yes/no per model; models at chance are excluded with the reason;
* :func:`monotonicity` — the non-monotonicity diagnosis of the pruning curves;
* :func:`prediction_errors` — theory-side (zeroed ``U_1`` rows) versus re-solved theory as predictors of
  the measured drops.
"""
from __future__ import annotations

import numpy as np

__all__ = ["mean_interval", "curve_bands", "model_spearman", "spearman_summary", "claim_table", "monotonicity",
           "prediction_errors", "random_scores", "usable"]

RANKED = ("theory", "trained_u1", "gradient", "ablation", "random")


def mean_interval(values, level=0.95):
    """Mean and Student-t interval of the mean over the first axis: ``(mean, low, high)`` arrays."""
    import scipy.stats

    v = np.asarray(values, float)
    m = v.mean(axis=0)
    if v.shape[0] < 2:
        return m, m.copy(), m.copy()
    half = scipy.stats.t.ppf(0.5 + level / 2, v.shape[0] - 1) * v.std(axis=0, ddof=1) / np.sqrt(v.shape[0])
    return m, m - half, m + half


def usable(results):
    """The per-model results with a converged theory (``status == "ok"``)."""
    return [r for r in results if r.get("status") == "ok"]


def random_scores(result):
    """The random ranking's scores of one model: a permutation seeded by the model's seed."""
    n = sum(result["heads"])
    return np.random.default_rng([int(result["seed"]), 77]).permutation(n).astype(float)


def _scores(result, name):
    return np.asarray(random_scores(result) if name == "random" else result["scores"][name], float)


def curve_bands(results, split="test", key=None):
    """Mean ± 95 % interval over models of every ranking's curve (and the random orders' mean curve).

    Returns ``{ranking: {"mean", "low", "high", "n"}}``; ``key`` picks a diagnosis curve (e.g.
    ``"recentred"``) instead of the accuracy of ``split``.
    """
    out = {}
    names = [n for n in RANKED if n != "random" and all(n in r["curves"] for r in results)]
    for name in names:
        m, lo, hi = mean_interval([r["curves"][name][key or split] for r in results])
        out[name] = dict(mean=m.tolist(), low=lo.tolist(), high=hi.tolist(), n=len(results))
    m, lo, hi = mean_interval([np.mean([c[key or split] for c in r["random"]], axis=0) for r in results])
    out["random"] = dict(mean=m.tolist(), low=lo.tolist(), high=hi.tolist(), n=len(results))
    return out


def model_spearman(result, name, split="test"):
    """Spearman ρ of one model's scores (ranking ``name``) with its measured single-head drops."""
    from .pruning_fit import spearman

    return spearman(_scores(result, name), result["single"][split]["measured"])["rho"]


def _pooled_rho(results, name, split):
    from .pruning_fit import spearman

    s = np.concatenate([_scores(r, name) for r in results])
    d = np.concatenate([r["single"][split]["measured"] for r in results])
    return spearman(s, d)["rho"]


def spearman_summary(results, name, split="test", n_boot=2000, seed=0):
    """Per-model and pooled Spearman ρ (scores vs measured drops) with 95 % cluster-bootstrap intervals.

    The bootstrap resamples *models* with replacement (the heads of one model are not independent).

    Returns
    -------
    dict
        ``per_model`` (list), ``mean`` and ``mean_ci`` (mean of the per-model ρ), ``pooled`` and
        ``pooled_ci`` (ρ of all (score, drop) pairs pooled), ``n_models``.
    """
    per = np.array([model_spearman(r, name, split) for r in results], float)
    rng = np.random.default_rng([seed, 991])
    idx = rng.integers(0, len(results), size=(n_boot, len(results)))
    means = np.array([np.nanmean(per[i]) for i in idx])
    pooled = np.array([_pooled_rho([results[j] for j in i], name, split) for i in idx])
    ci = lambda a: np.nanpercentile(a, [2.5, 97.5]).tolist() if np.any(np.isfinite(a)) else [None, None]  # noqa: E731
    return dict(per_model=per.tolist(), mean=float(np.nanmean(per)), mean_ci=ci(means),
                pooled=_pooled_rho(results, name, split), pooled_ci=ci(pooled), n_models=len(results))


def claim_table(results, name="theory", lowest=2, threshold=0.02, split="test", chance=None):
    """The paper's claim per model: the ``lowest`` lowest-scoring heads cost ≤ ``threshold`` each, the others more.

    Parameters
    ----------
    results : list of dict
    name : str
        The ranking whose scores define "lowest-scoring".
    chance : callable(accuracy, n) -> bool, optional
        Models at chance are listed with ``holds = None`` and the reason (default
        :func:`smtheory.validation.digits_models.at_chance`).

    Returns
    -------
    list of dict
        Per model: ``heads``, ``seed``, ``lowest_drops``, ``other_min_drop``, ``lowest_ok``, ``others_ok``,
        ``holds`` (True / False / None) and ``reason``.
    """
    if chance is None:
        from .digits_models import at_chance as chance
    rows = []
    for r in results:
        row = dict(heads=r["heads"], seed=r["seed"], accuracy=r["gd"][split])
        if chance(r["gd"][split], r["n_test"]):
            rows.append(dict(row, holds=None, reason="model at chance (within 2 binomial SE of 0.5): excluded"))
            continue
        if r.get("status") != "ok":
            rows.append(dict(row, holds=None, reason=r.get("status", "no result")))
            continue
        order = np.argsort(_scores(r, name), kind="stable")
        d = np.asarray(r["single"][split]["measured"], float)
        low, rest = d[order[:lowest]], d[order[lowest:]]
        lo_ok, re_ok = bool(np.all(low <= threshold)), bool(np.all(rest > threshold))
        rows.append(dict(row, lowest_drops=low.tolist(), other_min_drop=float(rest.min()) if rest.size else None,
                         lowest_ok=lo_ok, others_ok=re_ok, holds=lo_ok and re_ok, reason=""))
    return rows


def monotonicity(results, tol=0.02):
    """Non-monotonicity diagnosis of the pruning curves (every ranking and random order of every model).

    A *rise* is a step ``k → k+1`` whose test accuracy goes up by more than ``tol``.  For each curve the
    rises are counted in the measured accuracy, in the accuracy without the ``1/√(H−k)`` rescaling, and in
    the accuracy with the decision threshold re-centred on validation; and the rises that follow a step at
    which some layer was left with one head.

    Returns
    -------
    dict
        ``curves``, ``rises`` (measured), ``rises_no_rescale``, ``rises_recentred``, ``rescale_changes_accuracy``
        (max |measured − no_rescale| over all points), ``rises_after_one_head``, ``rise_frac_positive``
        (mean |fraction of positive outputs − 0.5| just before a rise) and ``overall_frac_positive``.
    """
    stats = dict(curves=0, rises=0, rises_no_rescale=0, rises_recentred=0, rises_after_one_head=0)
    max_rescale, fp_rise, fp_all = 0.0, [], []
    for r in results:
        for c in [r["curves"][n] for n in r["curves"]] + list(r["random"]):
            stats["curves"] += 1
            acc, nr, rc = (np.asarray(c[k], float) for k in ("test", "no_rescale", "recentred"))
            max_rescale = max(max_rescale, float(np.max(np.abs(acc - nr))))
            up = np.flatnonzero(np.diff(acc) > tol)
            stats["rises"] += len(up)
            stats["rises_no_rescale"] += int(np.sum(np.diff(nr) > tol))
            stats["rises_recentred"] += int(np.sum(np.diff(rc) > tol))
            stats["rises_after_one_head"] += int(sum(min(c["heads_left"][k]) == 1 for k in up))
            fp = np.abs(np.asarray(c["frac_positive"]) - 0.5)
            fp_rise += fp[up].tolist()
            fp_all += fp.tolist()
    return dict(stats, rescale_changes_accuracy=max_rescale,
                rise_frac_positive=float(np.mean(fp_rise)) if fp_rise else None,
                overall_frac_positive=float(np.mean(fp_all)) if fp_all else None)


def prediction_errors(results, split="test", n_boot=2000, seed=0):
    """Theory-side versus re-solved theory as predictors of the measured single-head drops and curves.

    Returns ``{kind: {"mae_single", "mae_single_ci", "spearman_single", "mae_curve"}}`` for ``theory_side``
    and ``resolved`` (MAE in accuracy; intervals by resampling models).
    """
    from .pruning_fit import spearman

    rng = np.random.default_rng([seed, 313])
    idx = rng.integers(0, len(results), size=(n_boot, len(results)))
    out = {}
    for kind in ("theory_side", "resolved"):
        err = [np.abs(np.asarray(r["single"][split][kind], float) - np.asarray(r["single"][split]["measured"]))
               for r in results]
        per = np.array([np.nanmean(e) for e in err])
        cur = [np.nanmean(np.abs(np.asarray(r["theory_curve"][f"{kind}_{split}"], float)[1:]
                                 - np.asarray(r["curves"]["theory"][split], float)[1:])) for r in results]
        pred = np.concatenate([r["single"][split][kind] for r in results])
        meas = np.concatenate([r["single"][split]["measured"] for r in results])
        ok = np.isfinite(pred)
        out[kind] = dict(mae_single=float(np.nanmean(per)),
                         mae_single_ci=np.nanpercentile([np.nanmean(per[i]) for i in idx], [2.5, 97.5]).tolist(),
                         spearman_single=spearman(pred[ok], meas[ok])["rho"], mae_curve=float(np.nanmean(cur)))
    return out
