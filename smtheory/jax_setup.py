"""JAX settings the package makes when it is imported (docs/theory.md conventions; README "Precision").

* ``jax_enable_x64``: all theory runs in float64 (the samplers offer float32 explicitly).
* ``jax_cpu_enable_async_dispatch`` off: with asynchronous CPU dispatch, XLA's CPU runtime can deadlock —
  every thread parked, the caller waiting forever for a result (jax-ml/jax#25861).  Reproduced here: the
  finite-size point N = 50, P = 50 of ``smtheory demo`` (overlap sampler, NUTS) hung in every run with it on
  and finishes in 40 s with it off.  Dispatch then returns when a computation is done; the package's loops
  run whole chunks per call, so nothing measurable is lost.
"""
import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_cpu_enable_async_dispatch", False)
