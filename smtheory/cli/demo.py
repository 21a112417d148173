"""``smtheory demo``: the package's main job, theory versus sampling on the hidden-Markov task.

Both networks of docs/theory.md §5 on the embedded defaults (:data:`smtheory.validation.markov.DEMO`): theory across
all widths, samples at every width, a reduced finite-size study, figures and a Markdown report. Rerun the
same command after an interruption: finished stages are reused, unfinished sampling continues from its
checkpoint.
"""
from __future__ import annotations

from .markov_run import add_common, run_markov_command


def register(subparsers):
    """Add the ``demo`` sub-command."""
    d = subparsers.add_parser(
        "demo", help="the main job: theory vs sampling on the hidden-Markov task, with figures and a report",
        description="Run the paper's first experiment (docs/theory.md §5) on embedded defaults: certified theory "
                    "across N = 10..1000, GP baselines, the exact finite-N posterior sampled at every width of "
                    "both networks (overlap sampler, docs/theory.md §8) with exact Gibbs on all weights at N = 10 "
                    "as the weight-space cross-check, each extended until R-hat <= 1.01, a reduced finite-size "
                    "scaling study, figures (PNG + PDF) and a Markdown report. About 8 minutes on 2 CPU cores. "
                    "Rerun to resume.")
    add_common(d, "smtheory-demo")
    d.set_defaults(func=cmd_demo)


def cmd_demo(args):
    """Run the demo presets; returns 0, or 3 when a result is flagged."""
    from smtheory.validation.finite_size import DEMO_FS
    from smtheory.validation.markov import DEMO

    args.finite_size = DEMO_FS
    return run_markov_command(DEMO, args, "smtheory demo: theory versus sampling on the hidden-Markov task")
