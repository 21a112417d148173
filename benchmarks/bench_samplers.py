"""Benchmark: effective samples per second of sims' samplers against NumPyro NUTS (the authors' sampler).

Posterior (docs/theory.md §1, §4): 4-path Markov network (heads (2, 2), data seed 0, head seed 0), P = 100
training sequences, 200 test sequences, T = 0.01, all σ² = 1, float64, equal widths N ∈ {10, 100}.

Observables (the same for every sampler): the traces that ``smtheory.sims.run`` keeps per chain — every entry of the
sampled order parameter U_1 = (1/N1) w wᵀ (16 traces, 10 distinct since U_1 is symmetric), the train energy,
and ``f_test[:8].mean`` (the network output averaged over the first 8 test points: the "predictor mean"
observable).  Diagnostics: ``smtheory.sims.diagnostics`` (rank-normalised split R-hat, bulk ESS; ArviZ conventions).
Reported per sampler: min and median bulk ESS over the 10 distinct U_1 entries, the ESS of
``f_test[:8].mean``, and max R-hat over all traces; a figure is marked **unusable** if that R-hat > 1.01.

Samplers, 4 chains each, all started from the same prior draws (``smtheory.sims.run``'s initialisation, seed 0):

gibbs
    ``smtheory.sims.run.sample(..., SampleConfig(sampler="gibbs"))`` — exact blocked Gibbs.
mala
    ``sampler="mala"``; step size tuned first (below).
langevin
    ``sampler="langevin"`` (unadjusted); step size from the stiffness (below).
nuts
    NumPyro's ``NUTS(potential_fn=post.potential)`` with default settings (target acceptance 0.8, max tree
    depth 10, diagonal mass matrix, Stan windowed adaptation), 4 chains vectorised exactly as
    ``MCMC(..., chain_method="vectorized")`` does it (``kernel.init`` with a batch of keys, which makes
    ``kernel.sample`` a ``vmap`` over chains).  Instead of ``MCMC.run`` the kernel is driven by our own
    ``jax.lax.scan`` over blocks of ``--nuts-block`` iterations, compiled ahead of time, so that compilation
    is excluded exactly and warm-up and sampling are timed separately (``MCMC.run`` re-traces and re-compiles
    its loop on every call — a second call still cost ~3 s of compilation in our tests).  The observables
    are computed from every post-warm-up NUTS draw with ``smtheory.sims.observables.observe`` inside the scan, and the
    traces are built with ``smtheory.sims.run``'s own ``_traced``.
nuts_seq_est
    Vectorising NUTS makes every chain wait for the longest trajectory of each iteration and turns the
    tree-building branches into selects.  As a fairer reference this row keeps the vectorised run's draws
    and ESS but charges the time a sequential run of the same trajectories would take: (all leapfrog steps
    of all chains, warm-up + sampling) × (seconds per leapfrog step of one non-vectorised NUTS chain, measured
    by a probe that continues the most typical chain (mean trajectory length closest to the average) from its
    final adapted state for ≥ 2000 leapfrog steps with a non-vectorised kernel and the same driver).
    It is an estimate, reported next to the measured figure.

Step sizes (h = ε T is the step of θ' = θ − h ∇U + √(2h) ξ; ε is ``SampleConfig.step_size``):

* λ_max: the largest Hessian eigenvalue of the potential U, by power iteration (Hessian-vector products), at a
  posterior-typical point (one Gibbs chain after ``--pilot-sweeps`` sweeps from the prior draw).
* MALA: pilot runs of BlackJAX's MALA kernel (the one ``smtheory.sims.mala`` wraps) with 4 chains started at that
  point, h = c/λ_max for c ∈ {0.25, 0.5, 1, 2, 4, 8}; the acceptance rate is averaged over the last 200 of 300
  steps; chosen: the largest h with acceptance in [0.5, 0.8] (else the one closest to 0.65).
* Langevin: h = 0.2/λ_max.  For a Gaussian target the Euler–Maruyama chain is stable for h λ < 2 and inflates
  the variance along an eigendirection λ by 1/(1 − hλ/2): ≤ 11 % along the stiffest direction, less elsewhere.
  T = 0.01 makes the likelihood directions stiff (λ_max ~ 1e4–1e5) while the prior directions have λ ~ 1, so
  any stable step needs ~1/h ~ 1e5 steps to move the order parameters.

Timing (compilation always excluded):

* ours: ``SampleResult.compile_time`` is excluded by ``smtheory.sims.run``; the run time (burn-in + draws) is
  ``chains · (burnin + steps) / steps_per_second``; the sampling-only time is that × steps / (burnin + steps).
* NUTS: wall time of the compiled warm-up blocks and of the compiled sampling blocks.
* ESS/s "total" = ESS / (burn-in or warm-up + sampling time); ESS/s "sampling" = ESS / sampling time.

Run lengths (``LENGTHS``; ``--quick``: ``QUICK``) are set by the ~20-minute budget on a 2-core machine.
NUTS is by far the most expensive: at N = 100 one vectorised iteration costs ~10 s (trees of 511–1023
leapfrog steps), so it gets 30 warm-up + 30 draws there (the authors used 100 + 100 with one chain); a
longer warm-up would only lower NUTS's total-time ESS/s further.

Goal: our best usable sampler ≥ 30× NUTS in ESS/s (min-over-U_1-entries ESS, total time), per N.

Run: ``python3 benchmarks/bench_samplers.py [--quick]`` → ``benchmarks/results/bench_samplers.{json,md}``
(``--quick`` writes ``bench_samplers_quick.{json,md}``; ``--from-json FILE`` only recomputes the comparisons
of an existing result file and rewrites its report).  The full run took ~24 min on the shared 2-core machine
(NUTS at N = 100 alone ~16 min); ``--quick`` ~6 min.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (RESULTS, configure_threads, environment, extra_versions, fmt,  # noqa: E402
                     machine_line, save_progress, source_fingerprint, write_json, write_text)

NAME = "bench_samplers"
WIDTHS = [10, 100]
GOAL = 30.0
RHAT_MAX = 1.01
MALA_GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
MALA_TARGET = (0.5, 0.8)
LANGEVIN_C = 0.2

# run lengths per N: (burnin, steps, thin) for smtheory.sims.run; (warmup, samples) for NUTS
LENGTHS = {
    10: dict(gibbs=(1000, 8000, 4), langevin=(5000, 20000, 10), mala=(5000, 20000, 10), nuts=(100, 200)),
    100: dict(gibbs=(100, 500, 1), langevin=(500, 2500, 5), mala=(500, 2500, 5), nuts=(30, 30)),
}
QUICK = {
    10: dict(gibbs=(100, 1000, 1), langevin=(2000, 8000, 10), mala=(2000, 8000, 10), nuts=(30, 20)),
    100: dict(gibbs=(50, 200, 1), langevin=(500, 1500, 5), mala=(500, 1500, 5), nuts=(10, 10)),
}


def lengths_for(N, quick):
    table = QUICK if quick else LENGTHS
    if N in table:
        return table[N]
    near = min(table, key=lambda k: abs(k - N))  # other widths: the nearest configured one
    return table[near]


# ------------------------------------------------------------------------------------------ summaries

def summarise_diag(diag, D):
    """ESS / R-hat figures from a ``smtheory.sims.diagnostics.summarize`` dict keyed by ``smtheory.sims.run`` trace names."""
    import numpy as np
    u = [f"U1[{i},{j}]" for i in range(D) for j in range(i, D)]
    ess_u = np.array([float(diag[k]["ess_bulk"]) for k in u])
    rhat_u = np.array([float(diag[k]["rhat"]) for k in u])
    names = [k for k, v in diag.items() if isinstance(v, dict)]
    rhat_all = np.array([float(diag[k]["rhat"]) for k in names])
    f = diag["f_test[:8].mean"]
    rmax = float(np.nanmax(rhat_all)) if np.any(np.isfinite(rhat_all)) else float("nan")
    return dict(
        ess_U1_min=float(np.nanmin(ess_u)), ess_U1_median=float(np.nanmedian(ess_u)),
        rhat_U1_max=float(np.nanmax(rhat_u)), ess_f8=float(f["ess_bulk"]), rhat_f8=float(f["rhat"]),
        ess_train_energy=float(diag["train_energy"]["ess_bulk"]), rhat_max=rmax,
        usable=bool(np.isfinite(rmax) and rmax <= RHAT_MAX),
        per_trace={k: dict(rhat=float(diag[k]["rhat"]), ess_bulk=float(diag[k]["ess_bulk"]),
                           mcse=float(diag[k]["mcse"])) for k in names},
    )


def add_rates(rec):
    tot, smp = rec["time_total"], rec["time_sampling"]
    for k in ("ess_U1_min", "ess_U1_median", "ess_f8"):
        rec[k + "_per_s"] = rec[k] / tot if tot > 0 else float("nan")
        rec[k + "_per_s_sampling"] = rec[k] / smp if smp > 0 else float("nan")
    return rec


# ------------------------------------------------------------------------------------------ pilots

def gibbs_point(post, seed, sweeps):
    """A posterior-typical weight sample: one Gibbs chain, ``sweeps`` sweeps from the prior draw."""
    import jax
    from smtheory.sims import gibbs

    alg = gibbs.build(post)
    k_init, k_run = jax.random.split(jax.random.PRNGKey(seed + 7))
    st = alg.init(post.init(k_init))

    @jax.jit
    def run(st, key):
        return jax.lax.scan(lambda s, k: (alg.step(k, s)[0], None), st, jax.random.split(key, sweeps))[0]

    return jax.block_until_ready(run(st, k_run)).position


def lambda_max(post, position, iters=60, seed=0):
    """Largest Hessian eigenvalue of the potential at ``position`` (power iteration, Rayleigh quotient)."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    flat, unravel = ravel_pytree(position)
    grad = jax.grad(lambda v: post.potential(unravel(v)))

    @jax.jit
    def power(u):
        def body(u, _):
            hu = jax.jvp(grad, (flat,), (u,))[1]
            return hu / jnp.linalg.norm(hu), jnp.dot(u, hu)
        return jax.lax.scan(body, u, None, length=iters)

    u0 = jax.random.normal(jax.random.PRNGKey(seed + 11), flat.shape, dtype=flat.dtype)
    _, rq = power(u0 / jnp.linalg.norm(u0))
    return float(rq[-1]), [float(v) for v in rq[-3:]]


