"""``main``: run one ``smtheory`` command, with its exit status, error lines and interrupt handling."""
from __future__ import annotations

import os
import signal
import sys

from smtheory.checks import InputError

from .parser import build_parser


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM, so that a run stops as cleanly as after Ctrl-C."""


def _on_sigterm(signum, frame):
    raise Terminated()


#: What to tell the user after an interrupt, per command (the default: nothing to continue).
_RESUME_HINTS = {
    "sample": "rerun with --resume to continue from --checkpoint",
    "train": "rerun with --resume to continue from OUT/model.npz",
    "sweep": "rerun with --resume to skip the finished tasks",
    "demo": "rerun the same command to continue (finished stages and checkpoints are reused)",
    "compare": "rerun the same command to continue (finished stages and checkpoints are reused)",
}


def _interrupted(args, terminated):
    hint = _RESUME_HINTS.get(args.command)
    if args.command == "sample" and not getattr(args, "checkpoint", None):
        hint = "nothing was saved (no --checkpoint)"
    word = "terminated" if terminated else "interrupted"
    return f"{word}; {hint}" if hint else word


def _os_error_message(exc):
    """One line for an OSError, with the path(s) it names and "disk full" spelled out."""
    import errno

    what = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or str(exc))
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    where = " -> ".join(repr(os.fsdecode(p)) for p in paths)
    return f"{what}: {where}" if where else f"{type(exc).__name__}: {what}"


def main(argv=None):
    """Run one ``smtheory`` command and return its exit status.

    Exit status: 0 success; 2 bad input (:class:`~smtheory.checks.InputError`), a file-system error
    (any ``OSError``, with its path) or not enough memory, each as one ``smtheory: error: …`` line on
    standard error; 3 the command ran but a result did not converge (it is flagged, not reported as a
    result); 130 interrupted (Ctrl-C) and 143 terminated (SIGTERM), with a hint how to continue.
    Any other exception is a bug and propagates with its traceback.

    Parameters
    ----------
    argv : list of str, optional
        The arguments; ``None`` (the program entry point) reads ``sys.argv``, turns on the persistent
        compilation cache (:mod:`smtheory.compile_cache`; ``--no-compile-cache`` keeps it off, in every
        case) and, after an interrupt, leaves with ``os._exit`` (no interpreter teardown, which can crash
        while XLA compiles).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    _compilation_cache(args, as_program=argv is None)
    if args.command != "equations":  # the package's own process: float64 on, stated in the README and --help
        from smtheory.precision import configure_process

        configure_process()
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (e.g. called from a worker thread): leave SIGTERM alone
        pass
    try:
        return _run(args, as_program=argv is None)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args, as_program):
    """``args.func(args)`` with the expected failures turned into an error line and an exit status."""
    try:
        return args.func(args)
    except InputError as exc:
        _error(str(exc))
        return 2
    except MemoryError:
        _error("out of memory; reduce P (--n-train), the number of paths D or the input width N0")
        return 2
    except BrokenPipeError:  # the reader closed the pipe (``smtheory equations | head``): output is done
        _silence_stdout()
        return 0
    except OSError as exc:
        _error(_os_error_message(exc))
        return 2
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        _error(_interrupted(args, terminated))
        code = 143 if terminated else 130
        if as_program:
            # Run as the program: leave at once.  An interrupt can land while XLA compiles on a background
            # thread, and the interpreter's teardown then crashes (SIGSEGV); every file is already complete
            # (checkpoints and results are written atomically) and the folder lock dies with the process.
            sys.stdout.flush()
            os._exit(code)
        return code
    except RuntimeError as exc:
        if "RESOURCE_EXHAUSTED" in str(exc):  # XLA could not allocate (CPU or accelerator memory)
            _error("out of memory in XLA (RESOURCE_EXHAUSTED); reduce P (--n-train), --chains or the width")
            return 2
        raise


def _compilation_cache(args, as_program):
    """The persistent JAX compilation cache (:mod:`smtheory.compile_cache`) for this command.

    ``--no-compile-cache`` turns it off for the process (and the worker processes it starts); a command run
    as the program turns it on now (``equations`` compiles nothing), and in-process calls leave it to the
    entry points, which turn it on at their first call.
    """
    from smtheory.compile_cache import disable_compilation_cache, ensure_compilation_cache

    if getattr(args, "no_compile_cache", False):
        disable_compilation_cache()
    elif as_program and args.command != "equations":
        ensure_compilation_cache()


def _error(message):
    sys.stdout.flush()
    print(f"smtheory: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


def _silence_stdout():
    """Point standard output at the null device, so that flushing at exit raises no second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. captured by pytest)
        pass
