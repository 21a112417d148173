"""Figures of the Markov theory-versus-sampling experiment (docs/theory.md §5, §8.3–8.4), PNG and PDF.

Every function takes the results dict of :func:`smtheory.validation.markov.run_markov` and an output
folder, writes ``<name>.png`` and ``<name>.pdf`` and returns the file stem.  Conventions shared by all of
them: labels in mathtext (``$U_1$``, ``$N$``), legends outside the axes, a colour bar on every heat map and
the figure says which panels share a colour scale; sampled ``U_1`` entries carry their Monte-Carlo standard
error (in the cells for ``D ≤ 6`` paths, else in an MCSE row).  Matplotlib runs headless (Agg); nothing is
shown.
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["accuracy_vs_width", "generalization_vs_width", "u1_heatmaps", "kernel_panels", "alignment_bars",
           "predictor_scatter", "all_figures"]

_GP_STYLE = {"all": ("tab:gray", ":"), "g": ("tab:green", "--"), "g+d": ("tab:purple", "-.")}
_ANNOTATE_MAX_D = 6  # U_1 cells carry "value ± MCSE" up to this many paths; beyond, an MCSE row
_TITLE, _LEGEND, _CELL = 10, 8, 8  # font sizes (points); axis labels and ticks keep matplotlib's 10


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


def _legend_right(ax):
    """The legend to the right of the axes, outside the data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=_LEGEND, frameon=False)


def _sampled_points(ax, results, sampled_key, mcse_key):
    samples = results["samples"]
    if not samples:
        return
    w = np.array([int(k) for k in samples])
    v = np.array([s[sampled_key] for s in samples.values()], float)
    e = np.array([s[mcse_key] for s in samples.values()], float)
    conv = np.array([bool(s["converged"]) for s in samples.values()])
    name = results.get("sampler", "sampled")
    if conv.any():
        ax.errorbar(w[conv], v[conv], yerr=e[conv], fmt="o", color="tab:orange", capsize=3,
                    label=f"sampled ({name}) $\\pm$ MCSE")
    if (~conv).any():
        ax.errorbar(w[~conv], v[~conv], yerr=e[~conv], fmt="o", mfc="none", color="red", capsize=3,
                    label=f"sampled ({name}), $\\hat R$ target not met")


def _gp_lines(ax, gps, key):
    """One horizontal line per distinct GP value; GP baselines that coincide (the 2-path network's full GP is
    its GP(g+d)) share one line and one legend entry, so none is hidden under another."""
    drawn = []
    for name, gp in gps.items():
        same = [d for d in drawn if np.isclose(d[0], gp[key], rtol=1e-9, atol=1e-12)]
        if same:
            same[0][1].append(name)
        else:
            drawn.append((gp[key], [name]))
    for value, names in drawn:
        color, ls = _GP_STYLE.get(names[-1], ("k", ":"))
        ax.axhline(value, color=color, ls=ls, lw=1.3, label=f"GP ({' = '.join(names)})")


def _width_curve(results, key, sampled_key, mcse_key, ylabel, stem, out_dir):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.4, 3.6), layout="constrained")
    rows = results["theory"]
    N = np.array([r["width"] for r in rows])
    ax.plot(N, [r[key] for r in rows], "-", color="tab:blue", lw=2, label="theory (renormalised saddle point)")
    bad = [r for r in rows if not r["converged"]]
    if bad:
        ax.plot([r["width"] for r in bad], [r[key] for r in bad], "x", color="red", ms=9,
                label="theory NOT converged")
    _gp_lines(ax, results["gp"], key)
    _sampled_points(ax, results, sampled_key, mcse_key)
    ax.set_xscale("log")
    ax.set_xlabel(r"width $N$ (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{results['name']}: {ylabel} versus width $N$", fontsize=_TITLE)
    ax.grid(alpha=0.3, which="both")
    _legend_right(ax)
    return _save(fig, out_dir, stem)


