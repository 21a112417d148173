"""``smtheory prune``: theory head scores and pruning curves of a trained model (docs/theory.md §7).

Examples
--------
``smtheory prune --model runs/digits/model.npz --out runs/digits/pruning`` (one trained model);
``smtheory prune --seeds 5 --architectures 4x4 2x2x2 --out runs/prune-seeds`` (trains 5 models per
architecture on the experiment engine and reports the statistics; ``--full`` for the larger preset).
"""
from __future__ import annotations

import sys

from smtheory.checks import InputError

from .options import flag_error

#: PruningConfig fields whose errors name the option (a message starts with the field).
_CONFIG_FLAGS = {k: f"--{k.replace('_', '-')}" for k in ("n_train", "n_val", "n_test", "permutations",
                                                         "temperatures", "width", "seed")}


def register(subparsers):
    """Add the ``prune`` sub-command."""
    p = subparsers.add_parser(
        "prune", help="rank heads by the theory and prune a trained model, against baselines",
        description="Theory head scores (docs/theory.md §7) from the saddle point on the trained Q/K, and pruning "
                    "curves (accuracy versus heads removed) for the theory ranking, random orders, gradient "
                    "head importance (Michel et al. 2019) and single-head ablation. Writes figures, report.md "
                    "and pruning.json to --out.")
    p.add_argument("--model", metavar="CKPT", help="checkpoint written by `smtheory train` (single-model mode)")
    p.add_argument("--seeds", type=int, metavar="K",
                   help="multi-model mode: train K models per architecture (seeds 0..K-1) and report statistics")
    p.add_argument("--architectures", nargs="+", metavar="HxH",
                   help="with --seeds: heads per layer of each architecture, e.g. 4x4 2x2x2 (default: the preset's)")
    p.add_argument("--full", action="store_true", help="with --seeds: the larger preset (pruning_seeds.FULL)")
    p.add_argument("--workers", type=int, default=1, help="with --seeds: processes for training and evaluation")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--width", type=int, default=None, help="theory width N (default: the model's width; with "
                   "--seeds: the only width of the (N, T) grid)")
    p.add_argument("--temperatures", type=float, nargs="+", default=None, metavar="T",
                   help="temperature grid; T is chosen on the validation split (default 0.001 0.01 0.1 1)")
    p.add_argument("--n-train", type=int, default=None, help="theory training set P (default 400)")
    p.add_argument("--n-val", type=int, default=None, help="validation sequences (default 500)")
    p.add_argument("--n-test", type=int, default=None, help="sequences per test set (default 1000)")
    p.add_argument("--permutations", type=int, default=None, help="random pruning orders (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation data and random orders (default 0)")
    p.set_defaults(func=cmd_prune)


def cmd_prune(args):
    """Score, rank and prune the heads of ``--model`` into ``--out``; returns 0, or 3 without a converged theory."""
    from smtheory.io import check_output_dir, lock_folder
    from smtheory.sims.training import check_data_memory, load_model, make_task
    from smtheory.validation.pruning import NoConvergedTheory, PruningConfig, run_pruning, write_outputs

    if (args.model is None) == (args.seeds is None):
        raise InputError("give exactly one of --model (one trained model) or --seeds K (K models per architecture)")
    if args.seeds is not None:
        return cmd_prune_seeds(args)
    if args.architectures or args.full:
        raise InputError("--architectures and --full apply with --seeds only")
    check_output_dir(args.out, "--out")
    given = {k: getattr(args, k) for k in ("n_train", "n_val", "n_test", "permutations") if getattr(args, k) is not None}
    if args.temperatures is not None:
        given["temperatures"] = tuple(args.temperatures)
    try:
        config = PruningConfig(width=args.width, seed=args.seed, **given)
    except InputError as exc:
        raise flag_error(exc, _CONFIG_FLAGS) from None
    model = load_model(args.model)
    task = make_task(model.config)
    for opt, n in (("--n-train", config.n_train), ("--n-val", config.n_val), ("--n-test", config.n_test)):
        try:
            check_data_memory(task, n)
        except InputError as exc:
            raise InputError(f"{opt}: {exc}") from None
    with lock_folder(args.out, "--out"):
        try:
            res = run_pruning(model, config)
        except NoConvergedTheory as exc:
            print(f"smtheory: warning: {exc}", file=sys.stderr)
            return 3
        paths = write_outputs(res, args.out)
    print("wrote " + ", ".join(paths))
    return 0


def _architectures(texts):
    """``["4x4", "2x2x2"]`` -> ``((4, 4), (2, 2, 2))`` (errors name ``--architectures``)."""
    out = []
    for t in texts:
        try:
            out.append(tuple(int(h) for h in t.lower().split("x")))
        except ValueError:
            raise InputError(f"--architectures: {t!r} is not heads per layer like 4x4 or 2x2x2") from None
    return tuple(out)


def _seeds_config(args):
    """The preset (``--full`` or demo) of :mod:`smtheory.validation.pruning_seeds` with the options applied."""
    from smtheory.checks import positive_int
    from smtheory.validation.pruning_seeds import DEMO, FULL

    if not isinstance(args.seeds, int) or args.seeds < 1:
        raise InputError(f"--seeds must be a positive integer (models per architecture), got {args.seeds}")
    positive_int("--workers", args.workers)
    changes = dict(seeds=args.seeds, seed=args.seed)
    if args.architectures:
        changes["architectures"] = _architectures(args.architectures)
    if args.width is not None:
        changes["theory_widths"] = (args.width,)
    if args.temperatures is not None:
        changes["temperatures"] = tuple(args.temperatures)
    changes.update({k: getattr(args, k) for k in ("n_train", "n_val", "n_test", "permutations")
                    if getattr(args, k) is not None})
    flags = dict(_CONFIG_FLAGS, architectures="--architectures", seeds="--seeds", theory_widths="--width")
    try:
        return (FULL if args.full else DEMO).replace(**changes)
    except InputError as exc:
        raise flag_error(exc, flags) from None


def cmd_prune_seeds(args):
    """Multi-model mode: train, evaluate, summarise into ``--out``; returns 0, or 3 when a model's theory did not converge."""
    from smtheory.io import check_output_dir, lock_folder
    from smtheory.validation.pruning_seeds import run_pruning_seeds
    from smtheory.validation.pruning_stats_report import write_report

    config = _seeds_config(args)
    check_output_dir(args.out, "--out")
    with lock_folder(args.out, "--out"):
        res = run_pruning_seeds(config, args.out, workers=args.workers)
        paths = write_report(res, args.out)
    s = res["summary"].get("all")
    if s:
        for name, sp in s["spearman"].items():
            t = sp["test"]
            print(f"{name}: pooled Spearman rho {t['pooled']:.3f} [{t['pooled_ci'][0]}, {t['pooled_ci'][1]}]")
    print(f"report: {paths['report']}")
    bad = [f"{r['heads']} seed {r['seed']}" for r in res["models"] if r.get("status") != "ok"]
    if bad:
        print("smtheory: warning: no converged theory for " + ", ".join(bad), file=sys.stderr)
        return 3
    return 0
