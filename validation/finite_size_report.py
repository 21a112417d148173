"""Markdown section and CSV of the finite-size-scaling experiment (docs/theory.md §8.4).

:func:`section_markdown` turns the results dict of :func:`smtheory.validation.finite_size.run_finite_size` into
a Markdown section: the fitted exponents γ of ``|Δ| ∝ N^(−γ)`` with their 95 % intervals, one table
per α (N, P, seeds, mean relative max-entry and Frobenius ``|⟨U_1⟩ − U_1*|`` ± standard error, the
Monte-Carlo noise floor, Δ accuracy, Δ generalisation error, largest R-hat, excluded points) and the
fixed-P table.  :func:`write_report` writes it (``finite_size_report.md``), the CSV of every point
(``finite_size_points.csv``) and the figure, each file atomically.  Excluded points are counted and
listed, never averaged.
"""
from __future__ import annotations

import csv
import io
import os
import tempfile

__all__ = ["section_markdown", "points_csv", "write_report"]

# names of the fitted quantities, with "|" escaped for Markdown tables
_NAMES = {"rel_max": "rel. max \\|ΔU₁\\|", "rel_frob": "rel. Frobenius \\|ΔU₁\\|",
          "abs_dacc": "\\|Δ accuracy\\|", "abs_dgen": "\\|Δ gen. error\\|"}
CSV_COLUMNS = ("N", "P", "alpha", "seed", "status", "theory_converged", "theory_route", "sampler_converged",
               "rhat_max", "ess_min", "steps", "extensions", "rel_max", "rel_max_mcse", "rel_frob", "rel_frob_mcse",
               "rel_frob_noise", "dacc", "dacc_mcse", "dgen", "dgen_mcse", "accuracy_theory", "accuracy_sampled",
               "gen_error_theory", "gen_error_sampled", "wall_time", "cpu_time")


def _pm(v, se, digits=4):
    if v is None:
        return "—"
    return f"{v:.{digits}f} ± {se:.{digits}f}" if se is not None else f"{v:.{digits}f}"


def _signed(v, se):
    return "—" if v is None else f"{v:+.4f} ± {se:.4f}"


def _excluded(g):
    parts = [f"{n} {k.replace('_', ' ')}" for k, n in g["excluded"].items() if n]
    return ", ".join(parts) if parts else "0"


def _group_table(rows, first="P"):
    head = (f"| N | {first} | seeds used | rel. max \\|ΔU₁\\| | rel. Frobenius \\|ΔU₁\\| | MC floor (Frob.) | "
            "Δ accuracy | Δ gen. error | R-hat max | excluded |")
    lines = [head, "|" + "---|" * 10]
    for g in sorted(rows, key=lambda r: r["N"]):
        col = g["P"] if first == "P" else f"{g['alpha']:.3g}"
        rhat = "—" if g["rhat_max"] is None else f"{g['rhat_max']:.4f}"
        lines.append(f"| {g['N']} | {col} | {g['n']} | {_pm(g['rel_max'], g['rel_max_se'])} | "
                     f"{_pm(g['rel_frob'], g['rel_frob_se'])} | {_pm(g['rel_frob_noise'], None)} | "
                     f"{_signed(g['dacc'], g['dacc_se'])} | {_signed(g['dgen'], g['dgen_se'])} | {rhat} | "
                     f"{_excluded(g)} |")
    return lines


def _fit_rows(name, fits):
    out = []
    for q in _NAMES:
        f = fits[q]
        noisy = ", ".join(str(n) for n in f.get("noise_limited", [])) or "—"
        if f["gamma"] is None:
            out.append(f"| {name} | {_NAMES[q]} | — | — | — | {f['n']} | {noisy} |")
            continue
        ci = "—" if f["ci"] is None else f"[{f['ci'][0]:.2f}, {f['ci'][1]:.2f}]"
        chi = "—" if f["chi2_red"] is None else f"{f['chi2_red']:.2f}"
        out.append(f"| {name} | {_NAMES[q]} | {f['gamma']:.2f} | {ci} | {chi} | {f['n']} "
                   f"({min(f['widths'])}–{max(f['widths'])}) | {noisy} |")
    return out


def _fits_table(results):
    lines = ["| series | quantity | γ | 95 % interval | χ²_red | widths in fit | left out (noise-limited N) |",
             "|---|---|---|---|---|---|---|"]
    for a, fits in results["fits"]["alpha"].items():
        lines += _fit_rows(f"α = {a}", fits)
    if results["fits"].get("fixed"):
        lines += _fit_rows(f"P = {results['config']['fixed_train']}", results["fits"]["fixed"])
    return lines


