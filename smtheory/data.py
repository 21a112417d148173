"""Loading a user's own data set from an ``.npz`` file (CLI ``--data``).

Arrays: ``x_train`` [P, N0, T], ``y_train`` [P], ``x_test`` [Q, N0, T], ``y_test`` [Q]
and, per attention layer ℓ = 1, 2, ..., either ``w_layerℓ`` [H_ℓ, N0, N0] (w-style,
``score_st = x_s^T W x_t``, softmax over keys s) or ``q_layerℓ`` and ``k_layerℓ``
[H_ℓ, G, N0] (qk-style).  Every array is checked for shape and finiteness.
"""
from __future__ import annotations

import re
import zipfile

import numpy as np

from .checks import DEFAULT_MEMORY_BUDGET, InputError, check_memory, finite_array, labels
from .attention import AttentionLayer
from .io import check_npz
from .problem import KernelProblem


def load_npz(path, readout="last", memory_budget=DEFAULT_MEMORY_BUDGET):
    """Read an ``.npz`` data set and build its :class:`KernelProblem`.

    Returns
    -------
    problem : KernelProblem
    heads : tuple of int
    """
    check_npz(path, "--data", "numpy.savez (arrays x_train, y_train, x_test, y_test, w_layer1, ...)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        kind = "object arrays need pickle, which is not loaded" if "pickle" in str(exc) else type(exc).__name__
        raise InputError(f"--data: {path!r} is not an .npz archive of plain arrays written by numpy.savez "
                         f"(damaged, or {kind})") from None
    for key in ("x_train", "y_train", "x_test", "y_test"):
        if key not in arrays:
            raise InputError(f"--data: {path!r} has no array {key!r} (found: {', '.join(sorted(arrays)) or 'none'})")
    x_train = finite_array("x_train", arrays["x_train"], ndim=3)
    y_train = labels("y_train", arrays["y_train"])
    x_test = finite_array("x_test", arrays["x_test"], ndim=3)
    y_test = labels("y_test", arrays["y_test"])
    P, N0, T = x_train.shape
    if y_train.shape[0] != P:
        raise InputError(f"y_train must have {P} labels (one per x_train example), got {y_train.shape[0]}")
    if x_test.shape[1:] != (N0, T):
        raise InputError(f"x_test must have shape [Q, {N0}, {T}] like x_train, got {list(x_test.shape)}")
    if y_test.shape[0] != x_test.shape[0]:
        raise InputError(f"y_test must have {x_test.shape[0]} labels (one per x_test example), got {y_test.shape[0]}")

    layer_ids = sorted({int(m.group(2)) for k in arrays if (m := re.fullmatch(r"([wqk])_layer(\d+)", k))})
    if not layer_ids:
        raise InputError("--data: no attention weights found: give w_layer1, w_layer2, ... or q_layer1/k_layer1, ...")
    if layer_ids != list(range(1, len(layer_ids) + 1)):
        raise InputError(f"--data: attention layers must be numbered 1..L without gaps, found {layer_ids}")
    layers = []
    for l in layer_ids:
        name = f"layer {l}"
        if f"w_layer{l}" in arrays:
            if f"q_layer{l}" in arrays or f"k_layer{l}" in arrays:
                raise InputError(f"--data: layer {l} has both w_layer{l} and q/k_layer{l}; give one style")
            W = finite_array(f"w_layer{l}", arrays[f"w_layer{l}"], ndim=3)
            if W.shape[1:] != (N0, N0):
                raise InputError(f"w_layer{l} must have shape [H, {N0}, {N0}], got {list(W.shape)}")
            layers.append(AttentionLayer(W=W, name=name))
        else:
            if f"q_layer{l}" not in arrays or f"k_layer{l}" not in arrays:
                raise InputError(f"--data: layer {l} needs both q_layer{l} and k_layer{l}")
            Q = finite_array(f"q_layer{l}", arrays[f"q_layer{l}"], ndim=3)
            K = finite_array(f"k_layer{l}", arrays[f"k_layer{l}"], ndim=3)
            if Q.shape[2] != N0 or Q.shape != K.shape:
                raise InputError(f"q_layer{l} and k_layer{l} must both have shape [H, G, {N0}], "
                                 f"got {list(Q.shape)} and {list(K.shape)}")
            layers.append(AttentionLayer(Q=Q, K=K, name=name))
    heads = tuple(layer.n_heads for layer in layers)
    D = int(np.prod(heads))
    Q_ = x_test.shape[0]
    check_memory("the attention matrices [P, H, T, T]", 8 * max(P, min(Q_, 4096)) * max(heads) * T * T * 2,
                 memory_budget)
    problem = KernelProblem.from_inputs(x_train, y_train, layers, x_test, y_test, readout=readout,
                                        memory_budget=memory_budget)
    assert problem.n_paths == D
    return problem, heads
