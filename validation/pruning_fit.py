"""The trained model, its data sets and the theory on its query/key weights (docs/theory.md §3, §6).

The shared first half of the pruning experiments (:mod:`smtheory.validation.pruning`, one model, and
:mod:`smtheory.validation.pruning_stats`, many): :class:`ModelFit` bundles a trained network with its
theory training, validation and test sets (:func:`data_sets`); :func:`fit_theory` solves the saddle point
of docs/theory.md §3 on the trained attention over a grid of widths and temperatures and keeps the point with the
best accuracy on the **validation** split (:func:`choose_temperature`) — a test split never enters the
choice.  Only converged, certified solutions are used (:class:`NoConvergedTheory` otherwise).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

__all__ = ["NoConvergedTheory", "ModelFit", "features", "pearson", "spearman", "data_sets", "gd_accuracy",
           "theory_problems", "solve_grid", "choose_temperature", "theory_statistics", "u1_comparison",
           "fit_theory"]


class NoConvergedTheory(RuntimeError):
    """No temperature of the grid gave a converged saddle point (``smtheory prune`` exits with status 3)."""


def features(x, layers, readout):
    """Raw path features ``ξ^π(x)`` [n, D, N0] of inputs ``x`` under fixed attention layers (docs/theory.md §2), in blocks."""
    from smtheory.attention import attention_matrices
    from smtheory.paths import path_features

    return np.concatenate([path_features(x[s:s + 2048], attention_matrices(x[s:s + 2048], layers), readout)
                           for s in range(0, x.shape[0], 2048)])


def pearson(a, b):
    """Pearson correlation of two arrays' entries (NaN when one is constant)."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def spearman(a, b):
    """Spearman rank correlation ``{"rho", "p"}`` of two arrays' entries (NaN when one is constant)."""
    import scipy.stats

    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    if np.all(a == a[0]) or np.all(b == b[0]):
        return dict(rho=float("nan"), p=float("nan"))
    r = scipy.stats.spearmanr(a, b)
    return dict(rho=float(r.statistic), p=float(r.pvalue))


@dataclass
class ModelFit:
    """What the steps of a pruning run share: the trained network, its data sets and the chosen theory.

    Attributes
    ----------
    params : dict
        Trained weights (:func:`smtheory.sims.training.train`).
    heads : tuple of int
        Heads per layer.
    readout : str
        Token readout of the model.
    data : dict
        Split name (``train``, ``val``, ``test``, ``ood``) -> ``(x, y)``.
    gd : dict, optional
        Accuracy of the unpruned GD network per split (:func:`gd_accuracy`).
    problems : dict, optional
        Split name (``val``, ``test``, ``ood``) -> :class:`smtheory.problem.KernelProblem` on the trained
        query/key weights (docs/theory.md §2).
    spec : smtheory.model.ModelSpec, optional
        Spec of the chosen saddle point (docs/theory.md §3).
    U1 : numpy.ndarray, optional
        Theory order parameter ``U_1`` at the chosen saddle point (docs/theory.md §3).
    theory : dict, optional
        Theory statistics per split (:func:`theory_statistics`).
    """

    params: dict
    heads: tuple
    readout: str
    data: dict
    gd: dict = None
    problems: dict = None
    spec: object = None
    U1: np.ndarray = None
    theory: dict = None

    @property
    def all_heads(self):
        """Every head ``(layer, head)``, layer-major."""
        return [(l, h) for l, H in enumerate(self.heads) for h in range(H)]

    @property
    def can_single(self):
        """True if every layer has a head to spare (single-head removals keep one head per layer)."""
        return all(H > 1 for H in self.heads)


def data_sets(mc, config):
    """Theory training, validation, in- and out-of-distribution test sets (seeds from ``config.seed``)."""
    from smtheory.sims.training import make_task, sample_data

    task = make_task(mc)
    base = 1_000_000 + 97 * config.seed
    sizes = (("train", config.n_train), ("val", config.n_val), ("test", config.n_test), ("ood", config.n_test))
    return {split: sample_data(task, n, split, seed=base + k) for k, (split, n) in enumerate(sizes, 1)}


def gd_accuracy(fit):
    """Accuracy of the trained (unpruned) network on every split."""
    from smtheory.sims.training import accuracy

    keys = (("val", "val"), ("test", "test"), ("ood", "ood"), ("train_set", "train"))
    return {key: accuracy(fit.params, *fit.data[split], fit.readout) for key, split in keys}


def theory_problems(fit):
    """Kernel problems (docs/theory.md §2) of the trained attention on ``val``, ``test`` and ``ood``, and their time.

    Returns
    -------
    problems : dict
        Split name -> :class:`smtheory.problem.KernelProblem` with the theory training set.
    seconds : float
        Time spent on the path features.
    """
    from smtheory.problem import KernelProblem
    from smtheory.sims.training import attention_layers

    layers = attention_layers(fit.params)
    t0 = time.perf_counter()
    x_tr, y_tr = fit.data["train"]
    xi_tr = features(x_tr, layers, fit.readout)
    problems = {name: KernelProblem(xi_tr, y_tr, fit.heads, features(x, layers, fit.readout), y)
                for name, (x, y) in ((s, fit.data[s]) for s in ("val", "test", "ood"))}
    return problems, time.perf_counter() - t0


