"""Figure of the hypernetwork view: the learned code metric U_1 versus the GP metric (docs/theory.md §2–3, §5).

In the hypernetwork reading (:mod:`smtheory.hypernetwork`) the kernel is code similarity under the metric
``U_1`` times input similarity.  The GP limit uses the Euclidean metric ``σa² Π σℓ² I``; at finite width
the saddle point (``smtheory.solvers.solve``) re-weights it.  :func:`metric_figure` draws both metrics and the
code similarity ``c_s(x)ᵀ U c_s'(x')`` of training pairs under each; :func:`markov_metric_figure` does it for
the hidden-Markov task of docs/theory.md §5 at N = 10.
"""
from __future__ import annotations

import os

import numpy as np

from smtheory.checks import InputError

__all__ = ["metric_figure", "markov_metric_figure"]


def _metric_panel(ax, U, names, lim, title):
    """One metric heat map, cells annotated (white on dark cells); returns the image."""
    im = ax.imshow(U, cmap="RdBu_r", vmin=-lim, vmax=lim)
    for i in range(U.shape[0]):
        for j in range(U.shape[1]):
            ax.text(j, i, f"{U[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if abs(U[i, j]) > 0.6 * lim else "black")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel(r"path $\pi'$")
    ax.set_ylabel(r"path $\pi$")
    ax.set_title(title, fontsize=10)
    return im


def _similarity_panel(ax, code_pairs):
    """Scatter of code similarities under the GP (x) and the learned (y) metric, identity dashed."""
    a, b = (np.asarray(v, dtype=float).ravel() for v in code_pairs)
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    pad = 0.05 * (hi - lo if hi > lo else 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8)
    ax.scatter(a, b, s=3, alpha=0.4)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel(r"$c_s(x)^\top U\,c_{s'}(x')$, GP metric")
    ax.set_ylabel(r"$c_s(x)^\top U\,c_{s'}(x')$, learned metric $U_1$")
    ax.set_title("code similarity of token pairs (dashed: identity)", fontsize=10)


def metric_figure(U_learned, U_gp, path_names, out_base, code_pairs=None, title=None):
    """Heat maps of the GP and the learned metric on path codes, and (optionally) code similarities.

    docs/theory.md §2–3: the kernel is code similarity under the metric ``U_1`` times input similarity.  The two
    heat maps share one colour scale (one colour bar, said in its label).

    Parameters
    ----------
    U_learned, U_gp : arrays [D, D]
    path_names : list of str
    out_base : str
        Writes ``out_base.png`` and ``out_base.pdf``.
    code_pairs : tuple (sim_gp, sim_learned), optional
        Code similarities of the same (token, token') pairs under both metrics, drawn as a scatter.
    title : str, optional

    Returns
    -------
    list of the two written paths
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    U_learned = np.asarray(U_learned, dtype=float)
    U_gp = np.asarray(U_gp, dtype=float)
    D = U_gp.shape[0]
    if U_learned.shape != (D, D) or len(path_names) != D:
        raise InputError(f"U_learned {U_learned.shape}, U_gp {U_gp.shape} and path_names ({len(path_names)}) must "
                         f"agree on D")
    n = 3 if code_pairs is not None else 2
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 4.2), layout="constrained")
    lim = max(np.abs(U_learned).max(), np.abs(U_gp).max())
    for ax, (name, U) in zip(axes, [(r"GP metric $\sigma_a^2\,\Pi_\ell\,\sigma_\ell^2\,I$", U_gp),
                                    (r"learned metric $U_1$ (saddle point)", U_learned)]):
        im = _metric_panel(ax, U, path_names, lim, name)
    fig.colorbar(im, ax=axes[:2], shrink=0.8, label=r"$U_{\pi\pi'}$ (scale shared by both maps)")
    fig.get_layout_engine().set(w_pad=0.15)
    if code_pairs is not None:
        _similarity_panel(axes[2], code_pairs)
    if title:
        fig.suptitle(title)
    paths = [out_base + ".png", out_base + ".pdf"]
    os.makedirs(os.path.dirname(os.path.abspath(out_base)), exist_ok=True)
    for p in paths:
        fig.savefig(p, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


def markov_metric_figure(out_dir, width=10, n_train=100, paths=4, seed=0, temperature=0.01, n_pairs=20):
    """Solve the Markov task (docs/theory.md §5) at one width and draw :func:`metric_figure`.

    Parameters
    ----------
    out_dir : str
    width : int
        Network width N (the paper's strongest renormalisation is at N = 10).
    n_train : int
    paths : {4, 2}
    seed : int
    temperature : float
    n_pairs : int
        Training sequences whose token-pair code similarities are scattered.

    Returns
    -------
    dict with ``"paths"`` (figure files), ``"U_learned"``, ``"U_gp"``, ``"path_names"``, ``"converged"``
    """
    import smtheory.solvers
    from smtheory.attention import attention_matrices
    from smtheory.hypernetwork import path_codes
    from smtheory.model import ModelSpec
    from smtheory.tasks import markov

    problem = markov.markov_problem(paths, n_train, 10, seed=seed)
    heads = (2, 2) if paths == 4 else (2, 1)
    spec = ModelSpec(heads=heads, widths=width, temperature=temperature)
    res = smtheory.solvers.solve(problem, spec)
    U_gp = spec.gp_u1_scale() * np.eye(problem.n_paths)
    # code similarities c_s(x)ᵀ U c_s'(x') over random pairs of tokens of a few training sequences
    x, _, _ = markov.task_for(paths).sample(max(1, n_pairs // 2), seed=seed)
    codes = path_codes(attention_matrices(x, markov.network_layers(paths, seed=0)), "last")
    c = codes.reshape(-1, codes.shape[-1])  # codes of every token of the sequences
    pick = np.random.default_rng(seed).choice(c.shape[0] ** 2, size=min(4000, c.shape[0] ** 2), replace=False)
    code_pairs = tuple(np.ravel(c @ U @ c.T)[pick] for U in (U_gp, np.asarray(res.U1)))
    base = os.path.join(out_dir, f"hypernetwork_metric_markov{paths}_N{width}")
    out = metric_figure(res.U1, U_gp, problem.path_names, base,
                        code_pairs,
                        title=f"Markov task, {paths} paths, $N = {width}$, $P = {n_train}$, $T = {temperature}$")
    return {"paths": out, "U_learned": np.asarray(res.U1), "U_gp": U_gp, "path_names": problem.path_names,
            "converged": bool(res.converged)}
