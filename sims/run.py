"""Running many chains: burn-in, thinning, online observables, diagnostics, checkpoints.

:func:`sample` is the one entry point for every sampler. The collapsed samplers (``overlap``,
``langevin``; docs/theory.md §8) are driven by :mod:`smtheory.sims.collapsed_run`; this module drives the
weight-space samplers (``gibbs``, ``full-langevin``, ``full-mala``) over
``chains`` independent chains (``jax.vmap``) and ``steps`` steps (``jax.lax.scan``),
accumulates the observables of docs/theory.md §4 online (no weights are stored): the sampled
order parameter ``U_1``, the predictor on the test set and the train energy, keeps
per-chain traces of a few scalars for the diagnostics (split R-hat, bulk ESS, MCSE),
and checkpoints its whole state atomically so that an interrupted run resumes
exactly where it stopped: a resumed run gives the same numbers as an uninterrupted
one with the same seed.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from smtheory.checks import InputError
from smtheory.compile_cache import ensure_compilation_cache
from smtheory.blas_threads import single_blas_thread
from smtheory.model import ModelSpec
from smtheory.predictor import metrics
from smtheory.problem import KernelProblem

from . import checkpoint as ckpt
from . import diagnostics, observables
from .chains import over_chains
from .config import COLLAPSED, SAMPLERS, SampleConfig, SampleResult, SamplingError
from .posterior import make_posterior, test_features
from smtheory.precision import needs_float64

__all__ = ["SAMPLERS", "COLLAPSED", "SampleConfig", "SampleResult", "SamplingError", "sample", "build_sampler"]

def build_sampler(posterior, config: SampleConfig):
    """The :class:`smtheory.sims.base.SamplingAlgorithm` named by the configuration."""
    if config.sampler == "full-langevin":
        from . import langevin

        return langevin.build(posterior, config.step_size)
    if config.sampler == "full-mala":
        from . import mala

        return mala.build(posterior, config.step_size)
    from . import gibbs

    return gibbs.build(posterior)


def _traced(obs, D, y_test):
    """Scalars traced per chain for the diagnostics: all U_1 entries (D ≤ 16) or its diagonal,
    the train energy, the draw's test MSE (its mean is the generalisation error) and a probe."""
    U = obs["U1"]
    u = U.reshape(-1) if D <= 16 else jnp.diag(U)
    test_mse = jnp.mean((obs["f_test"] - y_test) ** 2)
    return jnp.concatenate([u, obs["train_energy"][None], test_mse[None], jnp.mean(obs["f_test"][:8])[None]])


def _trace_names(D):
    if D <= 16:
        names = [f"U1[{i},{j}]" for i in range(D) for j in range(D)]
    else:
        names = [f"U1[{i},{i}]" for i in range(D)]
    return names + ["train_energy", "test_mse", "f_test[:8].mean"]


def _make_advance(posterior, algo, xi_test, y_test, thin, D):
    def vstep(keys, states):  # chains one after another: batched LAPACK calls can deadlock (smtheory.sims.chains)
        return over_chains(algo.step, keys, states)

    def one_step(carry, _):
        states, keys = carry
        split = jax.vmap(lambda k: jax.random.split(k, 2))(keys)
        states, info = vstep(split[:, 1], states)
        return (states, split[:, 0]), info

    def burn(states, keys, n):
        (states, keys), info = jax.lax.scan(one_step, (states, keys), None, length=n)
        return states, keys, jnp.all(info.is_finite)

    def record(carry, _):
        states, keys, mom = carry
        (states, keys), info = jax.lax.scan(one_step, (states, keys), None, length=thin)
        obs = jax.vmap(lambda p: observables.observe(posterior, p, xi_test))(states.position)
        mom = {k: jax.vmap(observables.moments_update)(mom[k], obs[k]) for k in mom}
        tr = jax.vmap(lambda o: _traced(o, D, y_test))(obs)
        # MH acceptance (MALA) or the scale moves' acceptance (Gibbs); 1 for samplers without either
        rate = getattr(info, "acceptance_rate", getattr(info, "scale_acceptance", None))
        acc = jnp.mean(jnp.ones_like(info.is_finite, dtype=jnp.float64) if rate is None else rate)
        return (states, keys, mom), (tr, jnp.all(info.is_finite), acc)

    def draws(states, keys, mom, n):
        (states, keys, mom), (tr, finite, acc) = jax.lax.scan(record, (states, keys, mom), None, length=n)
        return states, keys, mom, jnp.swapaxes(tr, 0, 1), jnp.all(finite), jnp.mean(acc)

    return jax.jit(burn, static_argnums=2), jax.jit(draws, static_argnums=3)