def tune_mala(post, position, lam, chains, seed, log, n_burn=100, n_meas=200):
    """Acceptance of BlackJAX MALA (smtheory.sims.mala's kernel) for h = c/λ_max; returns the grid and the choice."""
    import blackjax.mcmc.mala as bm
    import jax
    import jax.numpy as jnp

    kern = bm.build_kernel()
    st0 = jax.vmap(lambda _: bm.init(position, post.logdensity))(jnp.arange(chains))

    @jax.jit
    def pilot(h, key):
        def one(st, k):
            st, info = jax.vmap(lambda kk, s: kern(kk, s, post.logdensity, h))(jax.random.split(k, chains), st)
            return st, info.acceptance_rate
        _, acc = jax.lax.scan(one, st0, jax.random.split(key, n_burn + n_meas))
        return jnp.mean(acc[n_burn:])

    grid = []
    for i, c in enumerate(MALA_GRID):
        h = c / lam
        acc = float(pilot(h, jax.random.PRNGKey(seed + 100 + i)))
        grid.append(dict(c=c, h=h, acceptance=acc))
        log(f"    MALA pilot h = {c}/λ_max = {h:.3g}: acceptance {acc:.3f}")
    ok = [g for g in grid if MALA_TARGET[0] <= g["acceptance"] <= MALA_TARGET[1]]
    choice = max(ok, key=lambda g: g["h"]) if ok else min(grid, key=lambda g: abs(g["acceptance"] - 0.65))
    return grid, choice


