"""Bayesian samplers of the tractable transformer's posterior (JAX; docs/theory.md §1, §4, §8).

Collapsed samplers (cost independent of N for ``overlap``; docs/theory.md §8):

- :mod:`smtheory.sims.overlap` — the exact order-parameter hierarchy (Bartlett coordinates) and its
  marginal likelihood; sampled by NUTS (:mod:`smtheory.sims.nuts`, BlackJAX window adaptation);
- :mod:`smtheory.sims.collapsed` — the upper weights with V⁰ integrated out; sampled by preconditioned
  Langevin (:mod:`smtheory.sims.collapsed_langevin`, Metropolis-adjusted by default);
- :mod:`smtheory.sims.rao_blackwell` — the predictor given U_1 (exact conditional moments);
- :mod:`smtheory.sims.collapsed_run` — their driver.

Weight-space samplers:

- :mod:`smtheory.sims.posterior` — the posterior in path form (log density, gradient, prior draws);
- :mod:`smtheory.sims.gibbs` — exact blocked Gibbs (each layer's conditional is Gaussian);
- :mod:`smtheory.sims.langevin`, :mod:`smtheory.sims.mala` — Langevin / MALA on all weights (``full-langevin``,
  ``full-mala``);
- :mod:`smtheory.sims.observables`, :mod:`smtheory.sims.diagnostics`, :mod:`smtheory.sims.checkpoint` — online moments,
  R-hat / ESS / MCSE, atomic fingerprinted checkpoints;
- :mod:`smtheory.sims.run` — :func:`sample`, the one entry point, with automatic extension until R-hat
  ≤ 1.01 (or a flagged result).
"""
from .config import COLLAPSED, SAMPLERS, SampleConfig, SampleResult, SamplingError
from .posterior import Posterior, make_posterior
from .run import sample

__all__ = ["Posterior", "make_posterior", "SampleConfig", "SampleResult", "SamplingError", "sample", "SAMPLERS",
           "COLLAPSED"]
