"""Head ranking and pruning of a gradient-descent-trained network (THEORY.md §6–7).

Pipeline of :func:`run_pruning` for a model trained by :func:`smtheory.sims.training.train`:

1. Data: a theory training set (``n_train`` sequences of the training split), a validation
   set (``val`` split), an in-distribution test set (``test``) and an out-of-distribution
   test set (``ood``: held-out classes for digits, the noisier variant for Markov).
2. Theory on the trained query/key weights (qk-style attention, the model's token readout):
   the saddle point of THEORY §3 is solved with :func:`smtheory.solvers.continuation` along a grid of
   temperatures at the chosen width ``N``; ``T`` is chosen by the accuracy of the theory
   predictor on the *validation* set (ties: lower validation generalisation error), never on
   a test set.  Only converged solutions are used.
3. ``U_1`` of the trained weights (effective weights, THEORY §2–3) next to the theory ``U_1``,
   with the Pearson correlation of their entries.
4. Head rankings: theory scores (THEORY §7), the trained weights' ``U_1`` scores, gradient
   head importance (Michel et al. 2019, on the validation set), single-head ablation on the
   validation set (an oracle), and random orders.
5. Pruning curves: accuracy of the pruned GD network (no retraining) on the in- and
   out-of-distribution test sets after each removal, for every ranking; the theory-side
   prediction (rows/columns of ``U_1`` zeroed); Spearman correlations between scores and the
   measured single-head accuracy drops.

:func:`write_outputs` writes the figures (PNG + PDF), ``report.md`` and ``pruning.json``.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from smtheory.checks import InputError, positive_int
from smtheory.checks import seed as seed_int

RANKINGS = ("theory", "trained_u1", "gradient", "ablation")
LABELS = {"theory": "theory score (U_1)", "trained_u1": "U_1 of trained weights", "gradient": "gradient (Michel+19)",
          "ablation": "single-head ablation (oracle)", "random": "random order"}


@dataclass
class PruningConfig:
    """Settings of the pruning experiment.

    Parameters
    ----------
    width : int, optional
        Width ``N`` of the theory (default: the trained model's width).
    temperatures : tuple of float
        Grid of temperatures ``T``; the one with the best validation accuracy is used.
    n_train, n_val, n_test : int
        Theory training set ``P``, validation set, and each test set (in- and out-of-distribution).
    permutations : int
        Random pruning orders.
    seed : int
        Seed of the data sets and the random orders (independent of the training stream).
    """

    width: int = None
    temperatures: tuple = (0.001, 0.01, 0.1, 1.0)
    n_train: int = 400
    n_val: int = 500
    n_test: int = 1000
    permutations: int = 20
    seed: int = 0

    def __post_init__(self):
        if self.width is not None:
            self.width = positive_int("width", self.width)
        try:
            temps = tuple(float(t) for t in self.temperatures)
        except (TypeError, ValueError):
            raise InputError(f"temperatures must be positive numbers, got {self.temperatures!r}") from None
        if not temps or not all(np.isfinite(t) and t > 0 for t in temps):
            raise InputError(f"temperatures must be a non-empty list of positive numbers, got {self.temperatures!r}")
        self.temperatures = temps
        for name in ("n_train", "n_val", "n_test"):
            v = positive_int(name, getattr(self, name))
            if v < 4 or v % 2:
                raise InputError(f"{name} must be an even number >= 4, got {v}")
            setattr(self, name, v)
        self.permutations = positive_int("permutations", self.permutations)
        self.seed = seed_int("seed", self.seed)


class NoConvergedTheory(RuntimeError):
    """No temperature of the grid gave a converged saddle point (``smtheory prune`` exits with status 3)."""


def _features(x, layers, readout):
    from smtheory.attention import attention_matrices
    from smtheory.paths import path_features

    return np.concatenate([path_features(x[s:s + 2048], attention_matrices(x[s:s + 2048], layers), readout)
                           for s in range(0, x.shape[0], 2048)])


def _pearson(a, b):
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _spearman(a, b):
    import scipy.stats

    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    if np.all(a == a[0]) or np.all(b == b[0]):
        return dict(rho=float("nan"), p=float("nan"))
    r = scipy.stats.spearmanr(a, b)
    return dict(rho=float(r.statistic), p=float(r.pvalue))


@dataclass
class _Fit:
    """What the steps of :func:`run_pruning` share: the trained network, its data sets and the chosen theory.

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
        Accuracy of the unpruned GD network per split (:func:`_gd_accuracy`).
    problems : dict, optional
        Split name (``val``, ``test``, ``ood``) -> :class:`smtheory.problem.KernelProblem` on the trained
        query/key weights (THEORY §2).
    spec : smtheory.model.ModelSpec, optional
        Spec of the chosen saddle point (THEORY §3).
    U1 : numpy.ndarray, optional
        Theory order parameter ``U_1`` at the chosen saddle point (THEORY §3).
    theory : dict, optional
        Theory statistics per split (:func:`_theory_statistics`).
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


def _data_sets(mc, config):
    """Theory training, validation, in- and out-of-distribution test sets (seeds from ``config.seed``)."""
    from smtheory.sims.training import make_task, sample_data

    task = make_task(mc)
    base = 1_000_000 + 97 * config.seed
    sizes = (("train", config.n_train), ("val", config.n_val), ("test", config.n_test), ("ood", config.n_test))
    return {split: sample_data(task, n, split, seed=base + k) for k, (split, n) in enumerate(sizes, 1)}


def _gd_accuracy(fit):
    """Accuracy of the trained (unpruned) network on every split."""
    from smtheory.sims.training import accuracy

    keys = (("val", "val"), ("test", "test"), ("ood", "ood"), ("train_set", "train"))
    return {key: accuracy(fit.params, *fit.data[split], fit.readout) for key, split in keys}


def _theory_problems(fit):
    """Kernel problems (THEORY §2) of the trained attention on ``val``, ``test`` and ``ood``, and their time.

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
    xi_tr = _features(x_tr, layers, fit.readout)
    problems = {name: KernelProblem(xi_tr, y_tr, fit.heads, _features(x, layers, fit.readout), y)
                for name, (x, y) in ((s, fit.data[s]) for s in ("val", "test", "ood"))}
    return problems, time.perf_counter() - t0


def _solve_grid(fit, N, temperatures, say):
    """Saddle points (THEORY §3) along the temperature grid at width ``N``, scored on the validation split.

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
        row = dict(temperature=T, **{k: rec[k] for k in ("converged", "message", "max_residual", "hessian_min_eig",
                                                         "iterations", "solve_time", "compile_time")})
        if res.converged:
            st = predictor_statistics(fit.problems["val"], res.spec, res.U1)
            row.update(val_accuracy=st.accuracy, val_generalization_error=st.generalization_error)
        grid.append(row)
        say(f"theory T={T:g}: converged={res.converged}" +
            (f"  val accuracy {row['val_accuracy']:.4f}  gen.err {row['val_generalization_error']:.4f}"
             if res.converged else f"  ({res.message})"))
    return sols, grid, t_solve


def _choose_temperature(grid):
    """Index of the converged temperature with the best validation accuracy (ties: lower gen. error).

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


def _theory_statistics(fit):
    """Accuracy and generalisation error (THEORY §3) of the theory and of its GP limit on every split."""
    from smtheory.predictor import predictor_statistics

    out = {}
    for name in ("val", "test", "ood"):
        st = predictor_statistics(fit.problems[name], fit.spec, fit.U1)
        gp = predictor_statistics(fit.problems[name], fit.spec, gp=True)
        out[name] = dict(accuracy=st.accuracy, gaussian_accuracy=st.gaussian_accuracy,
                         generalization_error=st.generalization_error, gp_accuracy=gp.accuracy,
                         gp_generalization_error=gp.generalization_error)
    return out


def _u1_comparison(U1, U1_eff):
    """Pearson correlations between the theory ``U_1`` and the ``U_1`` of the trained weights (THEORY §2–3)."""
    iu = np.triu_indices(U1.shape[0])
    off = np.triu_indices(U1.shape[0], 1)
    return dict(pearson_all_entries=_pearson(U1[iu], U1_eff[iu]),
                pearson_offdiagonal=_pearson(U1[off], U1_eff[off]),
                pearson_diagonal=_pearson(np.diag(U1), np.diag(U1_eff)),
                pearson_abs_entries=_pearson(np.abs(U1[iu]), np.abs(U1_eff[iu])))


def _ablation_ranking(fit):
    """Oracle ranking by single-head ablation on the validation split (accuracy drop; loss increase breaks ties)."""
    from smtheory.pruning import prune, rank_heads
    from smtheory.sims.training import predict

    x_va, y_va = fit.data["val"]
    f_full = predict(fit.params, x_va, fit.readout)
    abl = [[0.0] * H for H in fit.heads]
    for l, h in fit.all_heads:
        f = predict(prune(fit.params, [(l, h)]), x_va, fit.readout)
        d_acc = fit.gd["val"] - float(np.mean(np.sign(f) == y_va))
        d_loss = float(np.mean((f - y_va) ** 2) - np.mean((f_full - y_va) ** 2))
        abl[l][h] = d_acc + 1e-6 * d_loss  # accuracy drop; loss increase breaks ties
    return rank_heads(scores=[np.asarray(a) for a in abl], heads=fit.heads, method="ablation")


def _rankings(fit, U1_eff, t_solve_per_T):
    """Head rankings (THEORY §7): theory, trained-weights ``U_1``, gradient and (if possible) ablation.

    Returns
    -------
    rankings : dict
        Name -> :class:`smtheory.pruning.HeadRanking`.
    timing : dict
        Seconds of the theory scores (including one temperature's share of the solve), the gradient
        importance and the single-head ablation.
    """
    from smtheory.pruning import gradient_importance, rank_heads
    from smtheory.sims.training import head_mask_gradient

    t0 = time.perf_counter()
    rankings = {"theory": rank_heads(fit.U1, fit.heads, method="theory")}
    t_theory_scores = time.perf_counter() - t0 + t_solve_per_T
    rankings["trained_u1"] = rank_heads(U1_eff, fit.heads, method="trained_u1")
    t0 = time.perf_counter()
    grad_raw = head_mask_gradient(fit.params, *fit.data["val"], fit.readout)
    rankings["gradient"] = rank_heads(scores=gradient_importance(grad_raw), heads=fit.heads, method="gradient")
    t_gradient = time.perf_counter() - t0
    t0 = time.perf_counter()
    if fit.can_single:
        rankings["ablation"] = _ablation_ranking(fit)
    t_ablation = time.perf_counter() - t0
    return rankings, dict(theory_scores_s=t_theory_scores, gradient_importance_s=t_gradient,
                          single_head_ablation_s=t_ablation)


def _single_head_drops(fit):
    """Measured and theory-side (THEORY §7) accuracy drops of every single-head removal on ``test`` and ``ood``."""
    from smtheory.pruning import prune, theory_pruned_statistics
    from smtheory.sims.training import accuracy

    def drop(x, y, full_acc, head):
        return full_acc - accuracy(prune(fit.params, [head]), x, y, fit.readout)

    single = {}
    for split in ("test", "ood"):
        x, y = fit.data[split]
        single[split] = dict(
            measured=[drop(x, y, fit.gd[split], hd) for hd in fit.all_heads],
            theory_side=[fit.theory[split]["accuracy"]
                         - theory_pruned_statistics(fit.problems[split], fit.spec, fit.U1, [hd]).accuracy
                         for hd in fit.all_heads])
    return single


def _spearman_table(rankings, single):
    """Spearman correlations of every ranking's scores (and of the theory-side drops) with the measured drops."""
    spearman = {}
    for name, rk in rankings.items():
        s = rk.flat_scores()
        spearman[name] = {split: _spearman(s, single[split]["measured"]) for split in single}
    spearman["theory_side_vs_measured"] = {split: _spearman(single[split]["theory_side"], single[split]["measured"])
                                           for split in single}
    return spearman


def _pruning_curve(fit, order):
    """Accuracy of the GD network and the theory-side prediction (THEORY §7) after each removal of ``order``."""
    from smtheory.pruning import prune, pruning_order, theory_pruned_statistics
    from smtheory.sims.training import accuracy

    steps = pruning_order(order, fit.heads)
    out = dict(removed=[list(p) for p in steps], test=[fit.gd["test"]], ood=[fit.gd["ood"]],
               theory_test=[fit.theory["test"]["accuracy"]], theory_ood=[fit.theory["ood"]["accuracy"]])
    for k in range(1, len(steps) + 1):
        pr = prune(fit.params, steps[:k])
        out["test"].append(accuracy(pr, *fit.data["test"], fit.readout))
        out["ood"].append(accuracy(pr, *fit.data["ood"], fit.readout))
        out["theory_test"].append(theory_pruned_statistics(fit.problems["test"], fit.spec, fit.U1, steps[:k]).accuracy)
        out["theory_ood"].append(theory_pruned_statistics(fit.problems["ood"], fit.spec, fit.U1, steps[:k]).accuracy)
    return out


def _random_curves(fit, config):
    """Mean and standard deviation of the pruning curves of ``config.permutations`` random orders."""
    all_heads = fit.all_heads
    rng = np.random.default_rng([config.seed, 4242])
    rand = [_pruning_curve(fit, [all_heads[i] for i in rng.permutation(len(all_heads))])
            for _ in range(config.permutations)]
    out = {key: dict(mean=np.mean([r[key] for r in rand], axis=0).tolist(),
                     sd=np.std([r[key] for r in rand], axis=0, ddof=1).tolist() if len(rand) > 1
                     else [0.0] * len(rand[0][key]))
           for key in ("test", "ood", "theory_test", "theory_ood")}
    out["n_permutations"] = config.permutations
    return out


def _pruning_curves(fit, rankings, config, say):
    """Pruning curves of every ranking and of random orders; the test accuracies are reported through ``say``."""
    curves = {name: _pruning_curve(fit, rk.order) for name, rk in rankings.items()}
    curves["random"] = _random_curves(fit, config)
    say("pruning curves (test accuracy after k heads removed):")
    for name in list(rankings) + ["random"]:
        c = curves[name]["test"]
        vals = c["mean"] if name == "random" else c
        say(f"  {name:>11}: " + " ".join(f"{v:.3f}" for v in vals))
    return curves


def _fit_theory(fit, N, config, say):
    """Solve the theory on the temperature grid, keep the temperature chosen on validation (THEORY §3).

    Fills ``fit.spec``, ``fit.U1`` and ``fit.theory`` and returns the ``theory`` record of the result.
    """
    problems, t_features = _theory_problems(fit)
    fit.problems = problems
    sols, t_grid, t_solve = _solve_grid(fit, N, config.temperatures, say)
    sol = sols[_choose_temperature(t_grid)]
    fit.spec = sol.spec
    fit.U1 = np.asarray(sol.U1)
    theory = dict(width=N, temperature=fit.spec.temperature, solve=sol.to_record(), temperature_grid=t_grid,
                  features_time=t_features, grid_wall_time=t_solve)
    theory.update(_theory_statistics(fit))
    fit.theory = theory
    say(f"theory at N={N}, T={fit.spec.temperature:g} (chosen on validation): test {theory['test']['accuracy']:.4f} "
        f"ood {theory['ood']['accuracy']:.4f} (GP {theory['test']['gp_accuracy']:.4f} / {theory['ood']['gp_accuracy']:.4f})")
    return theory


def run_pruning(model, config=None, progress=print):
    """Run the pruning experiment on a trained model (THEORY §6–7).

    The steps are those of the module docstring: data sets (:func:`_data_sets`), the theory on the trained
    attention (:func:`_fit_theory`), the ``U_1`` comparison (:func:`_u1_comparison`), head rankings
    (:func:`_rankings`), single-head drops and their rank correlations (:func:`_single_head_drops`,
    :func:`_spearman_table`) and pruning curves (:func:`_pruning_curves`).

    Parameters
    ----------
    model : smtheory.sims.training.TrainResult
        From :func:`smtheory.sims.training.train` or :func:`smtheory.sims.training.load_model`.
    config : PruningConfig, optional
    progress : callable(str) or None

    Returns
    -------
    dict
        All numbers (JSON-serialisable after :func:`_jsonable`) and, under ``"_arrays"``, the
        matrices used by the figures.

    Raises
    ------
    NoConvergedTheory
        (a RuntimeError) If no temperature of the grid gives a converged saddle point (no theory
        result is reported).
    """
    from smtheory.paths import path_labels
    from smtheory.pruning import head_scores
    from smtheory.sims.training import effective_u1

    config = PruningConfig() if config is None else config
    if not isinstance(config, PruningConfig):
        raise InputError(f"config must be a PruningConfig, got {type(config).__name__}")
    say = progress or (lambda s: None)
    t_start = time.perf_counter()
    mc = model.config
    fit = _Fit(params=model.params, heads=tuple(mc.heads), readout=mc.readout, data=_data_sets(mc, config))
    N = config.width or mc.width
    fit.gd = gd = _gd_accuracy(fit)
    say(f"GD model accuracy: val {gd['val']:.4f}  test {gd['test']:.4f}  ood {gd['ood']:.4f}")
    theory = _fit_theory(fit, N, config, say)
    U1, U1_eff = fit.U1, np.asarray(effective_u1(fit.params))
    u1_cmp = _u1_comparison(U1, U1_eff)
    say(f"U_1 theory vs trained weights: Pearson r (all entries) {u1_cmp['pearson_all_entries']:.3f}, "
        f"off-diagonal {u1_cmp['pearson_offdiagonal']:.3f}")
    rankings, t_rank = _rankings(fit, U1_eff, theory["grid_wall_time"] / max(len(config.temperatures), 1))
    single = _single_head_drops(fit) if fit.can_single else {}
    spearman = _spearman_table(rankings, single) if fit.can_single else {}
    curves = _pruning_curves(fit, rankings, config, say)
    return dict(
        model=dict(config=mc.to_dict(), checkpoint=model.checkpoint, curve=model.curve,
                   initial_val_loss=model.initial_val_loss, initial_val_accuracy=model.initial_val_accuracy),
        config=asdict(config), gd_accuracy=gd, theory=theory, u1_comparison=u1_cmp,
        rankings={k: v.to_dict() for k, v in rankings.items()}, heads=list(fit.heads),
        head_labels=[f"L{l + 1}H{h + 1}" for l, h in fit.all_heads], single_head_drop=single, spearman=spearman,
        curves=curves,
        timing=dict(theory_scores_s=t_rank["theory_scores_s"], solve_grid_s=theory["grid_wall_time"],
                    gradient_importance_s=t_rank["gradient_importance_s"],
                    single_head_ablation_s=t_rank["single_head_ablation_s"], total_s=time.perf_counter() - t_start),
        _arrays=dict(U1=U1, U1_eff=U1_eff, path_labels=path_labels(fit.heads),
                     head_scores_eff=[s.tolist() for s in head_scores(U1_eff, fit.heads)]),
    )


# ====================================================================================== outputs
def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if np.isfinite(v) else None  # strict JSON: NaN / inf as null
    return obj


def _save(fig, out, name):
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
    paths = _save(fig, out, name)
    plt.close(fig)
    return paths


def _figure_u1(res, out):
    """Theory ``U_1`` and trained-weights ``U_1`` side by side, and the scatter of their entries (THEORY §2–3)."""
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
    paths = _save(fig, out, "u1_comparison")
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
    paths = _save(fig, out, "head_scores")
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
    paths = _save(fig, out, "pruning_curves")
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


def _f(v, spec=".3f"):
    try:
        return format(float(v), spec)
    except (TypeError, ValueError):
        return str(v)


def report_markdown(res):
    """The Markdown report of a pruning run."""
    mc = res["model"]["config"]
    th = res["theory"]
    gd = res["gd_accuracy"]
    c = res["model"]["curve"]
    lines = [f"# Head ranking and pruning — {mc['task']} (THEORY §6–7)", "",
             f"Model: heads {mc['heads']}, width N = {mc['width']}, G = {mc['qk_dim']}, readout {mc['readout']}, "
             f"{mc['steps']} Adam steps (lr {mc['learning_rate']}, batch {mc['batch_size']}, seed {mc['seed']}). "
             f"Checkpoint: `{res['model']['checkpoint']}`.", "",
             "## Training", "",
             f"Validation loss {_f(res['model']['initial_val_loss'])} → {_f(c['val_loss'][-1])}; "
             f"train loss (first window) {_f(c['train_loss'][0])} → {_f(c['train_loss'][-1])}; validation accuracy "
             f"{_f(res['model']['initial_val_accuracy'])} → {_f(c['val_accuracy'][-1])}.", "",
             "| accuracy | validation | in-distribution test | out-of-distribution test |", "|---|---|---|---|",
             f"| GD network | {_f(gd['val'])} | {_f(gd['test'])} | {_f(gd['ood'])} |",
             f"| theory (N = {th['width']}, T = {th['temperature']:g}) | {_f(th['val']['accuracy'])} | "
             f"{_f(th['test']['accuracy'])} | {_f(th['ood']['accuracy'])} |",
             f"| GP limit (same T) | {_f(th['val']['gp_accuracy'])} | {_f(th['test']['gp_accuracy'])} | "
             f"{_f(th['ood']['gp_accuracy'])} |", "",
             "## Temperature chosen on the validation split", "",
             "| T | converged | validation accuracy | validation gen. error |", "|---|---|---|---|"]
    for r in th["temperature_grid"]:
        lines.append(f"| {r['temperature']:g} | {'yes' if r['converged'] else 'no: ' + r['message']} | "
                     f"{_f(r.get('val_accuracy', '—'))} | {_f(r.get('val_generalization_error', '—'))} |")
    s = th["solve"]
    lines += ["", f"Chosen T = {th['temperature']:g}: max residual {s['residuals'] and max(s['residuals']):.2e}, "
              f"smallest Hessian eigenvalue {s['hessian_min_eig']:.3g}, {s['iterations']} Newton iterations.", "",
              "## U_1: theory versus trained weights", "",
              "Pearson correlation of the entries of the theory U_1 and the U_1 of the trained weights "
              "(effective weights, (1/N) w_π·w_π'): " +
              ", ".join(f"{k.replace('pearson_', '').replace('_', ' ')} {_f(v)}" for k, v in res["u1_comparison"].items()),
              "", "![U1](u1_comparison.png)", "", "## Head scores", "",
              "| head | " + " | ".join(LABELS[k] for k in res["rankings"]) +
              (" | measured drop (test) | measured drop (OOD) | theory-side drop (test) |" if res["single_head_drop"] else " |"),
              "|---" * (1 + len(res["rankings"]) + (3 if res["single_head_drop"] else 0)) + "|"]
    flat = {k: np.concatenate(v["scores"]) for k, v in res["rankings"].items()}
    for i, lab in enumerate(res["head_labels"]):
        row = f"| {lab} | " + " | ".join(_f(flat[k][i]) for k in res["rankings"])
        if res["single_head_drop"]:
            sd = res["single_head_drop"]
            row += f" | {_f(sd['test']['measured'][i])} | {_f(sd['ood']['measured'][i])} | " \
                   f"{_f(sd['test']['theory_side'][i])}"
        lines.append(row + " |")
    lines += ["", "![scores](head_scores.png)", ""]
    if res["spearman"]:
        lines += ["Spearman rank correlation between a score and the measured single-head accuracy drop "
                  "(positive = high score, large drop):", "", "| score | test ρ (p) | OOD ρ (p) |", "|---|---|---|"]
        for k, v in res["spearman"].items():
            lines.append(f"| {LABELS.get(k, k.replace('_', ' '))} | {_f(v['test']['rho'])} ({_f(v['test']['p'], '.2g')}) | "
                         f"{_f(v['ood']['rho'])} ({_f(v['ood']['p'], '.2g')}) |")
        lines.append("")
    cv = res["curves"]
    lines += ["## Pruning curves", "", "Accuracy of the pruned GD network (no retraining) after k heads removed "
              "(k = 0 is the full network); every layer keeps at least one head.", ""]
    for split, title in (("test", "In-distribution test"), ("ood", "Out-of-distribution test")):
        K = len(cv["theory"][split])
        lines += [f"**{title}**", "", "| ranking | " + " | ".join(f"k={k}" for k in range(K)) + " |",
                  "|---" * (K + 1) + "|"]
        for name in [n for n in RANKINGS if n in cv]:
            lines.append(f"| {LABELS[name]} | " + " | ".join(_f(v) for v in cv[name][split]) + " |")
        m, sd = cv["random"][split]["mean"], cv["random"][split]["sd"]
        lines.append(f"| random (mean ± sd, {cv['random']['n_permutations']}) | " +
                     " | ".join(f"{_f(a)} ± {_f(b, '.3f')}" for a, b in zip(m, sd)) + " |")
        lines.append("| theory-side prediction, theory order | " +
                     " | ".join(_f(v) for v in cv["theory"]["theory_" + split]) + " |")
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
    payload = _jsonable(res)
    payload["U1_theory"] = np.asarray(res["_arrays"]["U1"]).tolist()
    payload["U1_trained_weights"] = np.asarray(res["_arrays"]["U1_eff"]).tolist()
    payload["path_labels"] = res["_arrays"]["path_labels"]
    payload["versions"] = versions()
    payload["commit"] = git_commit()
    write_json_atomic(os.path.join(out, "pruning.json"), payload)
    return figs + [os.path.join(out, "report.md"), os.path.join(out, "pruning.json")]
