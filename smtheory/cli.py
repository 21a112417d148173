"""Command-line interface: ``smtheory solve`` (THEORY.md §3, §5).

Examples
--------
``smtheory solve --task markov --paths 4 --width 10 100 1000 --json out.json``
``smtheory solve --data mydata.npz --width 50 --temperature 0.1 --variances 1 1 1 1``
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import time

import numpy as np

from .checks import InputError


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line, ``smtheory: error: …`` (exit status 2)."""

    def error(self, message):
        self.exit(2, f"smtheory: error: {message} (see '{self.prog} --help')\n")


def _width_arg(text):
    """``N`` or ``N1,..,NL,Na``: positive integers of at most :data:`smtheory.checks.MAX_WIDTH`."""
    from .checks import MAX_WIDTH

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


def _data_options(s, default_widths=(10, 30, 50, 100, 300, 500, 1000), seed_flag="--seed"):
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", choices=["markov"], help="built-in task (THEORY.md §5)")
    src.add_argument("--data", metavar="FILE.npz", help="your own data: x_train, y_train, x_test, y_test and "
                     "w_layer1.. ([H, N0, N0]) or q_layer1/k_layer1.. ([H, G, N0]); ±1 labels for "
                     "classification, other real targets for regression")
    s.add_argument("--paths", type=int, choices=[4, 2], default=4, help="Markov network: 4 paths or the noisier 2 paths")
    s.add_argument("--n-train", type=int, default=100, help="Markov task: training sequences (default 100)")
    s.add_argument("--n-test", type=int, default=1000, help="Markov task: test sequences (default 1000)")
    s.add_argument(seed_flag, dest="seed", type=int, default=0, help="Markov task: data seed (default 0)")
    s.set_defaults(seed_flag=seed_flag)
    s.add_argument("--width", type=_width_arg, nargs="+", default=list(default_widths),
                   metavar="N", help="widths to solve at; one N per width, or N1,..,NL,Na for per-layer widths")
    s.add_argument("--temperature", type=float, default=0.01, help="temperature T (default 0.01)")
    s.add_argument("--variances", type=float, nargs="+", default=None, metavar="S",
                   help="prior variances s0 s1 .. sL sa (default all 1)")
    s.add_argument("--readout", default="last", help="token readout: last, first or mean (default last)")


# Subcommands that live beside the code they drive. Each module has ``register(subparsers)``, which adds its
# parser(s) and sets ``func`` (called with the parsed arguments; returns the exit status). Modules keep their
# heavy imports inside the command functions so that ``smtheory --help`` stays fast.
_COMMAND_MODULES = (
    "smtheory.validation.cli_markov",
    "smtheory.validation.cli_pruning",
    "smtheory.validation.cli_sweep",
    "smtheory.solvers.symbolic.cli",
    "smtheory.validation.cli_attention",
)


