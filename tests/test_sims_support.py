"""Tests of smtheory.sims.observables, smtheory.sims.diagnostics and smtheory.sims.checkpoint (fast)."""
import json
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import smtheory as smt
from smtheory.sims import checkpoint as ckpt
from smtheory.sims.diagnostics import ConvergenceWarning, ess_bulk, ess_mean, mcse_mean, rhat, summarize
from smtheory.sims.observables import (Moments, moments_finalize, moments_init, moments_merge, moments_merge_axis,
                              moments_update, observe, trace_scalars)
from smtheory.sims import posterior as sim_post
from tests.conftest import random_problem


# --------------------------------------------------------------------------- moments
def _welford(x, m=None):
    m = moments_init(x.shape[1:]) if m is None else m
    step = jax.jit(moments_update)
    for row in x:
        m = step(m, row)
    return m


def test_welford_matches_numpy():
    rng = np.random.default_rng(0)
    x = 1e6 + rng.standard_normal((57, 3, 2))  # large offset: naive sum-of-squares would lose digits
    m = _welford(x)
    mean, var = moments_finalize(m)
    assert int(m.count) == 57
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-14, atol=0)
    np.testing.assert_allclose(var, x.var(0, ddof=1), rtol=1e-9)
    _, var0 = moments_finalize(m, ddof=0)
    np.testing.assert_allclose(var0, x.var(0), rtol=1e-9)


def test_welford_scan_and_vmap_per_chain():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((4, 30, 5)))  # [chains, draws, dim]

    def run(xc):
        m, _ = jax.lax.scan(lambda m, r: (moments_update(m, r), None), moments_init((5,)), xc)
        return m

    m = jax.jit(jax.vmap(run))(x)
    assert m.count.shape == (4,)
    mean, var = moments_finalize(m)
    np.testing.assert_allclose(mean, np.mean(x, 1), rtol=1e-13)
    np.testing.assert_allclose(var, np.var(x, 1, ddof=1), rtol=1e-12)
    mt, vt = moments_finalize(moments_merge_axis(m))
    flat = np.asarray(x).reshape(-1, 5)
    np.testing.assert_allclose(mt, flat.mean(0), rtol=1e-13)
    np.testing.assert_allclose(vt, flat.var(0, ddof=1), rtol=1e-12)


@pytest.mark.parametrize("split", [(1, 99), (13, 87), (50, 50), (0, 100), (100, 0)])
def test_merge_uneven_splits(split):
    rng = np.random.default_rng(2)
    x = 3.0 + 2.0 * rng.standard_normal((100, 4))
    a, b = split
    ma = moments_init((4,)) if a == 0 else _welford(x[:a])
    mb = moments_init((4,)) if b == 0 else _welford(x[a:])
    m = moments_merge(ma, mb)
    mean, var = moments_finalize(m)
    assert int(m.count) == 100
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-13)
    np.testing.assert_allclose(var, x.var(0, ddof=1), rtol=1e-12)


def test_moments_pytree_and_empty():
    ex = {"a": jnp.zeros((2, 2)), "b": jnp.zeros((), jnp.float32)}
    m = moments_init(ex)
    assert isinstance(m, Moments) and m.mean["b"].dtype == jnp.float32
    mean, var = moments_finalize(m)
    assert np.all(np.isnan(mean["a"])) and np.all(np.isnan(var["a"]))
    m = moments_update(m, {"a": jnp.ones((2, 2)), "b": jnp.float32(2.0)})
    mean, var = moments_finalize(m)
    np.testing.assert_array_equal(mean["a"], np.ones((2, 2)))
    assert float(mean["b"]) == 2.0 and np.isnan(var["b"])  # one sample: no ddof=1 variance
    with pytest.raises(smt.InputError, match="structure"):
        moments_update(m, {"a": jnp.ones((2, 2))})


# --------------------------------------------------------------------------- observe
@pytest.fixture(scope="module")
def post_setup():
    prob = random_problem(heads=(2, 3), P=12, Q=10, N0=5, seed=3)
    spec = smt.ModelSpec(heads=(2, 3), widths=(7, 6, 5), temperature=0.1)
    post = sim_post.make_posterior(prob, spec)
    return prob, spec, post, sim_post.test_features(prob)


