"""One trained model's pruning evaluation, as the function of an engine task (docs/theory.md §6–7).

:func:`evaluate_model` runs on one :class:`~smtheory.validation.pruning_fit.ModelFit`: the theory at the
(N, T) chosen on the validation split; the rankings (theory, trained-weights ``U_1``, gradient importance,
single-head ablation oracle, random orders); the measured single-head accuracy drops and the two theory
predictions of them — the theory-side check of docs/theory.md §7 (rows and columns of ``U_1`` zeroed,
:func:`smtheory.pruning.theory_pruned_statistics`) and the **re-solved** theory of the network without
the head (:func:`resolved_accuracy`: the saddle point of the sub-network's own action); the pruning
curves of every ranking with the quantities that explain their shape (:func:`curve_with_diagnosis`:
heads left per layer, accuracy without the ``1/√(H − k)`` rescaling, fraction of positive outputs,
accuracy with the decision threshold re-centred on the validation split).  The result is JSON.
"""
from __future__ import annotations

import time

import numpy as np

__all__ = ["evaluate_model", "resolved_accuracy", "curve_with_diagnosis", "random_orders"]


def _accuracy(f, y):
    return float(np.mean(np.sign(f) == np.asarray(y)))


def _unscaled(params, removed):
    """The network with the heads' values zeroed but the head sum left at ``1/√H`` (no rescaling)."""
    V = [np.array(v, dtype=np.float64) for v in params["V"]]
    for l, h in removed:
        V[l][h] = 0.0
    return dict(params, V=V)


def curve_with_diagnosis(fit, order):
    """The pruning curve of ``order`` (no retraining) and the quantities that explain its shape.

    Returns
    -------
    dict
        ``removed`` (the steps), ``heads_left`` [k][layer], per split (``test``, ``ood``) the accuracy of
        the pruned network, and on ``test``: ``no_rescale`` (values zeroed, sum kept at ``1/√H``),
        ``frac_positive`` (fraction of outputs > 0; the targets are balanced), ``recentred`` (sign of
        ``f − median(f_val)``: the decision threshold re-centred on the validation split).
    """
    from smtheory.pruning import prune, pruning_order
    from smtheory.sims.training import predict

    steps = pruning_order(order, fit.heads)
    out = dict(removed=[list(p) for p in steps], heads_left=[], test=[], ood=[], no_rescale=[],
               frac_positive=[], recentred=[])
    (xv, yv), (xt, yt), (xo, yo) = fit.data["val"], fit.data["test"], fit.data["ood"]
    for k in range(len(steps) + 1):
        params = prune(fit.params, steps[:k]) if k else fit.params
        left = [H - sum(1 for l, _ in steps[:k] if l == layer) for layer, H in enumerate(fit.heads)]
        ft = predict(params, xt, fit.readout)
        shift = float(np.median(predict(params, xv, fit.readout)))
        out["heads_left"].append(left)
        out["test"].append(_accuracy(ft, yt))
        out["ood"].append(_accuracy(predict(params, xo, fit.readout), yo))
        out["no_rescale"].append(_accuracy(predict(_unscaled(fit.params, steps[:k]), xt, fit.readout), yt)
                                 if k else out["test"][0])
        out["frac_positive"].append(float(np.mean(ft > 0)))
        out["recentred"].append(_accuracy(ft - shift, yt))
    return out


def resolved_accuracy(fit, removed):
    """Theory accuracy of the network *without* the removed heads, its saddle point solved afresh (docs/theory.md §3).

    The sub-network keeps the paths that avoid the removed heads (its own ``1/√D'`` feature scale and
    ``H_ℓ − k_ℓ`` heads per layer), at the chosen (N, T).  Returns ``{"test", "ood", "converged"}``
    (accuracies NaN when the solve did not converge).
    """
    import smtheory.solvers
    from smtheory.predictor import predictor_statistics
    from smtheory.problem import KernelProblem
    from smtheory.pruning import path_mask

    keep = path_mask(fit.heads, removed)
    heads = tuple(H - sum(1 for l, _ in removed if l == layer) for layer, H in enumerate(fit.heads))
    spec = fit.spec.replace(heads=heads)
    probs = {s: KernelProblem(fit.problems[s].xi_train[:, keep], fit.problems[s].y_train, heads,
                              fit.problems[s].xi_test[:, keep], fit.problems[s].y_test) for s in ("test", "ood")}
    res = smtheory.solvers.solve(probs["test"], spec)
    if not res.converged:
        return dict(test=float("nan"), ood=float("nan"), converged=False)
    return dict(converged=True, **{s: predictor_statistics(p, res.spec, res.U1).accuracy for s, p in probs.items()})


