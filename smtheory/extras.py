"""Optional dependencies ("extras"): one clear error naming the ``pip install`` to run.

The core install is what the theory and the samplers need; features with a heavy dependency of their
own import it through :func:`require`, which raises :class:`MissingExtra` (an
:class:`~smtheory.checks.InputError`, so the CLI prints one ``smtheory: error:`` line and exits 2).

======================  ===============================================
extra                   gives
======================  ===============================================
``cluster``             Dask executors (sweeps and experiments on a cluster)
``store``               the xarray / netCDF sweep store
``digits``              the digits task (scikit-learn's images)
``arviz``               ``SampleResult.to_inference_data()``
``all``                 every feature above
``docs``, ``test``      building the docs; running the tests (all of the above, the docs, pytest)
======================  ===============================================
"""
from __future__ import annotations

import importlib

from .checks import InputError

__all__ = ["MissingExtra", "require"]


class MissingExtra(InputError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def require(module, extra, feature):
    """Import and return ``module``, or raise :class:`MissingExtra` naming ``pip install "smtheory[extra]"``.

    Parameters
    ----------
    module : str
        The import name, e.g. ``"dask.distributed"``.
    extra : str
        The extra that installs it, e.g. ``"cluster"`` (the ``[options.extras_require]`` of ``setup.cfg``).
    feature : str
        What needs it, for the message, e.g. ``"the Dask executor"``.

    Returns
    -------
    module

    Raises
    ------
    MissingExtra
        One line: what needs the package, whether it (or a package it needs) is missing or present but
        failed to import, the first line of the import error, and the ``pip install`` to run.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if isinstance(exc, ModuleNotFoundError):  # the package, or one of its own dependencies, is absent
            what = f"the optional package {(exc.name or module).split('.')[0]!r}, which is not installed"
        else:
            what = f"the optional package {module.split('.')[0]!r}, which is installed but failed to import"
        raise MissingExtra(f"{feature} needs {what} ({detail}); "
                           f"install it with: pip install \"smtheory[{extra}]\"") from None
