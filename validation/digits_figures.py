"""Figures of the digits theory-versus-sampling experiment (docs/theory.md §6; docs/theory.md §3, §8).

* :func:`figure_accuracy` — accuracy versus N, in-distribution and held-out classes: the theory line,
  sampled points ± MCSE (``overlap`` and Gibbs), the GP line;
* :func:`figure_u1_maps` — ``U_1`` heat maps, theory / sampled / trained weights, at the smallest and the
  largest sampled N, with the entry-wise Pearson correlations;
* :func:`figure_alignment` — kernel–task alignment ``|φ_k·Y|/√P`` of the GP and renormalised kernels.

Every figure is written as PNG and PDF by :func:`smtheory.validation.pruning_outputs.save_figure`.
"""
from __future__ import annotations

import numpy as np

from .pruning_outputs import save_figure

__all__ = ["figure_accuracy", "figure_u1_maps", "figure_alignment", "all_figures"]

SPLITS = (("test", "in-distribution test"), ("ood", "held-out classes"))


def _sampled_points(res, kind, split):
    pts = [(s["width"], s["splits"][split]["accuracy"], s["splits"][split]["accuracy_mcse"] or 0.0, s["converged"])
           for s in res["samples"].values() if s["kind"] == kind]
    return sorted(pts)


def figure_accuracy(res, out):
    """Accuracy versus N (log axis): theory, sampled ± MCSE, Gibbs, GP; one panel per split."""
    import matplotlib.pyplot as plt

    rows = [r for r in res["theory"] if r["converged"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for a, (split, title) in zip(axes, SPLITS):
        a.semilogx([r["width"] for r in rows], [r[split]["accuracy"] for r in rows], "-o", color="C0", ms=4,
                   label="theory (T chosen on validation)")
        for kind, color, marker, name in (("sample", "C1", "s", "sampled (overlap)"), ("gibbs", "C2", "^", "Gibbs")):
            pts = _sampled_points(res, kind, split)
            if pts:
                w, acc, se, ok = map(np.asarray, zip(*pts))
                a.errorbar(w, acc, yerr=se, fmt=marker, color=color, ms=6, capsize=3, label=f"{name} ± MCSE")
                bad = ~ok.astype(bool)
                if bad.any():
                    a.plot(w[bad], acc[bad], "x", color="red", ms=10, label="R-hat above target")
        a.axhline(res["gp"][split]["accuracy"], color="grey", ls="--", label=f"GP (T = {res['gp']['temperature']:g})")
        a.set_xlabel("width N")
        a.set_title(title)
    axes[0].set_ylabel("accuracy")
    axes[1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    paths = save_figure(fig, out, "digits_accuracy_vs_N")
    plt.close(fig)
    return paths


def figure_u1_maps(res, out):
    """``U_1`` heat maps (rows: small and large N; columns: theory, sampled, trained weights)."""
    import matplotlib.pyplot as plt

    maps = res["u1_maps"]
    if not maps:
        return []
    Ut = np.asarray(res["U1_trained"])
    fig, axes = plt.subplots(len(maps), 3, figsize=(12, 3.8 * len(maps)), squeeze=False)
    for row, (w, m) in zip(axes, sorted(maps.items(), key=lambda kv: int(kv[0]))):
        c = m["pearson"]
        for a, M, title in ((row[0], m["theory"], f"theory U_1, N = {w}"),
                            (row[1], m["sampled"], f"sampled U_1, N = {w}\nr(theory) = {c['theory_sampled']:.3f}"),
                            (row[2], Ut, f"trained weights U_1\nr(theory) = {c['theory_trained']:.3f}, "
                                         f"r(sampled) = {c['sampled_trained']:.3f}")):
            M = np.asarray(M)
            v = np.abs(M).max()
            im = a.imshow(M, cmap="RdBu_r", vmin=-v, vmax=v)
            a.set_title(title, fontsize=9)
            a.set_xlabel("path π'")
            a.set_ylabel("path π")
            fig.colorbar(im, ax=a, fraction=0.046)
    fig.tight_layout()
    paths = save_figure(fig, out, "digits_u1_maps")
    plt.close(fig)
    return paths


def figure_alignment(res, out):
    """``|φ_k · Y| / √P`` of the top principal components: GP versus renormalised kernels."""
    import matplotlib.pyplot as plt

    al = res["kernels"]
    if not al:
        return []
    fig, ax = plt.subplots(figsize=(6, 3.6))
    k = np.arange(1, len(al["gp"]) + 1)
    ax.plot(k, al["gp"], "o-", color="grey", ms=3, label="GP kernel")
    for i, (w, v) in enumerate(sorted(al["renormalized"].items(), key=lambda kv: int(kv[0]))):
        ax.plot(k, v["alignment"], "o-", color=f"C{i}", ms=3, label=f"renormalised, N = {w}")
    ax.set_xlabel("principal component k")
    ax.set_ylabel("|φ_k · Y| / √P")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths = save_figure(fig, out, "digits_alignment")
    plt.close(fig)
    return paths


def all_figures(res, out):
    """Every figure of the experiment (and the teacher's training curve); returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    from .pruning_outputs import plot_training_curve

    paths = plot_training_curve(res["model"]["curve"], out, name="digits_teacher_training",
                                title="teacher (GD) training, digits")
    for fig in (figure_accuracy, figure_u1_maps, figure_alignment):
        paths += fig(res, out)
    return paths
