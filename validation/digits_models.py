"""Trained teacher models as tasks of the experiment engine (docs/theory.md §6).

The digits experiments (:mod:`smtheory.validation.digits`, :mod:`smtheory.validation.pruning_stats`)
need gradient-descent-trained networks whose query/key weights the theory then keeps fixed.  Each
(architecture, seed) is one :class:`~smtheory.validation.engine.Task`: it trains the network
(:func:`smtheory.sims.training.train`, resuming its own checkpoint after an interruption) and saves the
checkpoint in ``OUT/models/``; its stored result is the training summary and the checkpoint path, so a
rerun reuses the model.  :func:`load_trained` reads the checkpoint back (and retrains, bit-identically,
when the file was removed).
"""
from __future__ import annotations

import math
import os

from smtheory.records import RECORD_SCHEMA

__all__ = ["model_tag", "model_path", "model_task", "train_model", "load_trained", "at_chance"]


def model_tag(train_config):
    """``"h4x4-s0"``: the architecture and seed of a :class:`~smtheory.sims.training.TrainConfig`."""
    return "h" + "x".join(str(h) for h in train_config.heads) + f"-s{train_config.seed}"


def model_path(out_dir, train_config):
    """The checkpoint ``OUT/models/<task>_<tag>.npz`` of a trained model."""
    return os.path.join(out_dir, "models", f"{train_config.task}_{model_tag(train_config)}.npz")


def train_model(config_dict, path):
    """Train (or finish training) one model into ``path``; the function of a model task.

    Parameters
    ----------
    config_dict : dict
        :meth:`smtheory.sims.training.TrainConfig.to_dict`.
    path : str
        Checkpoint file (resumed when it holds an unfinished run of the same configuration).

    Returns
    -------
    dict
        ``checkpoint``, ``config``, the training summary (:meth:`TrainResult.summary`) and the curve.
    """
    from smtheory.sims.training import TrainConfig, train

    config = TrainConfig.from_dict(config_dict)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    res = train(config, checkpoint=path, resume=os.path.exists(path))
    return dict(checkpoint=path, config=config.to_dict(), summary=res.summary(), curve=res.curve)


def model_task(train_config, out_dir):
    """The engine task that trains ``train_config`` into :func:`model_path` (label ``model-h4x4-s0``)."""
    from .engine import Task

    key = dict(stage="trained-model", train=train_config.to_dict(), record_schema=RECORD_SCHEMA)
    cost = train_config.steps * train_config.batch_size * sum(train_config.heads) * 1e-3
    return Task(key=key, fn=train_model, args=(train_config.to_dict(), model_path(out_dir, train_config)),
                label=f"model-{model_tag(train_config)}", cost=cost)


def load_trained(result):
    """The :class:`~smtheory.sims.training.TrainResult` of a model task's result (retrained if the file is gone)."""
    from smtheory.sims.training import load_model

    path = result["checkpoint"]
    if not os.path.isfile(path):
        train_model(result["config"], path)
    return load_model(path)


def at_chance(accuracy, n):
    """True when ``accuracy`` on ``n`` balanced examples is within 2 binomial standard errors of 0.5."""
    return abs(float(accuracy) - 0.5) <= 2.0 * math.sqrt(0.25 / n)
