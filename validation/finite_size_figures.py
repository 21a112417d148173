"""Figure of the finite-size-scaling experiment (docs/theory.md §8.4), PNG and PDF.

:func:`finite_size_figure` takes the results dict of :func:`smtheory.validation.finite_size.run_finite_size`
and writes one figure of six log–log panels: at fixed ``α = P/N`` (one colour per α) the relative
max-entry and Frobenius ``|⟨U_1⟩ − U_1*|``, ``|Δ accuracy|`` and ``|Δ generalisation error|`` versus N
(mean over data seeds ± standard error, a ``1/N`` guide line, the fitted exponent with its 95 % interval
in the legend); beside them the fixed-P protocol (the paper's, α falling with N).  Legends sit below
their panels, outside the data.  Matplotlib runs headless (Agg); nothing is shown.
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["finite_size_figure"]

_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
_MARKERS = ("o", "s", "^", "D", "v", "P")
_YLABEL = {
    "rel_max": r"$\max_{ij}|\langle U_1\rangle - U_1^*|_{ij}\ /\ \max_{ij}|U_1^*|_{ij}$",
    "rel_frob": r"$\|\langle U_1\rangle - U_1^*\|_F\ /\ \|U_1^*\|_F$",
    "abs_dacc": r"$|\mathrm{acc}_{\mathrm{sampled}} - \mathrm{acc}_{\mathrm{theory}}|$",
    "abs_dgen": r"$|\epsilon_{g,\mathrm{sampled}} - \epsilon_{g,\mathrm{theory}}|$",
}
_TITLE = {"rel_max": r"largest entry of $|\Delta U_1|$", "rel_frob": r"Frobenius norm of $\Delta U_1$",
          "abs_dacc": r"test accuracy", "abs_dgen": r"generalisation error $\epsilon_g$"}
_SHORT = {"rel_max": r"max-entry $|\Delta U_1|$", "rel_frob": r"Frobenius $|\Delta U_1|$",
          "abs_dacc": r"$|\Delta\,\mathrm{acc}|$", "abs_dgen": r"$|\Delta\,\epsilon_g|$"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _fit_label(prefix, fit, n_excluded=0):
    if not fit or fit.get("gamma") is None:
        text = rf"{prefix}: no fit (fewer than 2 usable widths)"
    elif fit.get("ci") is None:
        text = rf"{prefix}: $\gamma = {fit['gamma']:.2f}$ (2 widths, no interval)"
    else:
        lo, hi = fit["ci"]
        text = rf"{prefix}: $\gamma = {fit['gamma']:.2f}$, 95% CI [{lo:.2f}, {hi:.2f}]"
    return text + (f" ({n_excluded} points excluded)" if n_excluded else "")


def _series(ax, rows, q, color, marker, label, noisy=()):
    """Error bars of one series; widths left out of the fit as noise-limited get open markers.

    Groups without usable points or with a non-positive mean are not drawn.
    """
    rows = [g for g in rows if g["n"] > 0 and g[q] is not None and g[q] > 0]
    if not rows:
        ax.plot([], [], marker=marker, color=color, ls="none", label=label + " (nothing to show)")
        return None
    N = np.array([g["N"] for g in rows], float)
    y = np.array([g[q] for g in rows])
    e = np.array([g[f"{q}_se"] for g in rows])
    lower = np.minimum(e, 0.95 * y)  # keep the lower bar on the log axis
    ax.plot(N, y, "-", color=color, lw=1.2)
    ax.errorbar(N, y, yerr=[lower, e], fmt=marker, color=color, ms=5, capsize=3, label=label, ls="none")
    open_ = np.isin(N, list(noisy))
    if open_.any():
        ax.plot(N[open_], y[open_], marker, color=color, mfc="white", mew=1.6, ms=8, ls="none", zorder=5)
    return N[~open_], y[~open_]


def _guide(ax, anchors, noisy_any=False):
    """A ``1/N`` line through the geometric middle of the fitted points (and a key for open markers)."""
    if noisy_any:
        ax.plot([], [], "o", color="gray", mfc="white", mew=1.6, ms=8, ls="none",
                label="open: below the noise threshold, not fitted")
    pts = [a for a in anchors if a is not None and len(a[0])]
    if not pts:
        return
    N = np.concatenate([p[0] for p in pts])
    y = np.concatenate([p[1] for p in pts])
    c = np.exp(np.mean(np.log(y * N)))
    grid = np.geomspace(N.min(), N.max(), 20)
    ax.plot(grid, c / grid, "k--", lw=1, alpha=0.7, label=r"guide $\propto N^{-1}$")


def _finish(ax, title, xlabel, ylabel, widths, pad=6):
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    if widths:  # label the widths themselves (plain numbers), no crowded minor labels
        ax.xaxis.set_major_locator(FixedLocator(sorted(widths)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(labelsize=9)
    ax.set_title(title, fontsize=10, pad=pad)
    ax.set_xlabel(xlabel, fontsize=10)
    ax.set_ylabel(ylabel, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8, frameon=False, ncol=1)


def _alpha_panel(ax, results, q):
    groups = [g for g in results["groups"] if g["series"] == "alpha"]
    alphas = sorted({g["alpha"] for g in groups})
    anchors, noisy = [], []
    for k, a in enumerate(alphas):
        rows = sorted((g for g in groups if g["alpha"] == a), key=lambda g: g["N"])
        fit = results["fits"]["alpha"].get(f"{a:g}", {}).get(q) or {}
        excl = sum(sum(g["excluded"].values()) for g in rows)
        noisy += fit.get("noise_limited", [])
        anchors.append(_series(ax, rows, q, _COLORS[k % 6], _MARKERS[k % 6],
                               _fit_label(rf"$\alpha = {a:g}$", fit, excl), fit.get("noise_limited", ())))
    if q == "rel_frob":  # Monte-Carlo noise floor: what the norm reads if the true difference is 0
        for k, a in enumerate(alphas):
            rows = sorted((g for g in groups if g["alpha"] == a and g["n"] > 0), key=lambda g: g["N"])
            ax.plot([g["N"] for g in rows], [g["rel_frob_noise"] for g in rows], ":", color=_COLORS[k % 6], lw=1,
                    label="dotted: Monte-Carlo noise floor (colour of its series)" if k == 0 else None)
    _guide(ax, anchors, bool(noisy))
    _finish(ax, _TITLE[q] + r" at fixed $\alpha = P/N$", r"width $N$ ($P = \alpha N$)", _YLABEL[q],
            {g["N"] for g in groups})


def _fixed_panel(ax, results, quantities, title):
    rows = sorted((g for g in results["groups"] if g["series"] == "fixed"), key=lambda g: g["N"])
    fit = results["fits"].get("fixed") or {}
    P = results["config"]["fixed_train"]
    excl = sum(sum(g["excluded"].values()) for g in rows)
    fits = [fit.get(q) or {} for q in quantities]
    anchors = [_series(ax, rows, q, _COLORS[3 + k], _MARKERS[3 + k], _fit_label(_SHORT[q], f, excl),
                       f.get("noise_limited", ())) for k, (q, f) in enumerate(zip(quantities, fits))]
    _guide(ax, anchors, any(f.get("noise_limited") for f in fits))
    _finish(ax, title + rf" at fixed $P = {P}$", r"width $N$ ($\alpha = P/N$ falls with $N$)",
            "relative difference" if quantities[0].startswith("rel") else "absolute difference",
            {g["N"] for g in rows}, pad=34)
    top = ax.secondary_xaxis("top", functions=(lambda n: P / np.maximum(n, 1e-12), lambda a: P / np.maximum(a, 1e-12)))
    top.set_xlabel(r"$\alpha = P/N$", fontsize=10)
    top.tick_params(labelsize=9)


def finite_size_figure(results, out_dir, stem="finite_size"):
    """Write ``<stem>.png`` and ``<stem>.pdf`` into ``out_dir`` (docs/theory.md §8.4).

    Parameters
    ----------
    results : dict
        From :func:`smtheory.validation.finite_size.run_finite_size`.
    out_dir : str
    stem : str

    Returns
    -------
    list of str
        The two file paths.
    """
    plt = _plt()
    fixed = results["fits"].get("fixed") is not None
    fig = plt.figure(figsize=(16.0 if fixed else 10.8, 10.5), layout="constrained")
    fig.get_layout_engine().set(h_pad=0.12, w_pad=0.12, hspace=0.04, wspace=0.04)
    grid = fig.add_gridspec(2, 3 if fixed else 2)
    for k, q in enumerate(("rel_max", "rel_frob", "abs_dacc", "abs_dgen")):
        _alpha_panel(fig.add_subplot(grid[k // 2, k % 2]), results, q)
    if fixed:
        _fixed_panel(fig.add_subplot(grid[0, 2]), results, ("rel_max", "rel_frob"), r"$|\Delta U_1|$")
        _fixed_panel(fig.add_subplot(grid[1, 2]), results, ("abs_dacc", "abs_dgen"), "predictor")
    n_seeds = len(results["config"]["data_seeds"])
    fig.suptitle(r"Finite-size scaling: sampled (exact posterior, NUTS) $-$ saddle point" + "\n"
                 + rf"Markov task, {results['config']['paths']} paths; mean over {n_seeds} data seed(s) $\pm$ s.e.",
                 fontsize=12)
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, stem + ext) for ext in (".png", ".pdf")]
    fig.savefig(paths[0], dpi=130, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths
