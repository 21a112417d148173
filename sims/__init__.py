"""Bayesian samplers of the tractable transformer's weight posterior (JAX; THEORY.md §1, §4).

- :mod:`sims.posterior` — the posterior in path form (log density, gradient, prior draws);
- :mod:`sims.langevin` — unadjusted Langevin dynamics (Euler–Maruyama);
- :mod:`sims.mala` — Metropolis-adjusted Langevin (BlackJAX);
- :mod:`sims.gibbs` — exact blocked Gibbs (each layer's conditional is Gaussian);
- :mod:`sims.observables`, :mod:`sims.diagnostics`, :mod:`sims.checkpoint` — online moments,
  R-hat / ESS / MCSE, atomic checkpoints;
- :mod:`sims.run` — many chains with burn-in, thinning, diagnostics and resumable runs.
"""
from .posterior import Posterior, make_posterior
from .run import SampleConfig, SampleResult, SamplingError, sample

__all__ = ["Posterior", "make_posterior", "SampleConfig", "SampleResult", "SamplingError", "sample"]
