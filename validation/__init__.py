"""Theory-versus-simulation experiments, figures and reports.

Not yet implemented: this package is the home of issue 4 (the hidden-Markov comparison).
"""
