"""Theory-versus-simulation experiments, figures and reports (on top of ``sims``, ``solvers`` and ``smtheory``).

- :mod:`smtheory.validation.engine` — the one experiment engine every experiment below declares its tasks on:
  a content-hashed, atomic, resumable task store with inline, process-pool and Dask executors.
- :mod:`smtheory.validation.markov`, :mod:`smtheory.validation.markov_figures`, :mod:`smtheory.validation.markov_report` — the
  hidden-Markov experiment of docs/theory.md §5: theory across widths versus Gibbs samples (``smtheory demo``,
  ``smtheory compare markov``); see docs/validation.md.
- :mod:`smtheory.validation.digits` (with ``digits_models``, ``digits_figures``, ``digits_report``) — the
  paper's second experiment, theory versus sampling across widths on the one-shot digits task with the trained
  Q/K fixed (docs/theory.md §6; ``smtheory compare digits``).
- :mod:`smtheory.validation.pruning` (with ``pruning_fit``, ``pruning_rankings``, ``pruning_eval``,
  ``pruning_outputs``) — head scores and pruning curves of a gradient-descent-trained model (docs/theory.md
  §6–7; ``smtheory train`` / ``smtheory prune --model``); :mod:`smtheory.validation.pruning_seeds`,
  :mod:`smtheory.validation.pruning_stats` and ``pruning_stats_report`` — the same over several trained models
  and architectures with intervals (``smtheory prune --seeds K``); see docs/pruning.md.
- :mod:`smtheory.validation.sweep`, :mod:`smtheory.validation.store` — grids of theory and sampling runs, locally or on Dask,
  stored as labelled netCDF (``smtheory sweep``); see docs/sweeps.md.
- :mod:`smtheory.validation.hypernetwork_figures` — the learned path metric versus the GP one (docs/attention.md).

The commands that drive these experiments live in the command-line layer above, :mod:`smtheory.cli`.
"""
