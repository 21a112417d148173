"""Gradient-descent training of the learned-QK network (docs/theory.md §1, §6)."""
import jax
import numpy as np
import pytest

import smtheory as smt
from smtheory.sims.training import (TrainConfig, TrainingDiverged, accuracy, attention, attention_layers, effective_u1,
                           head_mask_gradient, init_params, load_model, make_task, model_output, predict,
                           sample_data, train)

TINY = dict(heads=(2, 2), width=16, qk_dim=4, batch_size=32, log_every=50, eval_size=200)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("train") / "model.npz"
    cfg = TrainConfig(steps=400, learning_rate=5e-3, **TINY)
    return train(cfg, checkpoint=str(path))


def _np(params):
    return jax.tree_util.tree_map(np.asarray, params)


def test_training_reduces_loss_and_beats_chance(trained):
    c = trained.curve
    assert c["train_loss"][-1] < 0.6 * c["train_loss"][0]
    assert c["val_loss"][-1] < 0.5 * trained.initial_val_loss
    task = make_task(trained.config)
    x, y = sample_data(task, 400, "test", seed=123)
    acc = accuracy(trained.params, x, y, "mean")
    # chance is 0.5; 0.65 is more than 6 binomial standard deviations above it for 400 sequences
    assert acc > 0.65, acc
    x, y = sample_data(task, 400, "ood", seed=123)
    assert accuracy(trained.params, x, y, "mean") > 0.58


def test_forward_matches_package_attention_and_network():
    cfg = TrainConfig(steps=1, **TINY)
    params = _np(init_params(cfg, 32, seed=3))
    x, _ = sample_data(make_task(cfg), 7, "val", seed=0)
    layers = attention_layers(params)
    om_np = smt.attention_matrices(x, layers)
    om_jax = attention(jax.tree_util.tree_map(jax.numpy.asarray, params), jax.numpy.asarray(x))
    for a, b in zip(om_np, om_jax):
        assert np.allclose(a, np.asarray(b), atol=1e-12)
    w = {"V0": params["V0"], "V": params["V"], "a": params["a"]}
    f_pkg = smt.forward(w, x, om_np, "mean")
    assert np.allclose(predict(params, x, "mean"), f_pkg, atol=1e-10)
    # effective-weights U_1 reproduces the output in path form (docs/theory.md §2)
    xi = smt.path_features(x, om_np, "mean")
    assert np.allclose(smt.path_form(w, xi), f_pkg, atol=1e-10)
    U = effective_u1(params)
    assert U.shape == (4, 4) and np.allclose(U, U.T)


def test_checkpoint_resume_matches_uninterrupted(tmp_path):
    full = train(TrainConfig(steps=60, checkpoint_every=20, **{**TINY, "log_every": 20}))
    path = str(tmp_path / "m.npz")
    train(TrainConfig(steps=40, checkpoint_every=20, **{**TINY, "log_every": 20}), checkpoint=path)
    resumed = train(TrainConfig(steps=60, checkpoint_every=20, **{**TINY, "log_every": 20}), checkpoint=path,
                    resume=True)
    for a, b in zip(jax.tree_util.tree_leaves(full.params), jax.tree_util.tree_leaves(resumed.params)):
        assert np.allclose(a, b, rtol=0, atol=1e-12)
    assert resumed.curve["step"] == full.curve["step"]
    assert np.allclose(resumed.curve["train_loss"], full.curve["train_loss"])
    loaded = load_model(path)
    for a, b in zip(jax.tree_util.tree_leaves(loaded.params), jax.tree_util.tree_leaves(resumed.params)):
        assert np.array_equal(a, b)
    assert loaded.config == resumed.config


def test_resume_with_other_configuration_is_refused(tmp_path):
    path = str(tmp_path / "m.npz")
    train(TrainConfig(steps=20, **{**TINY, "log_every": 10}), checkpoint=path)
    with pytest.raises(smt.InputError, match="different configuration"):
        train(TrainConfig(steps=40, learning_rate=1e-2, **{**TINY, "log_every": 10}), checkpoint=path, resume=True)


def test_divergence_raises():
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        train(TrainConfig(steps=20, learning_rate=1e80, **{**TINY, "log_every": 10}))


def test_markov_training_reduces_loss():
    cfg = TrainConfig(task="markov", steps=150, learning_rate=3e-3, heads=(2, 2), width=16, qk_dim=4,
                      batch_size=32, log_every=50, eval_size=200)
    res = train(cfg)
    assert cfg.readout == "last"
    assert res.curve["val_loss"][-1] < res.initial_val_loss


def test_head_mask_gradient_matches_finite_difference(trained):
    task = make_task(trained.config)
    x, y = sample_data(task, 1, "val", seed=9)
    g = head_mask_gradient(trained.params, x, y, "mean")
    p = jax.tree_util.tree_map(jax.numpy.asarray, trained.params)
    eps = 1e-6
    for l, H in enumerate(trained.config.heads):
        for h in range(H):
            up = [np.ones(k) for k in trained.config.heads]
            dn = [np.ones(k) for k in trained.config.heads]
            up[l][h] += eps
            dn[l][h] -= eps
            lu = float((model_output(p, x, "mean", up)[0] - y[0]) ** 2)
            ld = float((model_output(p, x, "mean", dn)[0] - y[0]) ** 2)
            assert abs(abs((lu - ld) / (2 * eps)) - g[l][h]) < 1e-5 * max(1.0, g[l][h])


@pytest.mark.parametrize("kwargs, word", [
    (dict(task="omniglot"), "task"), (dict(heads=(2, 0)), "heads"), (dict(width=0), "width"),
    (dict(learning_rate=-1.0), "learning_rate"), (dict(batch_size=1), "batch_size"),
    (dict(task_options=dict(patch=3)), "patch"), (dict(task="markov", task_options=dict(foo=1)), "markov"),
    (dict(readout="max"), "readout"), (dict(seed=-1), "seed"),
])
def test_bad_configuration(kwargs, word):
    with pytest.raises(smt.InputError, match=word):
        TrainConfig(**kwargs)


def test_bad_resume_and_model_paths(tmp_path):
    with pytest.raises(smt.InputError, match="checkpoint"):
        train(TrainConfig(steps=2, **TINY), resume=True)
    with pytest.raises(smt.InputError, match="does not exist"):
        load_model(str(tmp_path / "missing.npz"))


def test_cli_train_and_bad_input(tmp_path, capsys):
    from smtheory.cli import main

    small = ["--steps", "20", "--heads", "2", "2", "--width", "8", "--qk-dim", "4", "--log-every", "10",
             "--batch-size", "16", "--n-test", "100"]
    out = tmp_path / "run"
    assert main(["train", "--out", str(out)] + small) == 0
    for name in ("model.npz", "train.json", "train_report.md", "training_curve.png", "training_curve.pdf"):
        assert (out / name).exists()
    capsys.readouterr()
    assert main(["train", "--out", str(out)] + small) == 2  # refuses to overwrite without --resume
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "d"), "--lr", "1e80"] + small) == 2
    assert "--lr" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "e")] + small + ["--width", "0"]) == 2
    assert "width" in capsys.readouterr().err
    assert main(["prune", "--model", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "p")]) == 2
    assert "does not exist" in capsys.readouterr().err
