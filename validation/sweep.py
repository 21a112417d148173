"""Parameter sweeps of theory and sampling, locally or on a Dask cluster (``smtheory sweep``).

A sweep is a grid over widths ``N``, temperatures ``T``, training-set sizes ``P``, heads per layer and
seeds (docs/theory.md §1, §5), plus optional *sampling settings* (docs/theory.md §4).  It is described by a TOML
file (:func:`load_config`, format in ``docs/sweeps.md``) and cut into independent **tasks**:

- a *theory task* is one chain of saddle-point solves (docs/theory.md §3) along the continuation axis (``N`` by
  default, or ``T``) at fixed ``(P, heads, seed, other axis)``.  Inside a chain every point is
  warm-started from its neighbours (:func:`smtheory.solvers.numeric.continuation`), so warm starts never cross
  task boundaries and tasks can run anywhere, in any order; the task also computes the predictor
  statistics of every point and the GP baseline;
- a *sampling task* is one posterior-sampling run (:func:`smtheory.sims.run.sample`) at one grid point with one
  sampler setting.

Execution (:func:`run_sweep`): in-process by default (``workers=1``), a local Dask cluster of
``workers`` processes, or an existing Dask distributed scheduler (``scheduler="tcp://host:8786"``).  Each
finished task is written atomically by the driver to ``OUT/tasks/<kind>-<hash>.json`` (the hash is taken
over everything the task depends on), so an interrupted sweep rerun with ``resume=True`` skips the
finished tasks.  Workers need the package importable but no shared file system: results travel back
through Dask.  At the end the task files are assembled into a labelled :class:`xarray.Dataset` and saved
as ``OUT/results.nc`` (:mod:`smtheory.validation.store`).
"""
from __future__ import annotations

import copy
import functools
import json
import math
import os
import sys
import time
import tomllib
import warnings
from dataclasses import dataclass, field

from smtheory.checks import InputError
from smtheory.records import RECORD_SCHEMA

from . import store
from .engine import Task, TaskStore, make_executor, require_dask, run_tasks, task_hash
from .store import heads_label

__all__ = ["SweepConfig", "SamplingSetting", "load_config", "parse_config", "make_tasks", "run_task",
           "run_sweep", "task_id", "heads_label", "TASKS_DIR", "RESULTS_FILE"]

TASKS_DIR = "tasks"
RESULTS_FILE = "results.nc"
MANIFEST_FILE = "sweep.json"

_SWEEP_KEYS = {"name", "task", "network", "n_test", "head_seed", "head_strength", "continuation", "tol",
               "variances", "readout"}
_GRID_KEYS = {"N", "T", "P", "heads", "seed"}
_SAMPLING_KEYS = {"name", "sampler", "N", "T", "chains", "steps", "burnin", "thin", "step_size", "seed",
                  "dtype", "chunk"}
_DESIGNED = {(2, 2): 4, (2, 1): 2}  # heads of the designed Markov networks of docs/theory.md §5 -> "paths"