def _single_heads(fit):
    """Measured, theory-side and re-solved accuracy drops of every single-head removal (test and ood)."""
    from smtheory.pruning import prune, theory_pruned_statistics
    from smtheory.sims.training import accuracy

    out = {s: dict(measured=[], theory_side=[], resolved=[]) for s in ("test", "ood")}
    for hd in fit.all_heads:
        pruned = prune(fit.params, [hd])
        rs = resolved_accuracy(fit, [hd])
        for s in ("test", "ood"):
            out[s]["measured"].append(fit.gd[s] - accuracy(pruned, *fit.data[s], fit.readout))
            out[s]["theory_side"].append(fit.theory[s]["accuracy"] - theory_pruned_statistics(
                fit.problems[s], fit.spec, fit.U1, [hd]).accuracy)
            out[s]["resolved"].append(fit.theory[s]["accuracy"] - rs[s])
    return out


def _theory_predictions(fit, steps):
    """Theory-side and re-solved accuracy along the removal steps (k = 0 is the full theory)."""
    from smtheory.pruning import theory_pruned_statistics

    out = {f"{kind}_{s}": [fit.theory[s]["accuracy"]] for kind in ("theory_side", "resolved") for s in ("test", "ood")}
    for k in range(1, len(steps) + 1):
        rs = resolved_accuracy(fit, steps[:k])
        for s in ("test", "ood"):
            out[f"theory_side_{s}"].append(theory_pruned_statistics(fit.problems[s], fit.spec, fit.U1,
                                                                    steps[:k]).accuracy)
            out[f"resolved_{s}"].append(rs[s])
    return out


def random_orders(heads, n, seed):
    """``n`` random removal orders of every head (seeded), and the random scores that give them."""
    all_heads = [(l, h) for l, H in enumerate(heads) for h in range(H)]
    rng = np.random.default_rng([seed, 4242])
    perms = [rng.permutation(len(all_heads)) for _ in range(n)]
    return [[all_heads[i] for i in p] for p in perms]


def _fit_model(model, config, say):
    """The :class:`ModelFit` of a trained model with its theory solved at the (N, T) chosen on validation."""
    from .pruning_fit import ModelFit, NoConvergedTheory, data_sets, fit_theory, gd_accuracy

    mc = model.config
    fit = ModelFit(params=model.params, heads=tuple(mc.heads), readout=mc.readout, data=data_sets(mc, config))
    fit.gd = gd_accuracy(fit)
    try:
        fit_theory(fit, config.theory_widths, config.temperatures, say)
    except NoConvergedTheory:
        fit.theory = None
    return fit


def evaluate_model(config, model_result, say=None):
    """The pruning evaluation of one trained model (the function of a ``prune-eval`` task).

    Parameters
    ----------
    config : smtheory.validation.pruning_seeds.PruneSeedsConfig
        ``theory_widths``, ``temperatures``, ``n_train``, ``n_val``, ``n_test``, ``permutations``, ``seed``.
    model_result : dict
        The result of the model's training task (:mod:`smtheory.validation.digits_models`).

    Returns
    -------
    dict
        ``heads``, ``seed``, ``gd`` (accuracies), ``theory`` (chosen N, T, accuracies, grid), ``scores``
        (flat, per ranking), ``single`` (drops), ``curves`` (per ranking, with diagnosis), ``random``
        (curves of the random orders), ``theory_curve`` (theory-side and re-solved predictions along the
        theory order), ``u1_pearson``, ``timing``.
    """
    from smtheory.sims.training import effective_u1

    from .digits_models import load_trained
    from .pruning_fit import u1_comparison
    from .pruning_rankings import head_rankings

    say = say or (lambda s: None)
    t0 = time.perf_counter()
    model = load_trained(model_result)
    fit = _fit_model(model, config, say)
    if fit.theory is None:
        return dict(heads=list(fit.heads), seed=model.config.seed, gd=fit.gd, n_test=config.n_test, theory=None,
                    status="no converged theory")
    U1_eff = np.asarray(effective_u1(fit.params))
    rankings, _ = head_rankings(fit, U1_eff, 0.0)
    curves = {name: curve_with_diagnosis(fit, rk.order) for name, rk in rankings.items()}
    rand = [curve_with_diagnosis(fit, o) for o in random_orders(fit.heads, config.permutations, config.seed)]
    th = fit.theory
    return dict(heads=list(fit.heads), seed=model.config.seed, gd=fit.gd, n_test=config.n_test, status="ok",
                theory=dict(width=th["width"], temperature=th["temperature"],
                            **{s: th[s]["accuracy"] for s in ("val", "test", "ood")},
                            grid=[{k: r.get(k) for k in ("width", "temperature", "converged", "val_accuracy")}
                                  for r in th["temperature_grid"]]),
                scores={k: rk.flat_scores().tolist() for k, rk in rankings.items()},
                head_labels=[f"L{l + 1}H{h + 1}" for l, h in fit.all_heads], single=_single_heads(fit),
                curves=curves, random=rand,
                theory_curve=_theory_predictions(fit, [tuple(p) for p in curves["theory"]["removed"]]),
                u1_pearson=u1_comparison(fit.U1, U1_eff)["pearson_all_entries"],
                timing=dict(total_s=time.perf_counter() - t0))
