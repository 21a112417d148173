"""Options and helpers shared by several ``smtheory`` commands (``solve``, ``sample``, ``train``, ``prune``).

The data/model option group (:func:`data_options`), its checks (:func:`check_model_options`,
:func:`model_spec`), the problem it names (:func:`problem_from_args`), the GP baselines, the ``--json``
writer, and :func:`flag_error`, which turns a configuration class's error into one naming the option.
Heavy imports stay inside the functions so that ``smtheory --help`` stays fast.
"""
from __future__ import annotations

import argparse

import numpy as np

from smtheory.checks import InputError


def width_arg(text):
    """``N`` or ``N1,..,NL,Na``: positive integers of at most :data:`smtheory.checks.MAX_WIDTH`."""
    from smtheory.checks import MAX_WIDTH

    parts = []
    for p in text.split(","):
        try:
            v = int(p)
        except ValueError:
            try:
                f = float(p)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"width must be an integer or comma-separated integers, got {text!r}") from None
            if not (np.isfinite(f) and f.is_integer()):
                raise argparse.ArgumentTypeError(f"widths must be positive integers, got {text!r}") from None
            v = int(f)
        if v <= 0:
            raise argparse.ArgumentTypeError(f"widths must be positive integers, got {text!r}")
        if v > MAX_WIDTH:
            raise argparse.ArgumentTypeError(f"widths must be at most {MAX_WIDTH:.0e}, got {text!r} (use the GP "
                                             "baseline for N -> infinity)")
        parts.append(v)
    return parts[0] if len(parts) == 1 else tuple(parts)


def data_options(s, default_widths=(10, 30, 50, 100, 300, 500, 1000), seed_flag="--seed"):
    """Add the data and model options (``--task``/``--data``, ``--paths``, ``--width``, …) to parser ``s``."""
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", choices=["markov"], help="built-in task (docs/theory.md §5)")
    src.add_argument("--data", metavar="FILE.npz", help="your own data: x_train, y_train, x_test, y_test and "
                     "w_layer1.. ([H, N0, N0]) or q_layer1/k_layer1.. ([H, G, N0]); ±1 labels for "
                     "classification, other real targets for regression")
    s.add_argument("--paths", type=int, choices=[4, 2], default=4, help="Markov network: 4 paths or the noisier 2 paths")
    s.add_argument("--n-train", type=int, default=100, help="Markov task: training sequences (default 100)")
    s.add_argument("--n-test", type=int, default=1000, help="Markov task: test sequences (default 1000)")
    s.add_argument(seed_flag, dest="seed", type=int, default=0, help="Markov task: data seed (default 0)")
    s.set_defaults(seed_flag=seed_flag)
    s.add_argument("--width", type=width_arg, nargs="+", default=list(default_widths),
                   metavar="N", help="widths to solve at; one N per width, or N1,..,NL,Na for per-layer widths")
    s.add_argument("--temperature", type=float, default=0.01, help="temperature T (default 0.01)")
    s.add_argument("--variances", type=float, nargs="+", default=None, metavar="S",
                   help="prior variances s0 s1 .. sL sa (default all 1)")
    s.add_argument("--readout", default="last", help="token readout: last, first or mean (default last)")


def check_model_options(args):
    """Bounds of the data/model options (and ``--tol`` where present), checked before any work."""
    from smtheory.checks import seed
    from smtheory.model import READOUTS

    if args.readout not in READOUTS:
        raise InputError(f"--readout must be one of {', '.join(READOUTS)}, got {args.readout!r}")
    if not np.isfinite(args.temperature) or args.temperature <= 0:
        raise InputError(f"--temperature must be a finite positive number, got {args.temperature}")
    if args.variances is not None and not all(np.isfinite(v) and v > 0 for v in args.variances):
        raise InputError(f"--variances must be positive numbers, got {args.variances}")
    if args.task == "markov":
        seed(args.seed_flag, args.seed, span=2)
    if getattr(args, "tol", None) is not None and not (np.isfinite(args.tol) and 0 < args.tol < 1):
        raise InputError(f"--tol must be a number in (0, 1), got {args.tol}")


