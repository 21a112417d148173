"""Head scores from the order parameter, head rankings and pruning (docs/theory.md §7).

* :func:`head_scores` — the score of head ``h`` in layer ``ℓ``: unfold ``|U_1|`` into a
  ``2L``-index tensor and sum ``|U_{ππ'}|`` over every pair in which ``π`` or ``π'`` passes
  through ``h`` at layer ``ℓ`` (row slice + column slice − the doubly counted block),
  normalised by the maximum over all heads.
* :func:`rank_heads` — heads ordered from least to most relevant (pruning candidates first).
* :func:`prune` — remove heads from a trained network without retraining: zero the head's
  values ``V^{ℓ,h}`` and rescale the head sum of its layer from ``1/√H`` to ``1/√(H − k)``.
  The result equals the network built without those heads (:func:`remove_heads`).
* :func:`theory_prune_u1` / :func:`theory_pruned_statistics` — the theory-side check: zero the
  rows and columns of ``U_1`` for the paths through the pruned heads and recompute the
  predictor (docs/theory.md §3 predictor statistics).
* :func:`gradient_importance` — the baseline of Michel, Levy & Neubig (2019),
  ``I_h = E_x |∂L/∂ξ_h|`` normalised per layer (ℓ2 norm); the gradients come from the
  trained model (:func:`smtheory.sims.training.head_mask_gradient`).
* :func:`pruning_order` — a global removal order from per-head scores that never empties a layer.

Heads are addressed as ``(layer, head)`` pairs, both 0-based.  Weight dicts are those of
:mod:`smtheory.network` (``{"V0", "V", "a"}``), optionally with the query/key weights
``"Q"``, ``"K"`` of a trained model (:mod:`smtheory.sims.training`); other keys are carried along.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .checks import InputError, finite_array
from .paths import path_index

__all__ = ["head_scores", "rank_heads", "HeadRanking", "pruning_order", "prune", "remove_heads",
           "theory_prune_u1", "theory_pruned_statistics", "gradient_importance", "path_mask"]


def _heads_tuple(heads):
    try:
        heads = tuple(int(h) for h in heads)
    except (TypeError, ValueError):
        raise InputError(f"heads must be a sequence of positive integers, got {heads!r}") from None
    if not heads or any(h <= 0 for h in heads):
        raise InputError(f"heads must be a non-empty sequence of positive integers, got {heads!r}")
    return heads


def _check_u1(U1, heads):
    D = int(np.prod(heads))
    U1 = finite_array("U1", U1, ndim=2)
    if U1.shape != (D, D):
        raise InputError(f"U1 must be D x D = {D} x {D} for heads {heads}, got {U1.shape}")
    return U1


def head_scores(U1, heads, normalize=True):
    """Head scores from the path–path order parameter (docs/theory.md §7).

    Parameters
    ----------
    U1 : array [D, D]
        Path–path order parameter (paths flattened with ``h_1`` most significant, docs/theory.md §2).
    heads : sequence of int
        ``(H_1, ..., H_L)``.
    normalize : bool
        Divide by the maximum score over all heads (docs/theory.md §7). Default True.

    Returns
    -------
    list of arrays [H_ℓ]
        ``score[ℓ][h] = Σ |U_{ππ'}|`` over pairs with ``π_ℓ = h`` or ``π'_ℓ = h``.
    """
    heads = _heads_tuple(heads)
    A = np.abs(_check_u1(U1, heads)).reshape(heads + heads)
    L = len(heads)
    out = []
    for l in range(L):
        row = A.sum(axis=tuple(i for i in range(2 * L) if i != l))  # Σ over pairs with π_ℓ = h
        col = A.sum(axis=tuple(i for i in range(2 * L) if i != L + l))  # π'_ℓ = h
        both = np.diagonal(A.sum(axis=tuple(i for i in range(2 * L) if i not in (l, L + l))))  # π_ℓ = π'_ℓ = h
        out.append(row + col - both)
    if normalize:
        top = max(float(s.max()) for s in out)
        if not top > 0:
            raise InputError("U1 is zero: head scores cannot be normalised")
        out = [s / top for s in out]
    return out


@dataclass
class HeadRanking:
    """Heads ordered from least to most relevant.

    Attributes
    ----------
    order : list of (layer, head)
        Ascending score (pruning candidates first); ties broken by (layer, head).
    scores : list of arrays [H_ℓ]
    method : str
    """

    order: list
    scores: list
    method: str = "theory"

    def score_of(self, layer, head):
        return float(self.scores[layer][head])

    def flat_scores(self):
        """Scores in (layer, head) order as one array."""
        return np.concatenate([np.asarray(s, dtype=float) for s in self.scores])

    def to_dict(self):
        return dict(method=self.method, order=[list(p) for p in self.order],
                    scores=[np.asarray(s).tolist() for s in self.scores])


def _order_from_scores(scores):
    items = [(float(s), l, h) for l, sl in enumerate(scores) for h, s in enumerate(sl)]
    return [(l, h) for _, l, h in sorted(items)]


def rank_heads(U1=None, heads=None, *, scores=None, method="theory"):
    """Rank heads from least to most relevant.

    Parameters
    ----------
    U1 : array [D, D], optional
        Order parameter; the scores are :func:`head_scores` (docs/theory.md §7).
    heads : sequence of int
    scores : list of arrays [H_ℓ], optional
        Precomputed scores of any method (e.g. :func:`gradient_importance`) instead of ``U1``.
    method : str
        A name recorded in the result.

    Returns
    -------
    HeadRanking
    """
    if (U1 is None) == (scores is None):
        raise InputError("give exactly one of U1 (theory scores) or scores")
    if U1 is not None:
        if heads is None:
            raise InputError("heads must be given with U1")
        scores = head_scores(U1, heads)
    else:
        if heads is not None:
            heads = _heads_tuple(heads)
        scores = [finite_array(f"scores[{l}]", s, ndim=1) for l, s in enumerate(scores)]
        if heads is not None and tuple(len(s) for s in scores) != heads:
            raise InputError(f"scores must have one entry per head {heads}, got {[len(s) for s in scores]}")
    return HeadRanking(order=_order_from_scores(scores), scores=scores, method=method)


def pruning_order(order, heads):
    """A removal sequence from a ranking that keeps at least one head in every layer.

    Parameters
    ----------
    order : list of (layer, head)
        All heads, least relevant first (e.g. ``rank_heads(...).order``).
    heads : sequence of int

    Returns
    -------
    list of (layer, head)
        ``Σ H_ℓ − L`` heads: the order with, for every layer, its last remaining head skipped.
    """
    heads = _heads_tuple(heads)
    order = [(int(l), int(h)) for l, h in order]
    expected = {(l, h) for l, H in enumerate(heads) for h in range(H)}
    if sorted(order) != sorted(expected) or len(order) != len(expected):
        raise InputError(f"order must list every (layer, head) of heads {heads} exactly once")
    left = list(heads)
    out = []
    for l, h in order:
        if left[l] > 1:
            out.append((l, h))
            left[l] -= 1
    return out


def _removal(remove, heads, already=()):
    """Validate a list of (layer, head) pairs; return them sorted."""
    try:
        rm = [(int(l), int(h)) for l, h in remove]
    except (TypeError, ValueError):
        raise InputError(f"heads to remove must be (layer, head) pairs, got {remove!r}") from None
    if not rm:
        raise InputError("no heads to remove: pruning with an empty list would be a silent no-op")
    for l, h in rm:
        if not 0 <= l < len(heads) or not 0 <= h < heads[l]:
            raise InputError(f"head (layer={l}, head={h}) does not exist; heads per layer are {list(heads)} "
                             "(0-based indices)")
    if len(set(rm)) != len(rm):
        raise InputError(f"heads to remove contain duplicates: {rm}")
    done = set((int(l), int(h)) for l, h in already)
    again = sorted(set(rm) & done)
    if again:
        raise InputError(f"head(s) {again} were already pruned")
    for l, H in enumerate(heads):
        if sum(1 for p in set(rm) | done if p[0] == l) >= H:
            raise InputError(f"pruning would remove all {H} heads of layer {l}; keep at least one")
    return sorted(rm)


def prune(params, remove):
    """Remove heads from a trained network without retraining (docs/theory.md §7).

    The values ``V^{ℓ,h}`` of every removed head are zeroed and the remaining heads of its
    layer are multiplied by ``√((H − k₀)/(H − k₀ − k))`` so that the head sum carries
    ``1/√(H − k)`` instead of ``1/√H`` (``k₀`` heads already pruned earlier, recorded in
    ``params["pruned"]``).  The output equals that of :func:`remove_heads` exactly.

    Parameters
    ----------
    params : dict
        ``{"V0", "V", "a"}`` (and optionally ``"Q"``, ``"K"``, ``"pruned"``).
    remove : list of (layer, head)
        Heads to remove (0-based); must be non-empty, exist, be distinct, not be pruned
        already, and leave every layer at least one head.

    Returns
    -------
    dict
        A new dict (inputs are not modified) with ``"pruned"``: all removed heads so far.
    """
    if not isinstance(params, dict) or "V" not in params:
        raise InputError("params must be a weight dict with a 'V' entry (list of [H_ℓ, N_{ℓ+1}, N_ℓ] arrays)")
    V = [np.array(v, dtype=np.float64) for v in params["V"]]
    heads = tuple(v.shape[0] for v in V)
    already = [tuple(p) for p in params.get("pruned", [])]
    rm = _removal(remove, heads, already)
    for l, H in enumerate(heads):
        k0 = sum(1 for p in already if p[0] == l)
        new = [h for (ll, h) in rm if ll == l]
        if not new:
            continue
        V[l][new] = 0.0
        V[l] *= np.sqrt((H - k0) / (H - k0 - len(new)))
    out = dict(params)
    out["V"] = V
    out["pruned"] = sorted(set(already) | set(rm))
    return out


def remove_heads(params, remove):
    """The network built without some heads: their ``V`` (and ``Q``, ``K``) slices are deleted.

    Its forward pass uses ``(H_ℓ − k) N_ℓ`` in the head-sum normalisation of docs/theory.md §1.
    """
    if not isinstance(params, dict) or "V" not in params:
        raise InputError("params must be a weight dict with a 'V' entry")
    heads = tuple(np.shape(v)[0] for v in params["V"])
    rm = _removal(remove, heads)
    out = dict(params)
    for key in ("V", "Q", "K"):
        if key in params:
            out[key] = [np.delete(np.asarray(a), [h for (ll, h) in rm if ll == l], axis=0)
                        for l, a in enumerate(params[key])]
    out.pop("pruned", None)
    return out


def path_mask(heads, remove):
    """Boolean [D]: True for the paths that do not pass through any removed head."""
    heads = _heads_tuple(heads)
    rm = set(_removal(remove, heads))
    return np.array([all((l, p[l]) not in rm for l in range(len(heads))) for p in path_index(heads)])


def theory_prune_u1(U1, heads, remove):
    """``U_1`` with the rows and columns of every path through a removed head set to zero (docs/theory.md §7)."""
    heads = _heads_tuple(heads)
    U1 = _check_u1(U1, heads).copy()
    keep = path_mask(heads, remove)
    U1[~keep, :] = 0.0
    U1[:, ~keep] = 0.0
    return U1


def theory_pruned_statistics(problem, spec, U1, remove):
    """Predictor statistics (docs/theory.md §3) with the removed heads' paths zeroed in ``U_1`` (docs/theory.md §7).

    Parameters
    ----------
    problem : KernelProblem (with a test set)
    spec : ModelSpec
    U1 : array [D, D]
    remove : list of (layer, head)

    Returns
    -------
    PredictorStats
    """
    from .predictor import predictor_statistics

    return predictor_statistics(problem, spec, theory_prune_u1(U1, spec.heads, remove))


def gradient_importance(raw):
    """Per-layer ℓ2-normalised head importance (Michel, Levy & Neubig 2019).

    Parameters
    ----------
    raw : list of arrays [H_ℓ]
        ``I_h = E_x |∂L/∂ξ_h|`` per layer (e.g. from :func:`smtheory.sims.training.head_mask_gradient`).

    Returns
    -------
    list of arrays [H_ℓ]
        ``I_h / ‖I_ℓ‖₂`` (a layer whose importances are all zero stays zero).
    """
    out = []
    for l, r in enumerate(raw):
        r = finite_array(f"raw[{l}]", r, ndim=1)
        if np.any(r < 0):
            raise InputError(f"raw[{l}] importances must be non-negative (they are mean absolute gradients)")
        n = np.linalg.norm(r)
        out.append(r / n if n > 0 else r.copy())
    return out
