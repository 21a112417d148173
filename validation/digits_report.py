"""Markdown report of the digits theory-versus-sampling experiment (docs/theory.md §6).

:func:`write_report` writes ``OUT/report.md`` and the figures of :mod:`smtheory.validation.digits_figures`
from the results of :func:`smtheory.validation.digits.run_digits`: configuration, seeds, versions and
commit; the accuracy-versus-N table (theory, sampled ± MCSE, GP; in-distribution and held-out classes);
the convergence of every sampling run; theory-versus-sampled agreement (z = |Δ| / MCSE); the ``U_1``
correlations; the kernel–task alignment; the validation choice of T per N.
"""
from __future__ import annotations

import json
import math
import os

from .pruning_outputs import fmt

__all__ = ["accuracy_table", "report_markdown", "write_report"]


def _pm(v, se, spec=".3f"):
    return fmt(v, spec) + ("" if se is None else f" ± {fmt(se, spec)}")


def _sampled(res, kind, width):
    return res["samples"].get(f"{kind}-{width}")


def accuracy_table(res):
    """The accuracy-versus-N table (Markdown lines): theory, sampled ± MCSE and GP, both splits."""
    gp = res["gp"]
    lines = ["| N | T (val) | theory ID | sampled ID ± MCSE | theory held-out | sampled held-out ± MCSE | "
             "Gibbs ID / held-out |", "|---|---|---|---|---|---|---|"]
    for r in res["theory"]:
        if not r["converged"]:
            lines.append(f"| {r['width']} | no converged T | — | — | — | — | — |")
            continue
        cells = []
        for kind in ("sample", "gibbs"):
            s = _sampled(res, kind, r["width"])
            if s is None:
                cells.append(None)
                continue
            flag = "" if s["converged"] else " (R-hat ✗)"
            sp = s["splits"]
            cells.append((_pm(sp["test"]["accuracy"], sp["test"]["accuracy_mcse"]) + flag,
                          _pm(sp["ood"]["accuracy"], sp["ood"]["accuracy_mcse"]) + flag))
        sa, gi = cells
        lines.append(f"| {r['width']} | {r['temperature']:g} | {fmt(r['test']['accuracy'])} | "
                     f"{sa[0] if sa else '—'} | {fmt(r['ood']['accuracy'])} | {sa[1] if sa else '—'} | "
                     f"{gi[0] + ' / ' + gi[1] if gi else '—'} |")
    lines.append(f"| GP (∞) | {gp['temperature']:g} | {fmt(gp['test']['accuracy'])} | — | "
                 f"{fmt(gp['ood']['accuracy'])} | — | — |")
    return lines


def _zcell(z):
    return "—" if z is None or not math.isfinite(z) else f"{z:.2f}"


def _convergence_table(res):
    lines = ["| run | T | chains × steps | extensions | R-hat max | ESS min | U_1 max z | U_1 max rel. diff | "
             "r(U_1 theory, sampled) | z acc. ID / held-out | converged | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, s in res["samples"].items():
        c = res["comparison"][key]
        cfg = s["sample_config"]
        lines.append(f"| {key} | {s['temperature']:g} | {cfg['chains']} × {cfg['steps']} | {s['extensions']} | "
                     f"{fmt(s['rhat_max'], '.4f')} | {fmt(s['ess_min'], '.0f')} | {fmt(c['U1']['max_abs_z'], '.2f')} | "
                     f"{fmt(c['U1']['max_rel_diff'], '.3f')} | {fmt(c['U1']['pearson'], '.4f')} | "
                     f"{_zcell(c['test']['z'])} / {_zcell(c['ood']['z'])} | "
                     f"{'yes' if s['converged'] else '**no**'} | {fmt(s['wall_time'], '.0f')} |")
    return lines


def _grid_table(res):
    temps = res["config"]["temperatures"]
    lines = ["| N | " + " | ".join(f"T={t:g}" for t in temps) + " |", "|---" * (len(temps) + 1) + "|"]
    for r in res["theory"]:
        cells = [fmt(g.get("val_accuracy")) if g["converged"] else "not conv." for g in r["grid"]]
        lines.append(f"| {r['width']} | " + " | ".join(cells) + " |")
    lines.append("| GP | " + " | ".join(fmt(g["val_accuracy"]) for g in res["gp"]["grid"]) + " |")
    return lines


def _sampler_lines(res):
    check = res.get("gibbs_vs_overlap") or {}
    if not check:
        return ["(no width sampled by both)"]
    lines = ["| N | max z U_1 (both MCSEs) | z pooled accuracy | z gen. error |", "|---|---|---|---|"]
    for w, c in sorted(check.items(), key=lambda kv: int(kv[0])):
        lines.append(f"| {w} | {fmt(c['max_abs_z_U1'], '.2f')} | {fmt(c['test_accuracy']['z'], '.2f')} | "
                     f"{fmt(c['generalization_error']['z'], '.2f')} |")
    return lines


def _u1_lines(res):
    lines = ["| N | r(theory, sampled) | r(theory, trained weights) | r(sampled, trained weights) |",
             "|---|---|---|---|"]
    for w, m in sorted(res["u1_maps"].items(), key=lambda kv: int(kv[0])):
        p = m["pearson"]
        lines.append(f"| {w} | {fmt(p['theory_sampled'])} | {fmt(p['theory_trained'])} | {fmt(p['sampled_trained'])} |")
    return lines


def _alignment_lines(res, top=5):
    al = res["kernels"]
    if not al:
        return ["(no converged theory)"]
    lines = ["| kernel | " + " | ".join(f"k={k + 1}" for k in range(top)) + " |", "|---" * (top + 1) + "|",
             "| GP | " + " | ".join(fmt(v) for v in al["gp"][:top]) + " |"]
    for w, v in sorted(al["renormalized"].items(), key=lambda kv: int(kv[0])):
        lines.append(f"| renormalised N = {w} | " + " | ".join(fmt(x) for x in v["alignment"][:top]) + " |")
    return lines


def _shown_path(path, out):
    """``path`` relative to the report's folder ``out`` when it lies inside it (the report stays valid when the
    folder is moved); otherwise as given."""
    if out is None:
        return path
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(out))
    return path if rel.startswith(os.pardir) else rel


