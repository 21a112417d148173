"""Saddle-point solvers for the order-parameter action (docs/theory.md §3)."""
from .numeric import SaddlePointResult, continuation, hessian_certificate, solve

__all__ = ["SaddlePointResult", "solve", "continuation", "hessian_certificate"]
