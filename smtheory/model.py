"""The model specification (docs/theory.md §1).

A :class:`ModelSpec` fixes everything about the tractable transformer that is
not data or attention weights: heads per layer, widths, prior variances,
temperature and the token readout.  It is validated on construction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .checks import InputError, positive_float, positive_int, width

READOUTS = ("last", "first", "mean")


@dataclass(frozen=True)
class ModelSpec:
    """Architecture and Bayesian hyper-parameters of the network of docs/theory.md §1.

    Parameters
    ----------
    heads : sequence of int
        Heads per attention layer, ``(H_1, ..., H_L)``.
    widths : int or sequence of int
        Either one width ``N`` used for every layer, or ``L + 1`` widths
        ``(N_1, ..., N_L, N_a)`` (``N_{L+1} = N_a`` is the width seen by the readout).  Each at
        most :data:`smtheory.checks.MAX_WIDTH` (10**7; use the GP limit for N → ∞).
    variances : sequence of float, optional
        Prior variances ``(σ0², σ1², ..., σL², σa²)`` (``L + 2`` numbers). Default all 1.
    temperature : float
        Observation-noise variance ``T`` of the posterior (docs/theory.md §1). Default 0.01.
    readout : {"last", "first", "mean"}
        Token readout vector ``r``: ``e_T``, ``e_1`` or ``1/T``.
    """

    heads: tuple
    widths: tuple = 100
    variances: tuple = None
    temperature: float = 0.01
    readout: str = "last"

    def __post_init__(self):
        heads = self.heads
        if isinstance(heads, (int, np.integer)):
            heads = (heads,)
        try:
            heads = tuple(heads)
        except TypeError:
            raise InputError(f"heads must be a sequence of positive integers, got {self.heads!r}") from None
        if len(heads) == 0:
            raise InputError("heads must name at least one attention layer, got an empty sequence")
        heads = tuple(positive_int(f"heads[{i}]", h) for i, h in enumerate(heads))
        L = len(heads)

        widths = self.widths
        if isinstance(widths, (int, np.integer, float, np.floating, bool, np.bool_, str, bytes)):
            widths = (width("widths", widths),) * (L + 1)
        else:
            try:
                widths = tuple(widths)
            except TypeError:
                raise InputError(f"widths must be one N or L + 1 = {L + 1} positive integers, got {self.widths!r}") \
                    from None
            if len(widths) == 1:
                widths = widths * (L + 1)
            if len(widths) != L + 1:
                raise InputError(
                    f"widths must be one N or L + 1 = {L + 1} values (N_1..N_L, N_a), got {len(widths)}"
                )
            widths = tuple(width(f"widths[{i}]", w) for i, w in enumerate(widths))

        variances = self.variances
        if variances is None:
            variances = (1.0,) * (L + 2)
        else:
            if isinstance(variances, (int, float, np.number)):
                variances = (variances,) * (L + 2)
            if isinstance(variances, (str, bytes)) or not hasattr(variances, "__iter__"):
                raise InputError(f"variances must be L + 2 = {L + 2} positive numbers, got {variances!r}")
            variances = tuple(variances)
            if len(variances) != L + 2:
                raise InputError(
                    f"variances must be L + 2 = {L + 2} values (s0, s1..sL, sa), got {len(variances)}"
                )
            variances = tuple(positive_float(f"variances[{i}]", v) for i, v in enumerate(variances))

        temperature = positive_float("temperature", self.temperature)
        if self.readout not in READOUTS:
            raise InputError(f"readout must be one of {', '.join(READOUTS)}, got {self.readout!r}")

        object.__setattr__(self, "heads", heads)
        object.__setattr__(self, "widths", widths)
        object.__setattr__(self, "variances", variances)
        object.__setattr__(self, "temperature", temperature)

    # ----------------------------------------------------------------- derived
    @property
    def n_layers(self) -> int:
        """Number of attention layers ``L``."""
        return len(self.heads)

    @property
    def n_paths(self) -> int:
        """Number of attention paths ``D = Π_ℓ H_ℓ``."""
        return math.prod(self.heads)

    @property
    def partial_paths(self) -> tuple:
        """``D_ℓ = Π_{k≥ℓ} H_k`` for ℓ = 1..L (size of ``U_ℓ``)."""
        return tuple(math.prod(self.heads[l:]) for l in range(self.n_layers))

    @property
    def readout_width(self) -> int:
        """``N_a``."""
        return self.widths[-1]

    @property
    def sigma0_sq(self) -> float:
        return self.variances[0]

    @property
    def sigma_a_sq(self) -> float:
        return self.variances[-1]

    def gp_order_parameters(self):
        """GP (data-free) saddle point: ``U_ℓ = σℓ² ⋯ σL² σa² I``, ``U_a = σa²`` (docs/theory.md §3)."""
        out = []
        for l in range(self.n_layers):
            scale = math.prod(self.variances[l + 1:])
            out.append(scale * np.eye(self.partial_paths[l]))
        return out, self.sigma_a_sq

    def gp_u1_scale(self) -> float:
        """The GP value of the diagonal of ``U_1``: ``σa² Π_ℓ σℓ²``."""
        return math.prod(self.variances[1:])

    def replace(self, **changes) -> "ModelSpec":
        """A copy with some fields changed (validated again)."""
        fields = dict(heads=self.heads, widths=self.widths, variances=self.variances,
                      temperature=self.temperature, readout=self.readout)
        if "width" in changes:
            changes["widths"] = changes.pop("width")
        fields.update(changes)
        return ModelSpec(**fields)

    def to_dict(self) -> dict:
        return dict(heads=list(self.heads), widths=list(self.widths), variances=list(self.variances),
                    temperature=self.temperature, readout=self.readout)