def test_observe_shapes_and_order_parameter(post_setup):
    prob, spec, post, xi_test = post_setup
    params = post.init(jax.random.key(0))
    obs = jax.jit(lambda p: observe(post, p, xi_test))(params)
    D = 6
    assert obs["U1"].shape == (D, D)
    assert obs["f_test"].shape == (xi_test.shape[0],)
    assert obs["train_energy"].shape == ()
    w = smt.effective_weights(jax.tree_util.tree_map(np.asarray, params))[0]
    np.testing.assert_allclose(obs["U1"], w @ w.T / spec.widths[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(obs["f_test"], smt.path_form(jax.tree_util.tree_map(np.asarray, params),
                                                            np.asarray(xi_test)), rtol=1e-12, atol=1e-14)
    r = np.asarray(post.output(params)) - np.asarray(prob.y_train)
    np.testing.assert_allclose(obs["train_energy"], 0.5 * r @ r, rtol=1e-12)

    ts = trace_scalars(obs)
    assert set(ts) == {"U1_diag", "train_energy", "f_test_mean8"}
    np.testing.assert_allclose(ts["U1_diag"], np.diag(obs["U1"]))
    np.testing.assert_allclose(ts["f_test_mean8"], np.mean(obs["f_test"][:8]))


def test_observe_vmapped_over_chains_feeds_moments(post_setup):
    _, _, post, xi_test = post_setup

    @jax.jit
    def run(key):
        params = jax.vmap(post.init)(jax.random.split(key, 3))
        obs = jax.vmap(lambda p: observe(post, p, xi_test))(params)
        m = jax.vmap(moments_update)(jax.vmap(moments_init)(obs), obs)
        return obs, trace_scalars(obs), moments_finalize(m)[0]

    obs, ts, mean = run(jax.random.key(1))
    assert obs["U1"].shape == (3, 6, 6) and obs["train_energy"].shape == (3,)
    assert ts["U1_diag"].shape == (3, 6) and ts["f_test_mean8"].shape == (3,)
    np.testing.assert_allclose(mean["U1"], obs["U1"])


# --------------------------------------------------------------------------- diagnostics
def _ar1(rng, chains, draws, phi, shape=(), means=None):
    e = rng.standard_normal((chains, draws) + shape)
    x = np.empty_like(e)
    x[:, 0] = e[:, 0] / np.sqrt(1 - phi**2)
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    if means is not None:
        x += np.reshape(means, (chains, 1) + (1,) * len(shape))
    return x


@pytest.mark.parametrize("chains,draws,phi", [(2, 4, 0.5), (4, 5, 0.0), (3, 9, -0.4), (4, 100, 0.3),
                                              (4, 501, 0.9), (2, 1000, 0.99), (8, 64, 0.7)])
def test_diagnostics_match_arviz(chains, draws, phi):
    az = pytest.importorskip("arviz")
    rng = np.random.default_rng(chains * 1000 + draws)
    x = _ar1(rng, chains, draws, phi)
    for mine, ref in [(rhat(x), az.rhat(x, method="rank")), (ess_bulk(x), az.ess(x, method="bulk")),
                      (mcse_mean(x), az.mcse(x, method="mean"))]:
        np.testing.assert_allclose(mine, np.asarray(ref).reshape(()), rtol=1e-9)


def test_diagnostics_vectorised_and_ties_match_arviz():
    az = pytest.importorskip("arviz")
    rng = np.random.default_rng(5)
    x = _ar1(rng, 4, 80, 0.6, shape=(2, 3))
    x[..., 1, 2] = np.round(x[..., 1, 2])  # many ties
    r, e, m = rhat(x), ess_bulk(x), mcse_mean(x)
    assert r.shape == e.shape == m.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(r[i, j], az.rhat(x[..., i, j], method="rank"), rtol=1e-9)
            np.testing.assert_allclose(e[i, j], az.ess(x[..., i, j], method="bulk"), rtol=1e-9)
            np.testing.assert_allclose(m[i, j], np.asarray(az.mcse(x[..., i, j], method="mean")).reshape(()),
                                       rtol=1e-9)
    # single chain allowed for ESS / MCSE
    np.testing.assert_allclose(ess_mean(x[:1, :, 0, 0]), az.ess(x[:1, :, 0, 0], method="mean"), rtol=1e-9)


def test_ess_of_iid_and_correlated_chains():
    rng = np.random.default_rng(6)
    iid = rng.standard_normal((4, 2000))
    assert 0.8 * 8000 < ess_bulk(iid) < 1.2 * 8000
    ar = _ar1(rng, 4, 2000, 0.9)
    assert ess_bulk(ar) < 0.15 * 8000  # τ = (1+φ)/(1−φ) = 19


def test_rhat_flags_non_mixed_chains_and_warns():
    rng = np.random.default_rng(7)
    good = _ar1(rng, 4, 400, 0.3)
    bad = _ar1(rng, 4, 400, 0.3, means=[0.0, 0.0, 3.0, 3.0])
    vec = _ar1(rng, 4, 400, 0.3, shape=(3,))
    vec[:2, :, 1] += 5.0  # one component not mixed
    assert rhat(good) < 1.01 and rhat(bad) > 1.5
    with pytest.warns(ConvergenceWarning) as rec:
        s = summarize({"good": good, "bad": bad, "vec": vec})
    msg = str(rec[0].message)
    assert "bad" in msg and "vec" in msg and "good" not in msg
    assert s["not_converged"] == ["bad", "vec"]
    assert s["rhat_max"] == pytest.approx(max(s["bad"]["rhat"], np.max(s["vec"]["rhat"])))
    assert s["ess_min"] == pytest.approx(min(s["good"]["ess_bulk"], s["bad"]["ess_bulk"], np.min(s["vec"]["ess_bulk"])))
    assert s["vec"]["rhat"].shape == (3,) and s["vec"]["mcse"].shape == (3,)


def test_summarize_quiet_when_mixed():
    rng = np.random.default_rng(8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        s = summarize({"a": rng.standard_normal((4, 500)), "b": rng.standard_normal((4, 500, 2))})
    assert s["not_converged"] == [] and s["rhat_max"] < 1.01 and s["ess_min"] > 1000


def test_summarize_warns_on_nonfinite():
    x = np.random.default_rng(9).standard_normal((3, 50))
    x[1, 10] = np.nan
    with pytest.warns(ConvergenceWarning, match="non-finite draws in f"):
        s = summarize({"f": x})
    assert np.isnan(s["f"]["rhat"]) and s["nonfinite"] == ["f"]


@pytest.mark.parametrize("shape,match", [((1, 100), "at least 2 chains"), ((4, 3), "at least 4 draws"),
                                         ((100,), "at least 2 dimensions")])
def test_diagnostics_bad_shapes(shape, match):
    x = np.zeros(shape)
    with pytest.raises(smt.InputError, match=match):
        rhat(x)
    with pytest.raises(smt.InputError, match=r"traces\['U1_diag'\].*" + match):
        summarize({"U1_diag": x})
    if shape == (1, 100):
        ess_bulk(x)  # one chain is fine for ESS
    else:
        with pytest.raises(smt.InputError, match=match):
            ess_bulk(x)
    with pytest.raises(smt.InputError, match="traces"):
        summarize({})


# --------------------------------------------------------------------------- checkpoint
def _state():
    k_typed = jax.random.split(jax.random.key(42), 3)
    k_raw = jax.random.split(jax.random.PRNGKey(7), 3)
    return {
        "position": {"V0": jnp.asarray(np.random.default_rng(0).standard_normal((3, 4))),
                     "V": [jnp.arange(6, dtype=jnp.float32).reshape(1, 2, 3) / 7],
                     "a": jnp.asarray([np.pi, -0.0, 1e-300])},
        "keys": k_typed, "raw_keys": k_raw,
        "step": jnp.asarray(17, jnp.int32), "host": np.float32(0.1), "n": 5, "flag": True,
        "bf16": jnp.asarray([1.5, -2.25], jnp.bfloat16),
    }


def _bits_equal(a, b):
    if jax.dtypes.issubdtype(getattr(a, "dtype", None) or np.float64, jax.dtypes.prng_key):
        a, b = jax.random.key_data(a), jax.random.key_data(b)
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_checkpoint_round_trip_bit_exact(tmp_path):
    state = _state()
    p = tmp_path / "ck.npz"
    md = {"config": {"heads": (2, 2), "T": 0.01}, "step": np.int64(1000), "seeds": [0, 1]}
    ckpt.save_checkpoint(p, state, md)
    like = jax.tree_util.tree_map(lambda x: x, state)
    out, meta = ckpt.load_checkpoint(p, like)
    assert jax.tree_util.tree_structure(out) == jax.tree_util.tree_structure(state)
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(out)):
        assert type(a) is type(b) or (isinstance(a, jax.Array) and isinstance(b, jax.Array))
        assert _bits_equal(a, b)
    assert out["position"]["V"][0].dtype == jnp.float32 and out["position"]["V0"].dtype == jnp.float64
    assert jax.random.key_impl(out["keys"]) == jax.random.key_impl(state["keys"])
    # the restored keys produce the same random numbers
    np.testing.assert_array_equal(jax.random.normal(out["keys"][1], (4,)), jax.random.normal(state["keys"][1], (4,)))
    np.testing.assert_array_equal(jax.random.normal(out["raw_keys"][2], (4,)),
                                  jax.random.normal(state["raw_keys"][2], (4,)))
    assert meta["step"] == 1000 and meta["config"]["heads"] == [2, 2] and meta["seeds"] == [0, 1]
    assert meta["versions"]["jax"] == jax.__version__
    # abstract like-tree (jax.eval_shape) works too
    out2, _ = ckpt.load_checkpoint(p, jax.eval_shape(lambda: {k: v for k, v in state.items()
                                                              if k not in ("host", "n", "flag")}) | {
        "host": state["host"], "n": 0, "flag": False})
    assert _bits_equal(out2["keys"], state["keys"]) and out2["n"] == 5 and out2["flag"] is True


def test_checkpoint_overwrite_is_atomic(tmp_path, monkeypatch):
    p = tmp_path / "ck.npz"
    state = _state()
    ckpt.save_checkpoint(p, state, {"step": 1})
    before = p.read_bytes()

    def failing_write(f, arrays):
        f.write(b"PK\x03\x04 partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "_write_arrays", failing_write)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(p, state, {"step": 2})
    assert p.read_bytes() == before
    assert os.listdir(tmp_path) == ["ck.npz"]  # no temporary file left behind
    monkeypatch.undo()
    # a fresh destination that fails leaves nothing at all
    monkeypatch.setattr(ckpt, "_write_arrays", failing_write)
    with pytest.raises(OSError):
        ckpt.save_checkpoint(tmp_path / "new.npz", state)
    assert os.listdir(tmp_path) == ["ck.npz"]
    monkeypatch.undo()
    # bad input fails before any file is created
    with pytest.raises(smt.InputError, match="JSON"):
        ckpt.save_checkpoint(tmp_path / "x.npz", state, {"bad": object()})
    with pytest.raises(smt.InputError, match="unsupported type"):
        ckpt.save_checkpoint(tmp_path / "x.npz", {"s": "text"})
    assert os.listdir(tmp_path) == ["ck.npz"]
    _, meta = ckpt.load_checkpoint(p, state)
    assert meta["step"] == 1


def test_checkpoint_structure_mismatch(tmp_path):
    p = tmp_path / "ck.npz"
    state = _state()
    ckpt.save_checkpoint(p, state, {})
    missing = {k: v for k, v in state.items() if k != "flag"}
    with pytest.raises(smt.InputError, match=r"structure.*only in the checkpoint: \[\"\['flag'\]\"\]"):
        ckpt.load_checkpoint(p, missing)
    wrong_shape = dict(state, position=dict(state["position"], a=jnp.zeros(4)))
    with pytest.raises(smt.InputError, match=r"\['position'\]\['a'\] has shape \(3,\)"):
        ckpt.load_checkpoint(p, wrong_shape)
    wrong_dtype = dict(state, position=dict(state["position"], V0=state["position"]["V0"].astype(jnp.float32)))
    with pytest.raises(smt.InputError, match="dtype float64, like_pytree expects float32"):
        ckpt.load_checkpoint(p, wrong_dtype)
    raw_for_typed = dict(state, keys=jax.random.key_data(state["keys"]))
    with pytest.raises(smt.InputError, match="typed PRNG key"):
        ckpt.load_checkpoint(p, raw_for_typed)
    with pytest.raises(smt.InputError, match="does not exist"):
        ckpt.load_checkpoint(tmp_path / "nope.npz", state)
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(smt.InputError, match="not a sims checkpoint"):
        ckpt.load_checkpoint(tmp_path / "plain.npz", state)
    # header is plain JSON
    with np.load(p) as z:
        hdr = json.loads(str(z["__header__"][()]))
    assert hdr["format"] == ckpt.FORMAT and len(hdr["leaves"]) == len(jax.tree_util.tree_leaves(state))


def test_jackknife_mcse_matches_the_standard_error_of_a_mean():
    """For a linear functional of i.i.d. draws the batch jackknife equals sd/√n (within its own noise)."""
    from smtheory.sims.diagnostics import jackknife_mcse

    rng = np.random.default_rng(0)
    chains, n_blocks, per = 4, 50, 20
    x = rng.normal(size=(n_blocks, chains, per, 3)) * np.array([1.0, 2.0, 0.5])
    sums = x.sum(axis=2)
    counts = np.full(n_blocks, per)
    est, se = jackknife_mcse(sums, counts, lambda m: m[1], groups_per_chain=25)
    n = chains * n_blocks * per
    assert est == pytest.approx(x[..., 1].mean())
    assert se == pytest.approx(2.0 / np.sqrt(n), rel=0.25)
    # a nonlinear functional goes through; bad shapes are named
    _, se_sq = jackknife_mcse(sums, counts, lambda m: m[0] ** 2)
    assert np.isfinite(se_sq) and se_sq > 0
    with pytest.raises(smt.InputError, match="batch_sums"):
        jackknife_mcse(sums[:, 0, 0], counts, lambda m: m)
