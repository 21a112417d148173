"""Theory-versus-simulation experiments, figures and reports (on top of ``sims``, ``solvers`` and ``smtheory``).

- :mod:`smtheory.validation.markov`, :mod:`smtheory.validation.markov_figures`, :mod:`smtheory.validation.markov_report` — the
  hidden-Markov experiment of THEORY.md §5: theory across widths versus Gibbs samples (``smtheory demo``,
  ``smtheory compare markov``); see docs/validation.md.
- :mod:`smtheory.validation.pruning` — head scores and pruning curves of a gradient-descent-trained model
  (THEORY §6–7; ``smtheory train`` / ``smtheory prune``); see docs/pruning.md.
- :mod:`smtheory.validation.sweep`, :mod:`smtheory.validation.store` — grids of theory and sampling runs, locally or on Dask,
  stored as labelled netCDF (``smtheory sweep``); see docs/sweeps.md.
- :mod:`smtheory.validation.hypernetwork_figures` — the learned path metric versus the GP one (docs/attention.md).

The commands that drive these experiments live in the command-line layer above, :mod:`smtheory.cli`.
"""
