"""Command-line interface: ``smtheory solve`` (THEORY.md §3, §5).

Examples
--------
``smtheory solve --task markov --paths 4 --width 10 100 1000 --json out.json``
``smtheory solve --data mydata.npz --width 50 --temperature 0.1 --variances 1 1 1 1``
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time

import numpy as np

from ._validate import InputError


def _width_arg(text):
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"width must be an integer or comma-separated integers, got {text!r}") from None
    if any(p <= 0 for p in parts):
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return parts[0] if len(parts) == 1 else tuple(parts)


def _data_options(s, default_widths=(10, 30, 50, 100, 300, 500, 1000), seed_flag="--seed"):
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", choices=["markov"], help="built-in task (THEORY.md §5)")
    src.add_argument("--data", metavar="FILE.npz", help="your own data: x_train, y_train, x_test, y_test and "
                     "w_layer1.. ([H, N0, N0]) or q_layer1/k_layer1.. ([H, G, N0])")
    s.add_argument("--paths", type=int, choices=[4, 2], default=4, help="Markov network: 4 paths or the noisier 2 paths")
    s.add_argument("--n-train", type=int, default=100, help="Markov task: training sequences (default 100)")
    s.add_argument("--n-test", type=int, default=1000, help="Markov task: test sequences (default 1000)")
    s.add_argument(seed_flag, dest="seed", type=int, default=0, help="Markov task: data seed (default 0)")
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
    "validation.cli_markov",
    "validation.cli_pruning",
    "validation.cli_sweep",
    "solvers.symbolic.cli",
    "validation.cli_attention",
)


def build_parser():
    parser = argparse.ArgumentParser(prog="smtheory", description="Statistical-mechanics theory of a tractable transformer.")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("solve", help="solve the saddle-point (kernel) equations across widths",
                       description="Solve the order-parameter saddle point (THEORY.md §3) for each width and report "
                                   "U_1, test accuracy and generalisation error.")
    _data_options(s)
    s.add_argument("--tol", type=float, default=1e-9, help="relative residual required of the saddle point")
    s.add_argument("--json", metavar="PATH", help="write per-width results to this JSON file")

    m = sub.add_parser("sample", help="sample the weight posterior (Langevin, MALA or exact Gibbs)",
                       description="Sample the Bayesian weight posterior (THEORY.md §1, §4) at each width and report "
                                   "the sampled order parameter, predictor statistics and R-hat / ESS diagnostics.")
    _data_options(m, default_widths=(100,), seed_flag="--data-seed")
    m.add_argument("--sampler", choices=["langevin", "mala", "gibbs"], default="gibbs")
    m.add_argument("--chains", type=int, default=4, help="independent chains (default 4; >= 4 for diagnostics)")
    m.add_argument("--steps", type=int, default=1000, help="steps after burn-in (default 1000)")
    m.add_argument("--burnin", type=int, default=200, help="burn-in steps (default 200)")
    m.add_argument("--thin", type=int, default=1, help="record every k-th step (default 1)")
    m.add_argument("--step-size", type=float, default=1e-4, help="Langevin / MALA step size (default 1e-4)")
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
        return markov.markov_problem(args.paths, args.n_train, args.n_test, seed=args.seed), (2, 2) if args.paths == 4 else (2, 1)
    from .data import load_npz

    return load_npz(args.data, readout=args.readout)


def cmd_solve(args):
    import solvers

    from .predictor import predictor_statistics

    _check_model_options(args)
    t0 = time.perf_counter()
    problem, heads = _problem(args)
    spec = _model_spec(args, heads)
    print(f"problem: P={problem.n_train}, Q={problem.xi_test.shape[0]}, D={problem.n_paths} paths, "
          f"N0={problem.input_dim}, heads={heads}  (features built in {time.perf_counter() - t0:.2f}s)")
    for name, paths in _gp_baselines(args, problem, spec).items():
        st = predictor_statistics(problem, spec, gp=True, subnetwork=paths)
        print(f"GP({name}): accuracy={st.accuracy:.4f}  generalisation error={st.generalization_error:.4f}")
    results = solvers.continuation(problem, spec, widths=args.width, tol=args.tol)
    header = f"{'width':>14} {'diag U_1':<40} {'accuracy':>9} {'gen.err':>9} {'iters':>6} {'time[s]':>8} {'converged':>9}"
    print(header)
    print("-" * len(header))
    rows = []
    n_bad = 0
    for w, res in zip(args.width, results):
        st = predictor_statistics(problem, res.spec, res.U1)
        diag = np.array2string(np.diag(res.U1), precision=3, max_line_width=1000, separator=" ")
        wtxt = str(w) if isinstance(w, int) else ",".join(map(str, w))
        acc = f"{st.accuracy:9.4f}" if res.converged else f"{'(' + format(st.accuracy, '.4f') + ')':>9}"
        print(f"{wtxt:>14} {diag:<40} {acc} {st.generalization_error:9.4f} {res.iterations:6d} {res.time:8.3f} "
              f"{str(res.converged):>9}")
        if not res.converged:
            n_bad += 1
            print(f"{'':>14} WARNING: {res.message}")
        rows.append(dict(width=w if isinstance(w, int) else list(w), U1=np.asarray(res.U1).tolist(),
                         Ua=res.U_a, action=res.action, test_accuracy=st.accuracy,
                         gaussian_accuracy=st.gaussian_accuracy, generalization_error=st.generalization_error,
                         converged=res.converged, grad_norm=res.grad_norm, hessian_min_eig=res.hessian_min_eig,
                         max_residual=res.max_residual, iterations=res.iterations, time=res.time,
                         message=res.message))
    if n_bad:
        print(f"WARNING: {n_bad} width(s) did not converge; their numbers (in parentheses) are not results.")
    _write_json(args, spec, problem, rows)
    return 0 if n_bad == 0 else 3


def cmd_sample(args):
    from sims.run import SampleConfig, SamplingError, sample

    _check_model_options(args)
    if args.resume and not args.checkpoint:
        raise InputError("--resume needs --checkpoint PATH")
    config = SampleConfig(sampler=args.sampler, chains=args.chains, steps=args.steps, burnin=args.burnin,
                          thin=args.thin, step_size=args.step_size, seed=args.sample_seed,
                          dtype="float32" if args.float32 else "float64")
    problem, heads = _problem(args)
    spec = _model_spec(args, heads)
    rows = []
    for w in args.width:
        s = spec.replace(widths=w)
        path = args.checkpoint
        if path and len(args.width) > 1:
            path = f"{path}.N{'-'.join(map(str, s.widths))}"
        try:
            res = sample(problem, s, config, checkpoint=path, resume=args.resume)
        except SamplingError as exc:
            raise InputError(f"--step-size: {exc}") from None
        wtxt = str(w) if isinstance(w, int) else ",".join(map(str, w))
        print(f"width {wtxt}: accuracy={res.test_accuracy:.4f}  gen.err={res.generalization_error:.4f}  "
              f"rhat_max={res.rhat_max:.4f}  ess_min={res.ess_min:.1f}  steps/s={res.steps_per_second:.1f}")
        print("  U1 sampled (± MCSE):")
        for i in range(res.U1_sampled.shape[0]):
            print("   " + "  ".join(f"{res.U1_sampled[i, j]:8.4f}±{res.U1_mcse[i, j]:.4f}"
                                     for j in range(res.U1_sampled.shape[1])))
        if not res.converged:
            print(f"  WARNING: R-hat {res.rhat_max:.3f} > 1.01: not converged; run longer (--steps) before "
                  "using these numbers")
        row = res.to_dict()
        row["width"] = w if isinstance(w, int) else list(w)
        rows.append(row)
    _write_json(args, spec, problem, rows)
    return 0


def _write_json(args, spec, problem, rows):
    """Per-width rows with the configuration, versions and commit, written atomically (``--json``)."""
    if not args.json:
        return
    from .io import git_commit, versions, write_json_atomic

    config = {k: v for k, v in vars(args).items() if k != "func"}
    config["width"] = [w if isinstance(w, int) else list(w) for w in args.width]
    write_json_atomic(args.json, dict(config=config, spec=spec.to_dict(), path_names=problem.path_names,
                                      versions=versions(), commit=git_commit(), results=rows))
    print(f"wrote {args.json}")


def _check_model_options(args):
    from .model import READOUTS

    if args.readout not in READOUTS:
        raise InputError(f"--readout must be one of {', '.join(READOUTS)}, got {args.readout!r}")
    if not np.isfinite(args.temperature) or args.temperature <= 0:
        raise InputError(f"--temperature must be a finite positive number, got {args.temperature}")
    if args.variances is not None and not all(np.isfinite(v) and v > 0 for v in args.variances):
        raise InputError(f"--variances must be positive numbers, got {args.variances}")


def _model_spec(args, heads):
    from .model import ModelSpec

    L = len(heads)
    if args.variances is not None and len(args.variances) != L + 2:
        raise InputError(f"--variances needs L + 2 = {L + 2} numbers (s0 s1 .. sL sa) for {L} layers, "
                         f"got {len(args.variances)}")
    spec = ModelSpec(heads=heads, widths=args.width[0], variances=args.variances, temperature=args.temperature,
                     readout=args.readout)
    for w in args.width:
        spec.replace(widths=w)  # validate every width before any work
    return spec


def _gp_baselines(args, problem, spec):
    from .paths import subnetwork_paths
    from .tasks import markov

    out = {"all": list(range(problem.n_paths))}
    if args.task == "markov":
        for name, kept in markov.SUBNETWORKS[args.paths].items():
            out[name] = subnetwork_paths(spec.heads, kept)
    return out


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"smtheory: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        print("smtheory: error: out of memory; reduce P, the number of paths D or the input width N0", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
