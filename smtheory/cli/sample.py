"""``smtheory sample``: sample the Bayesian posterior at each width (docs/theory.md §1, §4).

Example
-------
``smtheory sample --task markov --width 10 100 --chains 4 --checkpoint run.npz --json run.json``
"""
from __future__ import annotations

import os
import sys

import numpy as np

from smtheory.checks import InputError

from .options import (check_model_options, check_output_file, data_options, flag_error, fmt, model_spec,
                      problem_from_args, width_text, write_json)

#: SampleConfig fields whose errors name the option (a message starts with the field, then " " or ":").
_CONFIG_FLAGS = {k: f"--{k.replace('_', '-')}" for k in ("max_steps", "step_size", "sampler", "chains", "steps",
                                                         "burnin", "thin", "mass_matrix")}
_CONFIG_FLAGS["seed"] = "--seed (sampler seed)"


def register(subparsers):
    """Add the ``sample`` sub-command."""
    m = subparsers.add_parser(
        "sample", help="sample the posterior (collapsed NUTS / Langevin, exact Gibbs, …)",
        description="Sample the Bayesian posterior (docs/theory.md §1, §4) at each width and report the "
                    "sampled order parameter, predictor statistics and R-hat / ESS diagnostics. Runs "
                    "are extended automatically until R-hat <= 1.01 (up to --max-steps); a width "
                    "that still misses it is flagged and the command exits with status 3.")
    data_options(m, default_widths=(100,), seed_flag="--data-seed")
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
    m.add_argument("--mass-matrix", default=None, metavar="KIND",
                   help="overlap sampler: inverse mass matrix adapted in the warm-up, auto (default: dense when the "
                        "warm-up estimates it, e.g. the default 500 steps for up to 20 coordinates), diagonal or dense")
    m.add_argument("--step-size", type=float, default=1e-4, help="full-langevin / full-mala step size (default 1e-4)")
    m.add_argument("--seed", dest="sample_seed", type=int, default=0, help="sampler seed (default 0)")
    m.add_argument("--float32", action="store_true", help="sample in float32 (default float64)")
    m.add_argument("--checkpoint", metavar="PATH", help="checkpoint file (written atomically as sampling goes)")
    m.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    m.add_argument("--json", metavar="PATH", help="write per-width results to this JSON file")
    m.set_defaults(func=cmd_sample)


def _sample_config(args):
    """The :class:`smtheory.sims.SampleConfig` of the ``sample`` options (validated there; errors name the option)."""
    import dataclasses

    from smtheory.sims.run import SampleConfig

    kw = dict(chains=args.chains, steps=args.steps, thin=args.thin, step_size=args.step_size,
              seed=args.sample_seed, dtype="float32" if args.float32 else "float64")
    for opt in ("sampler", "burnin", "max_steps", "mass_matrix"):
        if getattr(args, opt) is not None:
            kw[opt] = getattr(args, opt)
    if "max_steps" in kw and "max_steps" not in {f.name for f in dataclasses.fields(SampleConfig)}:
        raise InputError("--max-steps is not supported by this version of smtheory.sims.SampleConfig")
    try:
        return SampleConfig(**kw)
    except InputError as exc:
        raise flag_error(exc, _CONFIG_FLAGS, follow=(" ", ":")) from None


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
        check_output_file(p, "--checkpoint")
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
    from smtheory.io import check_npz
    from smtheory.sims.checkpoint import read_metadata

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
    """Sample at every ``--width`` and print the results; returns 0, or 3 when a width did not converge."""
    from smtheory.sims.run import SamplingError, sample

    check_model_options(args)
    check_output_file(args.json, "--json")
    config = _sample_config(args)
    heads = (2, 2) if args.paths == 4 else (2, 1)
    spec = model_spec(args, heads) if args.task == "markov" else None
    problem, heads = problem_from_args(args)
    spec = model_spec(args, heads) if spec is None else spec
    keys = {i: spec.replace(widths=w).widths for i, w in enumerate(args.width)}
    ckpts = _checkpoint_paths(args, keys)
    rows, bad = [], []
    for i, w in enumerate(args.width):
        path = ckpts[i]
        try:
            resume = bool(args.resume and path and os.path.exists(path))
            res = sample(problem, spec.replace(widths=w), config, checkpoint=path, resume=resume)
        except SamplingError as exc:
            raise InputError(f"--step-size: {exc}") from None
        wtxt = width_text(w)
        _print_sample(wtxt, res, problem)
        if not res.converged:
            bad.append(wtxt)
            _warn_unconverged(res, config)
        row = res.to_record(traces=False)
        row["width"] = w if isinstance(w, int) else list(w)
        row["task"] = problem.task
        rows.append(row)
    write_json(args, spec, problem, rows)
    if bad:
        print(f"smtheory: warning: not converged at width(s) {', '.join(bad)}", file=sys.stderr)
        return 3
    return 0


def _warn_unconverged(res, config):
    if config.chains < 2:
        print("  WARNING: R-hat is undefined with 1 chain: use --chains >= 2 (4 recommended); these numbers "
              "are not certified")
    else:
        print(f"  WARNING: R-hat {res.rhat_max:.3f} > {getattr(config, 'rhat_target', 1.01)} after "
              f"{res.config.steps} steps: not converged; raise --max-steps (or --steps) and rerun with "
              "--resume before using these numbers")


def _print_sample(wtxt, res, problem):
    rhat = f"{res.rhat_max:.4f}" if np.isfinite(res.rhat_max) else "undefined"
    ess = f"{res.ess_min:.1f}" if np.isfinite(res.ess_min) else "undefined"
    print(f"width {wtxt}: accuracy={fmt(res.test_accuracy, '.4f')}  gen.err={res.generalization_error:.4f}  "
          f"rhat_max={rhat}  ess_min={ess}  steps/s={res.steps_per_second:.1f}")
    print("  U1 sampled (± MCSE):")
    for i in range(res.U1_sampled.shape[0]):
        print("   " + "  ".join(f"{res.U1_sampled[i, j]:8.4f}±{res.U1_mcse[i, j]:.4f}"
                                 for j in range(res.U1_sampled.shape[1])))