@dataclass(frozen=True)
class SamplingSetting:
    """One sampler setting of a sweep (a label on the ``sampler`` axis of the store).

    ``N`` and ``T`` select the grid points that are sampled (every ``P``, ``heads`` and ``seed`` is);
    the other fields are those of :class:`smtheory.sims.run.SampleConfig`.
    """

    name: str
    N: tuple
    T: tuple
    sample: dict  # keyword arguments of smtheory.sims.run.SampleConfig


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep configuration (build it with :func:`load_config` or :func:`parse_config`).

    Attributes
    ----------
    name : str
    task : str
        ``"markov"``: the hidden-Markov task of docs/theory.md §5.
    network : {"designed", "random"}
        ``designed``: the networks of docs/theory.md §5 (heads ``[2, 2]`` = 4 paths, ``[2, 1]`` = the noisier 2-path
        network); ``random``: any heads per layer, every head a random head of strength ``head_strength``.
    n_test : int
        Test-set size.
    head_seed : int
        Seed of the random heads.
    head_strength : float
        Strength of the random heads (``network = "random"``).
    continuation : {"N", "T"}
        The axis along which theory points are warm-started (one task per chain).
    tol : float
        Saddle-point tolerance (:func:`smtheory.solvers.numeric.solve`).
    variances : tuple or None
        Prior variances ``(σ0², σ1²..σL², σa²)``; None = all 1.
    N : tuple of int
        Widths of the grid.
    T : tuple of float
        Temperatures of the grid.
    P : tuple of int
        Training-set sizes of the grid.
    heads : tuple of tuple of int
        Architectures (heads per layer) of the grid.
    seed : tuple of int
        Data seeds of the grid (for random networks also an offset of the head seed).
    sampling : tuple of SamplingSetting
    raw : dict
        The parsed TOML (recorded as provenance).
    """

    name: str
    task: str
    network: str
    n_test: int
    head_seed: int
    head_strength: float
    continuation: str
    tol: float
    variances: tuple
    N: tuple
    T: tuple
    P: tuple
    heads: tuple
    seed: tuple
    sampling: tuple = ()
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def n_theory_points(self):
        return len(self.N) * len(self.T) * len(self.P) * len(self.heads) * len(self.seed)

    def problem_key(self, P, heads, seed):
        """Everything the kernel problem of one ``(P, heads, seed)`` depends on."""
        return dict(task=self.task, network=self.network, n_test=self.n_test, head_seed=self.head_seed,
                    head_strength=self.head_strength, P=int(P), heads=list(heads), seed=int(seed))

    def to_dict(self):
        return copy.deepcopy(self.raw)


# ----------------------------------------------------------------------------- configuration


def _err(key, expected, got):
    return InputError(f"config key {key!r}: expected {expected}, got {got!r}")


def _int(key, v, minimum=1, maximum=None):
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum or (maximum is not None and v > maximum):
        raise _err(key, f"an integer >= {minimum}" + (f" and <= {maximum}" if maximum is not None else ""), v)
    return int(v)


def _width(key, v):
    from smtheory.checks import MAX_WIDTH

    return _int(key, v, 1, MAX_WIDTH)


def _seed(key, v, span=1):
    from smtheory.checks import SEED_LIMIT

    return _int(key, v, 0, SEED_LIMIT - span)


def _float(key, v, positive=True):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (positive and v <= 0):
        raise _err(key, "a positive finite number" if positive else "a finite number", v)
    return float(v)


def _list(key, v, item, nonempty=True):
    if not isinstance(v, list):
        v = [v]
    if nonempty and not v:
        raise _err(key, "a non-empty list", v)
    out = [item(f"{key}[{i}]", x) for i, x in enumerate(v)]
    if len(set(out)) != len(out):
        raise _err(key, "a list without repeated values", v)
    return tuple(out)


def _heads(key, v):
    if isinstance(v, bool) or not isinstance(v, list) or not v:
        raise _err(key, "a list of heads per layer such as [2, 2]", v)
    return tuple(_int(f"{key}[{i}]", h) for i, h in enumerate(v))


def _unknown(section, table, allowed):
    extra = sorted(set(table) - allowed)
    if extra:
        raise InputError(f"config key {section + '.' if section else ''}{extra[0]!r} is not known; "
                         f"expected one of {', '.join(sorted(allowed))}")


def _sections(raw):
    """Check the top-level layout of a sweep TOML document and return its ``[sweep]`` and ``[grid]`` tables."""
    if not isinstance(raw, dict):
        raise InputError("config: expected a TOML table")
    _unknown("", raw, {"sweep", "grid", "sampling"})
    sw = raw.get("sweep", {})
    if not isinstance(sw, dict):
        raise _err("sweep", "a table", sw)
    _unknown("sweep", sw, _SWEEP_KEYS)
    if "grid" not in raw or not isinstance(raw["grid"], dict):
        raise InputError("config key 'grid': expected a [grid] table with at least N")
    grid = raw["grid"]
    _unknown("grid", grid, _GRID_KEYS)
    if "N" not in grid:
        raise InputError("config key 'grid.N': expected a list of widths, but it is missing")
    return sw, grid


def _sweep_settings(sw):
    """The scalar settings of the ``[sweep]`` table (all but ``variances``), validated, as a dict."""
    task = sw.get("task", "markov")
    if task != "markov":
        raise _err("sweep.task", "'markov' (the hidden-Markov task of docs/theory.md §5)", task)
    network = sw.get("network", "designed")
    if network not in ("designed", "random"):
        raise _err("sweep.network", "'designed' or 'random'", network)
    name = sw.get("name", "sweep")
    if not isinstance(name, str) or not name:
        raise _err("sweep.name", "a non-empty string", name)
    continuation = sw.get("continuation", "N")
    if continuation not in ("N", "T"):
        raise _err("sweep.continuation", "'N' or 'T' (the axis of warm starts)", continuation)
    n_test = _int("sweep.n_test", sw.get("n_test", 1000), 2)
    if n_test % 2:
        raise _err("sweep.n_test", "an even integer (balanced classes)", n_test)
    head_seed = _seed("sweep.head_seed", sw.get("head_seed", 0))
    head_strength = _float("sweep.head_strength", sw.get("head_strength", 1.0), positive=False)
    tol = _float("sweep.tol", sw.get("tol", 1e-9))
    readout = sw.get("readout", "last")
    if readout != "last":
        raise _err("sweep.readout", "'last' (the Markov task is defined with the last-token readout)", readout)
    return dict(name=name, task=task, network=network, n_test=n_test, head_seed=head_seed,
                head_strength=head_strength, continuation=continuation, tol=tol)


def _grid_axes(grid, network):
    """The axes ``N, T, P, heads, seed`` of the ``[grid]`` table (docs/theory.md §1, §5), validated and sorted."""
    N = tuple(sorted(_list("grid.N", grid["N"], _width)))
    T = tuple(sorted(_list("grid.T", grid.get("T", [0.01]), _float)))
    P = tuple(sorted(_list("grid.P", grid.get("P", [100]), _int)))
    for i, p in enumerate(P):
        if p % 2:
            raise _err(f"grid.P[{i}]", "an even integer (balanced classes)", p)
    heads_raw = grid.get("heads", [[2, 2]])
    if isinstance(heads_raw, list) and heads_raw and all(isinstance(h, int) for h in heads_raw):
        heads_raw = [heads_raw]  # heads = [2, 2] means one architecture
    heads = _list("grid.heads", heads_raw, _heads)
    if network == "designed":
        for i, h in enumerate(heads):
            if h not in _DESIGNED:
                raise _err(f"grid.heads[{i}]", "[2, 2] or [2, 1] for the designed networks of docs/theory.md §5 "
                           "(set sweep.network = 'random' for other heads)", list(h))
    seed = tuple(sorted(_list("grid.seed", grid.get("seed", [0]), lambda k, v: _seed(k, v, span=2))))
    return dict(N=N, T=T, P=P, heads=heads, seed=seed)


def _variances(sw, heads):
    """Prior variances ``(σ0², σ1²..σL², σa²)`` of ``sweep.variances`` (one per layer plus two), or None."""
    variances = sw.get("variances")
    if variances is not None:
        variances = _list("sweep.variances", variances, _float)
        lengths = {len(h) + 2 for h in heads}
        if len(lengths) != 1 or len(variances) not in lengths:
            raise _err("sweep.variances", f"L + 2 = {sorted(lengths)} prior variances (s0, s1..sL, sa) for "
                       "every architecture of grid.heads", list(variances))
    return variances


def _sampling_setting(i, s, N, T):
    """The ``i``-th ``[[sampling]]`` table as a :class:`SamplingSetting` (on the grid's ``N`` and ``T``)."""
    key = f"sampling[{i}]"
    if not isinstance(s, dict):
        raise _err(key, "a table", s)
    _unknown(key, s, _SAMPLING_KEYS)
    sname = s.get("name", f"s{i}")
    if not isinstance(sname, str) or not sname:
        raise _err(f"{key}.name", "a non-empty string", sname)
    sN = tuple(sorted(_list(f"{key}.N", s.get("N", []), _int)))
    for n in sN:
        if n not in N:
            raise _err(f"{key}.N", f"widths taken from grid.N = {list(N)}", list(sN))
    sT = tuple(sorted(_list(f"{key}.T", s.get("T", list(T)), _float)))
    for t in sT:
        if t not in T:
            raise _err(f"{key}.T", f"temperatures taken from grid.T = {list(T)}", list(sT))
    kwargs = {k: s[k] for k in ("sampler", "chains", "steps", "burnin", "thin", "step_size", "seed", "dtype",
                                "chunk") if k in s}
    kwargs.setdefault("sampler", "gibbs")
    try:
        from smtheory.sims.run import SampleConfig

        SampleConfig(**kwargs)
    except InputError as exc:
        raise InputError(f"config key {key!r}: {exc}") from None
    except TypeError as exc:
        raise InputError(f"config key {key!r}: {exc}") from None
    return SamplingSetting(name=sname, N=sN, T=sT, sample=kwargs)


def _sampling_settings(raw, N, T):
    """All ``[[sampling]]`` tables of the document (docs/theory.md §4) as a tuple of :class:`SamplingSetting`."""
    sampling_raw = raw.get("sampling", [])
    if isinstance(sampling_raw, dict):
        sampling_raw = [sampling_raw]
    if not isinstance(sampling_raw, list):
        raise _err("sampling", "[[sampling]] tables", sampling_raw)
    settings = [_sampling_setting(i, s, N, T) for i, s in enumerate(sampling_raw)]
    if len({s.name for s in settings}) != len(settings):
        raise _err("sampling.name", "distinct names", [s.name for s in settings])
    return tuple(settings)


def parse_config(raw):
    """Validate a parsed TOML document and return a :class:`SweepConfig`.

    The checks run in the order of the document's format (``docs/sweeps.md``): layout, ``[sweep]``,
    ``[grid]`` and its memory footprint, ``sweep.variances``, ``[[sampling]]``; the first failure is reported.

    Raises
    ------
    smtheory.checks.InputError
        Naming the offending key and what was expected.
    """
    sw, grid = _sections(raw)
    settings = _sweep_settings(sw)
    axes = _grid_axes(grid, settings["network"])
    _check_sizes(axes["P"], settings["n_test"], axes["heads"])
    variances = _variances(sw, axes["heads"])
    sampling = _sampling_settings(raw, axes["N"], axes["T"])
    return SweepConfig(**settings, variances=variances, **axes, sampling=sampling, raw=copy.deepcopy(raw))


def _check_sizes(P, n_test, heads):
    """Refuse, at configuration time, grid points whose kernel problem would not fit in memory."""
    from smtheory.problem import check_problem_memory
    from smtheory.tasks.markov import INPUT_DIM, TOKENS

    for h in heads:
        try:
            check_problem_memory(max(P), n_test, INPUT_DIM, TOKENS, h)
        except InputError as exc:
            raise InputError(f"config keys 'grid.P' / 'sweep.n_test': {exc}") from None


def load_config(path):
    """Read and validate a sweep configuration file (TOML).  See ``docs/sweeps.md`` for the format."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise InputError(f"config file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    return parse_config(raw)


# ----------------------------------------------------------------------------- tasks


def task_id(task):
    """``<kind>-<12 hex digits>``: a stable name of a task, hashed over everything it depends on
    (:func:`smtheory.validation.engine.task_hash`)."""
    return f"{task['kind']}-{task_hash({k: v for k, v in task.items() if k != 'id'})}"


def make_tasks(config: SweepConfig):
    """The independent tasks of a sweep, theory chains first (cheap), then sampling points.

    Each task is a JSON-serialisable dict; :func:`run_task` executes it anywhere.
    """
    common = dict(tol=config.tol, variances=list(config.variances) if config.variances else None,
                  record_schema=RECORD_SCHEMA)
    tasks = []
    for P in config.P:
        for heads in config.heads:
            for seed in config.seed:
                problem = config.problem_key(P, heads, seed)
                if config.continuation == "N":
                    for T in config.T:
                        tasks.append(dict(kind="theory", problem=problem, axis="N", N=list(config.N), T=[T],
                                          **common))
                else:
                    for N in config.N:
                        tasks.append(dict(kind="theory", problem=problem, axis="T", N=[N], T=list(config.T),
                                          **common))
    for s in config.sampling:
        for P in config.P:
            for heads in config.heads:
                for seed in config.seed:
                    for T in s.T:
                        for N in s.N:
                            tasks.append(dict(kind="sample", problem=config.problem_key(P, heads, seed),
                                              sampler=s.name, settings=dict(s.sample), N=N, T=T,
                                              variances=common["variances"]))
    for t in tasks:
        t["id"] = task_id(t)
    return tasks


@functools.lru_cache(maxsize=4)
def _problem_cached(key_json):
    import numpy as np

    from smtheory.attention import AttentionLayer
    from smtheory.problem import KernelProblem
    from smtheory.tasks import markov

    key = json.loads(key_json)
    heads = tuple(key["heads"])
    if key["network"] == "designed":
        return markov.markov_problem(_DESIGNED[heads], key["P"], key["n_test"], seed=key["seed"],
                                     head_seed=key["head_seed"])
    rng = np.random.default_rng([key["head_seed"], key["seed"]])
    layers = [AttentionLayer(W=np.stack([markov.random_head(key["head_strength"], rng=rng) for _ in range(h)]),
                             name=f"layer {i + 1}") for i, h in enumerate(heads)]
    task = markov.MarkovTask()
    x_tr, y_tr, _ = task.sample(key["P"] // 2, seed=key["seed"])
    x_te, y_te, _ = task.sample(key["n_test"] // 2, seed=key["seed"] + 1)
    return KernelProblem.from_inputs(x_tr, y_tr, layers, x_te, y_te, readout="last")


def _problem(key):
    return _problem_cached(json.dumps(key, sort_keys=True))


def _spec(task, problem, N, T):
    from smtheory.model import ModelSpec

    return ModelSpec(heads=tuple(task["problem"]["heads"]), widths=int(N), temperature=float(T),
                     variances=tuple(task["variances"]) if task.get("variances") else None, readout="last")


def _theory(task):
    from smtheory.predictor import predictor_statistics
    from smtheory.solvers.numeric import continuation

    problem = _problem(task["problem"])
    spec = _spec(task, problem, task["N"][0], task["T"][0])
    if task["axis"] == "N":
        results = continuation(problem, spec, widths=list(task["N"]), tol=task["tol"])
        points = [(n, task["T"][0]) for n in task["N"]]
    else:
        results = continuation(problem, spec, temperatures=list(task["T"]), tol=task["tol"])
        points = [(task["N"][0], t) for t in task["T"]]
    rows = []
    for (N, T), res in zip(points, results):
        st = predictor_statistics(problem, res.spec, res.U1)
        rows.append({"N": N, "T": T, **res.to_record(), **st.to_record()})
    gp = []
    for T in sorted({t for _, t in points}):
        st = predictor_statistics(problem, _spec(task, problem, task["N"][0], T), gp=True)
        gp.append(dict(T=T, **st.to_record()))
    return dict(points=rows, gp=gp, path_names=list(problem.path_names) if problem.path_names else None)


def _sample(task):
    from smtheory.sims.run import SampleConfig, sample

    problem = _problem(task["problem"])
    spec = _spec(task, problem, task["N"], task["T"])
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # an unmixed run is recorded (rhat_max, converged), not shouted about
        warnings.simplefilter("ignore")
        settings = dict(task["settings"])
        settings.setdefault("max_steps", settings.get("steps", SampleConfig.steps))  # a sweep runs what it names
        res = sample(problem, spec, SampleConfig(**settings), progress=False)
    point = dict(N=task["N"], T=task["T"], **res.to_record(traces=False), wall_time=time.perf_counter() - t0)
    return dict(point=point,
                path_names=list(problem.path_names) if problem.path_names else None)


def run_task(task):
    """Execute one task (on a Dask worker or in-process) and return its JSON-serialisable result.

    The engine (:func:`smtheory.validation.engine.run_tasks`) stores it with the task, the wall time,
    the host and the versions.
    """
    if task["kind"] == "theory":
        return _theory(task)
    if task["kind"] == "sample":
        return _sample(task)
    raise InputError(f"unknown task kind {task['kind']!r}")


# ----------------------------------------------------------------------------- driver


def _engine_task(task):
    """The sweep task (a JSON dict with its ``id``) as a :class:`~smtheory.validation.engine.Task`."""
    return Task(key={k: v for k, v in task.items() if k != "id"}, fn=run_task, args=(task,), label=task["kind"])


def load_finished(out_dir, task):
    """The stored result of ``task`` in ``out_dir`` (``{"task": ..., "result": ...}`` plus provenance), or None
    if it is missing, unreadable or another task's."""
    payload = TaskStore(os.path.join(out_dir, TASKS_DIR)).load_payload(_engine_task(task))
    return None if payload is None else dict(payload, task=task)


def _progress_bar(total, initial, enabled):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="sweep tasks", unit="task", file=sys.stderr, dynamic_ncols=True)