def build_parser():
    parser = _Parser(prog="smtheory", description="Statistical-mechanics theory of a tractable transformer.",
                     epilog="Exit status: 0 success; 2 bad input, an unusable file or path, or not enough memory "
                            "(one 'smtheory: error:' line); 3 the command ran but a result did not converge; "
                            "130 interrupted (Ctrl-C), 143 terminated (SIGTERM).")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("solve", help="solve the saddle-point (kernel) equations across widths",
                       description="Solve the order-parameter saddle point (THEORY.md §3) for each width and report "
                                   "U_1, test accuracy and generalisation error.")
    _data_options(s)
    s.add_argument("--tol", type=float, default=1e-9, help="relative residual required of the saddle point")
    s.add_argument("--json", metavar="PATH", help="write per-width results to this JSON file")

    m = sub.add_parser("sample", help="sample the posterior (collapsed NUTS / Langevin, exact Gibbs, …)",
                       description="Sample the Bayesian posterior (THEORY.md §1, §4) at each width and report the "
                                   "sampled order parameter, predictor statistics and R-hat / ESS diagnostics. Runs "
                                   "are extended automatically until R-hat <= 1.01 (up to --max-steps); a width "
                                   "that still misses it is flagged and the command exits with status 3.")
    _data_options(m, default_widths=(100,), seed_flag="--data-seed")
    # The sampler names live in one place, smtheory.sims.config.SAMPLERS (checked by SampleConfig); importing the
    # samplers here would slow down every `smtheory` command, so the list is not repeated as argparse choices.
    m.add_argument("--sampler", default=None, metavar="NAME",
                   help="a sampler named in smtheory.sims.SAMPLERS (default: smtheory.sims.SampleConfig's; an unknown name is "
                        "refused with the list; docs/sampling.md describes them)")
    m.add_argument("--chains", type=int, default=4, help="independent chains (default 4; >= 2 for R-hat)")
    m.add_argument("--steps", type=int, default=1000, help="recorded steps after burn-in (default 1000)")
    m.add_argument("--max-steps", type=int, default=None,
                   help="cap of the automatic extension while R-hat > 1.01 (default 16 x --steps; = --steps: off)")
    m.add_argument("--burnin", type=int, default=None,
                   help="burn-in / warm-up steps (default: smtheory.sims.SampleConfig's, 500; at least 50 for the "
                        "adaptive overlap and langevin samplers)")
    m.add_argument("--thin", type=int, default=1, help="record every k-th step (default 1)")
    m.add_argument("--step-size", type=float, default=1e-4, help="full-langevin / full-mala step size (default 1e-4)")
    m.add_argument("--seed", dest="sample_seed", type=int, default=0, help="sampler seed (default 0)")
    m.add_argument("--float32", action="store_true", help="sample in float32 (default float64)")
    m.add_argument("--checkpoint", metavar="PATH", help="checkpoint file (written atomically as sampling goes)")
    m.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    m.add_argument("--json", metavar="PATH", help="write per-width results to this JSON file")
    s.set_defaults(func=cmd_solve)
    m.set_defaults(func=cmd_sample)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _problem(args):
    from .tasks import markov

    if args.task == "markov":
        if args.readout != "last":
            raise InputError("--readout: the Markov task is defined with the last-token readout")
        if args.n_train < 2 or args.n_train % 2 or args.n_test < 2 or args.n_test % 2:
            raise InputError(f"--n-train and --n-test must be even numbers >= 2 (balanced classes), got "
                             f"{args.n_train} and {args.n_test}")
        return (markov.markov_problem(args.paths, args.n_train, args.n_test, seed=args.seed),
                (2, 2) if args.paths == 4 else (2, 1))
    from .data import load_npz

    return load_npz(args.data, readout=args.readout)


def _fmt(x, spec="9.4f"):
    """A number for a table; ``n/a`` for NaN (e.g. the accuracy of a regression problem)."""
    return format(x, spec) if np.isfinite(x) else format("n/a", ">" + spec.split(".")[0])


