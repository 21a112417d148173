"""Figures of the Markov theory-versus-sampling experiment (THEORY.md §5), PNG and PDF.

Every function takes the results dict of :func:`smtheory.validation.markov.run_markov` and an output
folder, writes ``<name>.png`` and ``<name>.pdf`` and returns the file stem.  Matplotlib runs
headless (Agg); nothing is shown.
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["accuracy_vs_width", "generalization_vs_width", "u1_heatmaps", "kernel_panels", "alignment_bars",
           "predictor_scatter", "all_figures"]

_GP_STYLE = {"all": ("tab:gray", ":"), "g": ("tab:green", "--"), "g+d": ("tab:purple", "-.")}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_dir, stem):
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, stem)
    fig.savefig(base + ".png", dpi=150, bbox_inches="tight")
    fig.savefig(base + ".pdf", bbox_inches="tight")
    _plt().close(fig)
    return stem


def _width_curve(results, key, sampled_key, mcse_key, ylabel, stem, out_dir):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    rows = results["theory"]
    N = np.array([r["width"] for r in rows])
    ax.plot(N, [r[key] for r in rows], "-", color="tab:blue", lw=2, label="theory (renormalised)")
    bad = [r["width"] for r in rows if not r["converged"]]
    if bad:
        ax.plot(bad, [r[key] for r in rows if not r["converged"]], "x", color="red", ms=9,
                label="theory NOT converged")
    for name, gp in results["gp"].items():
        color, ls = _GP_STYLE.get(name, ("k", ":"))
        ax.axhline(gp[key], color=color, ls=ls, lw=1.3, label=f"GP ({name})")
    samples = results["samples"]
    if samples:
        w = np.array([int(k) for k in samples])
        v = np.array([s[sampled_key] for s in samples.values()])
        e = np.array([s[mcse_key] for s in samples.values()])
        conv = np.array([s["converged"] for s in samples.values()])
        ax.errorbar(w[conv], v[conv], yerr=e[conv], fmt="o", color="tab:orange", capsize=3,
                    label="sampled (Gibbs) ± MCSE")
        if (~conv).any():
            ax.errorbar(w[~conv], v[~conv], yerr=e[~conv], fmt="o", mfc="none", color="red", capsize=3,
                        label="sampled, R-hat not met")
    ax.set_xscale("log")
    ax.set_xlabel("width N")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{results['name']}: {ylabel} versus width")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3, which="both")
    return _save(fig, out_dir, stem)


def accuracy_vs_width(results, out_dir):
    """Test accuracy of the mean predictor versus N: theory line, sampled points, GP lines."""
    return _width_curve(results, "test_accuracy", "test_accuracy", "test_accuracy_mcse", "test accuracy",
                        f"{results['name']}_accuracy", out_dir)


def generalization_vs_width(results, out_dir):
    """Generalisation error versus N: theory line, sampled points, GP lines."""
    return _width_curve(results, "generalization_error", "generalization_error", "generalization_error_mcse",
                        "generalisation error", f"{results['name']}_generalization", out_dir)


def _heat(ax, M, labels, vmax, title, cmap="RdBu_r"):
    im = ax.imshow(M, cmap=cmap, vmin=-vmax, vmax=vmax)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_title(title, fontsize=9)
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            ax.text(j, i, f"{M[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(M[i, j]) > 0.6 * vmax else "black")
    return im


def u1_heatmaps(results, out_dir, widths=(10, 100, 1000)):
    """U_1 theory (top) versus sampled (bottom) at the given widths; diverging map centred at 0."""
    plt = _plt()
    rows = {r["width"]: r for r in results["theory"]}
    widths = [w for w in widths if w in rows]
    labels = results["path_names"]
    mats = [np.asarray(rows[w]["U1"]) for w in widths]
    mats += [np.asarray(results["samples"][str(w)]["U1_sampled"]) for w in widths if str(w) in results["samples"]]
    vmax = max(float(np.max(np.abs(m))) for m in mats)
    fig, axes = plt.subplots(2, len(widths), figsize=(3.1 * len(widths), 6.0), squeeze=False)
    for k, w in enumerate(widths):
        im = _heat(axes[0, k], np.asarray(rows[w]["U1"]), labels, vmax, f"theory, N={w}")
        s = results["samples"].get(str(w))
        if s is None:
            axes[1, k].axis("off")
            axes[1, k].text(0.5, 0.5, f"N={w}\nnot sampled", ha="center", va="center")
        else:
            flag = "" if s["converged"] else " (R-hat not met)"
            _heat(axes[1, k], np.asarray(s["U1_sampled"]), labels, vmax, f"sampled, N={w}{flag}")
    fig.colorbar(im, ax=axes, shrink=0.7, label="U_1 entry (GP value: 1 on the diagonal)")
    fig.suptitle(f"{results['name']}: order parameter U_1")
    return _save(fig, out_dir, f"{results['name']}_U1")


def kernel_panels(results, out_dir):
    """Path-pair kernels C_ππ' and the GP / renormalised kernels on a class-sorted training subset."""
    plt = _plt()
    k = results["kernels"]
    C = np.asarray(k["path_pair"])
    D = C.shape[0]
    labels = results["path_names"]
    n = C.shape[2]
    n_pos = int(np.sum(np.asarray(k["labels"]) > 0))
    fig, axes = plt.subplots(D, D + 2, figsize=(2.0 * (D + 2), 2.0 * D), squeeze=False)
    vmax = float(np.max(np.abs(C)))
    for i in range(D):
        for j in range(D):
            ax = axes[i, j]
            ax.imshow(C[i, j], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"C[{labels[i]},{labels[j]}]", fontsize=8)
            ax.axhline(n_pos - 0.5, color="k", lw=0.5)
            ax.axvline(n_pos - 0.5, color="k", lw=0.5)
    for col, (name, K) in enumerate((("GP kernel", k["gp"]),
                                     (f"renormalised, N={k['renormalized_width']}", k["renormalized"]))):
        K = np.asarray(K)
        v = float(np.max(np.abs(K)))
        for i in range(D):
            axes[i, D + col].axis("off")
        ax = axes[0, D + col]
        ax.axis("on")
        ax.imshow(K, cmap="RdBu_r", vmin=-v, vmax=v)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(name, fontsize=8)
        ax.axhline(n_pos - 0.5, color="k", lw=0.5)
        ax.axvline(n_pos - 0.5, color="k", lw=0.5)
    fig.suptitle(f"{results['name']}: kernels on {n} class-sorted training examples (class +1 first)", fontsize=10)
    return _save(fig, out_dir, f"{results['name']}_kernels")


