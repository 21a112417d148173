"""2-way 1-shot in-context classification of handwritten digits (docs/theory.md §6).

The paper's second experiment used Omniglot, which cannot be downloaded here; this task
uses scikit-learn's bundled handwritten digits (1797 images of 8 × 8 pixels, 10 classes),
which ship inside the package.

Episode (one sequence)
----------------------
Two distinct classes are drawn from a split's classes and given the labels +1 and −1 in
random order.  The sequence holds one *support* image of each class, in random order, and
then one *query* image of one of the two classes (a different image from its support).
The target is the label of the query's class, ``y ∈ {+1, −1}``; targets are exactly
balanced.

Tokens (choices where docs/theory.md §6 is silent; see ``docs/pruning.md``)
---------------------------------------------------------------------------
Every image is cut into non-overlapping ``patch × patch`` patches in raster order
(``patch = 4`` gives 4 tokens per image, ``T = 12`` tokens per sequence).  A token is the
concatenation ``[pixels (patch²), code (code_dim)]``:

* pixels: the patch's pixel values, standardised with the mean and standard deviation of
  all pixels of the data set (a fixed affine map; no label information);
* code: a fixed sinusoidal position code of the token's index in the sequence *plus* a
  frozen random role/label embedding: ``e_+`` for tokens of the support image labelled +1,
  ``e_−`` for the support labelled −1 and ``e_q`` for the query's tokens (the query has
  no label).  Position code and embeddings have unit-variance entries.

So ``N0 = patch² + code_dim`` (32 by default) and inputs are ``[example, feature, token]``.

Splits
------
Classes are split into *training classes* (default 0–6) and *held-out classes* (default
7–9).  The images of each training class are split at random (fixed ``split_seed``) into
``train`` / ``val`` / ``test`` pools (60/20/20 %): ``train`` is for gradient descent and the
theory's training set, ``val`` for choosing hyper-parameters (the theory's temperature),
``test`` for the in-distribution test.  Split ``ood`` draws episodes only from the held-out
classes (all of their images): the out-of-distribution test.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..checks import InputError, positive_int
from ..extras import require

SPLITS = ("train", "val", "test", "ood")
IMAGE_SIDE = 8


def _load():
    datasets = require("sklearn.datasets", "digits", "the digits task (scikit-learn's bundled images)")
    d = datasets.load_digits()
    return np.asarray(d.images, dtype=np.float64), np.asarray(d.target, dtype=np.int64)


def sinusoidal_code(n_positions, dim):
    """Fixed sinusoidal position code ``[dim, n_positions]`` with unit-variance entries.

    Entry ``(2i, t) = √2 sin(t / 10000^{2i/dim})``, ``(2i+1, t) = √2 cos(...)`` (Vaswani et al. 2017).
    """
    dim = positive_int("code_dim", dim)
    t = np.arange(n_positions)[None, :]
    i = np.arange(dim)[:, None]
    freq = 1.0 / (10000.0 ** ((2 * (i // 2)) / dim))
    code = np.where(i % 2 == 0, np.sin(t * freq), np.cos(t * freq))
    return np.sqrt(2.0) * code


@dataclass(frozen=True)
class DigitsTask:
    """Generator of 2-way 1-shot episodes of handwritten digits (docs/theory.md §6).

    Parameters
    ----------
    train_classes : tuple of int
        Classes used for training, validation and the in-distribution test.
    heldout_classes : tuple of int
        Classes never seen in training (out-of-distribution test, split ``"ood"``).
    patch : int
        Side of the square patches; must divide 8.
    code_dim : int
        Width of the position/label code concatenated to the pixels (even).
    fractions : tuple of 3 floats
        Train/val/test fractions of every training class's images.
    split_seed : int
        Seed of the image split into pools.
    embed_seed : int
        Seed of the frozen random label embeddings ``e_+, e_−, e_q``.
    """

    train_classes: tuple = (0, 1, 2, 3, 4, 5, 6)
    heldout_classes: tuple = (7, 8, 9)
    patch: int = 4
    code_dim: int = 16
    fractions: tuple = (0.6, 0.2, 0.2)
    split_seed: int = 0
    embed_seed: int = 0
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        try:
            tc = tuple(int(c) for c in self.train_classes)
            hc = tuple(int(c) for c in self.heldout_classes)
        except (TypeError, ValueError):
            raise InputError("train_classes and heldout_classes must be sequences of digit classes 0..9") from None
        for name, cl in (("train_classes", tc), ("heldout_classes", hc)):
            if len(cl) < 2 or len(set(cl)) != len(cl) or any(not 0 <= c <= 9 for c in cl):
                raise InputError(f"{name} must hold at least 2 distinct digit classes in 0..9, got {cl}")
        if set(tc) & set(hc):
            raise InputError(f"train_classes {tc} and heldout_classes {hc} must be disjoint")
        patch = positive_int("patch", self.patch)
        if IMAGE_SIDE % patch:
            raise InputError(f"patch must divide the image side 8 (1, 2, 4 or 8), got {patch}")
        code_dim = positive_int("code_dim", self.code_dim)
        if code_dim % 2:
            raise InputError(f"code_dim must be even (sine/cosine pairs), got {code_dim}")
        fr = tuple(float(f) for f in self.fractions)
        if len(fr) != 3 or any(not f > 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-9:
            raise InputError(f"fractions must be three positive numbers summing to 1, got {self.fractions!r}")
        object.__setattr__(self, "train_classes", tc)
        object.__setattr__(self, "heldout_classes", hc)
        object.__setattr__(self, "patch", patch)
        object.__setattr__(self, "code_dim", code_dim)
        object.__setattr__(self, "fractions", fr)

    # ------------------------------------------------------------------ geometry
    @property
    def tokens_per_image(self):
        return (IMAGE_SIDE // self.patch) ** 2

    @property
    def n_tokens(self):
        """``T = 3 × tokens per image`` (two supports and the query)."""
        return 3 * self.tokens_per_image

    @property
    def input_dim(self):
        """``N0 = patch² + code_dim``."""
        return self.patch ** 2 + self.code_dim

    def to_dict(self):
        return dict(train_classes=list(self.train_classes), heldout_classes=list(self.heldout_classes),
                    patch=self.patch, code_dim=self.code_dim, fractions=list(self.fractions),
                    split_seed=self.split_seed, embed_seed=self.embed_seed)

    # ------------------------------------------------------------------ data
    def _data(self):
        if "data" not in self._cache:
            images, target = _load()
            mean, std = images.mean(), images.std()
            p = self.patch
            k = IMAGE_SIDE // p
            # patches in raster order: [n, k, p, k, p] -> [n, k*k, p*p]
            patches = ((images - mean) / std).reshape(-1, k, p, k, p).transpose(0, 1, 3, 2, 4).reshape(-1, k * k, p * p)
            rng = np.random.default_rng(self.split_seed)
            pools = {s: {} for s in SPLITS}
            for c in self.train_classes:
                idx = rng.permutation(np.flatnonzero(target == c))
                n1 = int(round(self.fractions[0] * len(idx)))
                n2 = n1 + int(round(self.fractions[1] * len(idx)))
                pools["train"][c], pools["val"][c], pools["test"][c] = idx[:n1], idx[n1:n2], idx[n2:]
            for c in self.heldout_classes:
                pools["ood"][c] = np.flatnonzero(target == c)
            erng = np.random.default_rng(self.embed_seed)
            embed = erng.standard_normal((3, self.code_dim))  # e_+, e_-, e_q
            code = sinusoidal_code(self.n_tokens, self.code_dim)  # [code_dim, T]
            self._cache["data"] = (patches, target, pools, embed, code)
        return self._cache["data"]

    def pools(self):
        """Image indices (into ``sklearn.datasets.load_digits()``) per split and class."""
        return self._data()[2]

    def sample(self, n, split="train", seed=0, rng=None, return_meta=False):
        """Draw ``n`` episodes of one split.

        Parameters
        ----------
        n : int
            Number of sequences (targets balanced: ``ceil(n/2)`` of +1).
        split : {"train", "val", "test", "ood"}
        seed : int
            Seed of a NumPy ``Generator`` (ignored if ``rng`` is given).
        return_meta : bool
            Also return a dict with the image indices and classes of every episode.

        Returns
        -------
        x : array [n, N0, T] (``[example, feature, token]``)
        y : array [n] of ±1
        meta : dict (only with ``return_meta``) — ``support`` [n, 2] image indices in sequence
            order, ``support_labels`` [n, 2], ``query`` [n], ``query_class`` [n], ``classes`` [n, 2].
        """
        n = positive_int("n", n)
        if split not in SPLITS:
            raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        rng = np.random.default_rng(seed) if rng is None else rng
        patches, target, pools, embed, code = self._data()
        pool = pools[split]
        classes = np.array(sorted(pool))
        y = np.where(rng.permutation(n) < (n + 1) // 2, 1.0, -1.0)
        # two distinct classes per episode; class 0 of the pair gets label +1
        pair = classes[np.argsort(rng.random((n, len(classes))), axis=1)[:, :2]]
        q_slot = np.where(y > 0, 0, 1)  # the query belongs to the class with label y
        sizes = np.array([len(pool[c]) for c in classes])
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        flat = np.concatenate([pool[c] for c in classes])
        cidx = np.searchsorted(classes, pair)  # [n, 2] positions in `classes`
        size = sizes[cidx]
        pick = np.floor(rng.random((n, 2)) * size).astype(np.int64)  # support image within its class
        sup_imgs = flat[offsets[cidx] + pick]
        rows = np.arange(n)
        qs = size[rows, q_slot]
        qpick = np.floor(rng.random(n) * (qs - 1)).astype(np.int64)  # a different image of the query class
        qpick = qpick + (qpick >= pick[rows, q_slot])
        query = flat[offsets[cidx[rows, q_slot]] + qpick]
        swap = rng.random(n) < 0.5  # random order of the two supports in the sequence
        order = np.where(swap[:, None], [[1, 0]], [[0, 1]])
        seq_imgs = np.take_along_axis(sup_imgs, order, axis=1)
        seq_labels = np.where(order == 0, 1.0, -1.0)
        m = self.tokens_per_image
        pix = np.concatenate([patches[seq_imgs[:, 0]], patches[seq_imgs[:, 1]], patches[query]], axis=1)  # [n,T,p²]
        role = np.concatenate([np.repeat(np.where(seq_labels[:, :1] > 0, 0, 1), m, axis=1),
                               np.repeat(np.where(seq_labels[:, 1:] > 0, 0, 1), m, axis=1),
                               np.full((n, m), 2)], axis=1)  # [n, T] index into embed
        codes = embed[role] + code.T[None]  # [n, T, code_dim]
        x = np.concatenate([pix, codes], axis=2).transpose(0, 2, 1)  # [n, N0, T]
        x = np.ascontiguousarray(x)
        if not return_meta:
            return x, y
        meta = dict(support=seq_imgs, support_labels=seq_labels, query=query, query_class=target[query],
                    classes=pair)
        return x, y, meta
