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


def run_pruning(model, config=None, progress=print):
    """Run the pruning experiment on a trained model (THEORY §6–7).

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
    import smtheory.solvers
    from smtheory.sims.training import (accuracy, attention_layers, effective_u1, head_mask_gradient, make_task, predict,
                               sample_data)
    from smtheory.model import ModelSpec
    from smtheory.paths import path_labels
    from smtheory.predictor import predictor_statistics
    from smtheory.problem import KernelProblem
    from smtheory.pruning import (gradient_importance, head_scores, prune, pruning_order, rank_heads,
                                  theory_pruned_statistics)

    config = PruningConfig() if config is None else config
    if not isinstance(config, PruningConfig):
        raise InputError(f"config must be a PruningConfig, got {type(config).__name__}")
    say = progress or (lambda s: None)
    t_start = time.perf_counter()
    mc = model.config
    params = model.params
    heads = tuple(mc.heads)
    readout = mc.readout
    N = config.width or mc.width
    task = make_task(mc)
    base = 1_000_000 + 97 * config.seed
    x_tr, y_tr = sample_data(task, config.n_train, "train", seed=base + 1)
    x_va, y_va = sample_data(task, config.n_val, "val", seed=base + 2)
    x_te, y_te = sample_data(task, config.n_test, "test", seed=base + 3)
    x_od, y_od = sample_data(task, config.n_test, "ood", seed=base + 4)

    # ------------------------------------------------------------------ GD model
    gd = dict(val=accuracy(params, x_va, y_va, readout), test=accuracy(params, x_te, y_te, readout),
              ood=accuracy(params, x_od, y_od, readout), train_set=accuracy(params, x_tr, y_tr, readout))
    say(f"GD model accuracy: val {gd['val']:.4f}  test {gd['test']:.4f}  ood {gd['ood']:.4f}")

    # ------------------------------------------------------------------ theory
    layers = attention_layers(params)
    t0 = time.perf_counter()
    xi_tr = _features(x_tr, layers, readout)
    problems = {name: KernelProblem(xi_tr, y_tr, heads, _features(x, layers, readout), y)
                for name, (x, y) in dict(val=(x_va, y_va), test=(x_te, y_te), ood=(x_od, y_od)).items()}
    t_features = time.perf_counter() - t0
    spec0 = ModelSpec(heads=heads, widths=N, temperature=config.temperatures[0], readout=readout)
    t0 = time.perf_counter()
    sols = smtheory.solvers.continuation(problems["val"], spec0, temperatures=list(config.temperatures))
    t_solve = time.perf_counter() - t0
    t_grid = []
    for T, res in zip(config.temperatures, sols):
        row = dict(temperature=T, converged=res.converged, message=res.message, max_residual=res.max_residual,
                   hessian_min_eig=res.hessian_min_eig, iterations=res.iterations)
        if res.converged:
            st = predictor_statistics(problems["val"], res.spec, res.U1)
            row.update(val_accuracy=st.accuracy, val_generalization_error=st.generalization_error)
        t_grid.append(row)
        say(f"theory T={T:g}: converged={res.converged}" +
            (f"  val accuracy {row['val_accuracy']:.4f}  gen.err {row['val_generalization_error']:.4f}"
             if res.converged else f"  ({res.message})"))
    ok = [i for i, r in enumerate(t_grid) if r["converged"]]
    if not ok:
        raise NoConvergedTheory("no temperature of the grid gave a converged saddle point; no theory result to report "
                           f"(messages: {[r['message'] for r in t_grid]})")
    best = max(ok, key=lambda i: (t_grid[i]["val_accuracy"], -t_grid[i]["val_generalization_error"]))
    sol = sols[best]
    spec = sol.spec
    U1 = np.asarray(sol.U1)
    theory = dict(width=N, temperature=spec.temperature, solve=sol.to_dict(), temperature_grid=t_grid,
                  features_time=t_features, solve_time=t_solve)
    for name in ("val", "test", "ood"):
        st = predictor_statistics(problems[name], spec, U1)
        gp = predictor_statistics(problems[name], spec, gp=True)
        theory[name] = dict(accuracy=st.accuracy, gaussian_accuracy=st.gaussian_accuracy,
                            generalization_error=st.generalization_error, gp_accuracy=gp.accuracy,
                            gp_generalization_error=gp.generalization_error)
    say(f"theory at N={N}, T={spec.temperature:g} (chosen on validation): test {theory['test']['accuracy']:.4f} "
        f"ood {theory['ood']['accuracy']:.4f} (GP {theory['test']['gp_accuracy']:.4f} / {theory['ood']['gp_accuracy']:.4f})")

    # ------------------------------------------------------------------ U1 comparison
    U1_eff = np.asarray(effective_u1(params))
    iu = np.triu_indices(U1.shape[0])
    off = np.triu_indices(U1.shape[0], 1)
    u1_cmp = dict(pearson_all_entries=_pearson(U1[iu], U1_eff[iu]),
                  pearson_offdiagonal=_pearson(U1[off], U1_eff[off]),
                  pearson_diagonal=_pearson(np.diag(U1), np.diag(U1_eff)),
                  pearson_abs_entries=_pearson(np.abs(U1[iu]), np.abs(U1_eff[iu])))
    say(f"U_1 theory vs trained weights: Pearson r (all entries) {u1_cmp['pearson_all_entries']:.3f}, "
        f"off-diagonal {u1_cmp['pearson_offdiagonal']:.3f}")

    # ------------------------------------------------------------------ rankings
    t0 = time.perf_counter()
    rankings = {"theory": rank_heads(U1, heads, method="theory")}
    t_theory_scores = time.perf_counter() - t0 + t_solve / max(len(config.temperatures), 1)
    rankings["trained_u1"] = rank_heads(U1_eff, heads, method="trained_u1")
    t0 = time.perf_counter()
    grad_raw = head_mask_gradient(params, x_va, y_va, readout)
    rankings["gradient"] = rank_heads(scores=gradient_importance(grad_raw), heads=heads, method="gradient")
    t_gradient = time.perf_counter() - t0
    all_heads = [(l, h) for l, H in enumerate(heads) for h in range(H)]
    can_single = all(H > 1 for H in heads)

    def drop(x, y, full_acc, head):
        return full_acc - accuracy(prune(params, [head]), x, y, readout)

    t0 = time.perf_counter()
    if can_single:
        f_full = predict(params, x_va, readout)
        abl = [[0.0] * H for H in heads]
        for l, h in all_heads:
            f = predict(prune(params, [(l, h)]), x_va, readout)
            d_acc = gd["val"] - float(np.mean(np.sign(f) == y_va))
            d_loss = float(np.mean((f - y_va) ** 2) - np.mean((f_full - y_va) ** 2))
            abl[l][h] = d_acc + 1e-6 * d_loss  # accuracy drop; loss increase breaks ties
        rankings["ablation"] = rank_heads(scores=[np.asarray(a) for a in abl], heads=heads, method="ablation")
    t_ablation = time.perf_counter() - t0

    # ------------------------------------------------------------------ single-head drops (measured and theory-side)
    single = {}
    if can_single:
        for split, (x, y) in dict(test=(x_te, y_te), ood=(x_od, y_od)).items():
            single[split] = dict(
                measured=[drop(x, y, gd[split], hd) for hd in all_heads],
                theory_side=[theory[split]["accuracy"] - theory_pruned_statistics(problems[split], spec, U1, [hd]).accuracy
                             for hd in all_heads])
    spearman = {}
    if can_single:
        for name, rk in rankings.items():
            s = rk.flat_scores()
            spearman[name] = {split: _spearman(s, single[split]["measured"]) for split in single}
        spearman["theory_side_vs_measured"] = {split: _spearman(single[split]["theory_side"], single[split]["measured"])
                                               for split in single}

    # ------------------------------------------------------------------ pruning curves
    def curve(order):
        steps = pruning_order(order, heads)
        out = dict(removed=[list(p) for p in steps], test=[gd["test"]], ood=[gd["ood"]],
                   theory_test=[theory["test"]["accuracy"]], theory_ood=[theory["ood"]["accuracy"]])
        for k in range(1, len(steps) + 1):
            pr = prune(params, steps[:k])
            out["test"].append(accuracy(pr, x_te, y_te, readout))
            out["ood"].append(accuracy(pr, x_od, y_od, readout))
            out["theory_test"].append(theory_pruned_statistics(problems["test"], spec, U1, steps[:k]).accuracy)
            out["theory_ood"].append(theory_pruned_statistics(problems["ood"], spec, U1, steps[:k]).accuracy)
        return out

    curves = {name: curve(rk.order) for name, rk in rankings.items()}
    rng = np.random.default_rng([config.seed, 4242])
    rand = [curve([all_heads[i] for i in rng.permutation(len(all_heads))]) for _ in range(config.permutations)]
    curves["random"] = {key: dict(mean=np.mean([r[key] for r in rand], axis=0).tolist(),
                                  sd=np.std([r[key] for r in rand], axis=0, ddof=1).tolist() if len(rand) > 1
                                  else [0.0] * len(rand[0][key]))
                        for key in ("test", "ood", "theory_test", "theory_ood")}
    curves["random"]["n_permutations"] = config.permutations
    say("pruning curves (test accuracy after k heads removed):")
    for name in list(rankings) + ["random"]:
        c = curves[name]["test"]
        vals = c["mean"] if name == "random" else c
        say(f"  {name:>11}: " + " ".join(f"{v:.3f}" for v in vals))

    return dict(
        model=dict(config=mc.to_dict(), checkpoint=model.checkpoint, curve=model.curve,
                   initial_val_loss=model.initial_val_loss, initial_val_accuracy=model.initial_val_accuracy),
        config=asdict(config), gd_accuracy=gd, theory=theory, u1_comparison=u1_cmp,
        rankings={k: v.to_dict() for k, v in rankings.items()}, heads=list(heads),
        head_labels=[f"L{l + 1}H{h + 1}" for l, h in all_heads], single_head_drop=single, spearman=spearman,
        curves=curves,
        timing=dict(theory_scores_s=t_theory_scores, solve_grid_s=t_solve, gradient_importance_s=t_gradient,
                    single_head_ablation_s=t_ablation, total_s=time.perf_counter() - t_start),
        _arrays=dict(U1=U1, U1_eff=U1_eff, path_labels=path_labels(heads),
                     head_scores_eff=[s.tolist() for s in head_scores(U1_eff, heads)]),
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


def _figures(res, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    arr = res["_arrays"]
    paths += plot_training_curve(res["model"]["curve"], out, title=f"GD training ({res['model']['config']['task']})")

    # U1 comparison
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
    paths += _save(fig, out, "u1_comparison")
    plt.close(fig)

    # head scores
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
    paths += _save(fig, out, "head_scores")
    plt.close(fig)

    # pruning curves
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
    paths += _save(fig, out, "pruning_curves")
    plt.close(fig)
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