def _intro(results):
    c = results["config"]
    ex = results["excluded"]
    n_pts = len(results["points"])
    return [
        f"Markov task with {c['paths']} paths (docs/theory.md §5), T = {c['temperature']}, {c['n_test']} test "
        f"sequences, data seeds {c['data_seeds']} (train s, test s + 1), head seed {c['head_seed']}. Sampler: "
        f"`overlap` (NUTS on the exact order-parameter posterior, docs/theory.md §8.2), {c['chains']} chains, "
        f"warm-up {c['burnin']}, {c['steps']} draws, extended up to {c['max_steps']} until R-hat ≤ "
        f"{c['rhat_target']}. Theory: the certified saddle point U₁* (docs/theory.md §3).",
        "",
        f"{n_pts} points ({results['computed']} computed in this run, {results['reused']} reused). Excluded from "
        f"averages and fits: {ex['sampler_unconverged']} with R-hat above target, {ex['theory_unconverged']} "
        f"with an unconverged saddle point, {ex['sampler_error']} with a sampler error. Run time "
        f"{results['wall_time']:.0f} s wall, {results['cpu_time']:.0f} s CPU (this process and its workers); "
        f"the points' own compute time, summed over all of them: {results['points_cpu_time']:.0f} s CPU.",
        "",
        "Differences are sampled − theory. Each cell is the mean over the usable data seeds ± its standard "
        "error √max(s²/n, ΣMCSE²/n²): the spread s over seeds (which contains the Monte-Carlo error) floored "
        "by the pooled Monte-Carlo error. \"MC floor\" is √(ΣMCSE²)/‖U₁*‖_F, what the Frobenius difference "
        "would read if the true difference were zero; differences near it are noise-dominated and flatten "
        "the fitted exponent. γ: weighted least squares of log |Δ| on log N (weights from the standard "
        f"errors), covariance scaled by χ²_red, Student-t 95 % interval; N ≥ {c['fit_min_width']}, and only "
        f"widths whose mean difference is at least {c['fit_min_snr']:g}× its Monte-Carlo noise level (per-entry "
        "MCSE for the max entry, the MC floor for Frobenius, the MCSE for accuracy and generalisation error).",
    ]


def section_markdown(results, figure=None, level=2):
    """The Markdown section of a finite-size results dict (docs/theory.md §8.4).

    Parameters
    ----------
    results : dict
        From :func:`smtheory.validation.finite_size.run_finite_size`.
    figure : str, optional
        Relative path of the PNG to embed.
    level : int
        Heading level of the section title.

    Returns
    -------
    str
    """
    h = "#" * level
    lines = [f"{h} Finite-size scaling: sampled minus saddle point (docs/theory.md §8.4)", ""] + _intro(results)
    if figure:
        lines += ["", f"![finite-size scaling]({figure})"]
    lines += ["", f"{h}# Fitted exponents of |Δ| ∝ N^(−γ)", ""] + _fits_table(results)
    for a in results["fits"]["alpha"]:
        rows = [g for g in results["groups"] if g["series"] == "alpha" and f"{g['alpha']:g}" == a]
        lines += ["", f"{h}# Fixed α = {a} (P = αN)", ""] + _group_table(rows, "P")
    fixed = [g for g in results["groups"] if g["series"] == "fixed"]
    if fixed:
        lines += ["", f"{h}# Fixed P = {results['config']['fixed_train']} (the paper's protocol; α = P/N)", ""]
        lines += _group_table(fixed, "α")
    bad = [p for p in results["points"] if p["status"] != "ok"]
    if bad:
        lines += ["", "Excluded points: " + "; ".join(
            f"N = {p['N']}, P = {p['P']}, seed {p['seed']}: {p['status'].replace('_', ' ')}" for p in bad) + "."]
    if results["skipped"]:
        lines += ["", "Grid pairs not run: " + "; ".join(
            f"α = {s['alpha']:g}, N = {s['N']} ({s['reason']})" for s in results["skipped"]) + "."]
    lines += ["", f"Commit {results.get('commit') or 'unknown'}; versions "
                  + ", ".join(f"{k} {v}" for k, v in results["versions"].items() if k != "platform") + "."]
    return "\n".join(lines) + "\n"


def _csv_row(p):
    th, sa, d = p["theory"], p["sampled"] or {}, p["diff"] or {}
    return dict(N=p["N"], P=p["P"], alpha=p["alpha"], seed=p["seed"], status=p["status"],
                theory_converged=th["converged"], theory_route=th["route"], sampler_converged=sa.get("converged"),
                rhat_max=sa.get("rhat_max"), ess_min=sa.get("ess_min"), steps=sa.get("steps"),
                extensions=sa.get("extensions"), accuracy_theory=th["test_accuracy"],
                accuracy_sampled=sa.get("test_accuracy"), gen_error_theory=th["generalization_error"],
                gen_error_sampled=sa.get("generalization_error"), wall_time=p["wall_time"], cpu_time=p["cpu_time"],
                **{k: d.get(k) for k in CSV_COLUMNS if k in ("rel_max", "rel_max_mcse", "rel_frob", "rel_frob_mcse",
                                                             "rel_frob_noise", "dacc", "dacc_mcse", "dgen",
                                                             "dgen_mcse")})


def points_csv(results):
    """The CSV text of every point (columns :data:`CSV_COLUMNS`; empty cells for missing values)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for p in sorted(results["points"], key=lambda p: (p["P"] / p["N"], p["N"], p["seed"])):
        w.writerow({k: ("" if v is None else v) for k, v in _csv_row(p).items()})
    return buf.getvalue()


def _write_text_atomic(path, text):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_report(results, out_dir, *, figures=True):
    """Write the Markdown section, the points CSV and (unless ``figures=False``) the figure.

    Parameters
    ----------
    results : dict
        From :func:`smtheory.validation.finite_size.run_finite_size`.
    out_dir : str
    figures : bool

    Returns
    -------
    dict
        ``report``, ``csv`` and ``figures`` (list) paths (docs/theory.md §8.4).
    """
    paths = dict(figures=[])
    if figures:
        from . import finite_size_figures

        paths["figures"] = finite_size_figures.finite_size_figure(results, out_dir)
    paths["csv"] = os.path.join(out_dir, "finite_size_points.csv")
    _write_text_atomic(paths["csv"], points_csv(results))
    paths["report"] = os.path.join(out_dir, "finite_size_report.md")
    fig = os.path.basename(paths["figures"][0]) if paths["figures"] else None
    _write_text_atomic(paths["report"], section_markdown(results, figure=fig))
    return paths