def _progress(total, enabled):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, unit="draw", disable=not sys.stderr.isatty(), leave=False)


@needs_float64
def sample(problem: KernelProblem, spec: ModelSpec, config: SampleConfig = SampleConfig(), *,
           checkpoint=None, resume=False, progress=True):
    """Sample the posterior and summarise it (docs/theory.md §4, §8).

    Parameters
    ----------
    problem : KernelProblem (with a test set)
    spec : ModelSpec
    config : SampleConfig
        ``sampler="overlap"`` (default) samples the exact order-parameter posterior (cost independent
        of N); ``"langevin"`` the V⁰-collapsed weights; ``"gibbs"``, ``"full-langevin"``, ``"full-mala"``
        all weights.
    checkpoint : str, optional
        Path of the checkpoint file, written atomically after every block of draws, with the
        fingerprint of the problem (data, model, settings).
    resume : bool
        Continue from ``checkpoint``; refused by name when the checkpoint belongs to another problem.
        A larger ``steps`` (or ``max_steps``) extends a finished run.
    progress : bool
        Show a progress bar (only when standard error is a terminal).

    Returns
    -------
    SampleResult
        With ``converged`` True only when R-hat ≤ ``config.rhat_target`` on every traced observable.
        While it is not, the run is extended automatically (``steps`` doubled, the same chains
        continued) up to ``config.max_steps``; a run that still misses it is returned flagged.
    """
    if not isinstance(config, SampleConfig):
        raise InputError("config must be a smtheory.sims.SampleConfig")
    if not isinstance(problem, KernelProblem):
        raise InputError(f"problem must be a smtheory.KernelProblem, got {type(problem).__name__}")
    if not isinstance(spec, ModelSpec):
        raise InputError(f"spec must be a smtheory.ModelSpec, got {type(spec).__name__}")
    if resume and not checkpoint:
        raise InputError("resume needs a checkpoint path")
    problem.check_spec(spec)
    if problem.xi_test is None:
        raise InputError("this problem has no test set (give x_test and y_test)")
    ensure_compilation_cache()  # once per process, before the first compilation (smtheory.compile_cache)
    with single_blas_thread():
        return _dispatch(problem, spec, config, checkpoint, resume, progress)


def _dispatch(problem, spec, config, checkpoint, resume, progress):
    if config.collapsed:
        from .collapsed_run import sample_collapsed

        return sample_collapsed(problem, spec, config, checkpoint=checkpoint, resume=resume,
                                bar_factory=(lambda n: _progress(n, progress)))
    if config.max_steps == config.steps or config.chains < 2:
        return _sample_weights(problem, spec, config, checkpoint=checkpoint, resume=resume, progress=progress)
    with tempfile.TemporaryDirectory(prefix="smtheory-") as tmp:
        path = checkpoint or os.path.join(tmp, "run.npz")
        res = _sample_weights(problem, spec, config, checkpoint=path, resume=resume, progress=progress)
        steps, ext = max(config.steps, res.config.steps), 0
        while not res.converged and math.isfinite(res.rhat_max) and steps < config.max_steps:
            steps, ext = min(2 * steps, config.max_steps), ext + 1
            res = _sample_weights(problem, spec, config.replace(steps=steps), checkpoint=path, resume=True,
                                  progress=progress)
    return res.replace(extensions=ext)