def cmd_solve(args):
    import smtheory.solvers

    from .predictor import predictor_statistics

    _check_model_options(args)
    _check_output_file(args.json, "--json")
    t0 = time.perf_counter()
    problem, heads = _problem(args)
    spec = _model_spec(args, heads)
    print(f"problem: P={problem.n_train}, Q={problem.xi_test.shape[0]}, D={problem.n_paths} paths, "
          f"N0={problem.input_dim}, heads={heads}, {problem.task}  (features built in {time.perf_counter() - t0:.2f}s)")
    if problem.task != "classification":
        print("regression targets (not all ±1): accuracies are not defined and shown as n/a")
    for name, paths in _gp_baselines(args, problem, spec).items():
        st = predictor_statistics(problem, spec, gp=True, subnetwork=paths)
        print(f"GP({name}): accuracy={_fmt(st.accuracy, '.4f')}  generalisation error={st.generalization_error:.4f}")
    results = smtheory.solvers.continuation(problem, spec, widths=args.width, tol=args.tol)
    header = f"{'width':>14} {'diag U_1':<40} {'accuracy':>9} {'gen.err':>9} {'iters':>6} {'time[s]':>8} {'converged':>9}"
    print(header)
    print("-" * len(header))
    rows = []
    n_bad = 0
    for w, res in zip(args.width, results):
        st = predictor_statistics(problem, res.spec, res.U1)
        diag = np.array2string(np.diag(res.U1), precision=3, max_line_width=1000, separator=" ")
        wtxt = str(w) if isinstance(w, int) else ",".join(map(str, w))
        acc = _fmt(st.accuracy) if res.converged else f"{'(' + _fmt(st.accuracy, '.4f').strip() + ')':>9}"
        print(f"{wtxt:>14} {diag:<40} {acc} {st.generalization_error:9.4f} {res.iterations:6d} {res.time:8.3f} "
              f"{str(res.converged):>9}")
        if not res.converged:
            n_bad += 1
            print(f"{'':>14} WARNING: {res.message}")
        rows.append(dict(width=w if isinstance(w, int) else list(w), **res.to_record(), **st.to_record()))
    if n_bad:
        print(f"WARNING: {n_bad} width(s) did not converge; their numbers (in parentheses) are not results.")
    _write_json(args, spec, problem, rows)
    return 0 if n_bad == 0 else 3


def _sample_config(args):
    """The :class:`smtheory.sims.SampleConfig` of the ``sample`` options (validated there; errors name the option)."""
    import dataclasses

    from smtheory.sims.run import SampleConfig

    kw = dict(chains=args.chains, steps=args.steps, thin=args.thin, step_size=args.step_size,
              seed=args.sample_seed, dtype="float32" if args.float32 else "float64")
    for opt in ("sampler", "burnin", "max_steps"):
        if getattr(args, opt) is not None:
            kw[opt] = getattr(args, opt)
    if "max_steps" in kw and "max_steps" not in {f.name for f in dataclasses.fields(SampleConfig)}:
        raise InputError("--max-steps is not supported by this version of smtheory.sims.SampleConfig")
    try:
        return SampleConfig(**kw)
    except InputError as exc:
        text = str(exc)
        flag = next((f"--{k.replace('_', '-')}" for k in ("max_steps", "step_size", "sampler", "chains", "steps",
                                                           "burnin", "thin", "seed")
                     if text.startswith(k + " ") or text.startswith(k + ":")), None)
        if flag == "--seed":
            flag = "--seed (sampler seed)"
        raise InputError(f"{flag}: {text}" if flag else text) from None


def _checkpoint_paths(args, widths):
    """Checkpoint file per width (``PATH`` or ``PATH.N<widths>``), checked before any work.

    Without ``--resume`` an existing checkpoint is refused (it would be overwritten); with it, a
    width whose checkpoint exists continues it (it must be an ``.npz`` archive) and the others
    start, but at least one must exist.
    """
    if not args.checkpoint:
        if args.resume:
            raise InputError("--resume needs --checkpoint PATH")
        return {w: None for w in widths}
    paths = {}
    for w, spec_widths in widths.items():
        p = args.checkpoint if len(widths) == 1 else f"{args.checkpoint}.N{'-'.join(map(str, spec_widths))}"
        _check_output_file(p, "--checkpoint")
        if os.path.exists(p):
            if not args.resume:
                raise InputError(f"--checkpoint: {p!r} exists; pass --resume to continue it, or choose another path")
            _check_sampling_checkpoint(p)
        paths[w] = p
    if args.resume and not any(os.path.exists(p) for p in paths.values()):
        raise InputError(f"--resume: no checkpoint at {args.checkpoint!r}")
    return paths