def solve_grid(fit, N, temperatures, say):
    """Saddle points (docs/theory.md §3) along the temperature grid at width ``N``, scored on the validation split.

    Returns
    -------
    sols : list of smtheory.solvers.SolveResult
        One per temperature (from :func:`smtheory.solvers.continuation`).
    grid : list of dict
        Convergence record per temperature, with the validation accuracy and generalisation error of the
        converged ones.
    seconds : float
        Time of the continuation.
    """
    import smtheory.solvers
    from smtheory.model import ModelSpec
    from smtheory.predictor import predictor_statistics

    spec0 = ModelSpec(heads=fit.heads, widths=N, temperature=temperatures[0], readout=fit.readout)
    t0 = time.perf_counter()
    sols = smtheory.solvers.continuation(fit.problems["val"], spec0, temperatures=list(temperatures))
    t_solve = time.perf_counter() - t0
    grid = []
    for T, res in zip(temperatures, sols):
        rec = res.to_record()
        row = dict(width=N, temperature=T, **{k: rec[k] for k in ("converged", "message", "max_residual", "hessian_min_eig",
                                                         "iterations", "solve_time", "compile_time")})
        if res.converged:
            st = predictor_statistics(fit.problems["val"], res.spec, res.U1)
            row.update(val_accuracy=st.accuracy, val_generalization_error=st.generalization_error)
        grid.append(row)
        say(f"theory N={N} T={T:g}: converged={res.converged}" +
            (f"  val accuracy {row['val_accuracy']:.4f}  gen.err {row['val_generalization_error']:.4f}"
             if res.converged else f"  ({res.message})"))
    return sols, grid, t_solve


def choose_temperature(grid):
    """Index of the converged grid point with the best validation accuracy (ties: lower gen. error).

    Only the ``val_accuracy`` and ``val_generalization_error`` of the rows are read: a test split cannot
    enter the choice (docs/theory.md §6 protocol).

    Raises
    ------
    NoConvergedTheory
        If no temperature converged.
    """
    ok = [i for i, r in enumerate(grid) if r["converged"]]
    if not ok:
        raise NoConvergedTheory("no temperature of the grid gave a converged saddle point; no theory result to report "
                                f"(messages: {[r['message'] for r in grid]})")
    return max(ok, key=lambda i: (grid[i]["val_accuracy"], -grid[i]["val_generalization_error"]))


def theory_statistics(fit):
    """Accuracy and generalisation error (docs/theory.md §3) of the theory and of its GP limit on every split."""
    from smtheory.predictor import predictor_statistics

    out = {}
    for name in ("val", "test", "ood"):
        st = predictor_statistics(fit.problems[name], fit.spec, fit.U1)
        gp = predictor_statistics(fit.problems[name], fit.spec, gp=True)
        out[name] = dict(accuracy=st.accuracy, gaussian_accuracy=st.gaussian_accuracy,
                         generalization_error=st.generalization_error, gp_accuracy=gp.accuracy,
                         gp_generalization_error=gp.generalization_error)
    return out


def u1_comparison(U1, U1_eff):
    """Pearson correlations between the theory ``U_1`` and the ``U_1`` of the trained weights (docs/theory.md §2–3)."""
    iu = np.triu_indices(U1.shape[0])
    off = np.triu_indices(U1.shape[0], 1)
    return dict(pearson_all_entries=pearson(U1[iu], U1_eff[iu]),
                pearson_offdiagonal=pearson(U1[off], U1_eff[off]),
                pearson_diagonal=pearson(np.diag(U1), np.diag(U1_eff)),
                pearson_abs_entries=pearson(np.abs(U1[iu]), np.abs(U1_eff[iu])))


def fit_theory(fit, widths, temperatures, say):
    """Solve the theory on the grid of widths × temperatures, keep the point chosen on validation (docs/theory.md §3).

    Parameters
    ----------
    fit : ModelFit
    widths : int or sequence of int
        Theory widths ``N``.
    temperatures : sequence of float
    say : callable(str)

    Returns
    -------
    dict
        The ``theory`` record (chosen ``width`` and ``temperature``, the solve record, the whole grid, the
        statistics of :func:`theory_statistics`); also fills ``fit.spec``, ``fit.U1`` and ``fit.theory``.
    """
    widths = [int(widths)] if np.ndim(widths) == 0 else [int(w) for w in widths]
    problems, t_features = theory_problems(fit)
    fit.problems = problems
    sols, grid, t_solve = [], [], 0.0
    for N in widths:
        s, g, t = solve_grid(fit, N, temperatures, say)
        sols += s
        grid += g
        t_solve += t
    sol = sols[choose_temperature(grid)]
    fit.spec = sol.spec
    fit.U1 = np.asarray(sol.U1)
    N = max(fit.spec.widths)
    theory = dict(width=N, temperature=fit.spec.temperature, solve=sol.to_record(), temperature_grid=grid,
                  features_time=t_features, grid_wall_time=t_solve, n_grid=len(grid))
    theory.update(theory_statistics(fit))
    fit.theory = theory
    say(f"theory at N={N}, T={fit.spec.temperature:g} (chosen on validation): test {theory['test']['accuracy']:.4f} "
        f"ood {theory['ood']['accuracy']:.4f} (GP {theory['test']['gp_accuracy']:.4f} / {theory['ood']['gp_accuracy']:.4f})")
    return theory