def accuracy_vs_width(results, out_dir):
    """Test accuracy of the mean predictor versus N (docs/theory.md §3, §5): theory, sampled ± MCSE, GP lines."""
    return _width_curve(results, "test_accuracy", "test_accuracy", "test_accuracy_mcse",
                        "test accuracy (fraction correct)", f"{results['name']}_accuracy", out_dir)


def generalization_vs_width(results, out_dir):
    """Generalisation error (test MSE, docs/theory.md §8.3) versus N: theory, sampled ± MCSE, GP lines."""
    return _width_curve(results, "generalization_error", "generalization_error", "generalization_error_mcse",
                        r"generalisation error $\epsilon_g$ (test MSE)", f"{results['name']}_generalization",
                        out_dir)


def _cell(value, mcse=None):
    """Cell annotation: the value; with ``mcse``, ``±MCSE`` (one significant digit) on a second line and the
    value to the MCSE's decimal place (2 to 4 decimals)."""
    if mcse is None or not np.isfinite(mcse) or mcse <= 0:
        digits = 2
    else:
        digits = int(min(4, max(2, np.ceil(-np.log10(mcse)))))
    value = 0.0 if round(value, digits) == 0 else value  # no "-0.00"
    text = f"{value:.{digits}f}"
    if mcse is None:
        return text
    return f"{text}\n±{mcse:.1g}" if np.isfinite(mcse) else f"{text}\n±n/a"


