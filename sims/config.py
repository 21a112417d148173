"""Settings and results of a sampling run (:func:`smtheory.sims.run.sample`).

:class:`SampleConfig` is validated on construction and keeps the *converted* values (a
``chains=2.0`` becomes ``2``; ``20.5`` is refused). :class:`SampleResult` is the same record for
every sampler — weight-space (``gibbs``, ``full-langevin``, ``full-mala``) and collapsed
(``overlap``, ``langevin``; docs/theory.md §8) — with Monte-Carlo diagnostics on every traced
observable, the traces themselves (:meth:`SampleResult.to_inference_data` hands them to ArviZ)
and an honest ``converged`` flag.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from smtheory.checks import InputError, non_negative_int, positive_int, seed
from smtheory.model import ModelSpec
from smtheory.records import array_from_json, finite_or_none, float_from_json, json_array, json_tree, tree_from_json

from .base import check_step_size

#: Sampler names. ``overlap`` (default): NUTS on the exact order-parameter posterior (§8.2);
#: ``langevin``: preconditioned Langevin on the V⁰-collapsed weights (§8.1; Metropolis-adjusted unless
#: ``adjusted=False``); ``gibbs``: exact blocked Gibbs on all weights; ``full-langevin`` /
#: ``full-mala``: Langevin / MALA on all weights (stiff at small T; kept for comparison).
SAMPLERS = ("overlap", "langevin", "gibbs", "full-langevin", "full-mala")
#: Samplers whose draws are order parameters with V⁰ integrated out (Rao-Blackwellised predictor).
COLLAPSED = ("overlap", "langevin")
#: Inverse mass matrices of the ``overlap`` sampler's NUTS (``SampleConfig.mass_matrix``).
MASS_MATRICES = ("auto", "diagonal", "dense")
#: Default cap of the automatic extension, in multiples of ``steps``.
MAX_STEPS_FACTOR = 16


class SamplingError(RuntimeError):
    """Sampling produced non-finite values; the message says which chain and what to change."""


@dataclass(frozen=True)
class SampleConfig:
    """Settings of a sampling run.

    Parameters
    ----------
    sampler : {"overlap", "langevin", "gibbs", "full-langevin", "full-mala"}
        Default ``"overlap"`` (see :data:`SAMPLERS`).
    chains : int (≥ 1; ≥ 2 for R-hat, 4 recommended)
    steps : int
        Transitions recorded after burn-in (before any automatic extension).
    burnin : int
        Transitions discarded first; for ``overlap`` and ``langevin`` this is the adaptive warm-up
        (step size and diagonal mass matrix), at least 50.
    thin : int
        Record every ``thin``-th transition.
    step_size : float
        Only for ``full-langevin`` / ``full-mala`` (the collapsed samplers adapt theirs).
    seed : int in [0, 2**32)
    dtype : {"float64", "float32"}
    chunk : int
        Recorded draws per compiled block (the checkpoint interval and the unit of the batch means
        behind the jackknife error of the accuracy).
    max_steps : int, optional
        Cap of the automatic extension: while R-hat of some traced observable exceeds ``rhat_target``
        the same chains are continued, doubling ``steps``, up to ``max_steps`` (default
        ``16 × steps``; ``max_steps = steps`` turns extension off). A run that still misses the target
        is returned with ``converged = False`` (the CLI exits with status 3).
    rhat_target : float
        Default 1.01 (Vehtari et al. 2021).
    adjusted : bool
        ``langevin`` only: Metropolis-adjusted (default, exact) or unadjusted (O(h) bias).
    mass_matrix : {"auto", "diagonal", "dense"}
        ``overlap`` only: the inverse mass matrix that NUTS adapts during the warm-up. ``"auto"`` (default):
        dense when the warm-up's last slow window holds at least 10 draws per coordinate
        (:func:`smtheory.sims.nuts.dense_mass_estimable`: the default ``burnin = 500`` for up to 20 coordinates,
        e.g. the 14 of a network with heads (2, 2)), diagonal otherwise. The result's ``config`` names the one used.
    """

    sampler: str = "overlap"
    chains: int = 4
    steps: int = 1000
    burnin: int = 500
    thin: int = 1
    step_size: float = 1e-4
    seed: int = 0
    dtype: str = "float64"
    chunk: int = 100
    max_steps: int = None
    rhat_target: float = 1.01
    adjusted: bool = True
    mass_matrix: str = "auto"

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen: keep converted values)
        if self.sampler not in SAMPLERS:
            raise InputError(f"sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        for name in ("chains", "steps", "thin", "chunk"):
            set_(name, positive_int(name, getattr(self, name)))
        set_("burnin", non_negative_int("burnin", self.burnin))
        set_("seed", seed("seed", self.seed))
        if self.steps < self.thin:
            raise InputError(f"steps ({self.steps}) must be at least thin ({self.thin})")
        if self.sampler in ("full-langevin", "full-mala"):
            set_("step_size", check_step_size(self.step_size))
        if self.sampler in COLLAPSED and self.burnin < 50:
            raise InputError(f"burnin must be at least 50 for the adaptive {self.sampler!r} sampler "
                             f"(its warm-up adapts the step size and mass matrix), got {self.burnin}")
        if self.dtype not in ("float64", "float32"):
            raise InputError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}")
        cap = MAX_STEPS_FACTOR * self.steps if self.max_steps is None else positive_int("max_steps", self.max_steps)
        if cap < self.steps:
            raise InputError(f"max_steps ({cap}) must be at least steps ({self.steps})")
        set_("max_steps", cap)
        r = float(self.rhat_target) if isinstance(self.rhat_target, (int, float, np.floating)) else math.nan
        if not 1.0 < r < 2.0:
            raise InputError(f"rhat_target must be a number in (1, 2), got {self.rhat_target!r}")
        set_("rhat_target", r)
        if not isinstance(self.adjusted, (bool, np.bool_)):
            raise InputError(f"adjusted must be True or False, got {self.adjusted!r}")
        if self.mass_matrix not in MASS_MATRICES:
            raise InputError(f"mass_matrix must be one of {', '.join(map(repr, MASS_MATRICES))}, got {self.mass_matrix!r}")
        if self.mass_matrix == "dense" and self.sampler != "overlap":
            raise InputError(f"mass_matrix \"dense\" is only for the overlap sampler (the {self.sampler!r} sampler "
                             "adapts a diagonal one or none)")

    @property
    def draws(self):
        """Recorded draws per chain."""
        return self.steps // self.thin

    @property
    def collapsed(self):
        """Whether the sampler draws order parameters with V⁰ integrated out (docs/theory.md §8)."""
        return self.sampler in COLLAPSED

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


#: Scalar fields of a :class:`SampleResult` record (``None`` in the record for a non-finite value).
_SCALARS = ("test_accuracy", "test_accuracy_mcse", "generalization_error", "generalization_error_mcse",
            "train_energy", "rhat_max", "ess_min", "steps_per_second", "acceptance_rate", "grad_evals_per_step",
            "run_time", "compile_time")
#: Array fields of a :class:`SampleResult` record.
_ARRAYS = ("U1_sampled", "U1_mcse", "predictor_mean", "predictor_variance")


@dataclass(frozen=True, eq=False)
class SampleResult:
    """Posterior summaries with their Monte-Carlo diagnostics (same fields for every sampler).

    ``predictor_mean`` / ``predictor_variance`` are the posterior predictive mean and variance on
    the test set: averages of the network output over weight draws, or — for the collapsed samplers
    — the Rao-Blackwellised estimates (mean of the conditional means; mean conditional variance plus
    the variance of the conditional means, docs/theory.md §8.3). ``traces`` holds the per-chain traces
    of every diagnosed observable, named by ``trace_names``.  ``run_time`` is the wall time of the
    compiled sampling blocks, ``compile_time`` the compilation paid before them.  Immutable;
    :meth:`to_record` / :meth:`from_record` write and read the JSON-ready record.
    """

    U1_sampled: np.ndarray
    U1_mcse: np.ndarray
    predictor_mean: np.ndarray
    predictor_variance: np.ndarray
    test_accuracy: float
    generalization_error: float
    train_energy: float
    rhat_max: float
    ess_min: float
    steps_per_second: float
    diagnostics: dict
    config: SampleConfig
    spec: object
    acceptance_rate: float = float("nan")
    compile_time: float = float("nan")
    test_accuracy_mcse: float = float("nan")
    generalization_error_mcse: float = float("nan")
    traces: np.ndarray = None
    trace_names: list = field(default_factory=list)
    grad_evals_per_step: float = float("nan")
    run_time: float = float("nan")
    extensions: int = 0

    @property
    def converged(self):
        """R-hat ≤ ``config.rhat_target`` on every traced observable (False when R-hat is undefined)."""
        return bool(self.rhat_max <= self.config.rhat_target)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_record(self, traces=True):
        """JSON-ready record (non-finite numbers as ``None``).

        Keys: every field (arrays as nested lists, ``config`` and ``spec`` as dicts, ``diagnostics``
        with NumPy numbers as floats), the derived ``converged`` and ``dtype`` (the sampler's precision,
        ``config.dtype``); ``traces`` only when ``traces`` is
        True (a record without them reads back with ``traces = None``).
        """
        out = {k: json_array(getattr(self, k)) for k in _ARRAYS}
        out.update({k: finite_or_none(getattr(self, k)) for k in _SCALARS})
        out.update(extensions=int(self.extensions), converged=self.converged, diagnostics=json_tree(self.diagnostics),
                   trace_names=list(self.trace_names), config=dataclasses.asdict(self.config),
                   spec=self.spec.to_dict(), dtype=self.config.dtype)
        if traces and self.traces is not None:
            out["traces"] = json_tree(self.traces)
        return out

    def to_dict(self):
        """Alias of :meth:`to_record`."""
        return self.to_record()

    @classmethod
    def from_record(cls, d):
        """The result written by :meth:`to_record` (``None`` read back as NaN)."""
        D = len(d["U1_sampled"])
        arrays = {k: array_from_json(d[k]) for k in _ARRAYS}
        arrays["U1_sampled"] = arrays["U1_sampled"].reshape(D, D)
        arrays["U1_mcse"] = arrays["U1_mcse"].reshape(D, D)
        return cls(**arrays, **{k: float_from_json(d[k]) for k in _SCALARS if k in d},
                   diagnostics=tree_from_json(d.get("diagnostics", {})), config=SampleConfig(**d["config"]),
                   spec=ModelSpec(**d["spec"]), extensions=int(d.get("extensions", 0)),
                   traces=array_from_json(d["traces"]) if d.get("traces") is not None else None,
                   trace_names=list(d.get("trace_names", [])))

    def to_inference_data(self):
        """The traces as an :class:`arviz.InferenceData` (needs ``pip install "smtheory[arviz]"``).

        ``posterior`` holds one variable per traced observable (``U1`` with dims ``path``, ``path_``
        when every entry is traced, else ``U1_diag``; ``train_energy``; ``test_mse``; ``f_test_mean8``),
        ``chain`` × ``draw``; ``sample_stats`` is empty.
        """
        from smtheory.extras import require

        az = require("arviz", "arviz", "SampleResult.to_inference_data()")
        if self.traces is None or not self.trace_names:
            raise InputError("this result holds no traces (it was loaded from a record without them)")
        tr = np.asarray(self.traces)
        names = list(self.trace_names)
        D = self.U1_sampled.shape[0]
        u_names = [n for n in names if n.startswith("U1[")]
        data, dims = {}, {}
        if len(u_names) == D * D:
            data["U1"] = tr[:, :, :D * D].reshape(tr.shape[0], tr.shape[1], D, D)
            dims["U1"] = ["path", "path_"]
        else:
            data["U1_diag"] = tr[:, :, :len(u_names)]
            dims["U1_diag"] = ["path"]
        for i, n in enumerate(names):
            if not n.startswith("U1["):
                data[n.replace("[:8].mean", "_mean8").replace("[", "_").replace("]", "")] = tr[:, :, i]
        coords = {"path": np.arange(D), "path_": np.arange(D)}
        return az.from_dict(posterior=data, coords=coords, dims=dims,
                            attrs=dict(sampler=self.config.sampler, widths=str(self.spec.widths)))
