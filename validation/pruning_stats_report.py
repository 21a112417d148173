"""Figures and Markdown report of the multi-model pruning statistics (docs/theory.md §7).

From the results of :func:`smtheory.validation.pruning_seeds.run_pruning_seeds`: pruning curves mean ± 95 %
interval per architecture (``prune_seeds_curves``), the diagnosis curves of the non-monotonicity
(``prune_seeds_diagnosis``: measured, without rescaling, threshold re-centred), the single-head drop
versus score scatter pooled over models (``prune_seeds_scatter``), and ``report.md`` with the Spearman
table (per model and pooled, bootstrap intervals), the claim table, the diagnosis and the comparison of
the theory-side and re-solved predictions.
"""
from __future__ import annotations

import os

import numpy as np

from .pruning_outputs import fmt, save_figure
from .pruning_rankings import LABELS
from .pruning_stats import RANKED, random_scores

__all__ = ["figure_curves", "figure_diagnosis", "figure_scatter", "report_markdown", "write_report"]


def _archs(res):
    return [k for k in res["summary"] if k not in ("all", "claims")]


def _band(a, b, color, label, ls="-", fill=True):
    k = np.arange(len(b["mean"]))
    a.plot(k, b["mean"], ls, marker="o", ms=3, color=color, label=label)
    if fill:
        a.fill_between(k, b["low"], b["high"], color=color, alpha=0.2)


def figure_curves(res, out):
    """Accuracy after k heads removed, mean ± 95 % interval over models, per architecture and split."""
    import matplotlib.pyplot as plt

    archs = _archs(res)
    fig, axes = plt.subplots(len(archs), 2, figsize=(11, 3.8 * len(archs)), squeeze=False)
    for row, g in zip(axes, archs):
        for a, split in zip(row, ("test", "ood")):
            for i, (name, b) in enumerate(res["summary"][g]["bands"][split].items()):
                _band(a, b, "grey" if name == "random" else f"C{i}", LABELS.get(name, name))
            a.axhline(0.5, color="k", lw=0.6, ls=":")
            a.set_title(f"heads {g}, {'in-distribution' if split == 'test' else 'held-out classes'} "
                        f"(n = {res['summary'][g]['n_models']} models)", fontsize=9)
            a.set_xlabel("heads pruned")
            a.set_ylabel("accuracy")
    axes[0][1].legend(fontsize=7)
    fig.tight_layout()
    paths = save_figure(fig, out, "prune_seeds_curves")
    plt.close(fig)
    return paths


def figure_diagnosis(res, out):
    """Theory-order curves: measured, without the 1/√(H−k) rescaling, and with the threshold re-centred."""
    import matplotlib.pyplot as plt

    archs = _archs(res)
    fig, axes = plt.subplots(1, len(archs), figsize=(5.5 * len(archs), 3.8), squeeze=False)
    for a, g in zip(axes[0], archs):
        bands = res["summary"][g]["bands"]
        for key, color, label, ls in (("test", "C0", "measured", "-"),
                                      ("no_rescale", "C3", "no 1/√(H−k) rescaling (identical)", "--"),
                                      ("recentred", "C2", "threshold re-centred (val median)", "-")):
            _band(a, bands[key]["theory"], color, label, ls, fill=key != "no_rescale")
        for r in res["models"]:
            if r.get("status") == "ok" and "x".join(map(str, r["heads"])) == g:
                a.plot(r["curves"]["theory"]["test"], color="C0", lw=0.6, alpha=0.5)
        a.set_title(f"theory order, heads {g}: mean ± 95 % (thin: each model)", fontsize=9)
        a.set_xlabel("heads pruned")
        a.set_ylabel("in-distribution accuracy")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    paths = save_figure(fig, out, "prune_seeds_diagnosis")
    plt.close(fig)
    return paths


