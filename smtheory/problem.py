"""A kernel problem: path features and labels of a training (and test) set.

The theory needs the data only through the raw path features ``ξ^π(x)``
(THEORY.md §2) and the labels.  A :class:`KernelProblem` holds them, validated,
and hands out the scaled features ``ξ̃ = σ0 ξ / √(N0 D)`` for a given model.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._validate import InputError, check_memory, finite_array
from .attention import attention_matrices
from .paths import path_features, path_labels, scaled_path_features


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
    """

    xi_train: np.ndarray
    y_train: np.ndarray
    heads: tuple
    xi_test: np.ndarray = None
    y_test: np.ndarray = None
    path_names: list = field(default=None)

    def __post_init__(self):
        self.xi_train = finite_array("xi_train (path features of x_train)", self.xi_train, ndim=3)
        self.y_train = finite_array("y_train", self.y_train, ndim=1)
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
            self.y_test = finite_array("y_test", self.y_test, ndim=1)
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
        """
        x_train = finite_array("x_train", x_train, ndim=3)
        y_train = finite_array("y_train", y_train, ndim=1)
        if y_train.shape[0] != x_train.shape[0]:
            raise InputError(f"y_train must have one label per example of x_train: expected {x_train.shape[0]}, "
                             f"got {y_train.shape[0]}")
        heads = tuple(layer.n_heads for layer in layers)
        D = int(np.prod(heads))
        P, N0, T = x_train.shape
        Q = 0
        if x_test is not None:
            x_test = finite_array("x_test", x_test, ndim=3)
            if x_test.shape[1:] != (N0, T):
                raise InputError(f"x_test must have shape [Q, {N0}, {T}] like x_train, got {x_test.shape}")
            Q = x_test.shape[0]
        kw = {} if memory_budget is None else {"budget": memory_budget}
        check_memory("the path features [P + Q, D, N0]", 8 * (P + Q) * D * N0, **kw)
        check_memory("the kernel matrices (P x P and Q x P)", 8 * (3 * P * P + 2 * min(Q, 2048) * P), **kw)
        xi_train = path_features(x_train, attention_matrices(x_train, layers), readout)
        xi_test = None
        if x_test is not None:
            xi_test = np.concatenate([
                path_features(x_test[s:s + 4096], attention_matrices(x_test[s:s + 4096], layers), readout)
                for s in range(0, Q, 4096)
            ])
        return cls(xi_train, y_train, heads, xi_test, y_test, path_names)
