"""Worker processes get XLA's single-threaded CPU pool; the parent's environment is restored."""
import os
import subprocess
import sys

import pytest

from smtheory.worker_pool import WORKER_XLA_FLAGS, worker_environment, worker_pool, worker_xla_flags


def _child_flags():
    return os.environ.get("XLA_FLAGS", "")


def test_worker_flags_added_once_and_parent_restored(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    monkeypatch.delenv("SMTHEORY_WORKER_XLA_FLAGS", raising=False)
    assert worker_xla_flags() == f"--xla_dump_to=/tmp/x {WORKER_XLA_FLAGS}"
    assert worker_xla_flags(f"{WORKER_XLA_FLAGS}") == WORKER_XLA_FLAGS  # not repeated
    with worker_environment():
        assert os.environ["XLA_FLAGS"].endswith(WORKER_XLA_FLAGS)
    assert os.environ["XLA_FLAGS"] == "--xla_dump_to=/tmp/x"
    monkeypatch.setenv("SMTHEORY_WORKER_XLA_FLAGS", "")
    assert worker_xla_flags() == "--xla_dump_to=/tmp/x"


def test_spawned_worker_sees_the_flags(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.delenv("SMTHEORY_WORKER_XLA_FLAGS", raising=False)
    with worker_pool(1) as pool:
        assert WORKER_XLA_FLAGS in pool.submit(_child_flags).result(timeout=120)
    assert "XLA_FLAGS" not in os.environ


def _sleep(seconds):
    import time

    time.sleep(seconds)
    return seconds


def test_an_interrupt_terminates_running_workers_at_once():
    import time

    with pytest.raises(KeyboardInterrupt):
        with worker_pool(1) as pool:
            assert pool.submit(_sleep, 0).result(timeout=120) == 0  # the worker is up
            running, pending = pool.submit(_sleep, 300), pool.submit(_sleep, 300)
            deadline = time.monotonic() + 30
            while not running.running() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert running.running()
            t0 = time.monotonic()
            raise KeyboardInterrupt
    assert time.monotonic() - t0 < 60  # not the 300 s of the running call
    for fut in (running, pending):  # neither ran to completion: cancelled, or failed with the broken pool
        assert fut.done() and (fut.cancelled() or fut.exception() is not None)


@pytest.mark.slow
def test_the_point_that_deadlocked_finishes():
    """The demo's finite-size point N = 50, P = 50 hung forever on batched LAPACK calls (smtheory.sims.chains);
    it finishes in about 1 minute now."""
    code = ("from smtheory.validation.finite_size import DEMO_FS, _compute_point; "
            "p = _compute_point(DEMO_FS, 50, 50, 0); print(p['status'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] in ("ok", "sampler_unconverged")
