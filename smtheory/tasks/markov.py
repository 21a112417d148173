"""The hidden-Markov-chain task (docs/theory.md §5), its designed heads and networks.

Sequences of ``n_steps = 30`` hidden states ``η_t ∈ {+1, −1}`` (``η_1`` uniform, stay
with probability 0.7 for class ``y = +1`` and 0.3 for ``y = −1``); token ``t`` is
``v_{η_t}`` plus Gaussian noise split into three orthogonal parts with separate
standard deviations (the "strengths"); a zero BOS token is prepended and a one-hot
position code of size 31 is concatenated: ``x ∈ R^{231 × 31}``.

Convention (documented choice where docs/theory.md §5 is silent): a noise "strength" is a
multiplier of the standard deviation of that component; the designed-head
factor β multiplies the whole W of every head, random heads included; the two
off-diagonal blocks of a random head are drawn independently.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..checks import DEFAULT_MEMORY_BUDGET, InputError, positive_int, seed as check_seed
from ..attention import AttentionLayer
from ..problem import KernelProblem, check_problem_memory

FEATURES = 200
STEPS = 30
TOKENS = STEPS + 1  # BOS prepended
INPUT_DIM = FEATURES + TOKENS  # 231


def state_vectors(d=FEATURES):
    """``v+ = √2 [1 (×d/2), 0 (×d/2)]``, ``v− = √2 [0, 1]``."""
    half = d // 2
    v_plus = np.zeros(d)
    v_minus = np.zeros(d)
    v_plus[:half] = np.sqrt(2.0)
    v_minus[half:] = np.sqrt(2.0)
    return v_plus, v_minus


@dataclass(frozen=True)
class MarkovTask:
    """Generator of the hidden-Markov classification task.

    Parameters
    ----------
    p_stay : tuple (p for y = +1, p for y = −1)
    noise : tuple of three standard deviations
        Along ``(v+ + v−)/|·|``, along ``(v+ − v−)/|·|``, and in the 198-dimensional complement.
    """

    p_stay: tuple = (0.7, 0.3)
    noise: tuple = (1.0, 1.0, 1.0)

    def __post_init__(self):
        if len(self.p_stay) != 2 or not all(0.0 <= float(p) <= 1.0 for p in self.p_stay):
            raise InputError(f"p_stay must be two probabilities in [0, 1], got {self.p_stay!r}")
        if len(self.noise) != 3 or not all(np.isfinite(s) and s >= 0 for s in self.noise):
            raise InputError(f"noise must be three non-negative standard deviations, got {self.noise!r}")

    def hidden_states(self, labels, rng):
        """Hidden chains ``η`` [n, 30] for labels ±1 — vectorised, no per-token Python loop."""
        n = labels.shape[0]
        p = np.where(labels > 0, self.p_stay[0], self.p_stay[1])[:, None]
        first = rng.choice(np.array([-1, 1], dtype=np.int8), size=(n, 1))
        flips = rng.random((n, STEPS - 1)) >= p
        sign = np.where(np.cumsum(flips, axis=1) % 2 == 0, 1, -1).astype(np.int8)
        return np.concatenate([first, first * sign], axis=1)

    def sample(self, n_per_class, seed=0, rng=None, dtype=np.float64, chunk=4096):
        """Draw a balanced data set.

        Parameters
        ----------
        n_per_class : int
        seed : int
            Seed of a NumPy ``Generator`` (ignored if ``rng`` is given).
        dtype : numpy dtype
            Of ``x`` (float32 halves the memory of very large samples).
        chunk : int
            Sequences generated per block (bounds the temporary memory).

        Returns
        -------
        x : array [2 n, 231, 31] (``[example, feature, token]``)
        y : array [2 n] of ±1 (first half +1, second half −1)
        eta : array [2 n, 30] hidden states
        """
        n_per_class = positive_int("n_per_class", n_per_class)
        rng = np.random.default_rng(check_seed("seed", seed)) if rng is None else rng
        y = np.concatenate([np.ones(n_per_class), -np.ones(n_per_class)])
        eta = self.hidden_states(y, rng)
        n = y.shape[0]
        x = np.zeros((n, INPUT_DIM, TOKENS), dtype=dtype)
        x[:, FEATURES + np.arange(TOKENS), np.arange(TOKENS)] = 1.0
        half = FEATURES // 2
        s1, s2, s3 = self.noise
        root2, norm = np.sqrt(2.0), np.sqrt(FEATURES)
        for start in range(0, n, chunk):
            sl = slice(start, min(n, start + chunk))
            z = rng.standard_normal((sl.stop - sl.start, FEATURES, STEPS), dtype=np.dtype(dtype).type)
            # e1 = (v+ + v-)/|.| = 1/sqrt(d) everywhere; e2 = (v+ - v-)/|.| = ±1/sqrt(d) on the two halves.
            top = z[:, :half].sum(axis=1)
            bottom = z[:, half:].sum(axis=1)
            c1 = (top + bottom) / norm
            c2 = (top - bottom) / norm
            # noise = s3 z + (s1 - s3)(z·e1) e1 + (s2 - s3)(z·e2) e2, plus the clean token v_eta
            a = (s1 - s3) * c1 / norm
            b = (s2 - s3) * c2 / norm
            up = eta[sl] > 0
            z *= s3
            z[:, :half] += (a + b + root2 * up)[:, None, :]
            z[:, half:] += (a - b + root2 * ~up)[:, None, :]
            x[sl, :FEATURES, 1:] = z
        return x, y, eta


def _blocks(feature, position, cross_fp=None, cross_pf=None):
    W = np.zeros((INPUT_DIM, INPUT_DIM))
    W[:FEATURES, :FEATURES] = feature
    W[FEATURES:, FEATURES:] = position
    if cross_fp is not None:
        W[:FEATURES, FEATURES:] = cross_fp
        W[FEATURES:, :FEATURES] = cross_pf
    return W


def good_head(beta=10.0):
    """"Same-token" head: query t attends to t−1 if in the same state, else to BOS."""
    v_plus, v_minus = state_vectors()
    q = (v_plus - v_minus) / FEATURES
    pos = np.zeros((TOKENS, TOKENS))
    real = np.arange(1, TOKENS - 1)
    pos[real, real + 1] = 1.0  # key i, query i + 1 (real tokens only)
    pos[0, 1:] = 1.5  # BOS row for every non-BOS query
    return beta * _blocks(np.outer(q, q), pos)


def uniform_head(beta=10.0):
    """Uniform attention: feature block 0, position block all ones."""
    return beta * _blocks(np.zeros((FEATURES, FEATURES)), np.ones((TOKENS, TOKENS)))


def random_head(strength=1.0, beta=10.0, rng=None, seed=0):
    """Random head of strength ``p`` (``p = 0`` gives uniform attention)."""
    rng = np.random.default_rng(seed) if rng is None else rng
    p = float(strength)
    feature = p * rng.standard_normal((FEATURES, FEATURES)) / FEATURES
    position = p * rng.standard_normal((TOKENS, TOKENS))
    fp = p * rng.standard_normal((FEATURES, TOKENS)) / np.sqrt(FEATURES)
    pf = p * rng.standard_normal((TOKENS, FEATURES)) / np.sqrt(FEATURES)
    return beta * _blocks(feature, position, fp, pf)


#: Path names of the two designed networks (flattened order, h_1 most significant).
PATH_NAMES = {4: ["g", "a1", "d", "a2"], 2: ["g", "d"]}
HEAD_NAMES = {4: [["good", "random"], ["uniform", "random"]], 2: [["good", "uniform"], ["uniform"]]}


def network_layers(paths=4, seed=0, beta=10.0):
    """Attention layers of the designed networks of docs/theory.md §5.

    ``paths=4``: layer 1 [good, random(p=1)], layer 2 [uniform, random(p=1)];
    paths (flattened) g=(good,uniform), a1=(good,random), d=(random,uniform), a2=(random,random).
    ``paths=2``: layer 1 [good, uniform], layer 2 [uniform].
    """
    rng = np.random.default_rng(seed)
    if paths == 4:
        l1 = np.stack([good_head(beta), random_head(1.0, beta, rng)])
        l2 = np.stack([uniform_head(beta), random_head(1.0, beta, rng)])
    elif paths == 2:
        l1 = np.stack([good_head(beta), uniform_head(beta)])
        l2 = np.stack([uniform_head(beta)])
    else:
        raise InputError(f"paths must be 4 or 2 for the Markov task, got {paths!r}")
    return [AttentionLayer(W=l1, name="layer 1"), AttentionLayer(W=l2, name="layer 2")]


def task_for(paths):
    """The data generator of each network (the 2-path network uses the noisier data)."""
    return MarkovTask(noise=(1.0, 1.0, 1.0)) if paths == 4 else MarkovTask(noise=(1.0, 1.0, 5.0))


#: Sub-networks for the GP baselines: kept heads per layer.
SUBNETWORKS = {
    4: {"g": [[0], [0]], "g+d": [[0, 1], [0]], "all": [[0, 1], [0, 1]]},
    2: {"g": [[0], [0]], "g+d": [[0, 1], [0]]},
}


def markov_problem(paths=4, n_train=100, n_test=1000, seed=0, head_seed=0, memory_budget=DEFAULT_MEMORY_BUDGET):
    """The kernel problem of the Markov task: path features of train and test sets.

    Parameters
    ----------
    paths : {4, 2}
    n_train, n_test : int
        Total (balanced) numbers of sequences; must be even.
    seed : int
        Data seed in [0, 2**32 - 1) (train uses ``seed``, test ``seed + 1``).
    head_seed : int
        Seed of the random heads, in [0, 2**32).
    memory_budget : int
        Bytes.  The memory of the data, attention matrices, path features and kernels is estimated
        *before* anything is generated, and a larger problem is refused with the estimate in the message.

    Raises
    ------
    InputError
        Bad sizes, seeds or ``paths``, or a problem over the memory budget.
    """
    n_train = positive_int("n_train", n_train)
    n_test = positive_int("n_test", n_test)
    if n_train % 2 or n_test % 2:
        raise InputError(f"n_train and n_test must be even (balanced classes), got {n_train} and {n_test}")
    if paths not in PATH_NAMES or isinstance(paths, bool):
        raise InputError(f"paths must be 4 or 2 for the Markov task, got {paths!r}")
    seed = check_seed("seed", seed, span=2)
    head_seed = check_seed("head_seed", head_seed)
    heads = (2, 2) if paths == 4 else (2, 1)
    check_problem_memory(n_train, n_test, INPUT_DIM, TOKENS, heads, memory_budget)
    task = task_for(paths)
    layers = network_layers(paths, seed=head_seed)
    x_tr, y_tr, _ = task.sample(n_train // 2, seed=seed)
    x_te, y_te, _ = task.sample(n_test // 2, seed=seed + 1)
    return KernelProblem.from_inputs(x_tr, y_tr, layers, x_te, y_te, readout="last", path_names=PATH_NAMES[paths],
                                     memory_budget=memory_budget)
