"""Gradient-descent training of the docs/theory.md §1 network with learned query/key weights (docs/theory.md §6).

The "teacher" network of the paper's one-shot experiment: the architecture of docs/theory.md §1
(input projection ``V⁰``, ``L`` attention layers whose heads are *summed* with the factor
``(H_ℓ N_ℓ)^{-1/2}``, linear readout ``a`` with a fixed token readout ``r``), but with
qk-style attention ``score_st = (K x_s)·(Q x_t)/√G`` computed from the *bare* input ``x``,
and with every weight learned by gradient descent (Adam, MSE to ±1 targets): ``Q``, ``K``,
``V⁰``, ``V^{ℓ,h}`` and ``a``.

Parameters are a dict pytree::

    {"Q": [[H_1, G, N0], ...], "K": [[H_1, G, N0], ...],     # one array per layer
     "V0": [N, N0], "V": [[H_1, N, N], ...], "a": [N]}

whose ``{"V0", "V", "a"}`` part is exactly the weight dict of :mod:`smtheory.network`, so the
forward pass is :func:`smtheory.network.forward` on attention matrices computed here, and the
effective weights / sampled ``U_1`` of the trained model come from
:func:`smtheory.network.sampled_order_parameters`.

Everything is pure functions and ``jax.jit``; the data of step ``s`` are drawn from a NumPy
generator seeded with ``(seed, s)``, so a run is reproducible and a resumed run is identical
to an uninterrupted one.  Checkpoints are atomic ``.npz`` files
(:func:`smtheory.sims.checkpoint.save_checkpoint`) holding the parameters, the optimiser state,
the step, and (as metadata) the configuration, seeds, versions and the training curve.
"""
from __future__ import annotations

import json
import math
import os
import time
import zipfile
from dataclasses import asdict, dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax

from smtheory.checks import (DEFAULT_MEMORY_BUDGET, InputError, check_memory, non_negative_int, positive_float,
                                positive_int)
from smtheory.checks import seed as check_seed
from smtheory.attention import AttentionLayer
from smtheory.attention_primitives import qk_scores_jax, softmax_keys_jax
from smtheory.io import check_npz
from smtheory.network import forward, sampled_order_parameters
from smtheory.tasks.digits import DigitsTask
from smtheory.tasks.markov import INPUT_DIM, TOKENS, MarkovTask

from .checkpoint import load_checkpoint, save_checkpoint
from smtheory.precision import needs_float64

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "train", "init_params", "attention", "model_output",
           "loss_fn", "accuracy", "network_weights", "attention_layers", "make_task", "sample_data",
           "load_model", "head_mask_gradient", "effective_u1", "check_data_memory"]

TASKS = ("digits", "markov")


class TrainingDiverged(RuntimeError):
    """Gradient descent produced a non-finite loss or parameters (lower the learning rate)."""