def _check_sampling_checkpoint(path):
    """Refuse, before any work, a ``--checkpoint`` to resume that is not a sampling checkpoint."""
    from smtheory.sims.checkpoint import read_metadata

    from .io import check_npz

    writer = "smtheory sample (smtheory.sims.run.sample)"
    check_npz(path, "--checkpoint", writer)
    try:
        meta = read_metadata(path)
    except InputError as exc:
        raise InputError(f"--checkpoint: {path!r} is not a checkpoint written by {writer} ({exc})") from None
    if not isinstance(meta, dict) or "done" not in meta or meta.get("kind") == "smtheory.sims.training":
        raise InputError(f"--checkpoint: {path!r} is not a checkpoint written by {writer}"
                         + (" (it is a training checkpoint)" if isinstance(meta, dict) and
                            meta.get("kind") == "smtheory.sims.training" else ""))


def cmd_sample(args):
    from smtheory.sims.run import SamplingError, sample

    _check_model_options(args)
    _check_output_file(args.json, "--json")
    config = _sample_config(args)
    heads = (2, 2) if args.paths == 4 else (2, 1)
    spec = _model_spec(args, heads) if args.task == "markov" else None
    problem, heads = _problem(args)
    spec = _model_spec(args, heads) if spec is None else spec
    keys = {i: spec.replace(widths=w).widths for i, w in enumerate(args.width)}
    ckpts = _checkpoint_paths(args, keys)
    rows, bad = [], []
    for i, w in enumerate(args.width):
        s = spec.replace(widths=w)
        path = ckpts[i]
        try:
            resume = bool(args.resume and path and os.path.exists(path))
            res = sample(problem, s, config, checkpoint=path, resume=resume)
        except SamplingError as exc:
            raise InputError(f"--step-size: {exc}") from None
        wtxt = str(w) if isinstance(w, int) else ",".join(map(str, w))
        _print_sample(wtxt, res, problem)
        if not res.converged:
            bad.append(wtxt)
            if config.chains < 2:
                print("  WARNING: R-hat is undefined with 1 chain: use --chains >= 2 (4 recommended); these numbers "
                      "are not certified")
            else:
                print(f"  WARNING: R-hat {res.rhat_max:.3f} > {getattr(config, 'rhat_target', 1.01)} after "
                      f"{res.config.steps} steps: not converged; raise --max-steps (or --steps) and rerun with "
                      "--resume before using these numbers")
        row = res.to_record(traces=False)
        row["width"] = w if isinstance(w, int) else list(w)
        row["task"] = problem.task
        rows.append(row)
    _write_json(args, spec, problem, rows)
    if bad:
        print(f"smtheory: warning: not converged at width(s) {', '.join(bad)}", file=sys.stderr)
        return 3
    return 0


def _print_sample(wtxt, res, problem):
    rhat = f"{res.rhat_max:.4f}" if np.isfinite(res.rhat_max) else "undefined"
    ess = f"{res.ess_min:.1f}" if np.isfinite(res.ess_min) else "undefined"
    print(f"width {wtxt}: accuracy={_fmt(res.test_accuracy, '.4f')}  gen.err={res.generalization_error:.4f}  "
          f"rhat_max={rhat}  ess_min={ess}  steps/s={res.steps_per_second:.1f}")
    print("  U1 sampled (± MCSE):")
    for i in range(res.U1_sampled.shape[0]):
        print("   " + "  ".join(f"{res.U1_sampled[i, j]:8.4f}±{res.U1_mcse[i, j]:.4f}"
                                 for j in range(res.U1_sampled.shape[1])))


def _check_output_file(path, what):
    from .io import check_output_file

    if path:
        check_output_file(path, what)


def _write_json(args, spec, problem, rows):
    """Per-width rows with the configuration, versions and commit, written atomically (``--json``).

    The file is strict JSON: NaN (an undefined R-hat, a regression accuracy) is written as ``null``.
    """
    if not args.json:
        return
    from .io import git_commit, versions, write_json_atomic

    config = {k: v for k, v in vars(args).items() if k != "func"}
    config["width"] = [w if isinstance(w, int) else list(w) for w in args.width]
    write_json_atomic(args.json, dict(config=config, spec=spec.to_dict(), path_names=problem.path_names,
                                      task=problem.task, versions=versions(), commit=git_commit(), results=rows))
    print(f"wrote {args.json}")


def _check_model_options(args):
    from .checks import seed
    from .model import READOUTS

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


