"""``smtheory compare markov|digits``: theory versus sampling at demo scale, or paper scale with ``--full``.

``markov``: docs/theory.md §5 (:data:`smtheory.validation.markov.DEMO` / ``FULL``); ``digits``: the one-shot digits
task of docs/theory.md §6 (:data:`smtheory.validation.digits.DEMO` / ``FULL``). The other options override the
preset. Rerun the same command after an interruption to continue (finished tasks are reused).
"""
from __future__ import annotations

import sys
import time

from .markov_run import add_common, override, run_markov_command

#: DigitsConfig fields whose errors name the option.
_DIGITS_FLAGS = {"widths": "--widths", "n_train": "--n-train", "n_test": "--n-test", "chains": "--chains",
                 "sampling": "--sample-widths", "gibbs_check": "--gibbs-widths"}


def register(subparsers):
    """Add the ``compare`` sub-command."""
    c = subparsers.add_parser(
        "compare", help="theory versus sampling on a task (markov, digits), at demo or paper scale",
        description="Theory versus sampling with figures and a report. 'markov' = docs/theory.md §5; 'digits' = the "
                    "one-shot digits task of docs/theory.md §6 (trained Q/K fixed, P = 600, T chosen per N on the "
                    "validation split, GP baseline, overlap sampling and a Gibbs check, U_1 heat maps). Without "
                    "--full the demo settings are used; --full runs the paper-scale version (hours on 2 cores).")
    c.add_argument("task", choices=["markov", "digits"],
                   help="the experiment (markov: the hidden-Markov task, docs/theory.md §5; digits: one-shot digits, §6)")
    c.add_argument("--full", action="store_true", help="paper-scale protocol (smtheory.validation.<task>.FULL)")
    c.add_argument("--sample-widths", type=int, nargs="+", metavar="N",
                   help="override the widths to sample (each keeps the preset's burn-in/steps for that N, or the "
                        "nearest width's)")
    c.add_argument("--sampler", help="sampler of the sampled widths (default overlap: the exact order-parameter "
                   "posterior; also langevin, gibbs)")
    c.add_argument("--gibbs-widths", type=int, nargs="*", metavar="N",
                   help="widths of the exact-Gibbs weight-space cross-check (default: the preset's, N = 10; give "
                        "none to skip it)")
    c.add_argument("--burnin", type=int, help="override the burn-in sweeps of every sampled width")
    c.add_argument("--steps", type=int, help="override the (initial) recorded sweeps of every sampled width")
    c.add_argument("--widths", type=int, nargs="+", metavar="N", help="override the theory grid of widths")
    c.add_argument("--n-train", type=int, help="override P, the number of training sequences (default 100)")
    c.add_argument("--n-test", type=int, help="override the number of test sequences (default 1000)")
    c.add_argument("--chains", type=int, help="override the number of chains (default 4)")
    c.add_argument("--seed", type=int, help="override the sampler seed (default 0)")
    add_common(c, "smtheory-compare-<task>")
    c.set_defaults(func=cmd_compare)


def _check_compare_options(args):
    """Bounds of the ``compare`` overrides, checked before any work (errors name the option)."""
    from smtheory.checks import positive_int, seed, width

    for opt in ("widths", "sample_widths"):
        for n in getattr(args, opt) or ():
            width(f"--{opt.replace('_', '-')}", n)
    for opt in ("burnin", "steps", "chains", "n_train", "n_test"):
        v = getattr(args, opt)
        if v is not None and not (opt == "burnin" and v == 0):
            positive_int(f"--{opt.replace('_', '-')}", v)
    if args.seed is not None:
        seed("--seed", args.seed)


def cmd_compare(args):
    """Run the (overridden) demo or ``--full`` presets; returns 0, or 3 when a result is flagged."""
    from smtheory.validation.markov import DEMO, FULL

    _check_compare_options(args)
    if args.out == "smtheory-compare-<task>":
        args.out = f"smtheory-compare-{args.task}"
    if args.task == "digits":
        return cmd_compare_digits(args)

    presets = FULL if args.full else DEMO
    configs = {p: override(presets[p], args) for p in args.paths}
    if args.full:
        from smtheory.validation.finite_size import FULL_FS

        args.finite_size = FULL_FS
    scale = "paper scale (--full)" if args.full else "demo scale"
    return run_markov_command(configs, args, f"Theory versus sampling on the hidden-Markov task, {scale}")


def _digits_config(args):
    """The digits preset (``--full`` or demo) with the ``compare`` overrides applied."""
    from smtheory.checks import InputError
    from smtheory.validation.digits import DEMO, FULL

    from .options import flag_error

    config = FULL if args.full else DEMO
    if args.sampler not in (None, "overlap"):
        raise InputError(f"--sampler: compare digits samples with overlap (and Gibbs at --gibbs-widths), got "
                         f"{args.sampler!r}")
    plan = {n: (b, s) for n, b, s in config.sampling}
    near = lambda n, p: p[min(p, key=lambda m: abs(m - n))]  # noqa: E731
    changes = {}
    if args.sample_widths:
        changes["sampling"] = tuple((n, *near(n, plan)) for n in args.sample_widths)
    if args.gibbs_widths is not None:
        gplan = {n: (b, s) for n, b, s in config.gibbs_check} or plan
        changes["gibbs_check"] = tuple((n, *near(n, gplan)) for n in args.gibbs_widths)
    if args.burnin is not None or args.steps is not None:
        rows = changes.get("sampling", config.sampling)
        changes["sampling"] = tuple((n, b if args.burnin is None else args.burnin, s if args.steps is None else args.steps)
                                    for n, b, s in rows)
    for opt, field in (("widths", "widths"), ("n_train", "n_train"), ("n_test", "n_test"), ("chains", "chains"),
                       ("seed", "sample_seed")):
        if getattr(args, opt) is not None:
            changes[field] = tuple(getattr(args, opt)) if opt == "widths" else getattr(args, opt)
    try:
        return config.replace(**changes) if changes else config
    except InputError as exc:
        raise flag_error(exc, _DIGITS_FLAGS) from None


def cmd_compare_digits(args):
    """``smtheory compare digits``: run, report; returns 0, or 3 when a theory width or a sampling run is flagged."""
    from smtheory.checks import positive_int
    from smtheory.io import check_output_dir, lock_folder
    from smtheory.validation.digits import run_digits
    from smtheory.validation.digits_report import write_report

    config = _digits_config(args)
    check_output_dir(args.out, "--out")
    positive_int("--workers", args.workers)
    t0 = time.perf_counter()
    with lock_folder(args.out, "--out"):
        res = run_digits(config, args.out, workers=args.workers, progress=not args.quiet)
        paths = write_report(res, args.out)
    for r in res["theory"]:
        if r["converged"]:
            print(f"digits N={r['width']}: T={r['temperature']:g} theory accuracy ID {r['test']['accuracy']:.3f} "
                  f"held-out {r['ood']['accuracy']:.3f}")
    print(f"digits GP: T={res['gp']['temperature']:g} accuracy ID {res['gp']['test']['accuracy']:.3f} "
          f"held-out {res['gp']['ood']['accuracy']:.3f}")
    print(f"report: {paths['report']}  ({time.perf_counter() - t0:.0f} s)")
    if res["flagged"]:
        print("smtheory: warning: not converged (flagged in the report): " + ", ".join(res["flagged"]), file=sys.stderr)
        return 3
    return 0
