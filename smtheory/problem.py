"""A kernel problem: path features and labels of a training (and test) set.

The theory needs the data only through the raw path features ``ξ^π(x)``
(docs/theory.md §2) and the labels.  A :class:`KernelProblem` holds them, validated,
and hands out the scaled features ``ξ̃ = σ0 ξ / √(N0 D)`` for a given model.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .checks import (CLASSIFICATION, DEFAULT_MEMORY_BUDGET, REGRESSION, InputError, check_memory,
                        finite_array, label_task, labels)
from .attention import attention_matrices, check_layers
from .paths import path_features, path_labels, scaled_path_features
from .precision import require_float64


@dataclass
class KernelProblem:
    """Path features and labels.

    Parameters
    ----------
    xi_train : array [P, D, N0]
        Raw path features of the training inputs.
    y_train : array [P]
    heads : tuple of int
        Heads per layer; ``Π heads`` must equal ``D``.
    xi_test : array [Q, D, N0], optional
    y_test : array [Q], optional
    path_names : list of str, optional
        One label per path (for tables and figures).

    Notes
    -----
    Targets that are all ``±1`` (train and test) make a *classification* problem: the predictor
    statistics report an accuracy.  Other real targets make a *regression* problem: everything
    works, but accuracies are not defined (NaN in Python, ``null`` in JSON).  ``0/1`` labels are
    refused (use ``±1``); complex, NaN, infinite or non-numeric labels are refused.  See
    :attr:`task`.
    """

    xi_train: np.ndarray
    y_train: np.ndarray
    heads: tuple
    xi_test: np.ndarray = None
    y_test: np.ndarray = None
    path_names: list = field(default=None)

    def __post_init__(self):
        require_float64("smtheory.KernelProblem")
        self.xi_train = finite_array("xi_train (path features of x_train)", self.xi_train, ndim=3)
        _check_magnitude("x_train", self.xi_train)
        self.y_train = labels("y_train", self.y_train)
        P, D, N0 = self.xi_train.shape
        self.heads = tuple(int(h) for h in self.heads)
        if int(np.prod(self.heads)) != D:
            raise InputError(f"heads {self.heads} give {int(np.prod(self.heads))} paths but the features have D = {D}")
        if self.y_train.shape[0] != P:
            raise InputError(f"y_train must have one label per training example: expected {P}, got {self.y_train.shape[0]}")
        if (self.xi_test is None) != (self.y_test is None):
            raise InputError("give both test features and y_test, or neither")
        if self.xi_test is not None:
            self.xi_test = finite_array("xi_test (path features of x_test)", self.xi_test, ndim=3)
            _check_magnitude("x_test", self.xi_test)
            self.y_test = labels("y_test", self.y_test)
            if self.xi_test.shape[1:] != (D, N0):
                raise InputError(f"test features must have shape [Q, {D}, {N0}], got {self.xi_test.shape}")
            if self.y_test.shape[0] != self.xi_test.shape[0]:
                raise InputError(
                    f"y_test must have one label per test example: expected {self.xi_test.shape[0]}, got {self.y_test.shape[0]}"
                )
        if self.path_names is None:
            self.path_names = path_labels(self.heads)
        elif len(self.path_names) != D:
            raise InputError(f"path_names must have {D} entries, got {len(self.path_names)}")

    @property
    def task(self):
        """``"classification"`` when every train and test target is ±1, else ``"regression"``.

        Classification problems report accuracies; for regression problems the accuracies are NaN
        (``null`` in JSON) and the generalisation error is the result.
        """
        kinds = {label_task("y_train", self.y_train)}
        if self.y_test is not None:
            kinds.add(label_task("y_test", self.y_test))
        return CLASSIFICATION if kinds == {CLASSIFICATION} else REGRESSION

    @property
    def n_train(self):
        return self.xi_train.shape[0]

    @property
    def n_paths(self):
        return self.xi_train.shape[1]

    @property
    def input_dim(self):
        return self.xi_train.shape[2]

    def scaled_train(self, spec):
        self.check_spec(spec)
        return scaled_path_features(self.xi_train, spec.sigma0_sq)

    def scaled_test(self, spec):
        self.check_spec(spec)
        if self.xi_test is None:
            raise InputError("this problem has no test set (give x_test and y_test)")
        return scaled_path_features(self.xi_test, spec.sigma0_sq)

    def check_spec(self, spec):
        if tuple(spec.heads) != self.heads:
            raise InputError(f"model heads {tuple(spec.heads)} do not match the problem's heads {self.heads}")

    @classmethod
    def from_inputs(cls, x_train, y_train, layers, x_test=None, y_test=None, readout="last",
                    path_names=None, memory_budget=None):
        """Build the problem from bare inputs and fixed attention weights.

        Parameters
        ----------
        x_train : array [P, N0, T]
        y_train : array [P]
        layers : sequence of :class:`smtheory.attention.AttentionLayer`
        x_test, y_test : optional, [Q, N0, T] and [Q]
        readout : {"last", "first", "mean"}
        path_names : list of str, optional
        memory_budget : int, optional
            Bytes; the arrays are estimated before they are built and a larger problem is refused
            (default :data:`smtheory.checks.DEFAULT_MEMORY_BUDGET`, 8 GiB).

        Raises
        ------
        InputError
            Bad shapes, labels (see the class notes), layers that are not a non-empty sequence of
            :class:`~smtheory.attention.AttentionLayer`, inputs so large that the attention scores or
            path features overflow (the message names ``x_train`` or ``x_test``), or a problem over the
            memory budget.
        """
        x_train = finite_array("x_train", x_train, ndim=3)
        y_train = labels("y_train", y_train)
        if y_train.shape[0] != x_train.shape[0]:
            raise InputError(f"y_train must have one label per example of x_train: expected {x_train.shape[0]}, "
                             f"got {y_train.shape[0]}")
        layers = check_layers(layers)
        heads = tuple(layer.n_heads for layer in layers)
        P, N0, T = x_train.shape
        Q = 0
        if (x_test is None) != (y_test is None):
            raise InputError("give both x_test and y_test, or neither")
        if x_test is not None:
            x_test = finite_array("x_test", x_test, ndim=3)
            if x_test.shape[1:] != (N0, T):
                raise InputError(f"x_test must have shape [Q, {N0}, {T}] like x_train, got {x_test.shape}")
            Q = x_test.shape[0]
            y_test = labels("y_test", y_test, n=Q)
        check_problem_memory(P, Q, N0, T, heads, DEFAULT_MEMORY_BUDGET if memory_budget is None else memory_budget,
                             inputs_built=True)
        xi_train = path_features(x_train, attention_matrices(x_train, layers, name="x_train"), readout)
        _check_features("x_train", xi_train)
        xi_test = None
        if x_test is not None:
            xi_test = np.concatenate([
                path_features(x_test[s:s + 4096], attention_matrices(x_test[s:s + 4096], layers, name="x_test"),
                              readout)
                for s in range(0, Q, 4096)
            ])
            _check_features("x_test", xi_test)
        return cls(xi_train, y_train, heads, xi_test, y_test, path_names)


#: Largest absolute path-feature value accepted: the kernel ξ·ξ must stay far inside the float64 range.
MAX_FEATURE = 1e100


def _check_magnitude(name, xi):
    big = float(np.max(np.abs(xi)))
    if big > MAX_FEATURE:
        raise InputError(f"{name} is too large: its path features reach {big:.3g}, so the kernel (their squares) "
                         f"would overflow float64; rescale {name} (entries of order 1 are expected)")


def _check_features(name, xi):
    if not np.all(np.isfinite(xi)):
        raise InputError(f"{name} overflowed: its path features are not finite (the input is too large for "
                         f"float64 arithmetic); rescale {name} (entries of order 1 are expected)")
    _check_magnitude(name, xi)


def memory_estimate(P, Q, N0, T, heads):
    """Bytes of the arrays behind a :class:`KernelProblem` built from inputs, by part.

    Parameters
    ----------
    P, Q : int
        Training and test examples.
    N0, T : int
        Input width and tokens.
    heads : sequence of int
        Heads per layer.

    Returns
    -------
    dict
        ``inputs`` (x_train, x_test), ``attention`` (the mixing matrices of every layer and the
        softmax temporaries, per block of examples), ``features`` ([P + Q, D, N0]) and ``kernels``
        (the P × P and test-block × P matrices of the predictor and solver), in bytes (float64).
    """
    D = int(np.prod(heads))
    block = max(P, min(Q, 4096))
    return dict(inputs=8 * (P + Q) * N0 * T,
                attention=8 * block * (sum(heads) + 2 * max(heads)) * T * T,
                features=8 * (P + Q) * D * (N0 + T),
                kernels=8 * (3 * P * P + 2 * min(Q, 2048) * P))


def check_problem_memory(P, Q, N0, T, heads, budget=DEFAULT_MEMORY_BUDGET, inputs_built=False):
    """Refuse, before anything is allocated, a problem whose arrays would exceed ``budget`` bytes.

    The message gives the estimate (total and largest parts) and names P (``n_train``) and Q
    (``n_test``).  ``inputs_built``: the inputs exist already (not counted).
    """
    parts = memory_estimate(P, Q, N0, T, heads)
    if inputs_built:
        parts.pop("inputs")
    total = sum(parts.values())
    detail = ", ".join(f"{k} {v / 2**30:.1f} GiB" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]))
    check_memory(f"a problem with P = {P} training (n_train) and Q = {Q} test examples (n_test) ({detail})",
                 total, budget, hint="reduce n_train / --n-train (the kernel grows as P^2) or n_test / --n-test")
