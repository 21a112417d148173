"""Symbolic (SymPy) action, saddle-point equations and closed forms of docs/theory.md §3.

Modules: :mod:`.action` (the action and the equations), :mod:`.closed_forms` (``U_a``, GP, deep linear,
commuting kernels), :mod:`.lambdify` (NumPy / JAX / mpmath functions with explicit module maps),
:mod:`.latex` (export). The ``smtheory equations`` command is :mod:`smtheory.cli.equations`.
"""
from .action import (MAX_EXPLICIT_TRAIN, MAX_GENERIC_TRAIN, MAX_LAYERS, MAX_MATRIX_SIZE, SIMPLIFY_MAX_OPS,
                     SaddlePointEquations,
                     SymbolicAction, SymbolicArchitecture, architecture, build_action, check_theory_equations,
                     from_spec, kernels_from_problem, saddle_point_equations, theory_matrix_gradient)
from .closed_forms import (CommutingKernelSolution, DeepLinearSolution, GPSolution, ReadoutClosedForm,
                           common_eigenbasis, commuting_kernel_solution, deep_linear_scalar_equation,
                           deep_linear_solution, gp_solution, readout_closed_form)
from .lambdify import NumericSaddlePoint, lambdify, module_map, numeric_saddle_point
from .latex import action_latex, action_matrix_latex, document, equations_latex, equations_text

__all__ = [
    "MAX_EXPLICIT_TRAIN", "MAX_GENERIC_TRAIN", "MAX_LAYERS", "MAX_MATRIX_SIZE", "SIMPLIFY_MAX_OPS", "SaddlePointEquations",
    "SymbolicAction", "SymbolicArchitecture", "architecture", "build_action", "check_theory_equations", "from_spec",
    "kernels_from_problem", "saddle_point_equations", "theory_matrix_gradient", "CommutingKernelSolution",
    "DeepLinearSolution", "GPSolution", "ReadoutClosedForm", "common_eigenbasis", "commuting_kernel_solution",
    "deep_linear_scalar_equation", "deep_linear_solution", "gp_solution", "readout_closed_form",
    "NumericSaddlePoint", "lambdify", "module_map", "numeric_saddle_point", "action_latex", "action_matrix_latex",
    "document", "equations_latex", "equations_text",
]