def figure_scatter(res, out):
    """Measured single-head test-accuracy drop versus score, pooled over models, one panel per ranking."""
    import matplotlib.pyplot as plt

    ok = [r for r in res["models"] if r.get("status") == "ok"]
    fig, axes = plt.subplots(1, len(RANKED), figsize=(3.6 * len(RANKED), 3.4), sharey=True)
    archs = sorted({"x".join(map(str, r["heads"])) for r in ok})
    for a, name in zip(axes, RANKED):
        for j, g in enumerate(archs):
            rs = [r for r in ok if "x".join(map(str, r["heads"])) == g]
            s = np.concatenate([random_scores(r) if name == "random" else r["scores"][name] for r in rs])
            d = np.concatenate([r["single"]["test"]["measured"] for r in rs])
            a.scatter(s, d, s=10, color=f"C{j}", label=f"heads {g}")
        sp = res["summary"]["all"]["spearman"][name]["test"]
        a.set_title(f"{LABELS.get(name, name)}\npooled ρ = {fmt(sp['pooled'], '.2f')}", fontsize=8)
        a.set_xlabel("score")
    axes[0].set_ylabel("single-head accuracy drop (test)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    paths = save_figure(fig, out, "prune_seeds_scatter")
    plt.close(fig)
    return paths


def _ci(c):
    return f"[{fmt(c[0], '.2f')}, {fmt(c[1], '.2f')}]"


def _spearman_lines(res):
    lines = ["| group | ranking | pooled ρ ID [95 %] | mean per-model ρ ID [95 %] | pooled ρ held-out [95 %] | "
             "per-model ρ ID |", "|---|---|---|---|---|---|"]
    for g, s in res["summary"].items():
        if g == "claims":
            continue
        for name in RANKED:
            t, o = s["spearman"][name]["test"], s["spearman"][name]["ood"]
            lines.append(f"| {g} (n={s['n_models']}) | {LABELS.get(name, name)} | {fmt(t['pooled'], '.2f')} "
                         f"{_ci(t['pooled_ci'])} | {fmt(t['mean'], '.2f')} {_ci(t['mean_ci'])} | "
                         f"{fmt(o['pooled'], '.2f')} {_ci(o['pooled_ci'])} | "
                         + ", ".join(fmt(v, ".2f") for v in t["per_model"]) + " |")
    return lines


def _claim_lines(res):
    cfg = res["config"]
    rows = res["summary"]["claims"]["theory"]
    lines = [f"Claim: the {cfg['lowest']} lowest-scoring heads (theory ranking) cost ≤ {cfg['threshold']:g} "
             "test accuracy each, every other head more.", "",
             "| heads | seed | GD test acc. | drops of the lowest | smallest other drop | lowest ≤ thr | others > thr | "
             "claim holds |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["holds"] is None:
            lines.append(f"| {r['heads']} | {r['seed']} | {fmt(r['accuracy'])} | — | — | — | — | excluded: {r['reason']} |")
            continue
        lines.append(f"| {r['heads']} | {r['seed']} | {fmt(r['accuracy'])} | "
                     + ", ".join(fmt(v) for v in r["lowest_drops"]) + f" | {fmt(r['other_min_drop'])} | "
                     f"{'yes' if r['lowest_ok'] else 'no'} | {'yes' if r['others_ok'] else 'no'} | "
                     f"**{'yes' if r['holds'] else 'no'}** |")
    lines += ["", "| ranking | claim holds (models) |", "|---|---|"]
    for name, tab in res["summary"]["claims"].items():
        ev = [r for r in tab if r["holds"] is not None]
        lines.append(f"| {LABELS.get(name, name)} | {sum(r['holds'] for r in ev)} of {len(ev)} |")
    return lines


def _diagnosis_lines(res):
    m = res["summary"]["all"]["monotonicity"]
    return [f"Over {m['curves']} pruning curves (every ranking and random order of every usable model): "
            f"{m['rises']} rises of more than 2 points in the measured accuracy; {m['rises_no_rescale']} without "
            f"the 1/√(H−k) rescaling (largest difference between the two curves: "
            f"{fmt(m['rescale_changes_accuracy'], '.3g')} — the rescaling multiplies f by a positive constant, so it "
            f"cannot change any sign); {m['rises_recentred']} once the decision threshold is re-centred on the "
            f"validation median; {m['rises_after_one_head']} of the {m['rises']} rises come right after a step that "
            f"left a layer with one head. Mean |fraction of positive outputs − 0.5| just before a rise "
            f"{fmt(m['rise_frac_positive'])}, over all points {fmt(m['overall_frac_positive'])}."]


def _prediction_lines(res):
    lines = ["| split | prediction | MAE single-head drop [95 %] | Spearman with measured drop | MAE along theory order |",
             "|---|---|---|---|---|"]
    for split, p in res["summary"]["all"]["predictions"].items():
        for kind, v in p.items():
            lines.append(f"| {split} | {kind.replace('_', '-')} | {fmt(v['mae_single'])} {_ci(v['mae_single_ci'])} | "
                         f"{fmt(v['spearman_single'], '.2f')} | {fmt(v['mae_curve'])} |")
    return lines


def report_markdown(res):
    """The Markdown report of the multi-model pruning statistics."""
    c = res["config"]
    models = res["models"]
    lines = ["# Pruning with statistics (THEORY §6–7)", "",
             f"{c['seeds']} seeds × architectures {c['architectures']} (N = {c['width']}, G = {c['qk_dim']}, "
             f"{c['train_steps']} Adam steps, lr {c['learning_rate']}); theory P = {c['n_train']}, (N, T) chosen on "
             f"{c['n_val']} validation sequences from N ∈ {c['theory_widths']}, T ∈ {c['temperatures']}; "
             f"{c['n_test']} test sequences per split; {c['permutations']} random orders; {c['n_boot']} bootstrap "
             f"resamples (models resampled). Versions {res['versions']}, commit `{res['commit']}`, "
             f"wall time {fmt(res['wall_time'], '.0f')} s.", "", "## Models", "",
             "| heads | seed | GD val / test / held-out | theory (N, T) | theory test / held-out | r(U_1 theory, trained) |",
             "|---|---|---|---|---|---|"]
    for r in models:
        g, t = r["gd"], r["theory"]
        th = f"({t['width']}, {t['temperature']:g}) | {fmt(t['test'])} / {fmt(t['ood'])}" if t else "no converged theory | —"
        lines.append(f"| {r['heads']} | {r['seed']} | {fmt(g['val'])} / {fmt(g['test'])} / {fmt(g['ood'])} | {th} | "
                     f"{fmt(r.get('u1_pearson'))} |")
    lines += ["", "## Spearman ρ of scores with the measured single-head drop", ""] + _spearman_lines(res)
    lines += ["", "![scatter](prune_seeds_scatter.png)", "", "## The paper's claim, per model", ""] + _claim_lines(res)
    lines += ["", "## Pruning curves (mean ± 95 % interval over models)", "", "![curves](prune_seeds_curves.png)", "",
              "## Why the curves are not monotonic", ""] + _diagnosis_lines(res)
    lines += ["", "![diagnosis](prune_seeds_diagnosis.png)", "",
              "## Theory-side prediction (zeroed U_1 rows/columns) versus the re-solved theory", ""]
    return "\n".join(lines + _prediction_lines(res) + [""])


def write_report(res, out):
    """Write the figures and ``OUT/report.md``; returns ``{"report", "figures"}``."""
    import matplotlib

    matplotlib.use("Agg")
    os.makedirs(out, exist_ok=True)
    figs = []
    if _archs(res):
        for f in (figure_curves, figure_diagnosis, figure_scatter):
            figs += f(res, out)
    path = os.path.join(out, "report.md")
    with open(path, "w") as fh:
        fh.write(report_markdown(res))
    return dict(report=path, figures=figs)
