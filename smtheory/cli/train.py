"""``smtheory train``: gradient-descent training with learned Q/K (docs/theory.md §6).

Example
-------
``smtheory train --task digits --out runs/digits``  (writes ``runs/digits/model.npz``)
"""
from __future__ import annotations

import os

from smtheory.checks import InputError

from .options import flag_error

#: TrainConfig fields whose errors name the option (a message starts with the field).
_CONFIG_FLAGS = dict(learning_rate="--lr", batch_size="--batch-size", qk_dim="--qk-dim", log_every="--log-every",
                     heads="--heads", width="--width", steps="--steps", seed="--seed")


def register(subparsers):
    """Add the ``train`` sub-command."""
    t = subparsers.add_parser(
        "train", help="train the network with learned Q/K by gradient descent (digits one-shot or Markov)",
        description="Gradient-descent training (Adam, MSE to ±1) of the docs/theory.md §1 network with learned "
                    "query/key weights computed from the bare input (docs/theory.md §6). Writes the checkpoint "
                    "OUT/model.npz, the training curve (PNG/PDF), train.json and train_report.md.")
    t.add_argument("--task", choices=["digits", "markov"], default="digits",
                   help="2-way 1-shot digits episodes (default) or the hidden-Markov task")
    t.add_argument("--out", required=True, metavar="DIR", help="output folder")
    t.add_argument("--heads", type=int, nargs="+", default=[4, 4], metavar="H", help="heads per layer (default 4 4)")
    t.add_argument("--width", type=int, default=32, help="width N (default 32)")
    t.add_argument("--qk-dim", type=int, default=8, help="query/key dimension G (default 8)")
    t.add_argument("--steps", type=int, default=2000, help="Adam steps (default 2000)")
    t.add_argument("--batch-size", type=int, default=64, help="sequences per step (default 64)")
    t.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
    t.add_argument("--seed", type=int, default=0, help="seed of the initial weights and data stream (default 0)")
    t.add_argument("--log-every", type=int, default=50, help="steps per training-curve point (default 50)")
    t.add_argument("--n-test", type=int, default=2000, help="test sequences for the final accuracies (default 2000)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/model.npz")
    t.set_defaults(func=cmd_train)


def cmd_train(args):
    """Train into ``--out`` (checkpoint, curve, train.json, report); returns the exit status."""
    from smtheory.io import check_output_dir, lock_folder
    from smtheory.sims.training import TrainConfig, check_data_memory, make_task

    if args.n_test < 2 or args.n_test % 2:
        raise InputError(f"--n-test must be an even number >= 2, got {args.n_test}")
    if args.task == "digits":  # before any folder is created or locked
        from smtheory.extras import require

        require("sklearn.datasets", "digits", "the digits task")
    check_output_dir(args.out, "--out")
    config = _train_config(TrainConfig, args)
    ckpt = os.path.join(args.out, "model.npz")
    if os.path.exists(ckpt) and not args.resume:
        raise InputError(f"--out: {ckpt} exists; use --resume to continue it or choose another folder")
    if os.path.isdir(ckpt):
        raise InputError(f"--out: {ckpt!r} is a folder; the checkpoint must be a file")
    try:
        check_data_memory(make_task(config), args.n_test, "test")
    except InputError as exc:
        raise InputError(f"--n-test: {exc}") from None
    with lock_folder(args.out, "--out"):
        return _train(args, config, ckpt)


def _train_config(TrainConfig, args):
    """The TrainConfig of the options; its errors name the option."""
    try:
        return TrainConfig(task=args.task, heads=tuple(args.heads), width=args.width, qk_dim=args.qk_dim,
                           steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
                           log_every=args.log_every)
    except InputError as exc:
        raise flag_error(exc, _CONFIG_FLAGS) from None


def _train(args, config, ckpt):
    from smtheory.io import git_commit, versions, write_json_atomic
    from smtheory.sims.training import TrainingDiverged, accuracy, make_task, sample_data, train
    from smtheory.validation.pruning import plot_training_curve

    def progress(step, tl, vl, va):
        if step % (10 * config.log_every) == 0 or step == config.steps:
            print(f"step {step:6d}  train loss {tl:.4f}  val loss {vl:.4f}  val accuracy {va:.4f}", flush=True)

    try:
        res = train(config, checkpoint=ckpt, resume=args.resume, progress=progress)
    except TrainingDiverged as exc:
        raise InputError(f"--lr: {exc}") from None
    task = make_task(config)
    acc = {}
    for split in ("test", "ood"):
        x, y = sample_data(task, args.n_test, split, seed=2_000_000 + args.seed)
        acc[split] = accuracy(res.params, x, y, config.readout)
    summ = res.summary()
    print(f"validation loss {summ['initial_val_loss']:.4f} -> {summ['final_val_loss']:.4f}; "
          f"test accuracy {acc['test']:.4f}, out-of-distribution {acc['ood']:.4f}; "
          f"{res.steps_per_second:.0f} steps/s")
    figs = plot_training_curve(res.curve, args.out, title=f"GD training ({config.task})")
    write_json_atomic(os.path.join(args.out, "train.json"),
                      dict(config=config.to_dict(), summary=summ, accuracy=acc, curve=res.curve,
                           checkpoint=ckpt, versions=versions(), commit=git_commit()))
    with open(os.path.join(args.out, "train_report.md"), "w") as fh:
        fh.write(f"# GD training — {config.task}\n\nConfiguration: `{config.to_dict()}`\n\n"
                 f"Validation loss {summ['initial_val_loss']:.4f} → {summ['final_val_loss']:.4f}; train loss "
                 f"(first window) {summ['first_train_loss']:.4f} → {summ['final_train_loss']:.4f}; validation "
                 f"accuracy {summ['initial_val_accuracy']:.3f} → {summ['final_val_accuracy']:.3f}.\n\n"
                 f"Accuracy on {args.n_test} fresh sequences: in-distribution test {acc['test']:.4f}, "
                 f"out-of-distribution {acc['ood']:.4f}.\n\n![curve](training_curve.png)\n")
    print(f"wrote {ckpt}, {', '.join(figs)}, train.json, train_report.md")
    return 0