def _header(res, out=None):
    c, m = res["config"], res["model"]
    s = m["summary"]
    return [f"# Theory versus sampling on the one-shot digits task (docs/theory.md §6)", "",
            f"Teacher: heads {c['heads']}, N = {c['model_width']}, G = {c['qk_dim']}, {c['train_steps']} Adam steps "
            f"(lr {c['learning_rate']}, batch {c['batch_size']}, seed {c['model_seed']}); validation accuracy "
            f"{fmt(s['initial_val_accuracy'])} → {fmt(s['final_val_accuracy'])}. Its Q/K are fixed (qk-style "
            f"attention, mean-pool readout). Checkpoint `{_shown_path(m['checkpoint'], out)}`.", "",
            f"Theory: P = {c['n_train']} training sequences, {c['n_val']} validation sequences (choice of T), "
            f"{c['n_test']} sequences per test set (in-distribution test; held-out classes). T grid "
            f"{c['temperatures']}, chosen per N on the validation split only. Sampling: `overlap` (exact order-parameter "
            f"posterior, Rao-Blackwellised predictor) at N = {[p[0] for p in c['sampling']]}, exact Gibbs at "
            f"N = {[p[0] for p in c['gibbs_check']]}; {c['chains']} chains, R-hat target {c['rhat_target']}, up to "
            f"{c['max_extensions']} extensions (steps doubled).", "",
            f"Seeds: {res['seeds']}. Versions: {res['versions']}. Commit: `{res['commit']}`. "
            f"Wall time {fmt(res['wall_time'], '.0f')} s.", ""]


def report_markdown(res, out=None):
    """The Markdown report of :func:`smtheory.validation.digits.run_digits` results (``out``: the folder it is
    written to; paths inside it are shown relative to it)."""
    flagged = res["flagged"]
    lines = _header(res, out)
    lines += ["**Not converged:** " + ", ".join(flagged) + " (exit status 3)." if flagged else
              "Every theory width converged and every sampling run met the R-hat target.", "",
              "## Accuracy versus N", ""] + accuracy_table(res) + [
        "", "ID = in-distribution test split; held-out = classes never seen in training. The sampled MCSE of a "
        "split is the pooled jackknife MCSE × √(n_pooled/n_split) (an approximation; see "
        "`smtheory.validation.digits.split_accuracy`).", "", "![accuracy](digits_accuracy_vs_N.png)", "",
        "## Sampling runs and agreement with the theory", ""] + _convergence_table(res) + [
        "", "z = |theory − sampled| / MCSE (for an accuracy, — when its MCSE is below half a test point: no "
        "prediction changed sign between batches). At finite N the exact posterior mean differs from the saddle point by "
        "O(1/N) (docs/theory.md §8.4), so large z at small N are expected; agreement is required as N grows.", "",
        "### Gibbs versus overlap (the weight-space check)", ""] + _sampler_lines(res) + [
        "", "## U_1: theory, sampled, trained weights", ""] + _u1_lines(res) + [
        "", "![U1](digits_u1_maps.png)", "", "GD weights are not posterior samples: their correlation with the "
        "theory is a similarity of structure, not a test.", "", "## Kernel–task alignment", ""] + \
        _alignment_lines(res) + ["", "![alignment](digits_alignment.png)", "",
                                 "## Validation accuracy over the temperature grid", ""] + _grid_table(res) + [""]
    return "\n".join(lines)


def write_report(res, out):
    """Write ``OUT/report.md`` and the figures; returns ``{"report": path, "figures": [...]}``."""
    from .digits_figures import all_figures

    os.makedirs(out, exist_ok=True)
    figures = all_figures(res, out)
    path = os.path.join(out, "report.md")
    with open(path, "w") as f:
        f.write(report_markdown(res, out))
    return dict(report=path, figures=figures)


def load_results(out):
    """The results written by :func:`smtheory.validation.digits.run_digits` into ``out``."""
    with open(os.path.join(out, "digits_results.json")) as f:
        return json.load(f)
