"""``smtheory prune``: theory head scores and pruning curves of a trained model (THEORY.md §7).

Example
-------
``smtheory prune --model runs/digits/model.npz --out runs/digits/pruning``
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
        description="Theory head scores (THEORY.md §7) from the saddle point on the trained Q/K, and pruning "
                    "curves (accuracy versus heads removed) for the theory ranking, random orders, gradient "
                    "head importance (Michel et al. 2019) and single-head ablation. Writes figures, report.md "
                    "and pruning.json to --out.")
    p.add_argument("--model", required=True, metavar="CKPT", help="checkpoint written by `smtheory train`")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--width", type=int, default=None, help="theory width N (default: the model's width)")
    p.add_argument("--temperatures", type=float, nargs="+", default=[0.001, 0.01, 0.1, 1.0], metavar="T",
                   help="temperature grid; T is chosen on the validation split (default 0.001 0.01 0.1 1)")
    p.add_argument("--n-train", type=int, default=400, help="theory training set P (default 400)")
    p.add_argument("--n-val", type=int, default=500, help="validation sequences (default 500)")
    p.add_argument("--n-test", type=int, default=1000, help="sequences per test set (default 1000)")
    p.add_argument("--permutations", type=int, default=20, help="random pruning orders (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation data and random orders (default 0)")
    p.set_defaults(func=cmd_prune)


def cmd_prune(args):
    """Score, rank and prune the heads of ``--model`` into ``--out``; returns 0, or 3 without a converged theory."""
    from smtheory.io import check_output_dir, lock_folder
    from smtheory.sims.training import check_data_memory, load_model, make_task
    from smtheory.validation.pruning import NoConvergedTheory, PruningConfig, run_pruning, write_outputs

    check_output_dir(args.out, "--out")
    try:
        config = PruningConfig(width=args.width, temperatures=tuple(args.temperatures), n_train=args.n_train,
                               n_val=args.n_val, n_test=args.n_test, permutations=args.permutations, seed=args.seed)
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
