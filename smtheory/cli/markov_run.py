"""What ``smtheory demo`` and ``smtheory compare markov`` share: options, preset overrides and the run.

The run: theory and sampling on the hidden-Markov task (:func:`smtheory.validation.markov.run_experiments`),
the Markdown report, the optional finite-size study, the summary lines and the exit status.
"""
from __future__ import annotations

import os
import sys
import time

from smtheory.checks import InputError


def add_common(p, default_out):
    """Add ``--out``, ``--paths``, ``--workers`` and ``--quiet`` to parser ``p``."""
    p.add_argument("--out", default=default_out, metavar="DIR",
                   help=f"output folder for results, checkpoints, figures and report.md (default {default_out})")
    p.add_argument("--paths", type=int, nargs="+", choices=(4, 2), default=[4, 2],
                   help="networks of docs/theory.md §5 to run: 4 (four paths) and/or 2 (noisier two paths); default both")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="processes for the sampling stages (default: 2, or 1 on a 1-core machine)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def override(config, args):
    """The :class:`~smtheory.validation.markov.MarkovConfig` ``config`` with the ``compare`` overrides applied."""
    changes = {}
    if getattr(args, "sample_widths", None):
        plan = {n: (b, s) for n, b, s in config.sampling}
        rows = []
        for n in args.sample_widths:
            if n < 1:
                raise InputError(f"--sample-widths must be positive integers, got {n}")
            near = min(plan, key=lambda m: abs(m - n)) if plan else None
            b, s = plan.get(n, plan[near] if near is not None else (200, 1000))
            rows.append((n, b, s))
        changes["sampling"] = tuple(rows)
    if getattr(args, "burnin", None) is not None or getattr(args, "steps", None) is not None:
        rows = changes.get("sampling", config.sampling)
        changes["sampling"] = tuple((n, b if args.burnin is None else args.burnin, s if args.steps is None else args.steps)
                                    for n, b, s in rows)
    if getattr(args, "gibbs_widths", None) is not None:
        plan = {n: (b, st) for n, b, st in config.gibbs_check}
        near = lambda n: plan[min(plan, key=lambda m: abs(m - n))] if plan else (1000, 4000)  # noqa: E731
        changes["gibbs_check"] = tuple((n, *plan.get(n, near(n))) for n in args.gibbs_widths)
    if getattr(args, "sampler", None) is not None:
        changes["sampler"] = args.sampler
    for opt, field in (("widths", "widths"), ("n_train", "n_train"), ("n_test", "n_test")):
        if getattr(args, opt, None) is not None:
            changes[field] = tuple(getattr(args, opt)) if opt == "widths" else getattr(args, opt)
    if "n_train" in changes and isinstance(changes["n_train"], int) and changes["n_train"] > 0:
        changes["kernel_examples"] = min(config.kernel_examples, changes["n_train"])
    if getattr(args, "chains", None) is not None:
        changes["chains"] = args.chains
    if getattr(args, "seed", None) is not None:
        changes["sample_seed"] = args.seed
    return config.replace(**changes) if changes else config


def run_markov_command(configs, args, title):
    """Run the networks ``args.paths`` of ``configs`` into ``args.out``; returns 0, or 3 when a result is flagged."""
    from smtheory.checks import positive_int
    from smtheory.io import check_output_dir, lock_folder
    from smtheory.validation.markov import run_experiments
    from smtheory.validation.markov_report import write_report

    check_output_dir(args.out, "--out")
    positive_int("--workers", args.workers)
    t0 = time.perf_counter()
    progress = not args.quiet
    with lock_folder(args.out, "--out"):
        results = run_experiments([configs[p] for p in args.paths], args.out, workers=args.workers,
                                  progress=progress)
        report = write_report(results, args.out, title=title)
        fs_unconverged = _finite_size(args, report, progress)
    unconverged = [f"{r['name']} N={w}" for r in results for w, s in r["samples"].items() if not s["converged"]]
    unconverged += [f"{r['name']} Gibbs N={w}" for r in results for w, s in r.get("gibbs", {}).items()
                    if not s["converged"]]
    unconverged += [f"{r['name']} theory N={row['width']}" for r in results for row in r["theory"] if not row["converged"]]
    _print_comparisons(results)
    print(f"report: {report}  ({time.perf_counter() - t0:.0f} s)")
    unconverged += fs_unconverged
    if unconverged:
        print("smtheory: warning: not converged (flagged in the report): " + ", ".join(unconverged), file=sys.stderr)
        return 3
    return 0


def _print_comparisons(results):
    for r in results:
        for w, c in r["comparison"].items():
            print(f"{r['name']} N={w}: accuracy theory {c['accuracy']['theory']:.3f} sampled "
                  f"{c['accuracy']['sampled']:.3f} ± {_num(c['accuracy']['mcse'], '.3f')} "
                  f"(z {_num(c['accuracy']['z'], '.1f')}); "
                  f"gen. error theory {c['generalization_error']['theory']:.4f} sampled "
                  f"{c['generalization_error']['sampled']:.4f} ± {_num(c['generalization_error']['mcse'], '.4f')} "
                  f"(z {_num(c['generalization_error']['z'], '.1f')}); max z U_1 {_num(c['max_abs_z_U1'], '.1f')}")


def _finite_size(args, report, progress):
    """The finite-size-scaling study (docs/theory.md §8.4) appended to the report; returns flagged points."""
    fs = getattr(args, "finite_size", None)
    if fs is None:
        return []
    from smtheory.validation.finite_size import run_finite_size
    from smtheory.validation.finite_size_report import section_markdown, write_report as write_fs

    out = os.path.join(args.out, "finite_size")
    res = run_finite_size(fs, out, progress=progress, workers=args.workers)
    paths = write_fs(res, out)
    fig = os.path.join("finite_size", os.path.basename(paths["figures"][0])) if paths["figures"] else None
    with open(report, "a") as f:
        f.write("\n" + section_markdown(res, figure=fig) + "\n")
    for a, fit in sorted(res["fits"]["alpha"].items()):
        print(f"finite size, alpha = {a}: {_fit_text(fit)}")
    print(f"finite size, fixed P: {_fit_text(res['fits']['fixed'])}")
    return [f"finite-size point {p['N']},{p['P']},{p['seed']}" for p in res["points"]
            if p.get("status") not in ("ok", None)]


def _fit_text(fit):
    if not isinstance(fit, dict):
        return "n/a"
    parts = []
    for q, f in fit.items():
        if isinstance(f, dict) and f.get("gamma") is not None:
            lo, hi = f["ci"] if f.get("ci") else (None, None)
            parts.append(f"{q} ~ N^-{_num(f['gamma'], '.2f')} [{_num(lo, '.2f')}, {_num(hi, '.2f')}]")
    return "; ".join(parts) or "n/a"


def _num(v, spec):
    """A z-score or MCSE for the summary line; ``None``/NaN/inf (an MCSE below resolution) as ``n/a``."""
    import math

    return format(v, spec) if isinstance(v, (int, float)) and math.isfinite(v) else "n/a"
