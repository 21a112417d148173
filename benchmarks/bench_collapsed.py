"""Benchmark: ESS/s of the collapsed samplers (``overlap``, ``langevin``) against Gibbs, full-weight MALA and
NumPyro NUTS on the full weight posterior (issue "Exact collapsed simulation", item 8).

Posterior (docs/theory.md §1, §4, §8): 4-path Markov network (heads (2, 2), ``markov_problem(paths=4, n_train=100,
n_test=1000, seed=0)``, head seed 0), T = 0.01, all σ² = 1, float64 everywhere, equal widths N ∈ {10, 100, 1000}.

Samplers (all through ``smtheory.sims.sample``; 4 chains, the driver's own initialisation, seed 0):

overlap
    NUTS (BlackJAX, window adaptation during ``burnin`` = the default 500 steps; the sampler's defaults: target
    acceptance 0.8, max tree depth 10, ``mass_matrix="auto"``, which is dense for the 14 coordinates at this warm-up)
    on the exact order-parameter posterior (§8.2): 14 coordinates whatever N.  Its Rao-Blackwellised predictor takes
    the path-pair-sums route (``smtheory.sims.rb_sums``; same numbers as the draw-by-draw route to ~1e-12).
langevin
    Preconditioned Metropolis-adjusted Langevin on the V⁰-collapsed weights (§8.1) with the prior-preserving
    Crank–Nicolson proposal (``smtheory.sims.crank_nicolson``), Stan-style warm-up: the sampler's defaults.
gibbs
    Exact blocked Gibbs on all weights (today's reference); at N = 1000 only a few sweeps fit the budget.
full-mala
    MALA on all weights, fixed ε = h/T (``FULL_MALA_EPS``; halved on non-finite values), no tuning.
nuts
    NumPyro ``NUTS(potential_fn=...)`` on the FULL weight posterior (V⁰, V, a), default settings (target
    acceptance 0.8, max tree depth 10, diagonal mass matrix, Stan windowed adaptation), 4 chains vectorised,
    driven by ``bench_samplers.run_nuts`` (compiled ahead of time, compilation excluded; warm-up and sampling
    timed separately; observables of every post-warm-up draw computed with ``smtheory.sims.observables.observe``).
    At N = 10 it runs for real (``nuts`` = (warm-up, draws) in ``LENGTHS``) and ``bench_samplers.probe_nuts_single``
    adds the sequential-chains time estimate.  At N ≥ 100 a full run does not fit (see the report): a probe
    times a fixed small number of vectorised NUTS iterations (N = 100) and/or one vectorised gradient of the
    potential (every N ≥ 100), and an **upper bound** of its ESS/s is reported:
    ``ESS/s ≤ chains / (L · t_leapfrog)`` — every draw counted as an independent sample (ESS per draw ≤ 1),
    warm-up not charged, ``t_leapfrog`` the time of one vectorised gradient of the potential (each leapfrog step
    evaluates one: a lower bound on its cost) and ``L`` the mean lockstep leapfrog steps per iteration of the real
    N = 10 run's sampling phase (assumption: the adapted trees do not get shorter as N grows — the stiff V⁰
    directions remain).  The N = 100 probe's iterations (the first of warm-up) are reported, not used for L: their
    trees reflect the initial step size, not the posterior.

Observables: ``smtheory.sims.sample``'s traces. ``U1 min`` = the smallest bulk ESS over the 10 distinct entries of U_1
(the worst U_1 entry); predictor: ESS of ``test_mse`` and ``f_test[:8].mean``.  For the collapsed samplers these
two traces are the Rao-Blackwellised conditional quantities given U_1 (the test MSE of the conditional predictor
and the mean conditional prediction on the first 8 test points, §8.3), for the weight-space samplers and NUTS the
per-draw network output: not the same random variables, but each is what that sampler's predictor estimate
averages.  ESS/s = ESS / ``run_time`` (burn-in / warm-up + draws, compilation excluded, data generation
excluded); wall time per effective sample = run_time / ESS.  A figure with R-hat > 1.01 (any traced observable)
is marked unusable.  ``cpu/wall`` of every call is recorded and ``ESS per CPU-s`` = ESS / (run_time · cpu/wall)
is given as a load-insensitive estimate (the process is pinned to one CPU, so CPU time ≈ the work done).
The machine is a shared VM whose speed drifts by up to ~30 % over minutes with nothing else running (no steal
time): at N = 10, ``overlap`` and ``gibbs`` are run ``--repeats`` (default 1) more times back to back, and the report
gives the ratio of every pair (same seeds: same chains, only the wall times differ); goals use the first pair.

Run lengths (``LENGTHS``; ``--quick``: ``QUICK``) are fixed (no automatic extension: ``max_steps = steps``) so
the total stays near 25 minutes on the shared 2-core machine (the recorded full run took 33 min at load averages 5–10,
NumPyro NUTS at N = 10 alone ~12 min; ``--quick`` ~10 min).

Run: ``python3 benchmarks/bench_collapsed.py [--quick] [--widths 10 100 1000] [--samplers ...]`` →
``benchmarks/results/bench_collapsed.{json,md}`` (``--quick``: ``bench_collapsed_quick.*``; ``--from-json FILE``
rebuilds the comparisons and the report of an existing result file without sampling).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
import traceback
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (RESULTS, configure_threads, environment, extra_versions, fmt,  # noqa: E402
                     load_average, machine_line, save_progress, source_fingerprint, write_json, write_text)

NAME = "bench_collapsed"
WIDTHS = [10, 100, 1000]
OURS = ("overlap", "langevin", "gibbs", "full-mala")
ALL = OURS + ("nuts",)
RHAT_MAX = 1.01
GOAL_NUTS, GOAL_GIBBS, GOAL_FLAT = 100.0, 30.0, 2.0
FULL_MALA_EPS = 0.004  # ε = h/T; h ≈ 2/λ_max(∇²U) at N = 10 (bench_samplers' pilot: acceptance ≈ 0.5)

# (burnin, steps, thin) for smtheory.sims.sample; nuts: (warm-up, draws) of the real run, or the probe's iteration count
LENGTHS = {
    10: {"overlap": (500, 1600, 1), "langevin": (500, 4000, 2), "gibbs": (500, 8000, 4), "full-mala": (500, 2000, 10),
         "nuts": (100, 100)},
    100: {"overlap": (500, 1600, 1), "langevin": (500, 2000, 1), "gibbs": (50, 200, 1), "full-mala": (200, 800, 5),
          "nuts_probe": 5},
    1000: {"overlap": (500, 1600, 1), "langevin": (500, 1000, 1), "gibbs": (0, 6, 1), "full-mala": (10, 20, 1),
           "nuts_probe": 0},
}
QUICK = {
    10: {"overlap": (100, 200, 1), "langevin": (200, 400, 2), "gibbs": (100, 400, 2), "full-mala": (100, 200, 2),
         "nuts": (20, 20)},
    100: {"overlap": (100, 200, 1), "langevin": (100, 100, 1), "gibbs": (10, 20, 1), "full-mala": (20, 40, 1),
          "nuts_probe": 1},
    1000: {"overlap": (100, 200, 1), "langevin": (50, 8, 1), "gibbs": (0, 4, 1), "full-mala": (4, 8, 1),
           "nuts_probe": 0},
}
NUTS_PROBE_MAX_S = 120.0  # stop the N ≥ 100 NUTS probe after the first iteration that ends past this
NUTS_FEASIBLE_S = 600.0  # "finishes in reasonable time": 100 warm-up + 100 draws within 10 minutes


def lengths_for(N, quick):
    table = QUICK if quick else LENGTHS
    return table[N] if N in table else table[min(table, key=lambda k: abs(k - N))]


# ------------------------------------------------------------------------------------------ summaries

def u1_names(D):
    return [f"U1[{i},{j}]" for i in range(D) for j in range(i, D)]


def summarise(diag, D, run_time, cpu_over_wall):
    """ESS / R-hat / ESS-per-second figures from a ``smtheory.sims.diagnostics.summarize``-style dict."""
    import numpy as np

    names = u1_names(D)
    ess_u = np.array([float(diag[k]["ess_bulk"]) for k in names])
    worst = int(np.nanargmin(ess_u)) if np.any(np.isfinite(ess_u)) else 0
    allnames = [k for k, v in diag.items() if isinstance(v, dict)]
    rhat_all = np.array([float(diag[k]["rhat"]) for k in allnames])
    rmax = float(np.nanmax(rhat_all)) if np.any(np.isfinite(rhat_all)) else float("nan")
    rec = dict(ess_U1_min=float(np.nanmin(ess_u)), ess_U1_min_entry=names[worst],
               ess_U1_median=float(np.nanmedian(ess_u)),
               ess_test_mse=float(diag["test_mse"]["ess_bulk"]), ess_f8=float(diag["f_test[:8].mean"]["ess_bulk"]),
               ess_train_energy=float(diag["train_energy"]["ess_bulk"]), rhat_max=rmax,
               rhat_max_name=allnames[int(np.nanargmax(rhat_all))] if np.any(np.isfinite(rhat_all)) else None,
               usable=bool(np.isfinite(rmax) and rmax <= RHAT_MAX), run_time=run_time, cpu_over_wall=cpu_over_wall,
               per_trace={k: dict(rhat=float(diag[k]["rhat"]), ess_bulk=float(diag[k]["ess_bulk"]),
                                  mcse=float(diag[k]["mcse"])) for k in allnames})
    for k in ("ess_U1_min", "ess_U1_median", "ess_test_mse", "ess_f8"):
        e = rec[k]
        rec[k + "_per_s"] = e / run_time if run_time > 0 else float("nan")
        rec["s_per_" + k[4:]] = run_time / e if e > 0 else float("inf")
        cw = cpu_over_wall if cpu_over_wall and cpu_over_wall > 0 else float("nan")
        rec[k + "_per_cpu_s"] = e / (run_time * cw) if run_time > 0 else float("nan")
    return rec


# ------------------------------------------------------------------------------------------ our samplers

def run_ours(problem, spec, sampler, burnin, steps, thin, chains, seed, log):
    import numpy as np
    from smtheory.sims import SampleConfig, SamplingError, sample

    draws = steps // thin
    chunk = next(c for c in (500, 400, 250, 200, 100, 50, 40, 25, 20, 10, 8, 5, 4, 2, 1) if draws % c == 0)
    eps = FULL_MALA_EPS
    halvings = 0
    load0 = load_average()
    while True:
        kw = dict(step_size=eps) if sampler == "full-mala" else {}
        cfg = SampleConfig(sampler=sampler, chains=chains, steps=steps, burnin=burnin, thin=thin, max_steps=steps,
                           seed=seed, chunk=chunk, **kw)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = sample(problem, spec, cfg, progress=False)
            break
        except SamplingError as exc:
            if sampler != "full-mala" or halvings >= 3:
                raise
            halvings += 1
            eps /= 2
            log(f"    {sampler}: {exc}; halving ε to {eps:.3g}")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    cw = cpu / wall if wall > 0 else float("nan")
    rec = dict(sampler=sampler, burnin=burnin, steps=steps, thin=thin, draws_per_chain=draws, chains=chains,
               step_size_eps=eps if sampler == "full-mala" else None, step_halvings=halvings,
               compile_time=res.compile_time, wall_incl_compile=wall, acceptance=res.acceptance_rate,
               grad_evals_per_step=res.grad_evals_per_step, steps_per_second=res.steps_per_second,
               U1_mean=np.asarray(res.U1_sampled), U1_mcse=np.asarray(res.U1_mcse), train_energy_mean=res.train_energy,
               test_accuracy=res.test_accuracy, generalization_error=res.generalization_error,
               load_before=load0, load_after=load_average())
    rec.update(summarise(res.diagnostics, spec.n_paths, res.run_time, cw))
    return rec


# ------------------------------------------------------------------------------------------ NUTS

def run_nuts_real(problem, spec, warmup, samples, block, chains, seed, log):
    """The real NumPyro NUTS run of the full posterior (bench_samplers' driver) plus the sequential estimate."""
    import numpy as np
    from bench_samplers import nuts_sequential_estimate, probe_nuts_single, run_nuts
    from smtheory.sims.posterior import make_posterior

    post = make_posterior(problem, spec)
    load0 = load_average()
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nrec, final = run_nuts(problem, spec, post, warmup, samples, block, chains, seed, log)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    cw = cpu / wall if wall > 0 else float("nan")
    diag = dict(nrec["per_trace"])
    lock_iter = nrec["lockstep_leapfrog_sampling"] / samples
    rec = dict(sampler="nuts", warmup=warmup, samples=samples, draws_per_chain=samples, chains=chains, block=block,
               compile_time=nrec["compile_time"], init_time=nrec["init_time"], wall_incl_compile=wall,
               time_warmup=nrec["time_warmup"], time_sampling=nrec["time_sampling"],
               acceptance=nrec["acceptance"], step_size=nrec["step_size"],
               leapfrog_mean_warmup=nrec["leapfrog_mean_warmup"], leapfrog_mean_sampling=nrec["leapfrog_mean_sampling"],
               leapfrog_max=nrec["leapfrog_max"], tree_depth_10_fraction_sampling=nrec["tree_depth_10_fraction_sampling"],
               lockstep_leapfrog_per_iter_sampling=lock_iter,
               seconds_per_lockstep_leapfrog=nrec["seconds_per_lockstep_leapfrog"],
               divergences_warmup=nrec["divergences_warmup"], divergences_sampling=nrec["divergences_sampling"],
               grad_evals_per_step=nrec["leapfrog_mean_sampling"],
               steps_per_second=chains * (warmup + samples) / nrec["time_total"],
               U1_mean=np.asarray(nrec["U1_mean"]), U1_mcse=np.asarray(nrec["U1_mcse"]),
               train_energy_mean=nrec["train_energy_mean"], load_before=load0, load_after=load_average())
    rec.update(summarise(diag, spec.n_paths, nrec["time_total"], cw))
    rec["if_independent_ess_per_s"] = chains * samples / nrec["time_total"]
    seq = None
    try:
        means = nrec["leapfrog_mean_sampling_per_chain"]
        chain = int(min(range(len(means)), key=lambda c: abs(means[c] - nrec["leapfrog_mean_sampling"])))
        probe = probe_nuts_single(post, final, chain, block, log)
        s = nuts_sequential_estimate(nrec, probe)
        seq = dict(sampler="nuts_seq_est", probe=probe, time_total=s["time_total"], time_warmup=s["time_warmup"],
                   time_sampling=s["time_sampling"])
        seq.update({k: rec[k] for k in ("ess_U1_min", "ess_U1_min_entry", "ess_U1_median", "ess_test_mse", "ess_f8",
                                        "rhat_max", "usable", "warmup", "samples", "chains")})
        for k in ("ess_U1_min", "ess_U1_median", "ess_test_mse", "ess_f8"):
            seq[k + "_per_s"] = rec[k] / s["time_total"]
            seq["s_per_" + k[4:]] = s["time_total"] / rec[k] if rec[k] > 0 else float("inf")
    except Exception as exc:  # noqa: BLE001 - the estimate is an extra
        log(f"    single-chain NUTS probe failed: {exc!r}")
    return rec, seq


def grad_probe(post, chains, seed, min_time=1.0, max_reps=50):
    """Seconds of one vectorised (``chains`` chains) gradient of the full-posterior potential."""
    import jax

    pos = jax.vmap(post.init)(jax.random.split(jax.random.PRNGKey(seed), chains))
    g = jax.jit(jax.vmap(jax.grad(post.potential)))
    t0 = time.perf_counter()
    gc = g.lower(pos).compile()
    compile_time = time.perf_counter() - t0
    jax.block_until_ready(gc(pos))  # untimed warm call
    n, t = 0, 0.0
    while (t < min_time and n < max_reps) or n < 2:
        t0 = time.perf_counter()
        out = gc(pos)
        jax.block_until_ready(out)
        t += time.perf_counter() - t0
        n += 1
    return dict(seconds_per_vectorised_grad=t / n, reps=n, compile_time=compile_time)


def nuts_probe(post, chains, seed, iters, log, max_seconds=NUTS_PROBE_MAX_S):
    """Time ``iters`` vectorised NumPyro NUTS iterations (the first warm-up iterations) of the full posterior."""
    import jax
    import numpy as np
    from numpyro.infer import NUTS

    k_init, _ = jax.random.split(jax.random.PRNGKey(seed))  # the same starting points as smtheory.sims.sample
    init = jax.vmap(post.init)(jax.random.split(k_init, chains))
    kernel = NUTS(potential_fn=post.potential)
    t0 = time.perf_counter()
    state = jax.block_until_ready(kernel.init(jax.random.split(jax.random.PRNGKey(seed + 1), chains), 1000,
                                              init_params=init))
    init_time = time.perf_counter() - t0

    def body(st, _):
        st = kernel.sample(st, (), {})
        return st, st.num_steps

    t0 = time.perf_counter()
    compiled = jax.jit(lambda st: jax.lax.scan(body, st, None, length=1)).lower(state).compile()
    compile_time = time.perf_counter() - t0
    times, steps = [], []
    t_all = time.perf_counter()
    for i in range(iters):
        t0 = time.perf_counter()
        state, ns = compiled(state)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
        steps.append(np.asarray(ns)[0].tolist())
        log(f"    NUTS probe iteration {i + 1}/{iters}: {times[-1]:.1f} s, leapfrog steps per chain {steps[-1]}")
        if time.perf_counter() - t_all > max_seconds:
            break
    lock = [max(s) for s in steps]
    return dict(iterations=len(times), times=times, leapfrog_steps=steps, init_time=init_time,
                compile_time=compile_time, lockstep_per_iter=float(np.mean(lock)) if lock else None,
                seconds_per_lockstep_leapfrog=sum(times) / sum(lock) if lock else None)


def nuts_bound(N, problem, spec, iters, chains, seed, L_ref, log):
    """The N ≥ 100 NUTS record: probe(s) and the upper bound of its ESS/s (see the module docstring)."""
    from smtheory.sims.posterior import make_posterior

    post = make_posterior(problem, spec)
    rec = dict(sampler="nuts", bound=True, chains=chains, load_before=load_average())
    gp = grad_probe(post, chains, seed)
    rec["grad_probe"] = gp
    log(f"    vectorised gradient ({chains} chains): {gp['seconds_per_vectorised_grad'] * 1e3:.3g} ms")
    if iters:
        rec["probe"] = nuts_probe(post, chains, seed, iters, log)
    # L: the adapted (sampling-phase) tree size of the real N = 10 run.  The probe's first warm-up iterations are
    # not used for L: their trees reflect the initial step size, not the posterior (they can be 1 step long).
    if L_ref.get(10):
        L, src = float(L_ref[10]), "N=10 real run, sampling phase (lockstep, mean per iteration)"
    else:
        L, src = 1023.0, "max tree depth 10 (assumed: no N = 10 run in this process)"
    # t_leapfrog: one vectorised gradient — every leapfrog step evaluates one, so this is a lower bound on its cost
    t_lf, t_src = gp["seconds_per_vectorised_grad"], "one vectorised gradient (≤ the cost of a leapfrog step)"
    t_iter = L * t_lf
    ub = chains / t_iter
    rec.update(L_used=L, L_source=src, t_leapfrog=t_lf, t_leapfrog_source=t_src,
               seconds_per_iteration_lower=t_iter, ess_U1_min_per_s_upper=ub, ess_test_mse_per_s_upper=ub,
               ess_f8_per_s_upper=ub, s_per_U1_min_lower=1.0 / ub,
               time_100_100_lower=200 * t_iter, feasible=bool(200 * t_iter <= NUTS_FEASIBLE_S),
               load_after=load_average())
    log(f"    NUTS bound: ≥ {t_iter:.3g} s per vectorised iteration (L = {L:.0f} from {src}, {t_lf * 1e3:.3g} ms per "
        f"step) → ESS/s ≤ {ub:.3g}; 100 + 100 iterations ≥ {200 * t_iter:.0f} s")
    return rec


# ------------------------------------------------------------------------------------------ overlap cost

def overlap_breakdown(problem, spec, chains, seed, reps=100):
    """Where ``overlap``'s time goes: one vectorised (``chains``) gradient of its log density and one Rao-Blackwellised
    predictor step of the chains by the route the driver takes (path-pair sums, ``smtheory.sims.rb_sums``, when it
    applies) and by the draw-by-draw conditional moments on all test points, each compiled and timed alone."""
    import jax
    import jax.numpy as jnp
    from smtheory.sims import rao_blackwell as rb
    from smtheory.sims import rb_sums
    from smtheory.sims.overlap import overlap_target

    t = overlap_target(problem, spec)
    pos = jax.vmap(t.init)(jax.random.split(jax.random.PRNGKey(seed), chains))
    U = jax.vmap(t.order_parameter)(pos)
    data = rb.predictor_data(problem, spec, jnp.float64)

    def timed(f, x, n):
        fc = jax.jit(f).lower(x).compile()
        jax.block_until_ready(fc(x))
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            jax.block_until_ready(fc(x))
        return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n

    g_wall, g_cpu = timed(jax.vmap(jax.value_and_grad(t.logdensity)), pos, reps)
    d_wall, d_cpu = timed(jax.vmap(lambda u: rb.conditional_moments(u, data)), U, max(10, reps // 5))
    sd = rb_sums.sums_data(data, chains)
    out = dict(grad_wall=g_wall, grad_cpu=g_cpu, rb_wall=d_wall, rb_cpu=d_cpu, rb_route="draw-by-draw",
               rb_direct_wall=d_wall, rb_direct_cpu=d_cpu, n_test=int(problem.y_test.shape[0]), load=load_average())
    if sd is not None:
        sums0 = jax.vmap(lambda _: rb_sums.sums_init(data))(jnp.arange(chains))

        def summed(u):
            t = jax.vmap(lambda x: rb_sums.draw_terms(x, data, sd))(u)
            return rb_sums.sums_add(sums0, t["w"], t["alpha"], t["W"]), t["test_mse"]

        out["rb_wall"], out["rb_cpu"] = timed(summed, U, max(10, reps // 5))
        out["rb_route"] = "path-pair sums"
    return out


def breakdown_share(b, run):
    """Estimated share of the Rao-Blackwellised predictor in an ``overlap`` run's CPU time."""
    g = (run["burnin"] + run["steps"]) * run["grad_evals_per_step"] * b["grad_cpu"]
    r = run["draws_per_chain"] * b["rb_cpu"]
    return r / (g + r) if g + r > 0 else float("nan")


# ------------------------------------------------------------------------------------------ driver

def run_width(N, problem, args, L_ref, log, prev=None):
    import jax
    from smtheory.sims.posterior import make_posterior
    from smtheory import ModelSpec

    spec = ModelSpec(heads=(2, 2), widths=N, temperature=args.temperature)
    n_params = sum(int(a.size) for a in jax.tree_util.tree_leaves(
        make_posterior(problem, spec).init(jax.random.PRNGKey(0))))
    L = lengths_for(N, args.quick)
    out = prev if prev else dict(N=N, n_params=n_params, lengths=L, runs={}, failures={})
    out.setdefault("failures", {})
    log(f"N = {N} ({n_params} weights)" + (f"; resuming, done: {', '.join(out['runs'])}" if prev else ""))
    for s in args.samplers:
        if s == "nuts" or s in out["runs"]:
            continue
        out["failures"].pop(s, None)
        b, st, th = L[s]
        log(f"  {s}: burn-in {b}, steps {st}, thin {th}")
        try:
            rec = run_ours(problem, spec, s, b, st, th, args.chains, args.seed, log)
        except Exception as exc:  # noqa: BLE001 - record the failure and move on
            out["failures"][s] = dict(error=f"{type(exc).__name__}: {exc}",
                                      traceback=traceback.format_exc(limit=6))
            log(f"  {s}: FAILED {type(exc).__name__}: {exc}")
            yield out
            continue
        log(f"  {s}: ESS U1 min {rec['ess_U1_min']:.1f} ({rec['ess_U1_min_entry']}), test_mse {rec['ess_test_mse']:.1f}, "
            f"f8 {rec['ess_f8']:.1f}; R-hat max {rec['rhat_max']:.3f}; run {rec['run_time']:.1f} s (compile "
            f"{rec['compile_time']:.1f} s, cpu/wall {rec['cpu_over_wall']:.2f}); ESS/s U1 min "
            f"{rec['ess_U1_min_per_s']:.3g}")
        out["runs"][s] = rec
        if s == "overlap":
            try:
                out["overlap_breakdown"] = overlap_breakdown(problem, spec, args.chains, args.seed)
            except Exception as exc:  # noqa: BLE001 - an extra
                log(f"    overlap cost breakdown failed: {exc!r}")
        yield out
    yield from repeat_pairs(N, problem, spec, args, L, out, log)
    if "nuts" in args.samplers and "nuts" not in out["runs"]:
        out["failures"].pop("nuts", None)
        try:
            if "nuts" in L:
                W, S = L["nuts"]
                log(f"  nuts (NumPyro, full posterior): warm-up {W}, draws {S}, {args.chains} chains vectorised")
                rec, seq = run_nuts_real(problem, spec, W, S, args.nuts_block, args.chains, args.seed, log)
                L_ref[N] = rec["lockstep_leapfrog_per_iter_sampling"]
                out["runs"]["nuts"] = rec
                if seq:
                    out["runs"]["nuts_seq_est"] = seq
                log(f"  nuts: ESS U1 min {rec['ess_U1_min']:.1f}, R-hat max {rec['rhat_max']:.3f}; time "
                    f"{rec['run_time']:.1f} s; ESS/s U1 min {rec['ess_U1_min_per_s']:.3g}")
            else:
                log(f"  nuts (NumPyro, full posterior): bound only ({L['nuts_probe']} probe iterations)")
                rec = nuts_bound(N, problem, spec, L["nuts_probe"], args.chains, args.seed, L_ref, log)
                if rec.get("probe", {}).get("lockstep_per_iter"):
                    L_ref[N] = rec["probe"]["lockstep_per_iter"]
                out["runs"]["nuts"] = rec
        except Exception as exc:  # noqa: BLE001
            out["failures"]["nuts"] = dict(error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=6))
            log(f"  nuts: FAILED {type(exc).__name__}: {exc}")
        yield out


REPEAT_KEYS = ("ess_U1_min", "run_time", "ess_U1_min_per_s", "rhat_max", "cpu_over_wall", "load_before", "load_after")


def repeat_pairs(N, problem, spec, args, L, out, log):
    """At N = 10: ``args.repeats`` more runs of ``overlap`` then ``gibbs``, back to back (run-to-run spread of their
    ratio on a shared machine); the primary figures and the goals stay those of the first runs."""
    pair = ("overlap", "gibbs")
    if N != 10 or args.repeats < 1 or not all(s in args.samplers and s in out["runs"] for s in pair):
        return
    reps = out.setdefault("repeats", [])
    while len(reps) < args.repeats:
        rep = {}
        for s in pair:
            b, st, th = L[s]
            log(f"  repeat {len(reps) + 1}: {s}")
            rec = run_ours(problem, spec, s, b, st, th, args.chains, args.seed, log)
            rep[s] = {k: rec.get(k) for k in REPEAT_KEYS}
            log(f"    {s}: run {rec['run_time']:.1f} s, ESS/s U1 min {rec['ess_U1_min_per_s']:.3g}")
        reps.append(rep)
        yield out


def repeat_lines(r):
    """Markdown lines of the N = 10 repeats (first runs and each repeat pair, with the ratio of each pair)."""
    reps = r.get("repeats") or []
    runs = r["runs"]
    if not reps or "overlap" not in runs or "gibbs" not in runs:
        return []
    pairs = [{s: {k: runs[s].get(k) for k in REPEAT_KEYS} for s in ("overlap", "gibbs")}] + reps
    lines = ["", "Run-to-run spread at N = 10 (the same runs of `overlap` then `gibbs`, repeated back to back; "
             "the first pair is the one in the tables and goals above):", "",
             "| pair | overlap run [s] | overlap ESS/s U1 min | gibbs run [s] | gibbs ESS/s U1 min | ratio |",
             "|---:|---:|---:|---:|---:|---:|"]
    ratios = []
    for i, p in enumerate(pairs):
        o, g = p["overlap"], p["gibbs"]
        ratio = o["ess_U1_min_per_s"] / g["ess_U1_min_per_s"] if g["ess_U1_min_per_s"] else float("inf")
        ratios.append(ratio)
        lines.append(f"| {i + 1} | {o['run_time']:.1f} | {o['ess_U1_min_per_s']:.3g} | {g['run_time']:.1f} | "
                     f"{g['ess_U1_min_per_s']:.3g} | **{ratio:.3g}** |")
    lines += ["", f"Ratio over the {len(ratios)} pairs: min {min(ratios):.3g}, max {max(ratios):.3g} (same seeds, so the "
              "chains — and the ESS — are identical; only the wall times differ)."]
    return lines


def best_of(runs, metric):
    """Best collapsed-or-weight sampler of ours by ``metric``, among the usable ones (R-hat ≤ 1.01) if any."""
    ours = {k: v for k, v in runs.items() if k in OURS}
    usable = {k: v for k, v in ours.items() if v["usable"]}
    pool = usable or ours
    if not pool:
        return None, None, False
    b = max(pool, key=lambda k: pool[k][metric])
    return b, pool[b][metric], bool(usable)


def comparisons(data):
    """Ratios vs NUTS and Gibbs per N, the N = 10 goals and the flatness of the time per effective sample."""
    rows = [r for r in data["rows"] if r]
    out = dict(per_N={}, goals={})
    for r in rows:
        runs, c = r["runs"], {}
        for metric in ("ess_U1_min_per_s", "ess_test_mse_per_s", "ess_f8_per_s"):
            b, v, ok = best_of(runs, metric)
            if b is None:
                continue
            m = dict(best=b, best_usable=ok, value=v)
            n = runs.get("nuts")
            if n:
                if n.get("bound"):
                    m["nuts_upper"] = n[metric + "_upper"]
                    m["ratio_vs_nuts_lower"] = v / n[metric + "_upper"]
                else:
                    m["nuts"] = n[metric]
                    m["nuts_usable"] = n["usable"]
                    m["ratio_vs_nuts"] = v / n[metric] if n[metric] > 0 else float("inf")
                    mc = metric.replace("_per_s", "_per_cpu_s")
                    if runs[b].get(mc) and n.get(mc):
                        m["ratio_vs_nuts_cpu"] = runs[b][mc] / n[mc]
                    if metric == "ess_U1_min_per_s":
                        m["ratio_vs_nuts_if_independent"] = v / n["if_independent_ess_per_s"]
                    seq = runs.get("nuts_seq_est")
                    if seq:
                        m["ratio_vs_nuts_seq_est"] = v / seq[metric] if seq[metric] > 0 else float("inf")
            g = runs.get("gibbs")
            if g:
                m["gibbs"] = g[metric]
                m["gibbs_usable"] = g["usable"]
                m["ratio_vs_gibbs"] = v / g[metric] if g[metric] > 0 else float("inf")
                mc = metric.replace("_per_s", "_per_cpu_s")
                if runs[b].get(mc) and g.get(mc):
                    m["ratio_vs_gibbs_cpu"] = runs[b][mc] / g[mc]
                if metric == "ess_U1_min_per_s":
                    m["ratio_vs_gibbs_if_independent"] = v / (g["chains"] * g["draws_per_chain"] / g["run_time"])
            c[metric] = m
        out["per_N"][str(r["N"])] = c
    c10 = out["per_N"].get("10", {}).get("ess_U1_min_per_s")
    if c10:
        def verdict(ratio, goal, ok, ref_ok, cpu):
            if ratio is None:
                return "not measured"
            if not ok:
                return f"not established (no usable sampler of ours); ratio {ratio:.3g}"
            v = ("met" if ratio >= goal else "not met") + f" on wall time ({ratio:.3g}× vs goal {goal:g}×)"
            if cpu is not None:
                v += f"; per CPU-second {cpu:.3g}× ({'met' if cpu >= goal else 'not met'})"
            return v + ("" if ref_ok else " — reference R-hat > 1.01, its ESS is uncertain")
        out["goals"]["vs_nuts_N10"] = verdict(c10.get("ratio_vs_nuts"), GOAL_NUTS, c10["best_usable"],
                                              c10.get("nuts_usable", True), c10.get("ratio_vs_nuts_cpu"))
        out["goals"]["vs_gibbs_N10"] = verdict(c10.get("ratio_vs_gibbs"), GOAL_GIBBS, c10["best_usable"],
                                               c10.get("gibbs_usable", True), c10.get("ratio_vs_gibbs_cpu"))
    flat = {}
    for s in OURS + ("nuts",):
        ts = {}
        for r in rows:
            v = r["runs"].get(s)
            if v is None:
                continue
            ts[str(r["N"])] = v.get("s_per_U1_min") if not v.get("bound") else v.get("s_per_U1_min_lower")
        if ts:
            flat[s] = ts
    out["s_per_effective_sample"] = flat
    ov = flat.get("overlap", {})
    if len(ov) >= 2:
        vals = [v for v in ov.values() if v and math.isfinite(v)]
        ratio = max(vals) / min(vals) if vals else float("nan")
        rhat_ok = all(r["runs"]["overlap"]["usable"] for r in rows if "overlap" in r["runs"])
        grow = ov[max(ov, key=int)] / ov[min(ov, key=int)]
        out["goals"]["overlap_flat_in_N"] = (
            f"{'met' if grow <= GOAL_FLAT else 'not met'}: s per effective sample (worst U_1 entry) at the largest N "
            f"/ at the smallest = {grow:.3g} (max/min over N {ratio:.3g}; criterion: it does not grow, ratio ≤ "
            f"{GOAL_FLAT:g})"
            + ("" if rhat_ok else " — some overlap run has R-hat > 1.01"))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs (QUICK); writes bench_collapsed_quick.*")
    ap.add_argument("--widths", type=int, nargs="+", default=WIDTHS)
    ap.add_argument("--samplers", nargs="+", default=list(ALL), choices=list(ALL))
    ap.add_argument("--P", type=int, default=100)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--temperature", type=float, default=0.01)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--nuts-block", type=int, default=10, help="NUTS iterations per compiled block (real run)")
    ap.add_argument("--threads", choices=["1", "all"], default="1",
                    help="'1' (default): single-threaded XLA/BLAS, process pinned to one CPU")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1,
                    help="extra back-to-back runs of overlap and gibbs at N = 10 (run-to-run spread; default 1)")
    ap.add_argument("--out", default=RESULTS)
    ap.add_argument("--from-json", metavar="FILE", help="no sampling: rebuild comparisons and report of a result file")
    ap.add_argument("--resume", action="store_true",
                    help="continue an interrupted run from its result file (same settings): keep its finished "
                         "(N, sampler) runs, run the rest; the report says so")
    ap.add_argument("--add-breakdown", action="store_true",
                    help="with --from-json: measure the overlap cost breakdown per width now and add it to the file")
    args = ap.parse_args(argv)
    if args.from_json:
        import json
        with open(args.from_json) as fh:
            data = json.load(fh)
        if args.add_breakdown:
            configure_threads(args.threads)
            from smtheory import ModelSpec
            from smtheory.tasks.markov import markov_problem

            c = data["config"]
            problem = markov_problem(paths=4, n_train=c["P"], n_test=c["n_test"], seed=c["seed"])
            for r in data["rows"]:
                if r and "overlap" in r["runs"]:
                    spec = ModelSpec(heads=(2, 2), widths=r["N"], temperature=c["temperature"])
                    r["overlap_breakdown"] = dict(overlap_breakdown(problem, spec, c["chains"], c["seed"]),
                                                  measured_after_the_run=True)
                    print(f"N = {r['N']}: {r['overlap_breakdown']}", flush=True)
        data["comparison"] = comparisons(data)
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
    config = dict(task="markov_problem(paths=4, n_train=P, n_test, seed), heads (2, 2)", P=args.P, n_test=args.n_test,
                  temperature=args.temperature, widths=args.widths, chains=args.chains, samplers=args.samplers,
                  seed=args.seed, nuts_block=args.nuts_block, quick=args.quick, threads=threads, dtype="float64",
                  repeats=args.repeats,
                  variances="all 1", rhat_threshold=RHAT_MAX, full_mala_eps=FULL_MALA_EPS,
                  goals=dict(vs_nuts=GOAL_NUTS, vs_gibbs=GOAL_GIBBS, flat=GOAL_FLAT),
                  lengths={str(N): lengths_for(N, args.quick) for N in args.widths})
    t0 = time.perf_counter()
    problem = markov_problem(paths=4, n_train=args.P, n_test=args.n_test, seed=args.seed)
    config["data_generation_time"] = time.perf_counter() - t0  # excluded from every figure
    data = dict(benchmark=NAME, config=config, environment=env, rows=[])
    prev_rows = {}
    path = os.path.join(args.out, name + ".json")
    if args.resume and os.path.exists(path):
        import json
        with open(path) as fh:
            old = json.load(fh)
        keys = ("P", "n_test", "temperature", "chains", "seed", "lengths", "quick", "dtype")
        if any(old["config"].get(k) != json.loads(json.dumps(config[k])) for k in keys):
            ap.error(f"--resume: {path} was written with other settings")
        prev_rows = {r["N"]: r for r in old["rows"] if r}
        data["resumed"] = old.get("resumed", []) + [dict(
            previous_environment=old["environment"], previous_wall_time=old.get("wall_time"),
            kept={str(n): list(r["runs"]) for n, r in prev_rows.items()})]
        data["environment"]["date_utc_first_start"] = old["environment"].get("date_utc_first_start",
                                                                             old["environment"]["date_utc"])
        log(f"resuming {path}: kept " + "; ".join(f"N = {n}: {', '.join(r['runs'])}" for n, r in prev_rows.items()))
    L_ref = {}
    if prev_rows.get(10, {}).get("runs", {}).get("nuts", {}).get("lockstep_leapfrog_per_iter_sampling"):
        L_ref[10] = prev_rows[10]["runs"]["nuts"]["lockstep_leapfrog_per_iter_sampling"]
    for N in args.widths:
        data["rows"].append(None)
        for row in run_width(N, problem, args, L_ref, log, prev=prev_rows.get(N)):
            data["rows"][-1] = row
            data["comparison"] = comparisons(data)
            save_progress(data, args.out, name, t_all, c_all, markdown)
    log(f"done in {time.perf_counter() - t_all:.1f} s → {os.path.join(args.out, name)}.{{json,md}}")
    print(markdown(data))


# ------------------------------------------------------------------------------------------ report

def _q(x, usable, spec=".3g"):
    t = fmt(x, spec)
    return t if usable else f"~~{t}~~"


def markdown(d):
    c, e = d["config"], d["environment"]
    cmp_ = d.get("comparison") or comparisons(d)
    rows = [r for r in d["rows"] if r]
    th = c["threads"]
    lines = [
        "# ESS/s of the collapsed samplers vs Gibbs, full-weight MALA and NumPyro NUTS (full weight posterior)",
        "",
        f"4-path Markov task (heads (2, 2)), P = {c['P']}, {c['n_test']} test sequences, T = {c['temperature']}, all "
        f"σ² = 1, **float64 everywhere**; data seed {c['seed']}, sampler seed {c['seed']}; **{c['chains']} chains for "
        f"every sampler**, widths N ∈ {{{', '.join(str(n) for n in c['widths'])}}}. Threads: {th['threads']} "
        f"(XLA_FLAGS `{th['XLA_FLAGS']}`, process pinned to CPU {th.get('pinned_cpu')}); process CPU time / wall "
        f"time over the whole run {fmt(d.get('cpu_over_wall'), '.2f')}.{' **Quick run.**' if c['quick'] else ''}",
        "",
        machine_line(e, d, packages=("numpyro", "blackjax")),
        "",
    ]
    for res in d.get("resumed", []):
        pe = res["previous_environment"]
        lines += [f"**Resumed run**: an earlier process (started {pe['date_utc']}, load average at start "
                  f"{', '.join(f'{x:.2f}' for x in pe['load_average_at_start'] or [])}) was interrupted after "
                  f"{fmt(res.get('previous_wall_time'), '.0f')} s; its finished runs were kept ("
                  + "; ".join(f"N = {n}: {', '.join(v)}" for n, v in res["kept"].items())
                  + ") and the rest were run by this process — those figures come from different processes and "
                  "load conditions.", ""]
    loads = [x for x in (e.get("load_average_at_start") or []) + (d.get("load_average_end") or []) if x is not None]
    idle = bool(loads) and max(loads) <= 1.5 and (d.get("cpu_over_wall") or 0) >= 0.97
    lines += [
        ("**The machine was idle apart from this process** (load averages above ≤ 1.5, CPU time / wall time "
         f"{fmt(d.get('cpu_over_wall'), '.2f')}): wall-clock figures are representative of one core of this "
         "machine; ratios between samplers run back to back are the robust figures." if idle else
         "**The machine was loaded**: 2 cores shared with other sessions' jobs (tests, benchmarks) throughout; the "
         "load averages above and `cpu/wall` per run (the share of its CPU the pinned process got; 1.0 = "
         "unloaded) say how much. Wall-clock figures are therefore pessimistic in absolute terms and noisy "
         "(±~2× between runs); ratios between samplers run back to back are more robust, and `ESS/CPU-s` "
         "(ESS / (run time × cpu/wall)) is a load-insensitive estimate."),
        "",
        "**What the comparison includes**: every sampler's burn-in / warm-up (adaptation) and draws, and the per-draw "
        "observables it records (U_1, train energy, test MSE, predictor on the test set — for the collapsed "
        "samplers the Rao-Blackwellised conditional predictor on all test points, accumulated every recorded draw). "
        "**Excludes**: compilation (reported separately; `0` means the executable was reused from an earlier width "
        f"in this process), data generation ({fmt(c.get('data_generation_time'), '.1f')} s, once), diagnostics. "
        "Run lengths are fixed (no automatic extension). NumPyro NUTS: `NUTS(potential_fn=Posterior.potential)` of "
        "the full weight posterior (V⁰, V, a), default settings (target acceptance 0.8, max tree depth 10 = 1023 "
        "leapfrog steps, diagonal mass matrix, Stan windowed adaptation), 4 chains vectorised (`bench_samplers."
        "run_nuts`, compiled ahead of time), started from the same prior draws as the weight-space samplers.",
        "",
        "ESS = bulk ESS (rank-normalised split chains, all chains pooled). `U1 min` = min over the 10 distinct U_1 "
        "entries (the worst entry); `test_mse`, `f8` = the predictor traces (collapsed samplers: conditional on "
        "U_1, i.e. Rao-Blackwellised; weight samplers: per draw). ESS/s = ESS / run time; `s/ESS` = run time / ESS "
        "(wall time per effective sample). Figures with R-hat > 1.01 (max over all traced observables) are "
        "~~struck through~~ (unusable). Method details: the script's docstring.",
        "",
    ]
    # ---- summary tables
    if rows:
        Ns = [r["N"] for r in rows]
        samplers = [s for s in ALL if any(s in r["runs"] or s in r.get("failures", {}) for r in rows)]

        def cell(r, s, key, spec=".3g"):
            if s in r.get("failures", {}):
                return "failed"
            v = r["runs"].get(s)
            if v is None:
                return "—"
            if v.get("bound"):
                ub = v.get(key + "_upper") if key.endswith("_per_s") else v.get(key + "_lower")
                return f"≤ {fmt(ub, spec)}" if key.endswith("_per_s") else f"≥ {fmt(ub, spec)}"
            return _q(v.get(key), v["usable"], spec)

        lines += ["## Summary", "", "ESS/s of the worst U_1 entry (compile excluded; NUTS at N ≥ 100: upper bound):", "",
                  "| sampler | " + " | ".join(f"N = {n}" for n in Ns) + " |",
                  "|:---|" + "---:|" * len(Ns)]
        for s in samplers:
            lines.append(f"| {s} | " + " | ".join(cell(r, s, "ess_U1_min_per_s") for r in rows) + " |")
        lines += ["", "ESS/s of the predictor (`test_mse` / `f8`):", "",
                  "| sampler | " + " | ".join(f"N = {n}" for n in Ns) + " |",
                  "|:---|" + "---:|" * len(Ns)]
        for s in samplers:
            lines.append(f"| {s} | " + " | ".join(
                f"{cell(r, s, 'ess_test_mse_per_s')} / {cell(r, s, 'ess_f8_per_s')}" for r in rows) + " |")
        lines += ["", "Wall time per effective sample of the worst U_1 entry [s] (NUTS at N ≥ 100: lower bound):", "",
                  "| sampler | " + " | ".join(f"N = {n}" for n in Ns) + " |",
                  "|:---|" + "---:|" * len(Ns)]
        for s in samplers:
            lines.append(f"| {s} | " + " | ".join(cell(r, s, "s_per_U1_min") for r in rows) + " |")
        lines += ["", "R-hat max / gradient evaluations per step / compile time [s]:", "",
                  "| sampler | " + " | ".join(f"N = {n}" for n in Ns) + " |",
                  "|:---|" + "---:|" * len(Ns)]
        for s in samplers:
            cells = []
            for r in rows:
                v = r["runs"].get(s)
                if s in r.get("failures", {}):
                    cells.append("failed")
                elif v is None:
                    cells.append("—")
                elif v.get("bound"):
                    cells.append(f"not run (bound); ≥ {fmt(v['L_used'], '.0f')} / probe compile "
                                 f"{fmt(v['grad_probe']['compile_time'], '.1f')}")
                else:
                    cells.append(f"{fmt(v['rhat_max'], '.3f')} / {fmt(v['grad_evals_per_step'], '.3g')} / "
                                 f"{fmt(v['compile_time'], '.1f')}")
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        # ---- ratios and goals
        c10 = cmp_.get("per_N", {}).get("10", {})
        if c10:
            lines += ["", "### Ratios at N = 10 (best usable sampler of ours ÷ reference)", "",
                      "| metric | best of ours | ours ESS/s | NUTS ESS/s | ÷ NUTS | ÷ NUTS (per CPU-s) | ÷ NUTS (seq. est.) "
                      "| Gibbs ESS/s | ÷ Gibbs | ÷ Gibbs (per CPU-s) |", "|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for metric, m in c10.items():
                nuts_ok = m.get("nuts_usable", True)
                lines.append(
                    f"| {metric} | {m['best']}{'' if m['best_usable'] else ' (unusable)'} | {fmt(m['value'])} | "
                    f"{_q(m.get('nuts'), nuts_ok)} | **{fmt(m.get('ratio_vs_nuts'))}** | "
                    f"{fmt(m.get('ratio_vs_nuts_cpu'))} | {fmt(m.get('ratio_vs_nuts_seq_est'))} | "
                    f"{_q(m.get('gibbs'), m.get('gibbs_usable', True))} | **{fmt(m.get('ratio_vs_gibbs'))}** | "
                    f"{fmt(m.get('ratio_vs_gibbs_cpu'))} |")
            mu = c10.get("ess_U1_min_per_s", {})
            if "ratio_vs_nuts_if_independent" in mu or "ratio_vs_gibbs_if_independent" in mu:
                lines += ["", "Robustness (worst U_1 entry): if every NUTS draw were an independent sample the ratio "
                          f"vs NUTS would be {fmt(mu.get('ratio_vs_nuts_if_independent'))}; if every recorded Gibbs "
                          f"draw were, {fmt(mu.get('ratio_vs_gibbs_if_independent'))}."]
            lines += repeat_lines(next(r for r in d["rows"] if r and r["N"] == 10))
        others = {k: v for k, v in cmp_.get("per_N", {}).items() if k != "10"}
        if others:
            lines += ["", "### Ratios at N ≥ 100 (worst U_1 entry; vs NUTS: a lower bound, from its ESS/s upper bound)",
                      "", "| N | best of ours | ours ESS/s | ÷ NUTS (≥) | ÷ Gibbs | ÷ Gibbs if every Gibbs draw were "
                      "independent |", "|---:|:---|---:|---:|---:|---:|"]
            for n, cc in others.items():
                m = cc.get("ess_U1_min_per_s")
                if not m:
                    continue
                lines.append(f"| {n} | {m['best']}{'' if m['best_usable'] else ' (unusable)'} | {fmt(m['value'])} | "
                             f"{fmt(m.get('ratio_vs_nuts_lower', m.get('ratio_vs_nuts')))} | "
                             f"{fmt(m.get('ratio_vs_gibbs'))}"
                             f"{'' if m.get('gibbs_usable', True) else ' (Gibbs R-hat > 1.01)'} | "
                             f"{fmt(m.get('ratio_vs_gibbs_if_independent'))} |")
        g = cmp_.get("goals", {})
        if g:
            lines += ["", "### Goals", ""]
            labels = {"vs_nuts_N10": f"best ≥ {GOAL_NUTS:g}× NumPyro NUTS in ESS/s of the worst U_1 entry at N = 10",
                      "vs_gibbs_N10": f"best ≥ {GOAL_GIBBS:g}× Gibbs in ESS/s of the worst U_1 entry at N = 10",
                      "overlap_flat_in_N": "`overlap`'s wall time per effective sample flat in N"}
            for k, v in g.items():
                lines.append(f"- {labels.get(k, k)}: **{v}**")
        lines.append("")
    # ---- per-N details
    for r in rows:
        lines += [f"## N = {r['N']} ({r['n_params']} weights)", "",
                  "| sampler | length / chain | acc | R-hat max | ESS U1 min (entry) | ESS test_mse | ESS f8 | run [s] | "
                  "compile [s] | ESS/s U1 min | ESS/s test_mse | ESS/s f8 | s/ESS U1 | ESS/CPU-s U1 | grad/step | "
                  "cpu/wall |",
                  "|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s, v in r["runs"].items():
            if v.get("bound") or s == "nuts_seq_est":
                continue
            u = v["usable"]
            if s == "nuts":
                length = f"{v['warmup']} warm-up + {v['samples']}"
            else:
                length = f"{v['burnin']} + {v['steps']} (thin {v['thin']})"
                if v.get("step_size_eps"):
                    length += f", ε = {v['step_size_eps']:.3g}"
            lines.append(
                f"| {s} | {length} | {fmt(v.get('acceptance'), '.2f')} | {fmt(v['rhat_max'], '.3f')} | "
                f"{_q(v['ess_U1_min'], u, '.1f')} ({v['ess_U1_min_entry']}) | {_q(v['ess_test_mse'], u, '.1f')} | "
                f"{_q(v['ess_f8'], u, '.1f')} | {fmt(v['run_time'], '.1f')} | {fmt(v['compile_time'], '.1f')} | "
                f"{_q(v['ess_U1_min_per_s'], u)} | {_q(v['ess_test_mse_per_s'], u)} | {_q(v['ess_f8_per_s'], u)} | "
                f"{_q(v['s_per_U1_min'], u)} | {_q(v['ess_U1_min_per_cpu_s'], u)} | "
                f"{fmt(v['grad_evals_per_step'], '.3g')} | {fmt(v['cpu_over_wall'], '.2f')} |")
        for s, f in r.get("failures", {}).items():
            lines.append(f"| {s} | **failed**: {f['error'][:200]} |" + " |" * 14)
        notes = []
        for s, v in r["runs"].items():
            if v.get("bound") or s == "nuts_seq_est":
                continue
            n_draws = v["chains"] * v["draws_per_chain"]
            if v["ess_U1_min"] > n_draws and v["draws_per_chain"] < 50:
                notes.append(f"`{s}`: its ESS exceeds its {n_draws} draws — with {v['draws_per_chain']} draws per chain "
                             "the ESS estimate is not meaningful; the bound \"every draw independent\" is "
                             f"{n_draws / v['run_time']:.3g} ESS/s.")
            elif v["ess_U1_min"] > n_draws:
                notes.append(f"`{s}`: even its worst U_1 entry has an ESS above its {n_draws} draws (successive draws "
                             "anti-correlated, common with NUTS); with the ESS capped at the draw count its ESS/s would be "
                             f"{n_draws / v['run_time']:.3g}.")
            ge, thin = v.get("grad_evals_per_step"), v.get("thin") or 1
            if s == "langevin" and thin > 1 and ge and abs(ge * thin - 1.0) < 1e-9:
                notes.append(f"`langevin`: `grad/step` is `SampleResult.grad_evals_per_step` = {ge:.3g} = 1/thin; the "
                             "sampler makes 1 gradient evaluation per transition (the collapsed driver divides its "
                             "per-transition mean by `thin` once more).")
        b = r.get("overlap_breakdown")
        if b and "overlap" in r["runs"]:
            share = breakdown_share(b, r["runs"]["overlap"])
            notes.append(f"`overlap` cost (measured alone after its run, CPU time): one vectorised gradient of the "
                         f"{r['runs']['overlap']['chains']} chains {b['grad_cpu'] * 1e3:.3g} ms, one "
                         f"Rao-Blackwellised predictor step on the {b['n_test']} test points {b['rb_cpu'] * 1e3:.3g} ms "
                         f"per recorded draw ({b.get('rb_route', 'draw-by-draw')} route"
                         + (f"; the draw-by-draw route: {b['rb_direct_cpu'] * 1e3:.3g} ms"
                            if b.get("rb_route") == "path-pair sums" else "")
                         + f") → the predictor is ≈ {share:.0%} of the run's CPU time (estimate from the mean "
                         "gradient count per transition).")
        if notes:
            lines += [""] + [f"- {x}" for x in notes]
        n = r["runs"].get("nuts")
        if n and not n.get("bound"):
            lines += ["", f"NUTS: final step sizes {', '.join(f'{x:.3g}' for x in n['step_size'])}; mean leapfrog "
                      f"steps per iteration {n['leapfrog_mean_warmup']:.0f} (warm-up) / {n['leapfrog_mean_sampling']:.0f} "
                      f"(sampling), max {n['leapfrog_max']}, fraction of sampling iterations at the max tree depth "
                      f"{n['tree_depth_10_fraction_sampling']:.2f}; divergences {n['divergences_warmup']} / "
                      f"{n['divergences_sampling']}; warm-up {n['time_warmup']:.1f} s, sampling "
                      f"{n['time_sampling']:.1f} s; {n['seconds_per_lockstep_leapfrog'] * 1e3:.3g} ms per lockstep "
                      f"leapfrog step of the 4 vectorised chains. Worst entry ESS per draw "
                      f"{n['ess_U1_min'] / (n['chains'] * n['samples']):.2f}."]
            seq = r["runs"].get("nuts_seq_est")
            if seq:
                p = seq["probe"]
                lines += ["", f"NUTS with chains run one after another (estimated: the same draws and ESS, all leapfrog "
                          f"steps × {p['seconds_per_leapfrog'] * 1e3:.3g} ms per single-chain step, measured over "
                          f"{p['leapfrog_steps']} steps right after the run — possibly at another load than the run "
                          f"itself): time {seq['time_total']:.1f} s, ESS/s of the worst U_1 entry "
                          f"{_q(seq['ess_U1_min_per_s'], seq['usable'])}. Vectorising the 4 chains cost "
                          f"{n['seconds_per_lockstep_leapfrog'] / p['seconds_per_leapfrog']:.3g}× a single-chain "
                          "leapfrog step per lockstep step here (4× would be break-even)."]
        if n and n.get("bound"):
            gp = n["grad_probe"]
            txt = (f"NUTS (full posterior) **not run to completion at N = {r['N']}**: one vectorised gradient of the "
                   f"potential ({n['chains']} chains) takes {gp['seconds_per_vectorised_grad'] * 1e3:.3g} ms")
            p = n.get("probe")
            if p and p.get("iterations"):
                txt += (f"; {p['iterations']} vectorised NUTS iteration(s) (the first of warm-up) took "
                        f"{', '.join(f'{t:.1f}' for t in p['times'])} s with leapfrog steps per chain "
                        f"{'; '.join(str(s) for s in p['leapfrog_steps'])} → {p['seconds_per_lockstep_leapfrog'] * 1e3:.3g} "
                        f"ms per lockstep leapfrog step (compile {p['compile_time']:.1f} s, init {p['init_time']:.1f} s)")
            txt += (f". Bound: L = {n['L_used']:.0f} lockstep leapfrog steps per iteration ({n['L_source']}; "
                    "assumption: the adapted trees do not get shorter as N grows — the stiff V⁰ directions remain; the "
                    f"probe's first warm-up trees are not used, they reflect the initial step size) × {n['t_leapfrog'] * 1e3:.3g} ms ({n['t_leapfrog_source']}) = ≥ {n['seconds_per_iteration_lower']:.3g} s "
                    f"per iteration of the {n['chains']} chains; with ESS per draw ≤ 1 and warm-up not charged, "
                    f"**ESS/s ≤ {n['ess_U1_min_per_s_upper']:.3g}** for every observable. The authors' 100 warm-up + 100 "
                    f"draws would take ≥ {n['time_100_100_lower']:.0f} s "
                    f"({'within' if n['feasible'] else 'beyond'} the 10-minute limit; at N = 10 a sampling-phase "
                    "iteration was saturated at the max tree depth).")
            if p and p.get("seconds_per_lockstep_leapfrog"):
                t_p = n["L_used"] * p["seconds_per_lockstep_leapfrog"]
                txt += (f" With the probe's measured cost per lockstep leapfrog step instead of the gradient alone "
                        f"({p['seconds_per_lockstep_leapfrog'] * 1e3:.3g} ms: NumPyro's vectorised tree building costs "
                        f"{p['seconds_per_lockstep_leapfrog'] / n['t_leapfrog']:.3g}× the gradient here) the bound would "
                        f"be ESS/s ≤ {n['chains'] / t_p:.3g} ({t_p:.0f} s per iteration).")
            lines += ["", txt]
        lines += ["", "Sampled ⟨U_1⟩ (± MCSE) — all samplers target the same U_1 distribution (docs/theory.md §8.4):", "",
                  "| sampler | U_gg | U_a1a1 | U_dd | U_a2a2 | U_gd | ⟨E_train⟩ |", "|:---|---:|---:|---:|---:|---:|---:|"]
        for s, v in r["runs"].items():
            if v.get("bound") or s == "nuts_seq_est":
                continue
            U, M = v["U1_mean"], v["U1_mcse"]
            cells = [f"{float(U[i][i]):.3f} ± {float(M[i][i]):.3f}" for i in range(4)]
            lines.append(f"| {s} | {' | '.join(cells)} | {float(U[0][2]):.3f} ± {float(M[0][2]):.3f} | "
                         f"{fmt(v['train_energy_mean'])} |")
        lines.append("")
    lines += [f"Total wall time {fmt(d.get('wall_time'), '.1f')} s (compilation, probes and diagnostics included).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
