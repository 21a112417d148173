"""The command-line interface, ``smtheory COMMAND …`` (the top layer: nothing below imports it).

Commands, one module each (``register(subparsers)`` adds the parser, ``cmd_*`` runs it):

- ``solve`` (:mod:`.solve`) — the saddle-point (kernel) equations across widths (docs/theory.md §3, §5)
- ``sample`` (:mod:`.sample`) — the Bayesian posterior at each width, with R-hat / ESS (docs/theory.md §1, §4)
- ``demo`` (:mod:`.demo`), ``compare markov`` (:mod:`.compare`) — theory versus sampling on the hidden-Markov
  task, at demo or paper scale (shared run in :mod:`.markov_run`; docs/validation.md)
- ``train`` (:mod:`.train`), ``prune`` (:mod:`.prune`) — gradient-descent training and theory-guided head
  pruning (docs/theory.md §6–7; docs/pruning.md)
- ``sweep`` (:mod:`.sweep`) — grids of theory solves and sampling runs, locally or on Dask (docs/sweeps.md)
- ``equations`` (:mod:`.equations`) — the symbolic action and saddle-point equations (docs/symbolic.md)
- ``attention-figures`` (:mod:`.attention_figures`) — the hypernetwork-metric and Hessian-block figures
  (docs/attention.md)

The parser is :mod:`.parser`, the options several commands share :mod:`.options`, and :func:`main`
(:mod:`.app`) runs a command. ``python -m smtheory.cli …`` is the same as ``smtheory …``.

Exit status: 0 success; 2 bad input, an unusable file or path, or not enough memory (one
``smtheory: error: …`` line on standard error); 3 the command ran but a result did not converge (flagged,
not reported as a result); 130 interrupted (Ctrl-C), 143 terminated (SIGTERM), with a hint how to continue.

Examples
--------
``smtheory solve --task markov --paths 4 --width 10 100 1000 --json out.json``
``smtheory solve --data mydata.npz --width 50 --temperature 0.1 --variances 1 1 1 1``
"""
from .app import main
from .parser import build_parser

__all__ = ["main", "build_parser"]