def alignment_bars(results, out_dir):
    """Kernel–task alignment |φ_k·Y|/√P of the top principal components, GP versus renormalised."""
    plt = _plt()
    a = results["kernels"]["alignment"]
    gp, ren = np.asarray(a["gp"]), np.asarray(a["renormalized"])
    k = np.arange(1, len(gp) + 1)
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ax.bar(k - 0.2, gp, width=0.4, color="tab:gray", label="GP")
    ax.bar(k + 0.2, ren, width=0.4, color="tab:blue", label=f"renormalised, N={a['width']}")
    ax.set_xlabel("principal component k (by eigenvalue)")
    ax.set_ylabel("|φ_k · Y| / √P")
    ax.set_title(f"{results['name']}: kernel–task alignment (cumulative²: GP {np.sum(gp ** 2):.2f}, "
                 f"renormalised {np.sum(ren ** 2):.2f})", fontsize=9)
    ax.legend(fontsize=8)
    return _save(fig, out_dir, f"{results['name']}_alignment")


def predictor_scatter(results, out_dir):
    """Theory versus sampled mean predictor on the test set, one panel per sampled width."""
    plt = _plt()
    rows = {r["width"]: r for r in results["theory"]}
    widths = [int(w) for w in results["samples"]]
    fig, axes = plt.subplots(1, max(len(widths), 1), figsize=(3.4 * max(len(widths), 1), 3.4), squeeze=False)
    y = np.asarray(results["y_test"])
    for ax, w in zip(axes[0], widths):
        th = np.asarray(rows[w]["predictor_mean"])
        sa = np.asarray(results["samples"][str(w)]["predictor_mean"])
        lim = 1.05 * max(np.max(np.abs(th)), np.max(np.abs(sa)))
        ax.plot([-lim, lim], [-lim, lim], "k-", lw=0.8, label="identity")
        ax.scatter(th[y > 0], sa[y > 0], s=4, alpha=0.5, color="tab:red", label="y = +1")
        ax.scatter(th[y < 0], sa[y < 0], s=4, alpha=0.5, color="tab:blue", label="y = −1")
        r = np.corrcoef(th, sa)[0, 1]
        ax.set_title(f"N={w}: corr {r:.4f}", fontsize=9)
        ax.set_xlabel("theory ⟨f⟩")
        ax.set_ylabel("sampled ⟨f⟩")
        ax.set_aspect("equal")
        ax.legend(fontsize=7, loc="upper left")
    if not widths:
        axes[0, 0].axis("off")
    fig.subplots_adjust(wspace=0.4)
    fig.suptitle(f"{results['name']}: mean predictor on the test set", fontsize=10)
    return _save(fig, out_dir, f"{results['name']}_predictor")


def all_figures(results, out_dir):
    """Every figure of the experiment; returns the list of file stems written."""
    return [accuracy_vs_width(results, out_dir), generalization_vs_width(results, out_dir),
            u1_heatmaps(results, out_dir), kernel_panels(results, out_dir), alignment_bars(results, out_dir),
            predictor_scatter(results, out_dir)]
