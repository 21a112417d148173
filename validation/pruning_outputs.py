"""Figures, Markdown report and JSON of the single-model pruning experiment (docs/theory.md §6–7).

:func:`write_outputs` turns the result of :func:`smtheory.validation.pruning.run_pruning` into
``report.md``, ``pruning.json`` and the figures (PNG + PDF): training curve, theory versus trained-weights
``U_1``, head scores, pruning curves.  :func:`jsonable`, :func:`save_figure` and :func:`fmt` are shared with
the multi-model statistics (:mod:`smtheory.validation.pruning_stats_report`).
"""
from __future__ import annotations

import os

import numpy as np

from .pruning_rankings import LABELS, RANKINGS

__all__ = ["jsonable", "save_figure", "plot_training_curve", "fmt", "report_markdown", "write_outputs"]


# ====================================================================================== outputs
def jsonable(obj):
    """``obj`` as strict JSON: private (``_``) keys dropped, NumPy converted, NaN / inf as ``None``."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if np.isfinite(v) else None  # strict JSON: NaN / inf as null
    return obj


def save_figure(fig, out, name):
    """Save ``fig`` as ``OUT/name.png`` and ``.pdf``; returns the paths."""
    paths = []
    for ext in ("png", "pdf"):
        p = os.path.join(out, f"{name}.{ext}")
        fig.savefig(p, dpi=130, bbox_inches="tight")
        paths.append(p)
    return paths


def plot_training_curve(curve, out, name="training_curve", title=None):
    """Train loss (window mean), validation loss and validation accuracy versus step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    ax[0].semilogy(curve["step"], curve["train_loss"], label="train (window mean)")
    ax[0].semilogy(curve["step"], curve["val_loss"], label="validation")
    ax[0].set_xlabel("step")
    ax[0].set_ylabel("MSE")
    ax[0].legend()
    ax[1].plot(curve["step"], curve["val_accuracy"], color="C2")
    ax[1].axhline(0.5, color="grey", lw=0.8, ls=":")
    ax[1].set_xlabel("step")
    ax[1].set_ylabel("validation accuracy")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    paths = save_figure(fig, out, name)
    plt.close(fig)
    return paths


def _figure_u1(res, out):
    """Theory ``U_1`` and trained-weights ``U_1`` side by side, and the scatter of their entries (docs/theory.md §2–3)."""
    import matplotlib.pyplot as plt

    arr = res["_arrays"]
    U1, Ue = arr["U1"], arr["U1_eff"]
    fig, ax = plt.subplots(1, 3, figsize=(13, 4))
    for a, M, t in ((ax[0], U1, f"theory U_1 (N={res['theory']['width']}, T={res['theory']['temperature']:g})"),
                    (ax[1], Ue, "U_1 of trained weights (1/N) w_π·w_π'")):
        v = np.abs(M).max()
        im = a.imshow(M, cmap="RdBu_r", vmin=-v, vmax=v)
        a.set_title(t, fontsize=9)
        a.set_xlabel("path π'")
        a.set_ylabel("path π")
        fig.colorbar(im, ax=a, fraction=0.046)
    iu = np.triu_indices(U1.shape[0])
    diag = iu[0] == iu[1]
    ax[2].scatter(U1[iu][~diag], Ue[iu][~diag], s=12, label="off-diagonal")
    ax[2].scatter(U1[iu][diag], Ue[iu][diag], s=18, marker="s", label="diagonal")
    ax[2].set_xlabel("theory U_1 entry")
    ax[2].set_ylabel("trained-weights U_1 entry")
    c = res["u1_comparison"]
    ax[2].set_title(f"Pearson r = {c['pearson_all_entries']:.3f} (off-diag {c['pearson_offdiagonal']:.3f})",
                    fontsize=9)
    ax[2].legend(fontsize=8)
    fig.tight_layout()
    paths = save_figure(fig, out, "u1_comparison")
    plt.close(fig)
    return paths


def _figure_head_scores(res, out):
    """Bar chart of the head scores of every ranking (each divided by its largest magnitude)."""
    import matplotlib.pyplot as plt

    labels = res["head_labels"]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(9, 3.4))
    series = [("theory", np.concatenate(res["rankings"]["theory"]["scores"])),
              ("trained_u1", np.concatenate(res["rankings"]["trained_u1"]["scores"])),
              ("gradient", np.concatenate(res["rankings"]["gradient"]["scores"]))]
    if res["single_head_drop"]:
        d = np.asarray(res["single_head_drop"]["test"]["measured"])
        series.append(("measured test-accuracy drop", d))
    w = 0.8 / len(series)
    for i, (name, s) in enumerate(series):
        s = np.asarray(s, float)
        m = np.abs(s).max()
        ax.bar(x + (i - (len(series) - 1) / 2) * w, s / m if m > 0 else s, w, label=LABELS.get(name, name))
    ax.set_xticks(x, labels)
    ax.set_ylabel("score / max")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths = save_figure(fig, out, "head_scores")
    plt.close(fig)
    return paths


