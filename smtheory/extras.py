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
``docs``, ``test``      building the docs, running the tests
``all``                 everything
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
        The extra that installs it, e.g. ``"cluster"``.
    feature : str
        What needs it, for the message, e.g. ``"the Dask executor"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(f"{feature} needs {module.split('.')[0]!r}, which is not installed ({exc}); "
                           f"install it with: pip install \"smtheory[{extra}]\"") from None