def model_spec(args, heads):
    """The :class:`smtheory.ModelSpec` of the options at the first width, every width validated."""
    from smtheory.model import ModelSpec

    L = len(heads)
    if args.variances is not None and len(args.variances) != L + 2:
        raise InputError(f"--variances needs L + 2 = {L + 2} numbers (s0 s1 .. sL sa) for {L} layers, "
                         f"got {len(args.variances)}")
    try:
        spec = ModelSpec(heads=heads, widths=args.width[0], variances=args.variances,
                         temperature=args.temperature, readout=args.readout)
        for w in args.width:
            spec.replace(widths=w)  # validate every width before any work
    except InputError as exc:
        raise InputError(f"--width: {exc}" if str(exc).startswith("widths") else str(exc)) from None
    return spec


def problem_from_args(args):
    """``(problem, heads)``: the Markov task of ``--task markov`` or the ``--data`` file (heads from the file)."""
    from smtheory.tasks import markov

    if args.task == "markov":
        if args.readout != "last":
            raise InputError("--readout: the Markov task is defined with the last-token readout")
        if args.n_train < 2 or args.n_train % 2 or args.n_test < 2 or args.n_test % 2:
            raise InputError(f"--n-train and --n-test must be even numbers >= 2 (balanced classes), got "
                             f"{args.n_train} and {args.n_test}")
        return (markov.markov_problem(args.paths, args.n_train, args.n_test, seed=args.seed),
                (2, 2) if args.paths == 4 else (2, 1))
    from smtheory.data import load_npz

    return load_npz(args.data, readout=args.readout)


def gp_baselines(args, problem, spec):
    """``{name: paths}`` of the GP baselines: all paths, and the Markov task's named subnetworks."""
    from smtheory.paths import subnetwork_paths
    from smtheory.tasks import markov

    out = {"all": list(range(problem.n_paths))}
    if args.task == "markov":
        for name, kept in markov.SUBNETWORKS[args.paths].items():
            out[name] = subnetwork_paths(spec.heads, kept)
    return out


def fmt(x, spec="9.4f"):
    """A number for a table; ``n/a`` for NaN (e.g. the accuracy of a regression problem)."""
    return format(x, spec) if np.isfinite(x) else format("n/a", ">" + spec.split(".")[0])


def width_text(w):
    """A width for a table: ``N`` or ``N1,..,NL,Na``."""
    return str(w) if isinstance(w, int) else ",".join(map(str, w))


def check_output_file(path, what):
    """Refuse an unusable output file before any work (nothing to check without a path)."""
    from smtheory.io import check_output_file as check

    if path:
        check(path, what)


def write_json(args, spec, problem, rows):
    """Per-width rows with the configuration, versions and commit, written atomically (``--json``).

    The file is strict JSON: NaN (an undefined R-hat, a regression accuracy) is written as ``null``.
    """
    if not args.json:
        return
    from smtheory.io import git_commit, versions, write_json_atomic

    config = {k: v for k, v in vars(args).items() if k != "func"}
    config["width"] = [w if isinstance(w, int) else list(w) for w in args.width]
    write_json_atomic(args.json, dict(config=config, spec=spec.to_dict(), path_names=problem.path_names,
                                      task=problem.task, versions=versions(), commit=git_commit(), results=rows))
    print(f"wrote {args.json}")


def flag_error(exc, flags, follow=None):
    """The :class:`~smtheory.checks.InputError` ``exc`` of a configuration class, naming the option.

    Parameters
    ----------
    exc : InputError
        The error; its message starts with a field name, e.g. ``"batch_size must be …"``.
    flags : dict
        ``{field: flag}``, tried in order: the first field the message starts with gives the prefix
        ``"FLAG: "``; a message that starts with none is kept as it is.
    follow : tuple of str, optional
        The characters allowed right after the field name (e.g. ``(" ", ":")``); ``None``: any.

    Returns
    -------
    InputError
        To raise ``from None``.
    """
    text = str(exc)
    for field, flag in flags.items():
        if text.startswith(field) and (follow is None or text[len(field):len(field) + 1] in follow):
            return InputError(f"{flag}: {text}")
    return InputError(text)
