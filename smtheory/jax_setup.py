"""JAX settings the package makes when it is imported (docs/theory.md conventions; README "Precision").

* ``jax_enable_x64``: all theory runs in float64 (the samplers offer float32 explicitly).
* ``jax_cpu_enable_async_dispatch`` off, as a precaution: with asynchronous CPU dispatch XLA's CPU runtime
  can deadlock (jax-ml/jax#25861).  The hang actually traced here (the demo's finite-size point N = 50,
  P = 50) had another cause, batched LAPACK calls under ``vmap`` (fixed in :mod:`smtheory.sims.chains`); it
  also occurred with async dispatch off.  With it off, dispatch returns when a computation is done; the
  package's loops run whole chunks per call, so little is lost.
"""
import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_cpu_enable_async_dispatch", False)
