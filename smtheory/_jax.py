"""JAX set-up: all theory runs in float64 (THEORY.md conventions)."""
import jax

jax.config.update("jax_enable_x64", True)
