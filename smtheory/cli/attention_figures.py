"""``smtheory attention-figures`` (docs/attention.md; docs/theory.md §1–4).

Example
-------
``smtheory attention-figures --out runs/attention``  writes the hypernetwork-metric figure of the Markov task
(learned U_1 at N = 10 versus the GP metric) and the Hessian block heat map of a small random model.
"""
from __future__ import annotations

import os


def register(subparsers):
    """Add the ``attention-figures`` sub-command."""
    p = subparsers.add_parser(
        "attention-figures", help="hypernetwork metric figure (Markov task) and loss-Hessian block heat map",
        description="Figures of docs/attention.md: the learned code metric U_1 versus the GP metric on the Markov "
                    "task (docs/theory.md §5) and the Gauss-Newton / functional / full loss-Hessian blocks per "
                    "(layer, head) of a small random model (docs/theory.md §4).")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--width", type=int, default=10, help="Markov network width N (default 10)")
    p.add_argument("--n-train", type=int, default=100, help="Markov training sequences (default 100)")
    p.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    p.set_defaults(func=cmd_attention_figures)


def cmd_attention_figures(args):
    """Write the metric figure and the Hessian block figure into ``--out``; returns 0."""
    import numpy as np

    import smtheory as smt
    from smtheory.checks import InputError, positive_int, seed, width
    from smtheory.io import check_output_dir
    from smtheory.sims import hessian as hs
    from smtheory.sims.posterior import make_posterior
    from smtheory.validation.hypernetwork_figures import markov_metric_figure

    check_output_dir(args.out, "--out")
    for opt, check, value in (("--width", width, args.width), ("--n-train", positive_int, args.n_train),
                              ("--seed", seed, args.seed)):
        try:
            check(opt, value)
        except InputError as exc:
            raise InputError(str(exc)) from None
    if args.n_train % 2:
        raise InputError(f"--n-train must be even (balanced classes), got {args.n_train}")
    os.makedirs(args.out, exist_ok=True)
    res = markov_metric_figure(args.out, width=args.width, n_train=args.n_train, seed=args.seed)
    print("metric figure:", ", ".join(res["paths"]), f"(saddle point converged: {res['converged']})")
    rng = np.random.default_rng(args.seed)
    N0, T, P = 4, 5, 8
    x = rng.standard_normal((P, N0, T))
    y = np.sign(rng.standard_normal(P))
    layers = [smt.AttentionLayer(W=0.5 * rng.standard_normal((2, N0, N0)), name=f"layer {i + 1}") for i in range(2)]
    spec = smt.ModelSpec(heads=(2, 2), widths=3, temperature=0.1)
    post = make_posterior(smt.KernelProblem.from_inputs(x, y, layers), spec)
    parts = hs.dense_hessian(post, smt.init_weights(spec, N0, seed=args.seed))
    paths = hs.plot_hessian_blocks(parts, os.path.join(args.out, "hessian_blocks"),
                                   title="loss Hessian blocks, random 2x2-head model ($N = 3$, $P = 8$, $T = 0.1$)")
    print("Hessian figure:", ", ".join(paths))
    return 0
