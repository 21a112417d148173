"""The sampling driver: resume, errors, summaries, CLI (issue 3)."""
import json
import warnings

import numpy as np
import pytest

import smtheory as smt
from smtheory.sims.run import SampleConfig, SamplingError, sample
from smtheory.cli import main
from tests.conftest import random_problem


@pytest.fixture(scope="module")
def tiny():
    prob = random_problem(heads=(2, 1), P=10, Q=12, N0=4, T=3, seed=11)
    spec = smt.ModelSpec(heads=(2, 1), widths=3, temperature=0.5)
    return prob, spec


def test_resume_gives_the_same_numbers_as_an_uninterrupted_run(tiny, tmp_path):
    prob, spec = tiny
    cfg = SampleConfig(sampler="full-mala", chains=2, steps=60, burnin=10, step_size=1e-2, seed=3, chunk=20, max_steps=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = sample(prob, spec, cfg, progress=False)
        ck = str(tmp_path / "run.ckpt.npz")
        # interrupted run: the same configuration but stopped after 2 of 3 blocks
        import smtheory.sims.run as run_mod

        calls = {"n": 0}
        real_save = run_mod.ckpt.save_checkpoint

        def save_then_stop(*a, **k):
            real_save(*a, **k)
            calls["n"] += 1
            if calls["n"] == 3:  # burn-in + 2 blocks written
                raise KeyboardInterrupt

        run_mod.ckpt.save_checkpoint = save_then_stop
        try:
            with pytest.raises(KeyboardInterrupt):
                sample(prob, spec, cfg, checkpoint=ck, progress=False)
        finally:
            run_mod.ckpt.save_checkpoint = real_save
        resumed = sample(prob, spec, cfg, checkpoint=ck, resume=True, progress=False)
    np.testing.assert_allclose(resumed.U1_sampled, full.U1_sampled, rtol=1e-12)
    np.testing.assert_allclose(resumed.predictor_mean, full.predictor_mean, rtol=1e-12)
    np.testing.assert_allclose(resumed.predictor_variance, full.predictor_variance, rtol=1e-12)
    assert resumed.rhat_max == pytest.approx(full.rhat_max, rel=1e-12)


def test_extending_a_run_equals_running_longer_from_the_start(tiny, tmp_path):
    """Resume with a larger ``steps``: the chains continue and the result equals one long run."""
    prob, spec = tiny
    ck = str(tmp_path / "ext.npz")
    short = SampleConfig(sampler="gibbs", chains=2, steps=40, burnin=5, seed=2, chunk=20, max_steps=40)
    long = SampleConfig(sampler="gibbs", chains=2, steps=100, burnin=5, seed=2, chunk=20, max_steps=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sample(prob, spec, short, checkpoint=ck, progress=False)
        extended = sample(prob, spec, long, checkpoint=ck, resume=True, progress=False)
        full = sample(prob, spec, long, progress=False)
    np.testing.assert_allclose(extended.U1_sampled, full.U1_sampled, rtol=1e-12)
    np.testing.assert_allclose(extended.predictor_mean, full.predictor_mean, rtol=1e-12)
    assert extended.test_accuracy_mcse == pytest.approx(full.test_accuracy_mcse, rel=1e-12, nan_ok=True)
    assert extended.generalization_error_mcse == pytest.approx(full.generalization_error_mcse, rel=1e-12)
    with pytest.raises(smt.InputError, match="already holds"):
        sample(prob, spec, short, checkpoint=ck, resume=True, progress=False)


def test_resume_refuses_another_configuration(tiny, tmp_path):
    prob, spec = tiny
    ck = str(tmp_path / "c.npz")
    cfg = SampleConfig(sampler="gibbs", chains=2, steps=8, burnin=0, chunk=8, max_steps=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sample(prob, spec, cfg, checkpoint=ck, progress=False)
    with pytest.raises(smt.InputError, match="belongs to another problem.*seed"):
        sample(prob, spec, SampleConfig(sampler="gibbs", chains=2, steps=8, burnin=0, chunk=8, seed=5, max_steps=8),
               checkpoint=ck, resume=True, progress=False)
    with pytest.raises(smt.InputError, match="no checkpoint"):
        sample(prob, spec, cfg, checkpoint=str(tmp_path / "missing.npz"), resume=True, progress=False)


def test_nan_during_sampling_is_a_clear_error(tiny):
    prob, spec = tiny
    with pytest.raises(SamplingError, match="reduce step_size"):
        sample(prob, spec, SampleConfig(sampler="full-langevin", chains=2, steps=50, burnin=50, step_size=50.0),
               progress=False)


@pytest.mark.parametrize("kwargs,match", [
    (dict(step_size=0.0, sampler="full-langevin"), "step_size"),
    (dict(step_size=-1.0, sampler="full-mala"), "step_size"),
    (dict(chains=0), "chains"),
    (dict(steps=0), "steps"),
    (dict(burnin=-1), "burnin"),
    (dict(sampler="hmc"), "sampler"),
    (dict(dtype="float16"), "dtype"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(smt.InputError, match=match):
        SampleConfig(**kwargs)


def test_gibbs_summary_is_consistent_and_flags_convergence(tiny):
    prob, spec = tiny
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sample(prob, spec, SampleConfig(sampler="gibbs", chains=4, steps=400, burnin=50, chunk=200),
                     progress=False)
    assert res.U1_sampled.shape == (2, 2) and np.allclose(res.U1_sampled, res.U1_sampled.T)
    assert np.all(res.U1_mcse > 0) and np.all(res.U1_mcse < 0.2 * np.abs(np.diag(res.U1_sampled)).max())
    assert res.predictor_mean.shape == (12,) and np.all(res.predictor_variance > 0)
    assert res.rhat_max < 1.05 and res.ess_min > 100
    assert res.converged == (res.rhat_max <= 1.01)
    assert 0 <= res.test_accuracy <= 1 and res.steps_per_second > 0
    # generalisation error = mean of the traced per-draw test MSE; its MCSE comes from that trace
    assert res.diagnostics["test_mse"]["mcse"] == pytest.approx(res.generalization_error_mcse)
    assert 0 < res.generalization_error_mcse < 0.1 * res.generalization_error
    assert np.isfinite(res.test_accuracy_mcse) and 0 <= res.test_accuracy_mcse < 0.2


def test_cli_sample_writes_the_documented_keys(tmp_path, capsys):
    rng = np.random.default_rng(0)
    N0, T = 4, 3
    data = tmp_path / "d.npz"
    np.savez(data, x_train=rng.standard_normal((10, N0, T)), y_train=np.sign(rng.standard_normal(10)),
             x_test=rng.standard_normal((6, N0, T)), y_test=np.sign(rng.standard_normal(6)),
             w_layer1=rng.standard_normal((2, N0, N0)) / N0)
    out = tmp_path / "s.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["sample", "--data", str(data), "--width", "3", "--sampler", "gibbs", "--chains", "4",
                   "--steps", "100", "--max-steps", "100", "--burnin", "10", "--temperature", "0.5", "--json", str(out)])
    row = json.loads(out.read_text())["results"][0]
    assert rc == (0 if row["converged"] else 3)  # exit 3 for a run that misses R-hat <= 1.01
    for key in ("U1_sampled", "U1_mcse", "predictor_mean", "predictor_variance", "test_accuracy",
                "generalization_error", "rhat_max", "ess_min", "steps_per_second", "run_time", "compile_time"):
        assert key in row
    assert np.array(row["U1_sampled"]).shape == (2, 2) and len(row["predictor_mean"]) == 6
    assert main(["sample", "--data", str(data), "--width", "3", "--sampler", "full-langevin", "--step-size", "0"]) == 2
    assert "step_size" in capsys.readouterr().err