def run_sweep(config, out_dir="smtheory-sweep", *, scheduler=None, workers=1, resume=False, progress=True,
              config_path=None):
    """Run a sweep and write ``OUT/results.nc``; returns the :class:`xarray.Dataset`.

    Parameters
    ----------
    config : SweepConfig or str
        A validated configuration, or the path of a TOML file.
    out_dir : str
        Output folder: ``tasks/`` (one JSON file per finished task), ``sweep.json`` (manifest) and
        ``results.nc`` (the labelled store, :func:`smtheory.validation.store.load`).
    scheduler : str, optional
        Address of a running Dask distributed scheduler (``tcp://host:8786``); tasks are submitted to it.
    workers : int
        Without ``scheduler``: 1 runs the tasks in this process; more starts a local Dask cluster of that
        many single-threaded worker processes.
    resume : bool
        Reuse an output folder that already holds a sweep: tasks whose files exist (same task, same
        inputs) are skipped.  Without it an existing sweep in ``out_dir`` is an error (nothing is overwritten).
        The folder is locked for the whole run (:func:`smtheory.io.lock_folder`): a second sweep on the
        same folder is refused with an :class:`~smtheory.checks.InputError` naming the holder's pid.
    progress : bool
        Progress bar (tqdm) on standard error.

    Returns
    -------
    xarray.Dataset
        The store (:mod:`smtheory.validation.store`).  A task that raised is reported on standard error and listed in
        ``provenance(ds)["run"]["failed"]``; its points stay NaN and a rerun with ``resume=True`` retries it.
    """
    from smtheory.io import check_output_dir, lock_folder

    if isinstance(config, (str, os.PathLike)):
        config_path = str(config)
        config = load_config(config)
    if not isinstance(config, SweepConfig):
        raise InputError("config must be a SweepConfig or the path of a TOML file")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"--workers must be a positive integer, got {workers!r}")
    store.require_store()  # the optional packages, before any task runs: the store, and Dask when used
    if scheduler or workers > 1:
        require_dask("a sweep on Dask (--workers K > 1 or --scheduler)")
    check_output_dir(out_dir, "--out")
    with lock_folder(out_dir, "--out"):
        return _run_locked(config, out_dir, scheduler, workers, resume, progress, config_path)