def _model_spec(args, heads):
    from .model import ModelSpec

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


def _gp_baselines(args, problem, spec):
    from .paths import subnetwork_paths
    from .tasks import markov

    out = {"all": list(range(problem.n_paths))}
    if args.task == "markov":
        for name, kept in markov.SUBNETWORKS[args.paths].items():
            out[name] = subnetwork_paths(spec.heads, kept)
    return out


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM, so that a run stops as cleanly as after Ctrl-C."""


def _on_sigterm(signum, frame):
    raise Terminated()


#: What to tell the user after an interrupt, per command (the default: nothing to continue).
_RESUME_HINTS = {
    "sample": "rerun with --resume to continue from --checkpoint",
    "train": "rerun with --resume to continue from OUT/model.npz",
    "sweep": "rerun with --resume to skip the finished tasks",
    "demo": "rerun the same command to continue (finished stages and checkpoints are reused)",
    "compare": "rerun the same command to continue (finished stages and checkpoints are reused)",
}


def _interrupted(args, terminated):
    hint = _RESUME_HINTS.get(args.command)
    if args.command == "sample" and not getattr(args, "checkpoint", None):
        hint = "nothing was saved (no --checkpoint)"
    word = "terminated" if terminated else "interrupted"
    return f"{word}; {hint}" if hint else word


def _os_error_message(exc):
    """One line for an OSError, with the path(s) it names and "disk full" spelled out."""
    import errno

    what = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or str(exc))
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    where = " -> ".join(repr(os.fsdecode(p)) for p in paths)
    return f"{what}: {where}" if where else f"{type(exc).__name__}: {what}"


def main(argv=None):
    """Run one ``smtheory`` command and return its exit status.

    Exit status: 0 success; 2 bad input (:class:`~smtheory.checks.InputError`), a file-system error
    (any ``OSError``, with its path) or not enough memory, each as one ``smtheory: error: …`` line on
    standard error; 3 the command ran but a result did not converge (it is flagged, not reported as a
    result); 130 interrupted (Ctrl-C) and 143 terminated (SIGTERM), with a hint how to continue.
    Any other exception is a bug and propagates with its traceback.

    Parameters
    ----------
    argv : list of str, optional
        The arguments; ``None`` (the program entry point) reads ``sys.argv``, turns on the persistent
        compilation cache (:mod:`smtheory.compile_cache`) and, after an interrupt, leaves with
        ``os._exit`` (no interpreter teardown, which can crash while XLA compiles).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None and args.command != "equations":
        _enable_compilation_cache()
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (e.g. called from a worker thread): leave SIGTERM alone
        pass
    try:
        return args.func(args)
    except InputError as exc:
        _error(str(exc))
        return 2
    except MemoryError:
        _error("out of memory; reduce P (--n-train), the number of paths D or the input width N0")
        return 2
    except OSError as exc:
        _error(_os_error_message(exc))
        return 2
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        _error(_interrupted(args, terminated))
        code = 143 if terminated else 130
        if argv is None:
            # Run as the program: leave at once.  An interrupt can land while XLA compiles on a background
            # thread, and the interpreter's teardown then crashes (SIGSEGV); every file is already complete
            # (checkpoints and results are written atomically) and the folder lock dies with the process.
            sys.stdout.flush()
            os._exit(code)
        return code
    except RuntimeError as exc:
        if "RESOURCE_EXHAUSTED" in str(exc):  # XLA could not allocate (CPU or accelerator memory)
            _error("out of memory in XLA (RESOURCE_EXHAUSTED); reduce P (--n-train), --chains or the width")
            return 2
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _enable_compilation_cache():
    """The persistent JAX compilation cache (:mod:`smtheory.compile_cache`) for a command run as the program."""
    try:
        from .compile_cache import enable_compilation_cache
    except ImportError:  # pragma: no cover - an install without it
        return
    enable_compilation_cache()


def _error(message):
    sys.stdout.flush()
    print(f"smtheory: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