# ------------------------------------------------------------------------------------------ runs

def run_ours(problem, spec, sampler, burnin, steps, thin, step_size, chains, seed, log):
    from smtheory.sims.run import SampleConfig, SamplingError, sample

    draws = steps // thin
    chunk = next(c for c in (500, 400, 250, 200, 100, 50, 25, 20, 10, 5, 1) if draws % c == 0)
    tries = 0
    while True:
        cfg = SampleConfig(sampler=sampler, chains=chains, steps=steps, burnin=burnin, thin=thin,
                           step_size=step_size if sampler != "gibbs" else 1e-4, seed=seed, chunk=chunk)
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = sample(problem, spec, cfg, progress=False)
            break
        except SamplingError as exc:
            tries += 1
            if sampler == "gibbs" or tries > 3:
                raise
            log(f"    {sampler}: {exc}; halving the step size")
            step_size /= 2
    wall = time.perf_counter() - t0
    run_time = chains * (burnin + steps) / res.steps_per_second
    rec = dict(sampler=sampler, burnin=burnin, steps=steps, thin=thin, draws_per_chain=draws, chains=chains,
               step_size_eps=step_size if sampler != "gibbs" else None,
               h=step_size * spec.temperature if sampler != "gibbs" else None, step_halvings=tries,
               compile_time=res.compile_time, time_total=run_time, time_sampling=run_time * steps / (burnin + steps),
               time_warmup=run_time * burnin / (burnin + steps), wall_incl_compile=wall,
               acceptance=res.acceptance_rate, U1_mean=res.U1_sampled, U1_mcse=res.U1_mcse,
               train_energy_mean=res.train_energy, test_accuracy=res.test_accuracy,
               grad_or_sweep_per_chain_per_s=chains * (burnin + steps) / run_time / chains)
    rec.update(summarise_diag(res.diagnostics, spec.n_paths))
    return add_rates(rec)