def _figure_curves(res, out):
    """Pruning curves on the in- and out-of-distribution test sets, with random orders and the theory side."""
    import matplotlib.pyplot as plt

    cv = res["curves"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for a, split, title in ((axes[0], "test", "in-distribution test"), (axes[1], "ood", "out-of-distribution test")):
        k = np.arange(len(cv["theory"][split]))
        for i, name in enumerate(n for n in RANKINGS if n in cv):
            a.plot(k, cv[name][split], marker="o", ms=3, color=f"C{i}", label=LABELS[name])
        m, s = np.asarray(cv["random"][split]["mean"]), np.asarray(cv["random"][split]["sd"])
        a.plot(k, m, color="grey", label=f"{LABELS['random']} (mean ± sd, {cv['random']['n_permutations']})")
        a.fill_between(k, m - s, m + s, color="grey", alpha=0.25)
        a.plot(k, cv["theory"]["theory_" + split], ls="--", color="C0", label="theory-side prediction (zeroed U_1 rows)")
        a.axhline(0.5, color="k", lw=0.6, ls=":")
        a.set_xlabel("heads pruned")
        a.set_title(title)
    axes[0].set_ylabel("accuracy")
    axes[1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    paths = save_figure(fig, out, "pruning_curves")
    plt.close(fig)
    return paths


def _figures(res, out):
    """All figures of a pruning run: training curve, ``U_1`` comparison, head scores, pruning curves."""
    import matplotlib
    matplotlib.use("Agg")

    paths = plot_training_curve(res["model"]["curve"], out, title=f"GD training ({res['model']['config']['task']})")
    for figure in (_figure_u1, _figure_head_scores, _figure_curves):
        paths += figure(res, out)
    return paths


def fmt(v, spec=".3f"):
    """``v`` formatted with ``spec``, or ``str(v)`` when it is not a number."""
    try:
        return format(float(v), spec)
    except (TypeError, ValueError):
        return str(v)


def chance_note(res):
    """Report lines saying plainly whether the trained model is at chance (within 2 binomial SE of 0.5)."""
    from .digits_models import at_chance

    n = res["config"]["n_test"]
    at = [split for split in ("test", "ood") if at_chance(res["gd_accuracy"][split], n)]
    if not at:
        return []
    names = " and ".join({"test": "in-distribution", "ood": "out-of-distribution"}[s] for s in at)
    return [f"**The trained model is at chance on the {names} test set** (accuracy within 2 binomial standard errors "
            f"of 0.5 on {n} sequences): its pruning curves and head-score correlations there measure noise, not "
            "the heads' roles.", ""]


def report_markdown(res):
    """The Markdown report of a pruning run."""
    mc = res["model"]["config"]
    th = res["theory"]
    gd = res["gd_accuracy"]
    c = res["model"]["curve"]
    lines = [f"# Head ranking and pruning — {mc['task']} (docs/theory.md §6–7)", "",
             f"Model: heads {mc['heads']}, width N = {mc['width']}, G = {mc['qk_dim']}, readout {mc['readout']}, "
             f"{mc['steps']} Adam steps (lr {mc['learning_rate']}, batch {mc['batch_size']}, seed {mc['seed']}). "
             f"Checkpoint: `{res['model']['checkpoint']}`.", "",
             *chance_note(res), "## Training", "",
             f"Validation loss {fmt(res['model']['initial_val_loss'])} → {fmt(c['val_loss'][-1])}; "
             f"train loss (first window) {fmt(c['train_loss'][0])} → {fmt(c['train_loss'][-1])}; validation accuracy "
             f"{fmt(res['model']['initial_val_accuracy'])} → {fmt(c['val_accuracy'][-1])}.", "",
             "| accuracy | validation | in-distribution test | out-of-distribution test |", "|---|---|---|---|",
             f"| GD network | {fmt(gd['val'])} | {fmt(gd['test'])} | {fmt(gd['ood'])} |",
             f"| theory (N = {th['width']}, T = {th['temperature']:g}) | {fmt(th['val']['accuracy'])} | "
             f"{fmt(th['test']['accuracy'])} | {fmt(th['ood']['accuracy'])} |",
             f"| GP limit (same T) | {fmt(th['val']['gp_accuracy'])} | {fmt(th['test']['gp_accuracy'])} | "
             f"{fmt(th['ood']['gp_accuracy'])} |", "",
             "## Temperature chosen on the validation split", "",
             "| T | converged | validation accuracy | validation gen. error |", "|---|---|---|---|"]
    for r in th["temperature_grid"]:
        lines.append(f"| {r['temperature']:g} | {'yes' if r['converged'] else 'no: ' + r['message']} | "
                     f"{fmt(r.get('val_accuracy', '—'))} | {fmt(r.get('val_generalization_error', '—'))} |")
    s = th["solve"]
    lines += ["", f"Chosen T = {th['temperature']:g}: max residual {s['residuals'] and max(s['residuals']):.2e}, "
              f"smallest Hessian eigenvalue {s['hessian_min_eig']:.3g}, {s['iterations']} Newton iterations.", "",
              "## U_1: theory versus trained weights", "",
              "Pearson correlation of the entries of the theory U_1 and the U_1 of the trained weights "
              "(effective weights, (1/N) w_π·w_π'): " +
              ", ".join(f"{k.replace('pearson_', '').replace('_', ' ')} {fmt(v)}" for k, v in res["u1_comparison"].items()),
              "", "![U1](u1_comparison.png)", "", "## Head scores", "",
              "| head | " + " | ".join(LABELS[k] for k in res["rankings"]) +
              (" | measured drop (test) | measured drop (OOD) | theory-side drop (test) |" if res["single_head_drop"] else " |"),
              "|---" * (1 + len(res["rankings"]) + (3 if res["single_head_drop"] else 0)) + "|"]
    flat = {k: np.concatenate(v["scores"]) for k, v in res["rankings"].items()}
    for i, lab in enumerate(res["head_labels"]):
        row = f"| {lab} | " + " | ".join(fmt(flat[k][i]) for k in res["rankings"])
        if res["single_head_drop"]:
            sd = res["single_head_drop"]
            row += f" | {fmt(sd['test']['measured'][i])} | {fmt(sd['ood']['measured'][i])} | " \
                   f"{fmt(sd['test']['theory_side'][i])}"
        lines.append(row + " |")
    lines += ["", "![scores](head_scores.png)", ""]
    if res["spearman"]:
        lines += ["Spearman rank correlation between a score and the measured single-head accuracy drop "
                  "(positive = high score, large drop):", "", "| score | test ρ (p) | OOD ρ (p) |", "|---|---|---|"]
        for k, v in res["spearman"].items():
            lines.append(f"| {LABELS.get(k, k.replace('_', ' '))} | {fmt(v['test']['rho'])} ({fmt(v['test']['p'], '.2g')}) | "
                         f"{fmt(v['ood']['rho'])} ({fmt(v['ood']['p'], '.2g')}) |")
        lines.append("")
    cv = res["curves"]
    lines += ["## Pruning curves", "", "Accuracy of the pruned GD network (no retraining) after k heads removed "
              "(k = 0 is the full network); every layer keeps at least one head.", ""]
    for split, title in (("test", "In-distribution test"), ("ood", "Out-of-distribution test")):
        K = len(cv["theory"][split])
        lines += [f"**{title}**", "", "| ranking | " + " | ".join(f"k={k}" for k in range(K)) + " |",
                  "|---" * (K + 1) + "|"]
        for name in [n for n in RANKINGS if n in cv]:
            lines.append(f"| {LABELS[name]} | " + " | ".join(fmt(v) for v in cv[name][split]) + " |")
        m, sd = cv["random"][split]["mean"], cv["random"][split]["sd"]
        lines.append(f"| random (mean ± sd, {cv['random']['n_permutations']}) | " +
                     " | ".join(f"{fmt(a)} ± {fmt(b, '.3f')}" for a, b in zip(m, sd)) + " |")
        lines.append("| theory-side prediction, theory order | " +
                     " | ".join(fmt(v) for v in cv["theory"]["theory_" + split]) + " |")
        lines.append("")
    lines += ["Removal orders: " + "; ".join(f"{k}: " + ", ".join(f"L{l + 1}H{h + 1}" for l, h in cv[k]['removed'])
                                             for k in RANKINGS if k in cv), "",
              "![pruning](pruning_curves.png)", "", "## Timing", "",
              ", ".join(f"{k} {v:.2f} s" for k, v in res["timing"].items()), ""]
    return "\n".join(lines)


def write_outputs(res, out):
    """Write figures (PNG + PDF), ``report.md`` and ``pruning.json`` to the folder ``out``."""
    from smtheory.io import git_commit, versions, write_json_atomic

    os.makedirs(out, exist_ok=True)
    figs = _figures(res, out)
    with open(os.path.join(out, "report.md"), "w") as fh:
        fh.write(report_markdown(res))
    payload = jsonable(res)
    payload["U1_theory"] = np.asarray(res["_arrays"]["U1"]).tolist()
    payload["U1_trained_weights"] = np.asarray(res["_arrays"]["U1_eff"]).tolist()
    payload["path_labels"] = res["_arrays"]["path_labels"]
    payload["versions"] = versions()
    payload["commit"] = git_commit()
    write_json_atomic(os.path.join(out, "pruning.json"), payload)
    return figs + [os.path.join(out, "report.md"), os.path.join(out, "pruning.json")]