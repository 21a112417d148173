"""Figure of the hypernetwork view: the learned code metric U_1 versus the GP metric (THEORY.md §2–3, §5).

In the hypernetwork reading (:mod:`smtheory.hypernetwork`) the kernel is code similarity under the metric
``U_1`` times input similarity.  The GP limit uses the Euclidean metric ``σa² Π σℓ² I``; at finite width
the saddle point (``smtheory.solvers.solve``) re-weights it.  :func:`metric_figure` draws both metrics and the
code similarity ``c_s(x)ᵀ U c_s'(x')`` of training pairs under each; :func:`markov_metric_figure` does it for
the hidden-Markov task of THEORY §5 at N = 10.
"""
from __future__ import annotations

import os

import numpy as np

from smtheory.checks import InputError

__all__ = ["metric_figure", "markov_metric_figure"]


def metric_figure(U_learned, U_gp, path_names, out_base, code_pairs=None, title=None):
    """Heat maps of the GP and the learned metric on path codes, and (optionally) code similarities.

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
    fig, axes = plt.subplots(1, n, figsize=(4.3 * n, 3.9), constrained_layout=True)
    lim = max(np.abs(U_learned).max(), np.abs(U_gp).max())
    for ax, (name, U) in zip(axes, [("GP metric  σa²Πσℓ² I", U_gp), ("learned metric U_1", U_learned)]):
        im = ax.imshow(U, cmap="RdBu_r", vmin=-lim, vmax=lim)
        for i in range(D):
            for j in range(D):
                ax.text(j, i, f"{U[i, j]:.2f}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(D), path_names)
        ax.set_yticks(range(D), path_names)
        ax.set_title(name, fontsize=10)
    fig.colorbar(im, ax=axes[:2], shrink=0.8)
    if code_pairs is not None:
        a, b = (np.asarray(v).ravel() for v in code_pairs)
        ax = axes[2]
        ax.scatter(a, b, s=3, alpha=0.4)
        m = max(np.abs(a).max(), np.abs(b).max())
        ax.plot([-m, m], [-m, m], "k--", lw=0.8)
        ax.set_xlabel("code similarity, GP metric")
        ax.set_ylabel("code similarity, learned metric")
        ax.set_title("c_s(x)ᵀ U c_s'(x') over token pairs", fontsize=10)
    if title:
        fig.suptitle(title)
    paths = [out_base + ".png", out_base + ".pdf"]
    os.makedirs(os.path.dirname(os.path.abspath(out_base)), exist_ok=True)
    for p in paths:
        fig.savefig(p, dpi=150)
    plt.close(fig)
    return paths


def markov_metric_figure(out_dir, width=10, n_train=100, paths=4, seed=0, temperature=0.01, n_pairs=20):
    """Solve the Markov task (THEORY §5) at one width and draw :func:`metric_figure`.

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
                        code_pairs, title=f"Markov task, {paths} paths, N = {width}, P = {n_train}, T = {temperature}")
    return {"paths": out, "U_learned": np.asarray(res.U1), "U_gp": U_gp, "path_names": problem.path_names,
            "converged": bool(res.converged)}