def run_nuts(problem, spec, post, warmup, samples, block, chains, seed, log):
    import jax
    import numpy as np
    from numpyro.infer import NUTS

    from smtheory.sims import diagnostics, observables
    from smtheory.sims.posterior import test_features
    from smtheory.sims.run import _trace_names, _traced

    if warmup % block or samples % block:
        raise ValueError(f"NUTS warm-up ({warmup}) and samples ({samples}) must be multiples of the block ({block})")
    D = spec.n_paths
    xi_test = test_features(problem, post.dtype)
    y_test = jax.numpy.asarray(problem.y_test, post.dtype)
    k_init, _ = jax.random.split(jax.random.PRNGKey(seed))  # the same starting points as smtheory.sims.run
    init = jax.vmap(post.init)(jax.random.split(k_init, chains))
    kernel = NUTS(potential_fn=post.potential)
    t0 = time.perf_counter()
    state = kernel.init(jax.random.split(jax.random.PRNGKey(seed + 1), chains), warmup, init_params=init)
    state = jax.block_until_ready(state)
    init_time = time.perf_counter() - t0

    def body(st, _):
        st = kernel.sample(st, (), {})
        obs = jax.vmap(lambda p: observables.observe(post, p, xi_test))(st.z)
        tr = jax.vmap(lambda o: _traced(o, D, y_test))(obs)
        return st, (tr, st.num_steps, st.accept_prob, st.diverging)

    t0 = time.perf_counter()
    compiled = jax.jit(lambda st: jax.lax.scan(body, st, None, length=block)).lower(state).compile()
    compile_time = time.perf_counter() - t0
    t_warm, t_samp = 0.0, 0.0
    traces, nsteps_w, nsteps_s, acc_s, div_w, div_s = [], [], [], [], 0, 0
    for b in range((warmup + samples) // block):
        t0 = time.perf_counter()
        state, (tr, ns, acc, div) = compiled(state)
        jax.block_until_ready((state, tr))
        dt = time.perf_counter() - t0
        ns, acc, div = np.asarray(ns), np.asarray(acc), np.asarray(div)  # [block, chains]
        if b * block < warmup:
            t_warm += dt
            nsteps_w.append(ns)
            div_w += int(div.sum())
        else:
            t_samp += dt
            nsteps_s.append(ns)
            acc_s.append(acc)
            div_s += int(div.sum())
            traces.append(np.swapaxes(np.asarray(tr), 0, 1))
        done = (b + 1) * block
        log(f"    NUTS {'warm-up' if b * block < warmup else 'sampling'} {done}/{warmup + samples}: {dt:.1f} s, "
            f"mean leapfrog steps {ns.mean():.0f}, max {ns.max()}")
    traces = np.concatenate(traces, axis=1)  # [chains, samples, n_traced]
    names = _trace_names(D)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        diag = diagnostics.summarize({n: traces[:, :, i] for i, n in enumerate(names)}, warn=False)
    ns_w, ns_s = np.concatenate(nsteps_w), np.concatenate(nsteps_s)
    U1 = traces[:, :, :D * D].reshape(-1, D, D)
    U1_mcse = np.array([[diag[f"U1[{i},{j}]"]["mcse"] for j in range(D)] for i in range(D)], dtype=float)
    lock_s = float(ns_s.max(axis=1).sum())
    rec = dict(sampler="nuts", warmup=warmup, samples=samples, draws_per_chain=samples, chains=chains, block=block,
               init_time=init_time, compile_time=compile_time, time_warmup=t_warm, time_sampling=t_samp,
               time_total=t_warm + t_samp, acceptance=float(np.concatenate(acc_s).mean()),
               step_size=np.asarray(state.adapt_state.step_size).tolist(),
               leapfrog_mean_warmup=float(ns_w.mean()), leapfrog_mean_sampling=float(ns_s.mean()),
               leapfrog_max=int(max(ns_w.max(), ns_s.max())),
               tree_depth_10_fraction_sampling=float(np.mean(ns_s >= 1023)),
               lockstep_leapfrog_sampling=lock_s, seconds_per_lockstep_leapfrog=t_samp / lock_s,
               leapfrog_total_warmup=int(ns_w.sum()), leapfrog_total_sampling=int(ns_s.sum()),
               leapfrog_mean_sampling_per_chain=ns_s.mean(axis=0).tolist(),
               divergences_warmup=div_w, divergences_sampling=div_s,
               U1_mean=U1.mean(axis=0), U1_mcse=U1_mcse, train_energy_mean=float(traces[:, :, D * D].mean()))
    rec.update(summarise_diag(diag, D))
    return add_rates(rec), state


def probe_nuts_single(post, final_state, chain, block, log, min_steps=2000, max_blocks=10):
    """Cost of one leapfrog step of a single (non-vectorised) NUTS chain, as chain_method="sequential" runs it.

    Continues chain ``chain`` of the vectorised run from its final state (adapted step size and mass matrix,
    past warm-up, so no further adaptation) with a non-vectorised NUTS kernel, driven by the same compiled
    blocks as :func:`run_nuts`; the first block is not timed, then blocks until ``min_steps`` leapfrog steps
    (at most ``max_blocks`` blocks).  Returns seconds per leapfrog step.
    """
    import jax
    import numpy as np
    from numpyro.infer import NUTS

    state = jax.tree_util.tree_map(lambda x: x[chain], final_state)
    kernel = NUTS(potential_fn=post.potential)
    # a single key (not a batch) gives the non-vectorised sample function; the warm-up length only sets
    # the adaptation schedule, and the state is already past it
    kernel.init(jax.random.PRNGKey(0), int(state.i) - 1, init_params=state.z)

    def body(st, _):
        st = kernel.sample(st, (), {})
        return st, st.num_steps

    compiled = jax.jit(lambda st: jax.lax.scan(body, st, None, length=block)).lower(state).compile()
    state, _ = compiled(state)  # untimed first block
    jax.block_until_ready(state)
    t_s, n_s, iters = 0.0, 0, 0
    while n_s < min_steps and iters < max_blocks * block:
        iters += block
        t0 = time.perf_counter()
        state, ns = compiled(state)
        jax.block_until_ready(state)
        t_s += time.perf_counter() - t0
        n_s += int(np.asarray(ns).sum())
    c = t_s / n_s
    log(f"    single-chain NUTS probe: {n_s} leapfrog steps in {t_s:.2f} s = {c * 1e3:.3g} ms per step")
    return dict(chain=chain, iters=iters, leapfrog_steps=n_s, time=t_s, seconds_per_leapfrog=c,
                step_size=float(state.adapt_state.step_size))


def nuts_sequential_estimate(nuts, probe):
    """NUTS figures with the time a sequential (one chain after another) run of the same trajectories needs.

    Same draws and ESS as the vectorised run; time = (all leapfrog steps of all chains) × single-chain cost.
    """
    c = probe["seconds_per_leapfrog"]
    rec = {k: v for k, v in nuts.items() if k not in ("per_trace",)}
    rec.update(sampler="nuts_seq_est", time_warmup=c * nuts["leapfrog_total_warmup"],
               time_sampling=c * nuts["leapfrog_total_sampling"], compile_time=float("nan"),
               probe=probe)
    rec["time_total"] = rec["time_warmup"] + rec["time_sampling"]
    return add_rates(rec)


def run_width(N, problem, args, log):
    import jax
    from smtheory.sims.posterior import make_posterior
    from smtheory import ModelSpec

    spec = ModelSpec(heads=(2, 2), widths=N, temperature=args.temperature)
    post = make_posterior(problem, spec)
    L = lengths_for(N, args.quick)
    n_params = sum(int(a.size) for a in jax.tree_util.tree_leaves(post.init(jax.random.PRNGKey(0))))
    out = dict(N=N, n_params=n_params, lengths=L, runs={})
    log(f"N = {N} ({n_params} weights): pilot")
    t0 = time.perf_counter()
    pos = gibbs_point(post, args.seed, args.pilot_sweeps)
    lam, lam_tail = lambda_max(post, pos, seed=args.seed)
    log(f"  λ_max = {lam:.4g} (last power iterates {', '.join(f'{v:.4g}' for v in lam_tail)})")
    grid, choice = tune_mala(post, pos, lam, args.chains, args.seed, log)
    out["pilot"] = dict(lambda_max=lam, lambda_last_iterates=lam_tail, gibbs_sweeps=args.pilot_sweeps,
                        mala_grid=grid, mala_choice=choice, langevin_h=LANGEVIN_C / lam,
                        time=time.perf_counter() - t0)
    log(f"  MALA: h = {choice['h']:.3g} (pilot acceptance {choice['acceptance']:.3f}); "
        f"Langevin: h = {LANGEVIN_C / lam:.3g}; pilot {out['pilot']['time']:.1f} s")
    T = spec.temperature
    eps = {"gibbs": None, "mala": choice["h"] / T, "langevin": LANGEVIN_C / lam / T}
    for s in args.samplers:
        if s == "nuts":
            W, S = L["nuts"]
            if args.nuts_warmup is not None:
                W = args.nuts_warmup
            if args.nuts_samples is not None:
                S = args.nuts_samples
            log(f"  nuts: warm-up {W}, samples {S}, {args.chains} chains vectorised")
            rec, final_state = run_nuts(problem, spec, post, W, S, args.nuts_block, args.chains, args.seed, log)
        else:
            b, st, th = L[s]
            log(f"  {s}: burn-in {b}, steps {st}, thin {th}" + (f", ε = {eps[s]:.3g}" if eps[s] else ""))
            rec = run_ours(problem, spec, s, b, st, th, eps[s], args.chains, args.seed, log)
        log(f"  {s}: ESS U1 min {rec['ess_U1_min']:.1f} / median {rec['ess_U1_median']:.1f}, ESS f8 "
            f"{rec['ess_f8']:.1f}, R-hat max {rec['rhat_max']:.3f}; time {rec['time_total']:.1f} s "
            f"(compile {rec['compile_time']:.1f} s); ESS/s U1 min {rec['ess_U1_min_per_s']:.3g}")
        out["runs"][s] = rec
        yield out
        if s == "nuts" and args.nuts_probe:
            means = rec["leapfrog_mean_sampling_per_chain"]
            chain = int(min(range(len(means)), key=lambda c: abs(means[c] - rec["leapfrog_mean_sampling"])))
            probe = probe_nuts_single(post, final_state, chain, args.nuts_block, log)
            seq = nuts_sequential_estimate(rec, probe)
            log(f"  nuts (sequential estimate): time {seq['time_total']:.1f} s; "
                f"ESS/s U1 min {seq['ess_U1_min_per_s']:.3g}")
            out["runs"]["nuts_seq_est"] = seq
            yield out
    out["comparison"] = compare(out["runs"])
    yield out


REFERENCES = ("nuts", "nuts_seq_est")
METRICS = ("ess_U1_min_per_s", "ess_U1_median_per_s", "ess_f8_per_s", "ess_U1_min_per_s_sampling",
           "ess_U1_median_per_s_sampling", "ess_f8_per_s_sampling")


def compare(runs):
    """Best of ours against NUTS (vectorised, and the sequential estimate), per ESS/s metric.

    The best of ours is taken among its usable samplers (R-hat ≤ 1.01) when there is one.  The goal is
    judged on the min-U_1-entry ESS/s with total time against the vectorised NUTS run (the configuration
    asked for), and reported as well against the sequential estimate.
    """
    ours = {k: v for k, v in runs.items() if k not in REFERENCES}
    res = {}
    if not ours:
        return res
    usable = {k: v for k, v in ours.items() if v["usable"]}
    pool = usable or ours
    for ref in REFERENCES:
        nuts = runs.get(ref)
        if nuts is None:
            continue
        res[ref] = {}
        for metric in METRICS:
            best = max(pool, key=lambda k: pool[k][metric])
            ratio = pool[best][metric] / nuts[metric] if nuts[metric] > 0 else float("inf")
            res[ref][metric] = dict(best=best, best_usable=bool(usable), ours=pool[best][metric], nuts=nuts[metric],
                                    ratio=ratio, nuts_usable=nuts["usable"])
        # robustness: the ratio if every NUTS draw were independent (ESS = chains × samples for every entry)
        n_draws = nuts["chains"] * nuts["samples"]
        b_tot = max(pool, key=lambda k: pool[k]["ess_U1_min_per_s"])
        b_smp = max(pool, key=lambda k: pool[k]["ess_U1_min_per_s_sampling"])
        res[ref]["if_nuts_draws_independent"] = dict(
            nuts_ess=n_draws, nuts_ess_per_s=n_draws / nuts["time_total"],
            nuts_ess_per_s_sampling=n_draws / nuts["time_sampling"],
            ratio_U1_min_total=pool[b_tot]["ess_U1_min_per_s"] * nuts["time_total"] / n_draws,
            ratio_U1_min_sampling=pool[b_smp]["ess_U1_min_per_s_sampling"] * nuts["time_sampling"] / n_draws)
        m = res[ref]["ess_U1_min_per_s"]
        if not m["best_usable"]:
            verdict = "not established (no usable sampler of ours)"
        else:
            verdict = "met" if m["ratio"] >= GOAL else "not met"
            if not m["nuts_usable"]:
                verdict += " (NUTS figure unusable: R-hat > 1.01, its ESS is uncertain)"
        res[ref]["goal"] = dict(target=GOAL, metric="ess_U1_min_per_s", verdict=verdict)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs (see QUICK)")
    ap.add_argument("--N", type=int, nargs="+", default=None, help="override the width grid")
    ap.add_argument("--samplers", nargs="+", default=["gibbs", "mala", "langevin", "nuts"],
                    choices=["gibbs", "mala", "langevin", "nuts"])
    ap.add_argument("--P", type=int, default=100)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--temperature", type=float, default=0.01)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--nuts-warmup", type=int, default=None, help="override NUTS warm-up for every N")
    ap.add_argument("--nuts-samples", type=int, default=None, help="override NUTS samples for every N")
    ap.add_argument("--nuts-block", type=int, default=10, help="NUTS iterations per compiled block")
    ap.add_argument("--no-nuts-probe", dest="nuts_probe", action="store_false",
                    help="skip the single-chain NUTS cost probe (sequential-chains estimate)")
    ap.add_argument("--pilot-sweeps", type=int, default=100, help="Gibbs sweeps for the λ_max / MALA pilot point")
    ap.add_argument("--threads", choices=["1", "all"], default="1",
                    help="'1' (default): single-threaded XLA/BLAS and the process pinned to one CPU "
                         "(XLA:CPU ignores the thread flags for its dot thread pool)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--head-seed", type=int, default=0)
    ap.add_argument("--out", default=RESULTS)
    ap.add_argument("--from-json", metavar="FILE",
                    help="no sampling: recompute the comparisons of an existing result file and rewrite its .json/.md")
    args = ap.parse_args(argv)
    if args.from_json:
        import json
        with open(args.from_json) as fh:
            data = json.load(fh)
        for row in data["rows"]:
            if row and "comparison" in row:
                row["comparison"] = compare(row["runs"])
        base = os.path.splitext(args.from_json)[0]
        write_json(base + ".json", data)
        write_text(base + ".md", markdown(data))
        print(markdown(data))
        return
    if args.chains < 4:
        ap.error("--chains must be at least 4")
    threads = configure_threads(args.threads)
    t_all, c_all = time.perf_counter(), time.process_time()

    def log(msg):
        print(f"[{time.perf_counter() - t_all:7.1f}s] {msg}", flush=True)

    from smtheory.tasks.markov import markov_problem

    env = environment()
    env.update(extra_versions())
    env["source_sha256"] = source_fingerprint(("smtheory", "solvers", "sims"))
    name = NAME + ("_quick" if args.quick else "")
    widths = args.N or WIDTHS
    config = dict(task="markov, 4 paths, heads (2, 2)", P=args.P, n_test=args.n_test, temperature=args.temperature,
                  widths=widths, chains=args.chains, samplers=args.samplers, seed=args.seed, head_seed=args.head_seed,
                  nuts_block=args.nuts_block, nuts_warmup_override=args.nuts_warmup,
                  nuts_samples_override=args.nuts_samples, nuts_probe=args.nuts_probe,
                  pilot_sweeps=args.pilot_sweeps, quick=args.quick,
                  threads=threads, dtype="float64", variances="all 1", rhat_threshold=RHAT_MAX, goal=GOAL,
                  mala_grid=list(MALA_GRID), mala_target=list(MALA_TARGET), langevin_c=LANGEVIN_C)
    problem = markov_problem(paths=4, n_train=args.P, n_test=args.n_test, seed=args.seed, head_seed=args.head_seed)
    data = dict(benchmark=NAME, config=config, environment=env, rows=[])
    for N in widths:
        data["rows"].append(None)
        for row in run_width(N, problem, args, log):
            data["rows"][-1] = row
            save_progress(data, args.out, name, t_all, c_all, markdown)
    log(f"done in {time.perf_counter() - t_all:.1f} s → {os.path.join(args.out, name)}.{{json,md}}")
    print(markdown(data))


