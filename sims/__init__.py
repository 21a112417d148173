"""Bayesian samplers of the tractable transformer's posterior (JAX; docs/theory.md §1, §4, §8).

Collapsed samplers (cost independent of N for ``overlap``; docs/theory.md §8):

- :mod:`sims.overlap` — the exact order-parameter hierarchy (Bartlett coordinates) and its
  marginal likelihood; sampled by NUTS (:mod:`sims.nuts`, BlackJAX window adaptation);
- :mod:`sims.collapsed` — the upper weights with V⁰ integrated out; sampled by preconditioned
  Langevin (:mod:`sims.collapsed_langevin`, Metropolis-adjusted by default);
- :mod:`sims.rao_blackwell` — the predictor given U_1 (exact conditional moments);
- :mod:`sims.collapsed_run` — their driver.

Weight-space samplers:

- :mod:`sims.posterior` — the posterior in path form (log density, gradient, prior draws);
- :mod:`sims.gibbs` — exact blocked Gibbs (each layer's conditional is Gaussian);
- :mod:`sims.langevin`, :mod:`sims.mala` — Langevin / MALA on all weights (``full-langevin``,
  ``full-mala``);
- :mod:`sims.observables`, :mod:`sims.diagnostics`, :mod:`sims.checkpoint` — online moments,
  R-hat / ESS / MCSE, atomic fingerprinted checkpoints;
- :mod:`sims.run` — :func:`sample`, the one entry point, with automatic extension until R-hat
  ≤ 1.01 (or a flagged result).
"""
from .config import COLLAPSED, SAMPLERS, SampleConfig, SampleResult, SamplingError
from .posterior import Posterior, make_posterior
from .run import sample

__all__ = ["Posterior", "make_posterior", "SampleConfig", "SampleResult", "SamplingError", "sample", "SAMPLERS",
           "COLLAPSED"]
