"""Seconds that JAX spends tracing, lowering and compiling, for honest timings.

A reported run time should not hide (or silently include) the JIT compilation that the first call of a
compiled function pays.  JAX reports the duration of every tracing, lowering and backend compilation
through :mod:`jax.monitoring`; one listener, registered on first use, adds them up per thread, and
:class:`CompileClock` reads the total around a piece of code.  A function whose compiled code is reused
(same shapes and static arguments) adds nothing.
"""
from __future__ import annotations

import threading

import jax.monitoring

__all__ = ["CompileClock", "compile_seconds"]

#: Event names (prefixes) of :mod:`jax.monitoring` that are compilation work: tracing, lowering and the
#: backend compilation, whose duration includes a read from the persistent compilation cache
#: (:mod:`smtheory.compile_cache`; ``/jax/compilation_cache/cache_retrieval_time_sec`` is inside it, so it
#: is not added again).
COMPILE_EVENTS = ("/jax/core/compile/",)

_state = threading.local()
_registered = []
_lock = threading.Lock()


def _listener(event, duration, **_):
    if event.startswith(COMPILE_EVENTS):
        _state.total = getattr(_state, "total", 0.0) + float(duration)


def compile_seconds():
    """Seconds of JAX compilation in this thread since the listener was registered (registers it)."""
    if not _registered:
        with _lock:
            if not _registered:
                jax.monitoring.register_event_duration_secs_listener(_listener)
                _registered.append(True)
    return getattr(_state, "total", 0.0)


class CompileClock:
    """Compilation seconds paid inside a ``with`` block (``clock.seconds``; also readable inside it)."""

    def __enter__(self):
        self._start = compile_seconds()
        self._stop = None
        return self

    def __exit__(self, *exc):
        self._stop = compile_seconds()
        return False

    @property
    def seconds(self):
        """Compilation seconds so far (up to the end of the block once it has ended)."""
        stop = compile_seconds() if self._stop is None else self._stop
        return stop - self._start
