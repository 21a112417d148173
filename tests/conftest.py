import os

import numpy as np
import pytest

from smtheory.worker_pool import worker_xla_flags

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one test worker per core (pytest-xdist, see setup.cfg): XLA's CPU intra-op pool off, as in the package's
    # own worker processes (smtheory.worker_pool); read when JAX creates its backend, i.e. after this line
    os.environ["XLA_FLAGS"] = worker_xla_flags()

import tempfile  # noqa: E402

# The persistent compilation cache is on by default (smtheory.compile_cache): the suite keeps its own, one folder
# per test worker (no two workers write one folder), shared with the processes its tests start.
os.environ.setdefault("SMTHEORY_JAX_CACHE", tempfile.mkdtemp(
    prefix=f"smtheory-test-cache-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-"))

import smtheory as smt  # noqa: E402
from smtheory.precision import configure_process  # noqa: E402

# the tests run as the package's own processes do (the CLI, the workers): float64 on, explicitly, and
# asynchronous CPU dispatch off; tests/test_precision.py checks the library default in fresh processes
configure_process()


def interrupted_and_fresh(prob, spec, short, long, checkpoint):
    """``(resumed, fresh)``: ``short`` sampled into ``checkpoint`` then resumed to ``long``, and ``long`` from scratch."""
    import warnings

    from smtheory.sims import sample

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sample(prob, spec, short, checkpoint=checkpoint, progress=False)
        resumed = sample(prob, spec, long, checkpoint=checkpoint, resume=True, progress=False)
        fresh = sample(prob, spec, long, progress=False)
    return resumed, fresh


def random_problem(heads=(2, 2), P=30, Q=20, N0=6, T=5, seed=0, readout="last"):
    """A small random problem: random w-style heads, labels from a random linear teacher."""
    rng = np.random.default_rng(seed)
    layers = [smt.AttentionLayer(W=rng.standard_normal((h, N0, N0)) / N0, name=f"layer {i + 1}")
              for i, h in enumerate(heads)]
    x = rng.standard_normal((P + Q, N0, T))
    teacher = rng.standard_normal(N0)
    y = np.sign(x[:, :, -1] @ teacher + 0.3 * x[:, :, 0] @ teacher)
    y[y == 0] = 1.0
    return smt.KernelProblem.from_inputs(x[:P], y[:P], layers, x[P:], y[P:], readout=readout)


@pytest.fixture
def small_problem():
    return random_problem()
