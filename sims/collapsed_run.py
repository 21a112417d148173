"""Driver of the collapsed samplers: warm-up, recorded draws, Rao-Blackwellised predictor, checkpoints.

``overlap`` (NUTS on the order-parameter hierarchy, :mod:`smtheory.sims.overlap`) and ``langevin``
(preconditioned Langevin on the V⁰-collapsed weights, :mod:`smtheory.sims.collapsed`) share this driver
(docs/theory.md §8). ``chains`` chains run under ``jax.vmap``; each is warmed up with its own
adaptation (step size; diagonal mass matrix, or dense for ``overlap``: :func:`resolved_mass_matrix`), then
advanced by ``jax.lax.scan`` in compiled blocks of ``chunk`` recorded draws. Per recorded draw the driver
keeps ``U_1`` (all entries, or the diagonal when D > 16), the conditional train energy and test MSE and the
mean conditional prediction on the first 8 test points as traces, and running moments of ``U_1`` and of the
conditional predictor (:mod:`smtheory.sims.rao_blackwell`; or, when cheaper, running sums in path-pair space,
:mod:`smtheory.sims.rb_sums`) — no weights are stored. After every block the whole state is
checkpointed atomically with the problem's fingerprint, so an interrupted run resumes bit-identically
and a checkpoint of another problem is refused by name.

Automatic extension: when the requested draws are done and some traced observable has R-hat above
``config.rhat_target``, the same chains continue (``steps`` doubled, up to ``config.max_steps``).
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from smtheory.checks import InputError

from . import checkpoint as ckpt
from . import diagnostics, observables
from . import rao_blackwell as rb
from . import rb_sums
from .chains import over_chains
from .config import SampleConfig, SampleResult, SamplingError

__all__ = ["build_target", "build_kernel", "sample_collapsed", "trace_names", "resolved_mass_matrix"]


def build_target(problem, spec, config: SampleConfig):
    """The :class:`~smtheory.sims.collapsed_base.CollapsedTarget` of ``config.sampler``."""
    if config.sampler == "overlap":
        from .overlap import overlap_target

        return overlap_target(problem, spec, config.dtype)
    from .collapsed import collapsed_target

    return collapsed_target(problem, spec, config.dtype)


def build_kernel(target, sampler, adjusted=True, dense_mass=False):
    """NUTS for ``overlap`` (dense inverse mass matrix if ``dense_mass``); preconditioned (Metropolis-adjusted
    unless ``adjusted=False``) Langevin."""
    if sampler == "overlap":
        from . import nuts

        return nuts.build(target, dense_mass=dense_mass)
    from . import collapsed_langevin

    return collapsed_langevin.build(target, adjusted=adjusted)


_UNIQUE = itertools.count()


def _target_parts(problem, spec, config):
    """``(static, theta, init)``: a hashable static key, a pytree of arrays and the chains' start.

    For ``overlap`` the widths are values in ``theta`` (:func:`smtheory.sims.overlap.overlap_parts`), so every
    width of one network shares compiled code; the collapsed weights' shapes depend on N anyway.
    """
    if config.sampler == "overlap":
        from .overlap import overlap_layout, overlap_parts, prior_draw

        static, theta = overlap_parts(problem, spec, config.dtype)
        return ("overlap", static), theta, functools.partial(prior_draw, overlap_layout(spec),
                                                             dtype=jnp.dtype(static[2]))
    target = build_target(problem, spec, config)
    _CLOSURES[next(_UNIQUE)] = target
    key = max(_CLOSURES)
    while len(_CLOSURES) > 8:
        _CLOSURES.pop(min(_CLOSURES))
    return ("closure", key), {}, target.init


_CLOSURES = {}


def _target(static, theta):
    kind, key = static
    if kind == "overlap":
        from .overlap import target_from_parts

        return target_from_parts(key, theta)
    return _CLOSURES[key]


def trace_names(D):
    """Names of the traced scalars, in trace order."""
    u = [f"U1[{i},{j}]" for i in range(D) for j in range(D)] if D <= 16 else [f"U1[{i},{i}]" for i in range(D)]
    return u + ["train_energy", "test_mse", "f_test[:8].mean"]


def _trace_vector(U1, energy, test_mse, f_head, D):
    u = U1.reshape(-1) if D <= 16 else jnp.diag(U1)
    f8 = jnp.mean(f_head[:observables.N_TRACE_TEST_POINTS])
    return jnp.concatenate([u, energy[None], test_mse[None], f8[None]])


def _record_predictor(theta, U1, mom, D):
    """Rao-Blackwellised predictor of one recorded draw of every chain: ``(mom, trace vectors)``.

    Draw by draw (:mod:`smtheory.sims.rao_blackwell`; ``mom`` running moments of ``U_1`` and of the conditional
    mean and variance per test point) or, when ``theta["sums"]`` is given, by running sums in path-pair space
    (:mod:`smtheory.sims.rb_sums`; ``mom = (moments of U_1, PairSums)``).
    """
    data, sd = theta["rb"], theta["sums"]
    if sd is None:
        cm = over_chains(lambda U: rb.conditional_moments(U, data), U1)
        mom = jax.vmap(observables.moments_update)(mom, {"U1": U1, "f_mean": cm["f_mean"], "f_var": cm["f_var"]})
        head = cm["f_mean"]
    else:
        cm = over_chains(lambda U: rb_sums.draw_terms(U, data, sd), U1)
        mom = (jax.vmap(observables.moments_update)(mom[0], {"U1": U1}),
               rb_sums.sums_add(mom[1], cm["w"], cm["alpha"], cm["W"]))
        head = cm["f_head"]
    tr = jax.vmap(lambda u, e, t, f: _trace_vector(u, e, t, f, D))(U1, cm["train_energy"], cm["test_mse"], head)
    return mom, tr


def resolved_mass_matrix(spec, config: SampleConfig):
    """``"dense"`` or ``"diagonal"``: the inverse mass matrix an ``overlap`` run adapts (``config.mass_matrix``,
    ``"auto"`` resolved by :func:`smtheory.sims.nuts.dense_mass_estimable`); ``"diagonal"`` for ``langevin``."""
    if config.sampler != "overlap":
        return "diagonal"
    if config.mass_matrix != "auto":
        return config.mass_matrix
    from .nuts import dense_mass_estimable
    from .overlap import overlap_layout

    return "dense" if dense_mass_estimable(config.burnin, overlap_layout(spec).n_dims) else "diagonal"


@functools.lru_cache(maxsize=16)
def _make_fns(static, sampler, adjusted, thin, D, dense_mass=False):
    """Jitted warm-up and block of recorded draws (chains one after another, :mod:`smtheory.sims.chains`),
    shared by every run whose target has the same static key (``theta`` — widths, data — is an argument)."""

    def kernel_of(theta):
        target = _target(static, theta["target"])
        return target, build_kernel(target, sampler, adjusted, dense_mass)

    def transition(kernel, carry):
        states, keys, params = carry
        split = jax.vmap(lambda k: jax.random.split(k, 2))(keys)
        states, info = over_chains(kernel.step, split[:, 1], states, params)
        return (states, split[:, 0], params), info

    def draws(theta, states, keys, params, mom, n):
        target, kernel = kernel_of(theta)

        def record(carry, _):
            states, keys, params, mom = carry
            (states, keys, params), info = jax.lax.scan(lambda c, _: transition(kernel, c),
                                                        (states, keys, params), None, length=thin)
            U1 = jax.vmap(target.order_parameter)(states.position)
            mom, tr = _record_predictor(theta, U1, mom, D)
            return (states, keys, params, mom), (tr, jnp.all(info.is_finite), jnp.mean(info.acceptance_rate),
                                                 jnp.mean(info.num_grad_evals.astype(jnp.float64)))

        (states, keys, params, mom), (tr, fin, acc, ge) = jax.lax.scan(record, (states, keys, params, mom), None,
                                                                      length=n)
        return states, keys, mom, jnp.swapaxes(tr, 0, 1), jnp.all(fin), jnp.mean(acc), jnp.mean(ge)

    def warm(theta, keys, positions, n):
        _, kernel = kernel_of(theta)
        return over_chains(lambda k, p: kernel.warmup(k, p, n), keys, positions)

    return jax.jit(warm, static_argnums=3), jax.jit(draws, static_argnums=5)


_EXECUTABLES = {}


def _compiled(fn, args, n):
    """Ahead-of-time compiled ``fn(*args, n)``, cached by function and argument signature.

    Returns ``(executable, seconds spent compiling)``: 0 when a run with the same signature
    (e.g. another width of the same network) compiled it already in this process.
    """
    leaves, tree = jax.tree_util.tree_flatten(args)
    sig = (id(fn), n, tree, tuple((tuple(np.shape(x)), str(jnp.result_type(x))) for x in leaves))
    if sig in _EXECUTABLES:
        return _EXECUTABLES[sig], 0.0
    t0 = time.perf_counter()
    exe = fn.lower(*args, n).compile()
    _EXECUTABLES[sig] = exe
    while len(_EXECUTABLES) > 32:
        _EXECUTABLES.pop(next(iter(_EXECUTABLES)))
    return exe, time.perf_counter() - t0


class _Run:
    """Mutable state of one run (chains' states, moments, traces) with checkpoint I/O."""

    def __init__(self, problem, spec, config, checkpoint):
        self.problem, self.spec, self.config, self.path = problem, spec, config, checkpoint
        static, theta, self.init = _target_parts(problem, spec, config)
        dtype = jnp.float64 if config.dtype == "float64" else jnp.float32
        self.data = rb.predictor_data(problem, spec, dtype)
        self.sums_data = rb_sums.sums_data(self.data, config.chains)
        self.theta = {"target": theta, "rb": self.data, "sums": self.sums_data}
        self.D = spec.n_paths
        self.names = trace_names(self.D)
        self.mass_matrix = resolved_mass_matrix(spec, config)
        self.warm, self.draws = _make_fns(static, config.sampler, config.adjusted, config.thin, self.D,
                                          self.mass_matrix == "dense")
        # "auto" and the mass matrix it resolves to are the same setting: the fingerprint and the result's config
        # name the resolved one
        self.resolved = config.replace(mass_matrix=self.mass_matrix) if config.sampler == "overlap" else config
        self.fp = ckpt.fingerprint(problem, spec, self.resolved)
        self.done, self.acc_sum, self.ge_sum, self.run_time, self.compile_time = 0, 0.0, 0.0, 0.0, 0.0
        self.extensions = 0
        self.compiled = {}  # block length -> compiled block of draws (reused across extensions)
        self.states = self.params = self.keys = self.mom = None
        self.traces = np.zeros((config.chains, 0, len(self.names)))
        self.fsums, self.fcounts = np.zeros((0, config.chains, self.data.y_test.shape[0])), np.zeros((0,))

    # ------------------------------------------------------------------ start / resume
    def start(self):
        c = self.config
        k_init, k_warm, k_run = jax.random.split(jax.random.PRNGKey(c.seed), 3)
        positions = jax.vmap(self.init)(jax.random.split(k_init, c.chains))
        wkeys = jax.random.split(k_warm, c.chains)
        warm_c, dt = _compiled(self.warm, (self.theta, wkeys, positions), c.burnin)
        self.compile_time += dt
        t0 = time.perf_counter()
        self.states, self.params = warm_c(self.theta, wkeys, positions)
        self.states = jax.block_until_ready(self.states)
        self.run_time += time.perf_counter() - t0
        if not bool(jnp.all(jnp.isfinite(self.states.logdensity))):
            raise SamplingError("non-finite log density after warm-up; check the data and the temperature")
        self.keys = jax.random.split(k_run, c.chains)
        self.mom = self._empty_moments()

    def _empty_moments(self):
        U = jnp.eye(self.D, dtype=self.data.y.dtype)
        chains = jnp.arange(self.config.chains)
        if self.sums_data is not None:
            return (jax.vmap(lambda _: observables.moments_init({"U1": U}))(chains),
                    jax.vmap(lambda _: rb_sums.sums_init(self.data))(chains))
        cm0 = jax.eval_shape(lambda u: rb.conditional_moments(u, self.data), U)
        ex = {"U1": U, "f_mean": jnp.zeros(cm0["f_mean"].shape, U.dtype), "f_var": jnp.zeros(cm0["f_var"].shape, U.dtype)}
        return jax.vmap(lambda _: observables.moments_init(ex))(chains)

    def f_totals(self):
        """Per chain, the sum over the recorded draws of the conditional mean on every test point [chains, Q]."""
        if self.sums_data is not None:
            return rb_sums.block_f_sums(self.mom[1].A, self.data)
        return np.asarray(self.mom.mean["f_mean"]) * np.asarray(self.mom.count)[:, None]

    def _pytree(self):
        return dict(states=self.states, params=self.params, keys=self.keys, mom=self.mom, traces=self.traces,
                    fsums=self.fsums, fcounts=self.fcounts)

    def save(self):
        if not self.path:
            return
        meta = dict(fingerprint=self.fp, config=dataclasses.asdict(self.config), spec=self.spec.to_dict(),
                    done=self.done, acc_sum=self.acc_sum, ge_sum=self.ge_sum, run_time=self.run_time,
                    extensions=self.extensions, n_blocks=len(self.fcounts), kind="collapsed")
        ckpt.save_checkpoint(self.path, self._pytree(), meta)

    def resume(self):
        m = ckpt.read_metadata(self.path)
        ckpt.check_fingerprint(self.path, m.get("fingerprint"), self.fp)
        if m["done"] > self.config.max_steps // self.config.thin:
            raise InputError(f"resume: the checkpoint already holds {m['done']} draws per chain; max_steps must be "
                             f"at least {m['done'] * self.config.thin}, got {self.config.max_steps}")
        self.start_shapes()
        like = self._pytree()
        like["traces"] = np.zeros((self.config.chains, m["done"], len(self.names)))
        like["fsums"] = np.zeros((m["n_blocks"],) + self.fsums.shape[1:])
        like["fcounts"] = np.zeros((m["n_blocks"],))
        loaded, m = ckpt.load_checkpoint(self.path, like)
        for k in ("states", "params", "keys", "mom"):
            setattr(self, k, loaded[k])
        self.traces, self.fsums, self.fcounts = (np.array(loaded[k]) for k in ("traces", "fsums", "fcounts"))
        for k in ("done", "acc_sum", "ge_sum", "run_time", "extensions"):
            setattr(self, k, m[k])

    def start_shapes(self):
        """Shapes of a started run without running the warm-up (for loading a checkpoint)."""
        c = self.config
        keys = jax.random.split(jax.random.PRNGKey(0), c.chains)
        positions = jax.vmap(self.init)(keys)
        shapes = jax.eval_shape(lambda t, k, p: self.warm(t, k, p, c.burnin), self.theta, keys, positions)
        self.states, self.params = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        self.keys = keys
        self.mom = self._empty_moments()

    # ------------------------------------------------------------------ drawing
    def advance(self, total, bar=None):
        """Record draws until ``total`` per chain, one checkpointed block at a time."""
        compiled = self.compiled
        while self.done < total:
            n = min(self.config.chunk, total - self.done)
            if n not in compiled:
                compiled[n], dt = _compiled(self.draws, (self.theta, self.states, self.keys, self.params, self.mom), n)
                self.compile_time += dt
            t0 = time.perf_counter()
            f_before = self.f_totals()
            self.states, self.keys, self.mom, tr, fin, acc, ge = compiled[n](self.theta, self.states, self.keys,
                                                                             self.params, self.mom)
            tr = np.asarray(tr)
            self.run_time += time.perf_counter() - t0
            if not bool(fin) or not np.all(np.isfinite(tr)):
                bad = np.where(~np.all(np.isfinite(tr), axis=(1, 2)))[0]
                raise SamplingError(f"non-finite values in chain(s) {bad.tolist()} after {self.done} draws; "
                                    "check the data scale and the temperature")
            f_after = self.f_totals()
            self.traces = np.concatenate([self.traces, tr], axis=1)
            self.fsums = np.concatenate([self.fsums, (f_after - f_before)[None]])
            self.fcounts = np.append(self.fcounts, n)
            self.acc_sum += float(acc) * n
            self.ge_sum += float(ge) * n
            self.done += n
            self.save()
            if bar is not None:
                bar.update(n)


def _rhat_max(run):
    if run.config.chains < 2 or run.traces.shape[1] < 4:
        return math.nan
    d = diagnostics.summarize({n: run.traces[:, :, i] for i, n in enumerate(run.names)}, warn=False)
    return d["rhat_max"]


def sample_collapsed(problem, spec, config: SampleConfig, *, checkpoint=None, resume=False, progress=True,
                     bar_factory=None):
    """Run a collapsed sampler (``overlap`` or ``langevin``) and summarise it; see :func:`smtheory.sims.run.sample`."""
    run = _Run(problem, spec, config, checkpoint)
    if resume:
        if not os.path.exists(checkpoint):
            raise InputError(f"resume: no checkpoint at {checkpoint!r}")
        run.resume()
    else:
        run.start()
        run.save()
    steps = max(config.steps, run.done * config.thin)
    bar = bar_factory(config.draws) if bar_factory else None
    if bar is not None:
        bar.update(min(run.done, config.draws))
    while True:
        run.advance(steps // config.thin, bar)
        r = _rhat_max(run)
        if (math.isfinite(r) and r <= config.rhat_target) or not math.isfinite(r) or steps >= config.max_steps:
            break
        steps = min(2 * steps, config.max_steps)
        run.extensions += 1
        if bar is not None:
            bar.total = steps // config.thin
            bar.refresh()
    if bar is not None:
        bar.close()
    return summarise(run, run.resolved.replace(steps=steps))


def _predictor_summary(run: _Run):
    """``(⟨U_1⟩, predictive mean, predictive variance)`` pooled over chains (docs/theory.md §8.3)."""
    if run.sums_data is None:
        # ddof 0: the predictive variance E[v] + Var m of the draws' mixture, as rb_sums.finalize
        merged = observables.moments_finalize(observables.moments_merge_axis(run.mom), ddof=0)
        f_mean, f_var = rb.predictive_summary((merged[0]["f_mean"], merged[1]["f_mean"]),
                                              np.asarray(merged[0]["f_var"]))
        return np.asarray(merged[0]["U1"]), f_mean, f_var
    moments, sums = run.mom
    merged = observables.moments_merge_axis(moments)
    U1 = np.asarray(merged.mean["U1"])
    pooled = jax.tree_util.tree_map(lambda x: jnp.sum(x, axis=0), sums)
    f_mean, f_var = rb_sums.finalize(pooled, int(merged.count), U1, run.data)
    return U1, f_mean, f_var


def summarise(run: _Run, config: SampleConfig) -> SampleResult:
    """The :class:`SampleResult` of a finished run (Rao-Blackwellised predictor, diagnostics)."""
    D, problem = run.D, run.problem
    U1, f_mean, f_var = _predictor_summary(run)
    diag = {}
    if config.chains >= 2 and run.traces.shape[1] >= 4:
        diag = diagnostics.summarize({n: run.traces[:, :, i] for i, n in enumerate(run.names)}, warn=False)
    mcse = np.full((D, D), np.nan)
    for i in range(D):
        for j in range(D):
            e = diag.get(f"U1[{i},{j}]")
            if e is not None:
                mcse[i, j] = float(np.asarray(e["mcse"]))
    y_test = np.asarray(problem.y_test)
    acc, acc_se = diagnostics.jackknife_mcse(run.fsums, run.fcounts, lambda f: np.mean(np.sign(f) == y_test))
    if getattr(problem, "task", "classification") != "classification":
        acc, acc_se = math.nan, math.nan  # regression targets: no accuracy
    i_mse, i_e = run.names.index("test_mse"), run.names.index("train_energy")
    gen_entry = diag.get("test_mse")
    n_steps = config.chains * (config.burnin + run.done * config.thin)
    return SampleResult(
        U1_sampled=U1, U1_mcse=mcse, predictor_mean=f_mean, predictor_variance=f_var, test_accuracy=float(acc),
        generalization_error=float(np.mean(run.traces[:, :, i_mse])),
        train_energy=float(np.mean(run.traces[:, :, i_e])),
        rhat_max=float(diag.get("rhat_max", np.nan)), ess_min=float(diag.get("ess_min", np.nan)),
        steps_per_second=n_steps / run.run_time if run.run_time > 0 else math.inf, diagnostics=diag,
        config=config, spec=run.spec, acceptance_rate=run.acc_sum / max(run.done, 1),
        compile_time=run.compile_time, test_accuracy_mcse=acc_se,
        generalization_error_mcse=float(np.asarray(gen_entry["mcse"])) if gen_entry else float("nan"),
        traces=run.traces, trace_names=list(run.names), grad_evals_per_step=run.ge_sum / max(run.done, 1),
        run_time=run.run_time, extensions=run.extensions)
