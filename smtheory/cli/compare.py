"""``smtheory compare markov``: theory versus sampling at demo scale, or paper scale with ``--full``.

``--full`` runs :data:`smtheory.validation.markov.FULL`; the other options override the preset. Rerun the
same command after an interruption to continue.
"""
from __future__ import annotations

from .markov_run import add_common, override, run_markov_command


def register(subparsers):
    """Add the ``compare`` sub-command."""
    c = subparsers.add_parser(
        "compare", help="theory versus sampling on a task (markov), at demo or paper scale",
        description="Theory versus sampling with figures and a report. 'markov' = THEORY.md §5. Without --full the "
                    "demo settings are used; --full runs the paper-scale version (all widths up to 300 sampled, "
                    "longer runs; about an hour on 2 cores, more if runs need extending).")
    c.add_argument("task", choices=["markov"], help="the experiment (markov: the hidden-Markov task, THEORY §5)")
    c.add_argument("--full", action="store_true", help="paper-scale protocol (smtheory.validation.markov.FULL)")
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
    add_common(c, "smtheory-compare-markov")
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

    presets = FULL if args.full else DEMO
    configs = {p: override(presets[p], args) for p in args.paths}
    if args.full:
        from smtheory.validation.finite_size import FULL_FS

        args.finite_size = FULL_FS
    scale = "paper scale (--full)" if args.full else "demo scale"
    return run_markov_command(configs, args, f"Theory versus sampling on the hidden-Markov task, {scale}")
