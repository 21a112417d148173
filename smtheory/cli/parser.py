"""The ``smtheory`` argument parser: one sub-parser per command module, registered in a fixed order."""
from __future__ import annotations

import argparse

from . import (attention_figures, compare, demo, equations, prune, sample, solve, sweep,  # noqa: F401
               train)

#: The command modules in the order of ``smtheory --help``. Each has ``register(subparsers)``, which adds its
#: parser and sets ``func`` (called with the parsed arguments; returns the exit status). Modules keep their
#: heavy imports inside the command functions so that ``smtheory --help`` stays fast.
COMMAND_MODULES = (solve, sample, demo, compare, train, prune, sweep, equations, attention_figures)


#: Help of ``--no-compile-cache`` (smtheory.compile_cache; the same as ``SMTHEORY_JAX_CACHE=off``).
NO_COMPILE_CACHE_HELP = ("do not use the persistent JAX compilation cache (default: on, in $SMTHEORY_JAX_CACHE or "
                         "~/.cache/smtheory/jax; the same as SMTHEORY_JAX_CACHE=off)")


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line, ``smtheory: error: …`` (exit status 2)."""

    def error(self, message):
        self.exit(2, f"smtheory: error: {message} (see '{self.prog} --help')\n")


def build_parser():
    """The ``smtheory`` parser with every subcommand (``func`` of each bound now, from its module)."""
    parser = _Parser(prog="smtheory", description="Statistical-mechanics theory of a tractable transformer.",
                     epilog="Exit status: 0 success; 2 bad input, an unusable file or path, or not enough memory "
                            "(one 'smtheory: error:' line); 3 the command ran but a result did not converge; "
                            "130 interrupted (Ctrl-C), 143 terminated (SIGTERM).")
    parser.add_argument("--no-compile-cache", action="store_true", help=NO_COMPILE_CACHE_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    for command_parser in sub.choices.values():  # also accepted after the command (``smtheory solve --no-…``)
        command_parser.add_argument("--no-compile-cache", action="store_true", default=argparse.SUPPRESS,
                                    help=NO_COMPILE_CACHE_HELP)
    return parser