def _sample_weights(problem, spec, config, *, checkpoint=None, resume=False, progress=True):
    """One weight-space run of exactly ``config.steps`` (resumable; see :func:`sample`)."""
    problem.check_spec(spec)
    posterior = make_posterior(problem, spec, config.dtype)
    xi_test = test_features(problem, posterior.dtype)
    algo = build_sampler(posterior, config)
    y_test = jnp.asarray(problem.y_test, posterior.dtype)
    burn, draws = _make_advance(posterior, algo, xi_test, y_test, config.thin, spec.n_paths)
    run = _WeightRun(problem, spec, config, posterior, algo, xi_test, checkpoint)
    if resume:
        config = run.resume(config)
    # compile ahead of time (excluded from steps_per_second)
    t0 = time.perf_counter()
    burn_c = burn.lower(run.states, run.keys, config.burnin).compile() if (config.burnin and not run.burned) else None
    sizes = {min(config.chunk, config.draws - d) for d in range(run.done, config.draws, config.chunk)}
    draws_c = {n: draws.lower(run.states, run.keys, run.mom, n).compile() for n in sizes}
    compile_time = time.perf_counter() - t0

    bar = _progress(config.draws, progress)
    if bar is not None:
        bar.update(run.done)
    if not run.burned:
        run.burn_in(burn_c, config)
    while run.done < config.draws:
        n = run.advance(draws_c, config)
        if bar is not None:
            bar.update(n)
    if bar is not None:
        bar.close()
    result = _summarise(problem, spec, config, run.mom, run.traces, run.acc_sum / max(run.done, 1), run.run_time,
                        run.fsums, run.fcounts)
    return result.replace(compile_time=compile_time)