# ------------------------------------------------------------------------------------------ report

def markdown(d):
    c, e = d["config"], d["environment"]
    lines = [
        "# Effective samples per second — sims' samplers vs NumPyro NUTS",
        "",
        f"4-path Markov task (heads (2, 2)), P = {c['P']}, {c['n_test']} test sequences, T = {c['temperature']}, "
        f"all σ² = 1, float64; data seed {c['seed']}, head seed {c['head_seed']}, sampler seed {c['seed']}; "
        f"{c['chains']} chains per sampler, all from the same prior draws. Threads: {c['threads']['threads']} "
        f"(XLA_FLAGS `{c['threads']['XLA_FLAGS']}`, process pinned to CPU {c['threads'].get('pinned_cpu')}); process "
        f"CPU time / wall time {fmt(d.get('cpu_over_wall'), '.2f')}.{' **Quick run.**' if c['quick'] else ''}",
        "",
        machine_line(e, d, packages=("numpyro", "blackjax")),
        "",
        "ESS = bulk ESS (`smtheory.sims.diagnostics`, rank-normalised split chains, all chains pooled). `U1 min`/`U1 med` = "
        "min/median over the 10 distinct entries of U_1; `f8` = ESS of the network output averaged over the first "
        "8 test points (`smtheory.sims.run`'s `f_test[:8].mean` trace). `R-hat` = max over all traced observables (U_1, "
        "train energy, f8). ESS/s total = ESS / (burn-in or warm-up + sampling seconds), compile excluded; "
        "ESS/s sampling = ESS / sampling seconds. Figures of a sampler with R-hat > 1.01 are **unusable** "
        "(struck through). Method details (step-size tuning, NUTS driver, timing): the script's docstring.",
        "",
    ]
    for r in d["rows"]:
        if r is None:
            continue
        p = r.get("pilot", {})
        lines += [f"## N = {r['N']} ({r['n_params']} weights)", ""]
        if p:
            ch = p["mala_choice"]
            lines += [
                f"λ_max(∇²U) = {p['lambda_max']:.4g} at a Gibbs point ({p['gibbs_sweeps']} sweeps). MALA pilot "
                "acceptance: " + ", ".join(f"h = {g['c']}/λ: {g['acceptance']:.2f}" for g in p["mala_grid"])
                + f" → h = {ch['h']:.3g} (ε = h/T = {ch['h'] / c['temperature']:.3g}). Langevin h = "
                f"{c['langevin_c']}/λ_max = {p['langevin_h']:.3g}. Pilot time {p['time']:.1f} s.",
                "",
            ]
        lines += [
            "| sampler | length / chain | acc | R-hat | usable | ESS U1 min | ESS U1 med | ESS f8 | time total [s] "
            "| time sampling [s] | compile [s] | ESS/s U1 min | ESS/s U1 med | ESS/s f8 | ESS/s U1 min (sampling) "
            "| ESS/s f8 (sampling) |",
            "|:---|:---|---:|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s, v in r["runs"].items():
            if s in REFERENCES:
                length = f"{v['warmup']} warm-up + {v['samples']}"
                if s == "nuts_seq_est":
                    length += " (same draws; time estimated)"
            else:
                length = f"{v['burnin']} burn-in + {v['steps']} (thin {v['thin']})"
            u = v["usable"]

            def q(x, spec=".3g", u=u):
                t = fmt(x, spec)
                return t if u else f"~~{t}~~"
            lines.append(
                f"| {s} | {length} | {fmt(v.get('acceptance'), '.2f')} | {fmt(v['rhat_max'], '.3f')} | "
                f"{'yes' if u else '**no**'} | {q(v['ess_U1_min'], '.1f')} | {q(v['ess_U1_median'], '.1f')} | "
                f"{q(v['ess_f8'], '.1f')} | {fmt(v['time_total'], '.1f')} | {fmt(v['time_sampling'], '.1f')} | "
                f"{fmt(v['compile_time'], '.1f')} | {q(v['ess_U1_min_per_s'])} | {q(v['ess_U1_median_per_s'])} | "
                f"{q(v['ess_f8_per_s'])} | {q(v['ess_U1_min_per_s_sampling'])} | {q(v['ess_f8_per_s_sampling'])} |")
        nuts = r["runs"].get("nuts")
        if nuts:
            lines += ["", f"NUTS: final step sizes {', '.join(f'{s:.3g}' for s in nuts['step_size'])}; mean leapfrog "
                      f"steps per iteration {nuts['leapfrog_mean_warmup']:.0f} (warm-up), "
                      f"{nuts['leapfrog_mean_sampling']:.0f} (sampling); max {nuts['leapfrog_max']}; fraction of "
                      f"sampling iterations at max tree depth 10: {nuts['tree_depth_10_fraction_sampling']:.2f}; "
                      f"divergences {nuts['divergences_warmup']} (warm-up) / {nuts['divergences_sampling']} "
                      f"(sampling); {nuts['seconds_per_lockstep_leapfrog'] * 1e3:.2f} ms per lockstep leapfrog step "
                      "of the 4 vectorised chains (a vectorised iteration lasts as long as its longest trajectory)."]
            seq = r["runs"].get("nuts_seq_est")
            if seq:
                pr = seq["probe"]
                lines += ["", f"`nuts_seq_est`: the same NUTS draws and ESS, with the time that running the chains one "
                          "after another (chain_method=\"sequential\") would take: all "
                          f"{nuts['leapfrog_total_warmup']} "
                          f"+ {nuts['leapfrog_total_sampling']} leapfrog steps (warm-up + sampling, all chains) × "
                          f"{pr['seconds_per_leapfrog'] * 1e3:.3g} ms, the cost of one leapfrog step of a single "
                          f"non-vectorised NUTS chain measured with the same compiled driver ({pr['leapfrog_steps']} "
                          f"steps of chain {pr['chain']} continued from its final adapted state). "
                          "Vectorising 4 chains costs "
                          f"{nuts['seconds_per_lockstep_leapfrog'] / pr['seconds_per_leapfrog']:.1f}× a single-chain "
                          "step per lockstep step here."]
        lines += ["", "Sampled ⟨U_1⟩ diagonal (± MCSE) and mean train energy ½Σ(f−y)²:", "",
                  "| sampler | U_gg | U_a1a1 | U_dd | U_a2a2 | U_gd | ⟨E_train⟩ |",
                  "|:---|---:|---:|---:|---:|---:|---:|"]
        for s, v in r["runs"].items():
            if s == "nuts_seq_est":
                continue
            U, M = v["U1_mean"], v["U1_mcse"]
            cells = [f"{float(U[i][i]):.3f} ± {float(M[i][i]):.3f}" for i in range(4)]
            lines.append(f"| {s} | {' | '.join(cells)} | {float(U[0][2]):.3f} ± {float(M[0][2]):.3f} | "
                         f"{v['train_energy_mean']:.3g} |")
        cmp_ = r.get("comparison")
        for ref, label in (("nuts", "NUTS (vectorised, measured)"),
                           ("nuts_seq_est", "NUTS (sequential chains, estimated time)")):
            if not cmp_ or ref not in cmp_:
                continue
            lines += ["", f"Best of ours vs {label} (ratio = ours / NUTS; best among usable samplers of ours if any):",
                      "", "| metric | best of ours | ours | NUTS | ratio | ours usable | NUTS usable |",
                      "|:---|:---|---:|---:|---:|:---:|:---:|"]
            for k, m in cmp_[ref].items():
                if k in ("goal", "if_nuts_draws_independent"):
                    continue
                lines.append(f"| {k} | {m['best']} | {fmt(m['ours'])} | {fmt(m['nuts'])} | **{fmt(m['ratio'])}** | "
                             f"{'yes' if m['best_usable'] else 'no'} | {'yes' if m['nuts_usable'] else 'no'} |")
            b = cmp_[ref].get("if_nuts_draws_independent")
            if b:
                lines += ["", f"Robustness: if every NUTS draw were independent (ESS = {b['nuts_ess']} for every "
                          f"entry: {fmt(b['nuts_ess_per_s'])} ESS/s total, {fmt(b['nuts_ess_per_s_sampling'])} "
                          f"sampling), the min-U_1 ratio would be **{fmt(b['ratio_U1_min_total'])}** (total time) "
                          f"and **{fmt(b['ratio_U1_min_sampling'])}** (sampling time)."]
            lines += ["", f"Goal vs {label} (best of ours ≥ {GOAL:g}× NUTS in ESS/s of the min U_1 entry, total "
                      f"time): **{cmp_[ref]['goal']['verdict']}**."]
        lines.append("")
    lines += [f"Total wall time {fmt(d.get('wall_time'), '.1f')} s (pilots, compilation and diagnostics included).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