@dataclass
class TrainConfig:
    """Configuration of a gradient-descent run (docs/theory.md §6).

    Parameters
    ----------
    task : {"digits", "markov"}
        2-way 1-shot digits episodes (:mod:`smtheory.tasks.digits`) or the hidden-Markov task
        (docs/theory.md §5, :mod:`smtheory.tasks.markov`).
    heads : tuple of int
        Heads per attention layer ``(H_1, ..., H_L)``.
    width : int
        Common width ``N = N_1 = ... = N_a``.
    qk_dim : int
        Query/key dimension ``G``.
    steps : int
        Adam steps.
    batch_size : int
        Fresh sequences per step (drawn from the training split).
    learning_rate : float
        Adam learning rate (constant).
    seed : int
        Seed of the initial parameters and of the data stream.
    log_every : int
        Steps per point of the training curve (mean train loss of the window, validation loss
        and accuracy on a fixed validation set).
    checkpoint_every : int
        Steps between checkpoints (when a checkpoint path is given).
    eval_size : int
        Size of the fixed validation set.
    readout : {"mean", "last", "first"}, optional
        Token readout; default ``"mean"`` for digits (docs/theory.md §6) and ``"last"`` for Markov (§5).
    task_options : dict
        Digits: keyword arguments of :class:`smtheory.tasks.digits.DigitsTask`.
        Markov: ``p_stay`` and ``noise`` of :class:`smtheory.tasks.markov.MarkovTask`.
    """

    task: str = "digits"
    heads: tuple = (4, 4)
    width: int = 32
    qk_dim: int = 8
    steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 3e-3
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500
    eval_size: int = 500
    readout: str = None
    task_options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.task not in TASKS:
            raise InputError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        heads = self.heads
        if isinstance(heads, (int, np.integer)):
            heads = (heads,)
        try:
            heads = tuple(positive_int(f"heads[{i}]", h) for i, h in enumerate(heads))
        except TypeError:
            raise InputError(f"heads must be a sequence of positive integers, got {self.heads!r}") from None
        if not heads:
            raise InputError("heads must name at least one attention layer")
        self.heads = heads
        self.width = positive_int("width", self.width)
        self.qk_dim = positive_int("qk_dim", self.qk_dim)
        self.steps = positive_int("steps", self.steps)
        self.batch_size = positive_int("batch_size", self.batch_size)
        if self.batch_size < 2:
            raise InputError(f"batch_size must be at least 2 (balanced classes), got {self.batch_size}")
        self.learning_rate = positive_float("learning_rate", self.learning_rate)
        self.seed = check_seed("seed", self.seed)
        self.log_every = positive_int("log_every", self.log_every)
        self.checkpoint_every = positive_int("checkpoint_every", self.checkpoint_every)
        self.eval_size = positive_int("eval_size", self.eval_size)
        if self.eval_size < 2:
            raise InputError(f"eval_size must be at least 2, got {self.eval_size}")
        if self.readout is None:
            self.readout = "mean" if self.task == "digits" else "last"
        if self.readout not in ("mean", "last", "first"):
            raise InputError(f"readout must be 'mean', 'last' or 'first', got {self.readout!r}")
        if not isinstance(self.task_options, dict):
            raise InputError(f"task_options must be a dict, got {type(self.task_options).__name__}")
        make_task(self)  # validates the task options

    def to_dict(self):
        d = asdict(self)
        d["heads"] = list(self.heads)
        return json.loads(json.dumps(d, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        d["heads"] = tuple(d["heads"])
        return cls(**d)


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    params : dict
        Trained parameters (NumPy float64), see the module docstring.
    config : TrainConfig
    curve : dict
        ``step`` (end of each window), ``train_loss`` (mean over the window),
        ``val_loss``, ``val_accuracy`` (fixed validation set) — lists of equal length.
    initial_val_loss, initial_val_accuracy : float
        Before the first step.
    time : float
        Wall time of the steps run in this call (seconds, excluding compilation).
    steps_per_second : float
    checkpoint : str or None
    """

    params: dict
    config: TrainConfig
    curve: dict
    initial_val_loss: float
    initial_val_accuracy: float
    time: float
    steps_per_second: float
    checkpoint: str = None

    @property
    def final_val_accuracy(self):
        return self.curve["val_accuracy"][-1]

    def summary(self):
        c = self.curve
        return dict(initial_val_loss=self.initial_val_loss, initial_val_accuracy=self.initial_val_accuracy,
                    first_train_loss=c["train_loss"][0], final_train_loss=c["train_loss"][-1],
                    final_val_loss=c["val_loss"][-1], final_val_accuracy=c["val_accuracy"][-1],
                    steps=c["step"][-1], time=self.time, steps_per_second=self.steps_per_second)


# --------------------------------------------------------------------------------------- task / data
def make_task(config):
    """The data generator of ``config.task`` (validated)."""
    opts = dict(config.task_options)
    if config.task == "digits":
        try:
            return DigitsTask(**opts)
        except TypeError as exc:
            raise InputError(f"task_options for the digits task: {exc}") from None
    unknown = set(opts) - {"p_stay", "noise"}
    if unknown:
        raise InputError(f"task_options for the markov task accept p_stay and noise, got {sorted(unknown)}")
    return MarkovTask(**{k: tuple(v) for k, v in opts.items()})


def sample_data(task, n, split="train", seed=0):
    """``n`` sequences ``(x [n, N0, T], y [n])`` of a task's split.

    Digits: splits ``train``, ``val``, ``test``, ``ood`` (see :mod:`smtheory.tasks.digits`).
    Markov (docs/theory.md §5): ``train``/``val``/``test`` are independent draws of the task (the seed is
    offset per split so they never coincide); ``ood`` uses the noisier variant of docs/theory.md §5
    (complement noise 5 instead of the task's value).
    """
    n = check_data_memory(task, n, split)
    seed = non_negative_int("seed", seed)
    if isinstance(task, MarkovTask):
        offsets = {"train": 0, "val": 1, "test": 2, "ood": 3}
        if split not in offsets:
            raise InputError(f"split must be one of {', '.join(offsets)}, got {split!r}")
        if n % 2:
            raise InputError(f"n must be even for the Markov task (balanced classes), got {n}")
        t = MarkovTask(p_stay=task.p_stay, noise=(task.noise[0], task.noise[1], 5.0)) if split == "ood" else task
        rng = np.random.default_rng([int(seed), offsets[split], 7919])
        x, y, _ = t.sample(n // 2, rng=rng)
        perm = rng.permutation(n)
        return x[perm], y[perm]
    return task.sample(n, split=split, seed=seed)


def check_data_memory(task, n, split="train", budget=DEFAULT_MEMORY_BUDGET):
    """Refuse, before generating anything, ``n`` sequences whose arrays would exceed ``budget`` bytes.

    Returns ``n`` as a validated positive int; the message gives the estimate.
    """
    n = positive_int("n", n)
    n0, n_tokens = _input_shape(task)
    check_memory(f"{n} sequences of the {split!r} split ([{n}, {n0}, {n_tokens}] float64, with temporaries)",
                 3 * 8 * n * n0 * n_tokens, budget, hint="ask for fewer sequences (--n-test, --n-train, --n-val)")
    return n


def _input_shape(task):
    if isinstance(task, MarkovTask):
        return INPUT_DIM, TOKENS
    return task.input_dim, task.n_tokens


# --------------------------------------------------------------------------------------- model
def init_params(config, n0, seed=None):
    """Initial parameters: ``V⁰, V, a ~ N(0, 1)`` (the prior of docs/theory.md §1), ``Q, K ~ N(0, 1/N0)``.

    Returns a dict of JAX float64 arrays (see the module docstring).
    """
    n0 = positive_int("n0", n0)
    key = jax.random.PRNGKey(config.seed if seed is None else seed)
    L = len(config.heads)
    keys = jax.random.split(key, 3 * L + 2)
    N, G = config.width, config.qk_dim
    Q = [jax.random.normal(keys[l], (h, G, n0)) / math.sqrt(n0) for l, h in enumerate(config.heads)]
    K = [jax.random.normal(keys[L + l], (h, G, n0)) / math.sqrt(n0) for l, h in enumerate(config.heads)]
    V = [jax.random.normal(keys[2 * L + l], (h, N, N)) for l, h in enumerate(config.heads)]
    V0 = jax.random.normal(keys[3 * L], (N, n0))
    a = jax.random.normal(keys[3 * L + 1], (N,))
    return {"Q": Q, "K": K, "V0": V0, "V": V, "a": a}


def attention(params, x):
    """Attention matrices ``Ω^{ℓ,h}(x)`` ``[P, H_ℓ, key, query]`` from the bare input (docs/theory.md §1).

    ``score_st = (K x_s)·(Q x_t)/√G``, softmax over the key axis (every column sums to 1): the core JAX
    primitives :func:`smtheory.attention_primitives.qk_scores_jax` and
    :func:`smtheory.attention_primitives.softmax_keys_jax` (the differentiable twins of
    :func:`smtheory.attention.qk_scores` and :func:`smtheory.attention.softmax_keys`).
    """
    return [softmax_keys_jax(qk_scores_jax(x, Q, K)) for Q, K in zip(params["Q"], params["K"])]


def network_weights(params, head_mask=None):
    """The Bayesian-weight part ``{"V0", "V", "a"}`` (the weight dict of :mod:`smtheory.network`).

    With ``head_mask`` (list of ``[H_ℓ]`` arrays) every ``V^{ℓ,h}`` is multiplied by ``ξ_{ℓ,h}``:
    the head-mask variables of Michel et al. (2019).
    """
    V = list(params["V"])
    if head_mask is not None:
        V = [v * m[:, None, None] for v, m in zip(V, head_mask)]
    return {"V0": params["V0"], "V": V, "a": params["a"]}


def model_output(params, x, readout="mean", head_mask=None):
    """Network output ``f(x)`` [P] (docs/theory.md §1 forward pass with learned qk attention)."""
    return forward(network_weights(params, head_mask), x, attention(params, x), readout)


def loss_fn(params, x, y, readout="mean", head_mask=None):
    """Mean squared error ``mean((f(x) − y)²)`` to ±1 targets."""
    return jnp.mean((model_output(params, x, readout, head_mask) - y) ** 2)


_output_jit = jax.jit(model_output, static_argnames=("readout",))
_loss_jit = jax.jit(loss_fn, static_argnames=("readout",))


def _to_jax(params):
    return jax.tree_util.tree_map(jnp.asarray, params)


def predict(params, x, readout="mean", chunk=2048):
    """``f(x)`` as a NumPy array, in chunks of examples."""
    p = _to_jax(params)
    x = np.asarray(x, dtype=np.float64)
    return np.concatenate([np.asarray(_output_jit(p, jnp.asarray(x[s:s + chunk]), readout))
                           for s in range(0, x.shape[0], chunk)])


def accuracy(params, x, y, readout="mean"):
    """Fraction of sequences with ``sign f(x) = y``."""
    return float(np.mean(np.sign(predict(params, x, readout)) == np.asarray(y)))


_MASK_GRAD = {}  # jitted per-example mask gradients, one per readout


def head_mask_gradient(params, x, y, readout="mean"):
    """``|∂L/∂ξ_{ℓ,h}|`` per example, averaged: the head importance of Michel et al. (2019) (docs/theory.md §7).

    ``L`` is the per-example squared error, the head mask variables ``ξ`` multiply every head's
    output and are evaluated at 1 (or at the mask in ``params["mask"]`` if present, so already
    pruned heads keep mask 0).  Not normalised; see :func:`smtheory.pruning.gradient_importance`.

    Returns
    -------
    list of arrays [H_ℓ]
    """
    p = _to_jax({k: v for k, v in params.items() if k in ("Q", "K", "V0", "V", "a")})
    mask = [jnp.ones(v.shape[0]) for v in p["V"]]
    if readout not in _MASK_GRAD:
        def per_example(m, pp, xi, yi):
            return jnp.sum((model_output(pp, xi[None], readout, m) - yi) ** 2)
        _MASK_GRAD[readout] = jax.jit(jax.vmap(jax.grad(per_example), in_axes=(None, None, 0, 0)))
    g = _MASK_GRAD[readout](mask, p, jnp.asarray(x), jnp.asarray(y))
    return [np.asarray(jnp.mean(jnp.abs(gl), axis=0)) for gl in g]


def attention_layers(params):
    """The trained query/key weights as :class:`smtheory.attention.AttentionLayer` objects (qk-style)."""
    return [AttentionLayer(Q=np.asarray(Q), K=np.asarray(K), name=f"layer {l + 1}")
            for l, (Q, K) in enumerate(zip(params["Q"], params["K"]))]


def effective_u1(params):
    """``U_1 = (1/N_1) w_π · w_π'`` from the trained weights' effective weights (docs/theory.md §2–3)."""
    Us, _ = sampled_order_parameters({k: np.asarray(v) if k != "V" else [np.asarray(u) for u in v]
                                      for k, v in network_weights(params).items()})
    return Us[0]


# --------------------------------------------------------------------------------------- training
def _step_data(task, config, step):
    return sample_data(task, config.batch_size, "train", seed=config.seed * 1_000_003 + step)


def _make_update(optimizer, readout):
    @jax.jit
    def update(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y, readout)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss
    return update


def _evaluate(params, x, y, readout):
    f = np.asarray(_output_jit(params, x, readout))
    y = np.asarray(y)
    return float(np.mean((f - y) ** 2)), float(np.mean(np.sign(f) == y))


def _read_metadata(path, what="checkpoint"):
    """The metadata of a training checkpoint; a foreign, text or damaged file is refused by name."""
    check_npz(path, what, "smtheory train (smtheory.sims.training.train)")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["__header__"][()]))["metadata"]
    except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile) as exc:
        raise InputError(f"{what}: {path!r} is not a checkpoint written by smtheory train (smtheory.sims.training.train) "
                         f"(no readable header: {type(exc).__name__})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{what}: {path!r} is not a checkpoint written by smtheory train (smtheory.sims.training.train)")
    return meta


@dataclass
class _Run:
    """The state of one :func:`train` call: parameters, optimiser state, step, curve and validation set."""

    params: dict
    opt_state: object
    x_val: object
    y_val: object
    n0: int
    init_loss: float
    init_acc: float
    curve: dict = field(default_factory=lambda: dict(step=[], train_loss=[], val_loss=[], val_accuracy=[]))
    start: int = 0
    step: int = 0


def _start_run(config, task, n0, optimizer):
    """Initial parameters (seed ``config.seed``), optimiser state and the fixed validation set, evaluated."""
    params = init_params(config, n0)
    opt_state = optimizer.init(params)
    x_val, y_val = sample_data(task, config.eval_size, "val", seed=config.seed + 10_007)
    x_val, y_val = jnp.asarray(x_val), jnp.asarray(y_val)
    init_loss, init_acc = _evaluate(params, x_val, y_val, config.readout)
    return _Run(params=params, opt_state=opt_state, x_val=x_val, y_val=y_val, n0=n0, init_loss=init_loss,
                init_acc=init_acc)


def _check_resumable(config, checkpoint, meta):
    """Refuse a checkpoint not written by :func:`train` or written with another configuration (but ``steps``)."""
    if meta.get("kind") != "smtheory.sims.training" or not isinstance(meta.get("config"), dict):
        raise InputError(f"checkpoint: {checkpoint!r} is not a checkpoint written by smtheory train "
                         "(smtheory.sims.training.train)")
    saved = TrainConfig.from_dict(meta["config"])
    mine = config.to_dict()
    theirs = saved.to_dict()
    mine.pop("steps"), theirs.pop("steps")
    if mine != theirs:
        diff = sorted(k for k in mine if mine[k] != theirs.get(k))
        raise InputError(f"checkpoint {checkpoint!r} was written with a different configuration ({diff})")


def _resume_run(run, config, checkpoint):
    """Replace the state of ``run`` by the one saved in ``checkpoint`` (parameters, optimiser, step, curve)."""
    _check_resumable(config, checkpoint, _read_metadata(checkpoint))
    state, meta = load_checkpoint(checkpoint, {"params": run.params, "opt_state": run.opt_state, "step": 0})
    run.params, run.opt_state, run.start = state["params"], state["opt_state"], state["step"]
    run.step = run.start
    run.curve = {k: list(v) for k, v in meta["curve"].items()}
    run.init_loss, run.init_acc = meta["initial_val_loss"], meta["initial_val_accuracy"]
    if run.start > config.steps:
        raise InputError(f"checkpoint {checkpoint!r} is at step {run.start}, beyond steps={config.steps}")


def _save_run(run, config, checkpoint):
    """Write ``run`` atomically to ``checkpoint`` (nothing when no path is given)."""
    if checkpoint:
        save_checkpoint(checkpoint, {"params": run.params, "opt_state": run.opt_state, "step": int(run.step)},
                        metadata=dict(config=config.to_dict(), seeds=dict(seed=config.seed), curve=run.curve,
                                      initial_val_loss=run.init_loss, initial_val_accuracy=run.init_acc,
                                      task=config.task, n0=run.n0, kind="smtheory.sims.training"))


def _log_window(run, losses, config, progress):
    """Append one point (mean train loss of the window, validation loss and accuracy) to the curve.

    Raises
    ------
    TrainingDiverged
        If a loss of the window or the validation loss is non-finite.
    """
    step = run.step
    if not np.all(np.isfinite(losses)):
        bad = step - len(losses) + int(np.flatnonzero(~np.isfinite(losses))[0]) + 1
        raise TrainingDiverged(f"training diverged: the loss became non-finite at step {bad} "
                               f"(learning_rate={config.learning_rate}); lower the learning rate")
    vl, va = _evaluate(run.params, run.x_val, run.y_val, config.readout)
    if not np.isfinite(vl):
        raise TrainingDiverged(f"training diverged: non-finite validation loss at step {step} "
                               f"(learning_rate={config.learning_rate}); lower the learning rate")
    curve = run.curve
    curve["step"].append(step)
    curve["train_loss"].append(float(losses.mean()))
    curve["val_loss"].append(vl)
    curve["val_accuracy"].append(va)
    if progress is not None:
        progress(step, curve["train_loss"][-1], vl, va)


def _run_steps(run, update, task, config, checkpoint, progress):
    """Adam steps from ``run.step`` to ``config.steps``, logging and checkpointing on the way.

    Returns
    -------
    float
        Wall time of the steps (seconds; data generation, evaluation and checkpoints excluded).
    """
    elapsed = 0.0
    window = []
    while run.step < config.steps:
        x, y = _step_data(task, config, run.step)
        t0 = time.perf_counter()
        run.params, run.opt_state, loss = update(run.params, run.opt_state, jnp.asarray(x), jnp.asarray(y))
        window.append(loss)
        run.step += 1
        if run.step % config.log_every == 0 or run.step == config.steps:
            losses = np.asarray(jnp.stack(window))
            elapsed += time.perf_counter() - t0
            _log_window(run, losses, config, progress)
            window = []
            if run.step % config.checkpoint_every == 0 or run.step == config.steps:
                _save_run(run, config, checkpoint)
        else:
            elapsed += time.perf_counter() - t0
    return elapsed


def _train_result(run, config, elapsed, checkpoint):
    """The :class:`TrainResult` of a finished run (NumPy parameters)."""
    if not run.curve["step"]:
        raise InputError(f"nothing to do: the checkpoint is already at step {run.start} = steps")
    params_np = jax.tree_util.tree_map(np.asarray, run.params)
    n_run = config.steps - run.start
    return TrainResult(params=params_np, config=config, curve=run.curve, initial_val_loss=run.init_loss,
                       initial_val_accuracy=run.init_acc, time=elapsed,
                       steps_per_second=n_run / elapsed if elapsed > 0 else float("nan"), checkpoint=checkpoint)


@needs_float64
def train(config, checkpoint=None, resume=False, progress=None):
    """Train the network by Adam on the MSE to ±1 (docs/theory.md §6).

    Parameters
    ----------
    config : TrainConfig
    checkpoint : str, optional
        ``.npz`` path, written atomically every ``config.checkpoint_every`` steps and at the end.
    resume : bool
        Continue from ``checkpoint`` if it exists (its configuration must equal ``config``, except
        that ``steps`` may be larger); the result is identical to an uninterrupted run.
    progress : callable(step, train_loss, val_loss, val_accuracy), optional

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingDiverged
        If the loss or the parameters become non-finite.
    """
    if not isinstance(config, TrainConfig):
        raise InputError(f"config must be a TrainConfig, got {type(config).__name__}")
    if resume and not checkpoint:
        raise InputError("resume=True needs a checkpoint path")
    task = make_task(config)
    n0, _ = _input_shape(task)
    optimizer = optax.adam(config.learning_rate)
    run = _start_run(config, task, n0, optimizer)
    if resume and os.path.exists(checkpoint):
        _resume_run(run, config, checkpoint)
    update = _make_update(optimizer, config.readout)
    x0, y0 = _step_data(task, config, run.start)
    jax.block_until_ready(update(run.params, run.opt_state, jnp.asarray(x0), jnp.asarray(y0)))  # compile
    elapsed = _run_steps(run, update, task, config, checkpoint, progress)
    return _train_result(run, config, elapsed, checkpoint)


def load_model(path):
    """Load a trained model written by :func:`train`.

    Returns
    -------
    TrainResult
        ``time`` and ``steps_per_second`` are NaN (not recorded); ``curve`` is the full curve.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"--model: {path!r} does not exist (no such file)")
    meta = _read_metadata(path, "--model")
    if meta.get("kind") != "smtheory.sims.training":
        raise InputError(f"--model: {path!r} is not a checkpoint written by smtheory train (smtheory.sims.training.train)"
                         + (" (it is a sampling checkpoint)" if "fingerprint" in meta or "done" in meta else ""))
    config = TrainConfig.from_dict(meta["config"])
    params = init_params(config, meta["n0"])
    opt_state = optax.adam(config.learning_rate).init(params)
    state, meta = load_checkpoint(path, {"params": params, "opt_state": opt_state, "step": 0})
    if state["step"] < config.steps:
        raise InputError(f"{path!r} holds an unfinished run (step {state['step']} of {config.steps}); "
                         "finish it with resume")
    params_np = jax.tree_util.tree_map(np.asarray, state["params"])
    return TrainResult(params=params_np, config=config, curve=meta["curve"], initial_val_loss=meta["initial_val_loss"],
                       initial_val_accuracy=meta["initial_val_accuracy"], time=float("nan"),
                       steps_per_second=float("nan"), checkpoint=path)