class _WeightRun:
    """State of a weight-space run: chains, running moments, traces, batch sums; checkpointed after every block."""

    def __init__(self, problem, spec, config, posterior, algo, xi_test, checkpoint):
        D = spec.n_paths
        key = jax.random.PRNGKey(config.seed)
        k_init, k_run = jax.random.split(key)
        positions = jax.vmap(posterior.init)(jax.random.split(k_init, config.chains))
        self.states = jax.vmap(algo.init)(positions)
        self.keys = jax.random.split(k_run, config.chains)
        obs0 = observables.observe(posterior, jax.tree_util.tree_map(lambda x: x[0], positions), xi_test)
        self.mom = {k: jax.vmap(lambda _: observables.moments_init(obs0[k]))(jnp.arange(config.chains)) for k in obs0}
        self.n_traced = len(_trace_names(D))
        self.Q = xi_test.shape[0]
        self.traces = np.zeros((config.chains, config.draws, self.n_traced))  # filled block by block
        self.fsums = np.zeros((0, config.chains, self.Q))  # per block of draws: sum of f_test (batch means)
        self.fcounts = np.zeros((0,))
        self.done, self.burned, self.acc_sum, self.run_time = 0, False, 0.0, 0.0
        self.checkpoint = checkpoint
        self.meta = dict(config=dataclasses.asdict(config), spec=spec.to_dict(), P=problem.n_train, D=D,
                         fingerprint=ckpt.fingerprint(problem, spec, config))

    def resume(self, config):
        """Load the checkpoint (refused when it belongs to another problem); the configuration to run."""
        checkpoint = self.checkpoint
        if not os.path.exists(checkpoint):
            raise InputError(f"resume: no checkpoint at {checkpoint!r}")
        m = ckpt.read_metadata(checkpoint)
        ckpt.check_fingerprint(checkpoint, m.get("fingerprint"), self.meta["fingerprint"])
        old = dict(m.get("config", {}))
        if m["done"] * config.thin > config.max_steps:
            raise InputError(f"resume: the checkpoint already holds {m['done']} draws per chain; steps and max_steps "
                             f"must be at least {m['done'] * config.thin}, got max_steps={config.max_steps}")
        if m["done"] > config.draws:
            config = config.replace(steps=m["done"] * config.thin)  # a finished longer run: read it back
            self.traces = np.zeros((config.chains, config.draws, self.n_traced))
        like = dict(states=self.states, keys=self.keys, mom=self.mom,
                    traces=np.zeros((config.chains, old["steps"] // config.thin, self.n_traced)),
                    fsums=np.zeros((m["n_blocks"], config.chains, self.Q)), fcounts=np.zeros((m["n_blocks"],)))
        loaded, m = ckpt.load_checkpoint(checkpoint, like)
        self.states, self.keys, self.mom = loaded["states"], loaded["keys"], loaded["mom"]
        self.fsums, self.fcounts = np.array(loaded["fsums"]), np.array(loaded["fcounts"])
        self.done, self.burned, self.acc_sum, self.run_time = m["done"], m["burned"], m["acc_sum"], m["run_time"]
        self.traces[:, :self.done] = np.asarray(loaded["traces"])[:, :self.done]
        return config

    def save(self):
        if self.checkpoint:
            ckpt.save_checkpoint(self.checkpoint, dict(states=self.states, keys=self.keys, mom=self.mom,
                                                       traces=self.traces, fsums=self.fsums, fcounts=self.fcounts),
                                 dict(self.meta, done=self.done, burned=self.burned, acc_sum=self.acc_sum,
                                      run_time=self.run_time, n_blocks=len(self.fcounts)))

    def burn_in(self, burn_c, config):
        """The ``config.burnin`` discarded transitions (timed), then a checkpoint."""
        t0 = time.perf_counter()
        if config.burnin:
            self.states, self.keys, finite = burn_c(self.states, self.keys)
            if not bool(finite):
                raise SamplingError("non-finite values during burn-in: reduce step_size (or use sampler='gibbs')")
        self.run_time += time.perf_counter() - t0
        self.burned = True
        self.save()

    def advance(self, draws_c, config):
        """One compiled block of recorded draws (timed), its traces and batch sums, then a checkpoint."""
        done = self.done
        n = min(config.chunk, config.draws - done)
        t0 = time.perf_counter()
        f_before = np.asarray(self.mom["f_test"].mean) * np.asarray(self.mom["f_test"].count)[:, None]
        self.states, self.keys, self.mom, tr, finite, acc = draws_c[n](self.states, self.keys, self.mom)
        tr = np.asarray(tr)
        self.run_time += time.perf_counter() - t0
        if not bool(finite) or not np.all(np.isfinite(tr)):
            bad = np.where(~np.all(np.isfinite(tr), axis=(1, 2)))[0]
            raise SamplingError(f"non-finite values in chain(s) {bad.tolist()} after {done} draws: "
                                "reduce step_size (or use sampler='gibbs')")
        self.traces[:, done:done + n] = tr
        f_after = np.asarray(self.mom["f_test"].mean) * np.asarray(self.mom["f_test"].count)[:, None]
        self.fsums = np.concatenate([self.fsums, (f_after - f_before)[None]])
        self.fcounts = np.append(self.fcounts, n)
        self.acc_sum += float(acc) * n
        self.done += n
        self.save()
        return n


def _summarise(problem, spec, config, mom, traces, acceptance, run_time, fsums, fcounts):
    D = spec.n_paths
    merged = {}
    for k, m in mom.items():
        acc = jax.tree_util.tree_map(lambda x: x[0], m)
        for c in range(1, config.chains):
            acc = observables.moments_merge(acc, jax.tree_util.tree_map(lambda x, c=c: x[c], m))
        merged[k] = observables.moments_finalize(acc)
    U1 = np.asarray(merged["U1"][0])
    f_mean, f_var = (np.asarray(v) for v in merged["f_test"])
    names = _trace_names(D)
    diag = {}
    if config.chains >= 2 and traces.shape[1] >= 4:
        diag = diagnostics.summarize({name: traces[:, :, i] for i, name in enumerate(names)})
    mcse = np.full((D, D), np.nan)
    for i in range(D):
        for j in range(D):
            entry = diag.get(f"U1[{i},{j}]")
            if entry is not None:
                mcse[i, j] = float(np.asarray(entry["mcse"]))
    gen, acc, _ = metrics(f_mean, f_var, problem.y_test)
    y_test = np.asarray(problem.y_test)
    _, acc_se = diagnostics.jackknife_mcse(fsums, fcounts, lambda f: np.mean(np.sign(f) == y_test))
    if getattr(problem, "task", "classification") != "classification":
        acc, acc_se = math.nan, math.nan  # regression targets: no accuracy
    gen_entry = diag.get("test_mse")
    gen_se = float(np.asarray(gen_entry["mcse"])) if gen_entry is not None else float("nan")
    steps = config.chains * (config.burnin + config.steps)
    return SampleResult(
        U1_sampled=U1, U1_mcse=mcse, predictor_mean=f_mean, predictor_variance=f_var, test_accuracy=acc,
        generalization_error=gen, train_energy=float(np.asarray(merged["train_energy"][0])),
        rhat_max=float(diag.get("rhat_max", np.nan)), ess_min=float(diag.get("ess_min", np.nan)),
        steps_per_second=steps / run_time if run_time > 0 else math.inf, diagnostics=diag, config=config,
        spec=spec, acceptance_rate=acceptance, test_accuracy_mcse=acc_se, generalization_error_mcse=gen_se,
        traces=traces, trace_names=names, run_time=run_time, grad_evals_per_step=_grad_evals(config),
    )


def _grad_evals(config):
    """Gradient evaluations per transition (Gibbs: none; it solves each block's conditional exactly)."""
    return 0.0 if config.sampler == "gibbs" else 1.0