def _run_locked(config, out_dir, scheduler, workers, resume, progress, config_path):
    """:func:`run_sweep` while this process holds the lock of ``out_dir``."""
    from smtheory.io import write_json_atomic

    manifest = os.path.join(out_dir, MANIFEST_FILE)
    if os.path.exists(manifest) and not resume:
        raise InputError(f"--out: {out_dir!r} already holds a sweep; pass --resume to skip its finished tasks, "
                         "or choose another folder")
    tasks = make_tasks(config)
    write_json_atomic(manifest, dict(name=config.name, config=config.to_dict(), config_path=config_path,
                                     tasks=[t["id"] for t in tasks], created=time.strftime("%Y-%m-%dT%H:%M:%S")))
    task_store = TaskStore(os.path.join(out_dir, TASKS_DIR))
    jobs = [_engine_task(t) for t in tasks]
    n_skipped = sum(task_store.is_done(j) for j in jobs)
    bar = _progress_bar(len(tasks), n_skipped, progress)
    if progress and n_skipped:
        print(f"resume: {n_skipped} of {len(tasks)} tasks already finished in {out_dir}", file=sys.stderr)
    kind = "dask" if scheduler or workers > 1 else "inline"
    try:
        run = run_tasks(jobs, task_store, make_executor(kind, workers=workers, scheduler=scheduler),
                        errors="record", on_done=lambda task, result: bar is not None and bar.update(1))
    finally:
        if bar is not None:
            bar.close()
    payloads = [dict(task=t, result=run.results[j.id]) for t, j in zip(tasks, jobs) if j.id in run.results]
    ds = store.build_dataset(config, payloads, config_path=config_path, run=run.to_record())
    store.save(ds, os.path.join(out_dir, RESULTS_FILE))
    return ds