def _heat(ax, M, labels, vmax, title, mcse=None, annotate=True):
    """A diverging heat map centred at 0; cells annotated with the value (± MCSE when ``mcse`` is given)."""
    im = ax.imshow(M, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_title(title, fontsize=_TITLE)
    for i in range(M.shape[0] if annotate else 0):
        for j in range(M.shape[1]):
            ax.text(j, i, _cell(M[i, j], None if mcse is None else mcse[i, j]), ha="center", va="center",
                    fontsize=_CELL, color="white" if abs(M[i, j]) > 0.6 * vmax else "black")
    return im


def _not_sampled(ax, width):
    ax.axis("off")
    ax.text(0.5, 0.5, f"$N={width}$\nnot sampled", ha="center", va="center", transform=ax.transAxes)


def _sampled_column(axes, s, labels, vmax, width, emax):
    """The sampled ⟨U_1⟩ panel of one width (cells ± MCSE), and its MCSE panel when ``axes`` has two rows."""
    if s is None:
        for ax in axes:
            _not_sampled(ax, width)
        return None
    U, E = np.asarray(s["U1_sampled"], float), np.asarray(s["U1_mcse"], float)  # None -> nan
    flag = "" if s["converged"] else r", $\hat R$ not met"
    _heat(axes[0], U, labels, vmax, rf"sampled $\langle U_1\rangle$, $N={width}${flag}", mcse=E,
          annotate=len(axes) == 1)
    if len(axes) == 1:
        return None
    im = axes[1].imshow(E, cmap="viridis", vmin=0.0, vmax=emax)
    axes[1].set_xticks(range(len(labels)), labels)
    axes[1].set_yticks(range(len(labels)), labels)
    axes[1].set_title(rf"MCSE of $\langle U_1\rangle$, $N={width}$", fontsize=_TITLE)
    return im


def u1_heatmaps(results, out_dir, widths=(10, 100, 1000)):
    """``U_1`` theory (top) versus sampled ``⟨U_1⟩ ± MCSE`` (below) per width (docs/theory.md §3, §8.4).

    One diverging colour scale centred at 0 is shared by all ``U_1`` panels (the figure says so).  Up to
    ``D = 6`` paths every cell is annotated (sampled: ``value`` over ``±MCSE``); for more paths the cells are
    not annotated and a third row shows the MCSE of each sampled entry (its own colour bar).

    Parameters
    ----------
    results : dict
        From :func:`smtheory.validation.markov.run_markov` (``theory``, ``samples`` with ``U1_sampled`` and
        ``U1_mcse``, ``path_names``, ``name``).
    out_dir : str
    widths : sequence of int
        Widths to show (those without a theory row are skipped).

    Returns
    -------
    str
        The file stem ``<name>_U1``.
    """
    plt = _plt()
    rows = {r["width"]: r for r in results["theory"]}
    widths = [w for w in widths if w in rows]
    labels, samples = results["path_names"], [results["samples"].get(str(w)) for w in widths]
    mats = [np.asarray(rows[w]["U1"], float) for w in widths]
    vmax = max(float(np.max(np.abs(m))) for m in mats + [np.asarray(s["U1_sampled"], float) for s in samples if s])
    mcse_row = len(labels) > _ANNOTATE_MAX_D and any(samples)
    emax = max([float(np.nanmax(np.asarray(s["U1_mcse"], float))) for s in samples if s] + [1e-300])
    side = max(3.2, 0.45 * len(labels) + 1.2)
    fig, axes = plt.subplots(3 if mcse_row else 2, len(widths), figsize=(side * len(widths) + 1.6,
                             (side + 0.4) * (3 if mcse_row else 2) + 0.6), squeeze=False, layout="constrained")
    e_im = None
    for k, w in enumerate(widths):
        im = _heat(axes[0, k], mats[k], labels, vmax, rf"theory $U_1$, $N={w}$", annotate=not mcse_row)
        e_im = _sampled_column(axes[1:, k], samples[k], labels, vmax, w, emax) or e_im
    fig.colorbar(im, ax=axes[:2].ravel().tolist(), shrink=0.8,
                 label=r"$U_1$ entry (GP limit: 1 on the diagonal, 0 off it)")
    if e_im is not None:
        fig.colorbar(e_im, ax=axes[2].ravel().tolist(), shrink=0.8, label=r"MCSE of a $\langle U_1\rangle$ entry")
    cells = "bottom row: MCSE" if mcse_row else "cells: mean, $\\pm$MCSE"
    fig.suptitle(f"{results['name']}: order parameter $U_1$, saddle point versus sampled ({cells})"
                 "\none colour scale shared by all $U_1$ panels", fontsize=11)
    return _save(fig, out_dir, f"{results['name']}_U1")


def _kernel_map(ax, K, vmax, n_pos, title):
    im = ax.imshow(K, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=_TITLE)
    ax.axhline(n_pos - 0.5, color="k", lw=0.5)
    ax.axvline(n_pos - 0.5, color="k", lw=0.5)
    return im


def kernel_panels(results, out_dir):
    """Path-pair kernels ``C_ππ'`` and the GP / renormalised kernels on a class-sorted training subset.

    docs/theory.md §2 (``K_U = Ξ (U ⊗ I) Ξᵀ``).  The ``D × D`` path-pair panels share one colour scale (one
    colour bar); the GP and the renormalised kernel each have their own colour bar.

    Parameters
    ----------
    results : dict
        From :func:`smtheory.validation.markov.run_markov` (``kernels``, ``path_names``, ``name``).
    out_dir : str

    Returns
    -------
    str
        The file stem ``<name>_kernels``.
    """
    plt = _plt()
    k = results["kernels"]
    C = np.asarray(k["path_pair"])
    D, n, labels = C.shape[0], C.shape[2], results["path_names"]
    n_pos = int(np.sum(np.asarray(k["labels"]) > 0))
    fig = plt.figure(figsize=(2.1 * D + 4.4, 2.1 * D + 1.0), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[2.1 * D + 1.0, 3.4])
    axes = left.subplots(D, D, squeeze=False)
    vmax = float(np.max(np.abs(C)))
    for i in range(D):
        for j in range(D):
            name = rf"$C_{{\mathrm{{{labels[i]}}},\mathrm{{{labels[j]}}}}}$"
            im = _kernel_map(axes[i, j], C[i, j], vmax, n_pos, name)
    left.colorbar(im, ax=axes.ravel().tolist(), shrink=0.7, label=r"$C_{\pi\pi'}(x_\mu, x_\nu)$ (shared scale)")
    for ax, (name, K) in zip(right.subplots(2, 1), (("GP kernel $K_{\\mathrm{GP}}$", k["gp"]),
                             (f"renormalised $K_{{U_1}}$, $N={k['renormalized_width']}$", k["renormalized"]))):
        K = np.asarray(K)
        right.colorbar(_kernel_map(ax, K, float(np.max(np.abs(K))), n_pos, name), ax=ax, shrink=0.6,
                       label=r"$K(x_\mu, x_\nu)$ (own scale)")
    fig.suptitle(f"{results['name']}: kernels on {n} class-sorted training sequences $x_\\mu$ (class $+1$ first; "
                 "lines: class boundary)\npath-pair panels share one colour scale; GP and renormalised have their own",
                 fontsize=11)
    return _save(fig, out_dir, f"{results['name']}_kernels")


def alignment_bars(results, out_dir):
    """Kernel–task alignment ``|φ_k·Y|/√P`` of the top principal components, GP versus renormalised (§3)."""
    plt = _plt()
    a = results["kernels"]["alignment"]
    gp, ren = np.asarray(a["gp"]), np.asarray(a["renormalized"])
    k = np.arange(1, len(gp) + 1)
    fig, ax = plt.subplots(figsize=(8.0, 3.4), layout="constrained")
    ax.bar(k - 0.2, gp, width=0.4, color="tab:gray", label=f"GP (sum of squares {np.sum(gp ** 2):.2f})")
    ax.bar(k + 0.2, ren, width=0.4, color="tab:blue",
           label=f"renormalised, $N={a['width']}$ (sum of squares {np.sum(ren ** 2):.2f})")
    ax.set_xlabel(r"principal component $k$ of the train kernel (by decreasing eigenvalue)")
    ax.set_ylabel(r"alignment $|\phi_k \cdot Y|/\sqrt{P}$")
    ax.set_title(f"{results['name']}: kernel–task alignment", fontsize=_TITLE)
    _legend_right(ax)
    return _save(fig, out_dir, f"{results['name']}_alignment")


def predictor_scatter(results, out_dir):
    """Theory versus sampled mean predictor ``⟨f(x)⟩`` on the test set, one panel per sampled width (§8.3)."""
    plt = _plt()
    rows = {r["width"]: r for r in results["theory"]}
    widths = [int(w) for w in results["samples"]]
    fig, axes = plt.subplots(1, max(len(widths), 1), figsize=(3.4 * max(len(widths), 1), 3.9), squeeze=False,
                             layout="constrained")
    y = np.asarray(results["y_test"])
    for ax, w in zip(axes[0], widths):
        th = np.asarray(rows[w]["predictor_mean"])
        sa = np.asarray(results["samples"][str(w)]["predictor_mean"])
        lim = 1.05 * max(np.max(np.abs(th)), np.max(np.abs(sa)))
        ax.plot([-lim, lim], [-lim, lim], "k-", lw=0.8, label="identity")
        ax.scatter(th[y > 0], sa[y > 0], s=4, alpha=0.5, color="tab:red", label="test label $y=+1$")
        ax.scatter(th[y < 0], sa[y < 0], s=4, alpha=0.5, color="tab:blue", label="test label $y=-1$")
        ax.set_title(f"$N={w}$: Pearson $r = {np.corrcoef(th, sa)[0, 1]:.4f}$", fontsize=_TITLE)
        ax.set_xlabel(r"theory $\langle f(x)\rangle$")
        ax.set_ylabel(r"sampled $\langle f(x)\rangle$")
        ax.set_aspect("equal")
    if widths:
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=_LEGEND,
                   frameon=False, markerscale=3)
    else:
        axes[0, 0].axis("off")
    fig.suptitle(f"{results['name']}: mean predictor on the test set", fontsize=11)
    return _save(fig, out_dir, f"{results['name']}_predictor")


def all_figures(results, out_dir):
    """Every figure of the experiment; returns the list of file stems written."""
    return [accuracy_vs_width(results, out_dir), generalization_vs_width(results, out_dir),
            u1_heatmaps(results, out_dir), kernel_panels(results, out_dir), alignment_bars(results, out_dir),
            predictor_scatter(results, out_dir)]
