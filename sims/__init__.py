"""Bayesian samplers and gradient-descent training of the tractable transformer (JAX).

Not yet implemented: this package is the home of issue 3 (Langevin, MALA, blocked Gibbs).
"""
