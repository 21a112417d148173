"""One experiment engine: a content-hashed, atomic, resumable task store and its executors.

Every experiment of :mod:`smtheory.validation` — the Markov comparison (:mod:`~smtheory.validation.markov`),
the finite-size study (:mod:`~smtheory.validation.finite_size`), sweeps (:mod:`~smtheory.validation.sweep`)
and pruning (:mod:`~smtheory.validation.pruning`) — declares its work as :class:`Task` objects and runs
them with :func:`run_tasks`:

* a task is a pure function call ``fn(*args)`` plus the **key**: a JSON-serialisable dict of everything
  its result depends on (configuration, seeds, the record schema :data:`smtheory.records.RECORD_SCHEMA`);
  its id is ``<label>-<12 hex digits of the SHA-256 of the key>``;
* the :class:`TaskStore` keeps one JSON file per finished task, written atomically
  (:func:`smtheory.io.write_json_atomic`) with its key and provenance (versions, commit, host, pid,
  wall time); a file is reused only if its key equals the task's, so a changed configuration never
  reuses a stale result and an interrupted run resumes where it stopped;
* an **executor** runs the pending calls: :class:`InlineExecutor` (this process, in order),
  :class:`ProcessExecutor` (spawned workers of :func:`smtheory.worker_pool.worker_pool`) or
  :class:`DaskExecutor` (a local Dask cluster or a running scheduler).  The driver process writes every
  result, so workers need no access to the output folder.

Results are returned as they read back from the store (NaN and infinities become ``None``), so a fresh
run and a resumed run return the same values.

Examples
--------
>>> from smtheory.validation.engine import Task, TaskStore, run_tasks
>>> store = TaskStore("out/tasks")                                            # doctest: +SKIP
>>> tasks = [Task(key=dict(N=n), fn=solve_width, args=(n,), label=f"theory-N{n}") for n in (10, 100)]
>>> run = run_tasks(tasks, store)                                             # doctest: +SKIP
>>> run.results[tasks[0].id]                                                  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import sys
import time
from typing import Any, Callable

from smtheory.checks import InputError

__all__ = ["Task", "TaskStore", "TaskRun", "InlineExecutor", "ProcessExecutor", "DaskExecutor",
           "make_executor", "run_tasks", "task_hash"]


def _canonical(key):
    """``key`` as it reads back from JSON (tuples become lists, NaN ``None``): what the store compares."""
    from smtheory.io import json_ready

    return json.loads(json.dumps(json_ready(key), sort_keys=True, allow_nan=False))


def task_hash(key):
    """The 12 hex digits of the SHA-256 of ``key`` (canonical JSON, sorted keys)."""
    text = json.dumps(_canonical(key), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """One unit of work: ``fn(*args)``, identified by the hash of ``key``.

    Parameters
    ----------
    key : dict
        JSON-serialisable; everything the result depends on.  Two tasks with equal keys are the same task.
    fn : callable
        A module-level function (it is pickled to process and Dask workers) returning a
        JSON-serialisable result.
    args : tuple
        Its arguments (picklable; they need not be JSON).
    label : str
        Readable prefix of the id and the file name, e.g. ``"markov4-sample-N100"``.
    cost : float
        Relative cost; pending tasks start longest first.
    """

    key: dict
    fn: Callable[..., Any]
    args: tuple = ()
    label: str = "task"
    cost: float = 1.0

    @property
    def id(self):
        """``<label>-<task_hash(key)>``."""
        return f"{self.label}-{task_hash(self.key)}"


class TaskStore:
    """A folder of finished tasks, one atomic JSON file each (``<id>.json``).

    Parameters
    ----------
    root : str
        The folder (created on the first write).
    """

    def __init__(self, root):
        self.root = os.fspath(root)

    def path(self, task):
        """The file of ``task``."""
        return os.path.join(self.root, task.id + ".json")

    def load_payload(self, task):
        """The stored file of ``task`` (a dict with ``key``, ``result``, provenance), or None if it is missing,
        unreadable or another task's."""
        try:
            with open(self.path(task)) as f:
                payload = json.load(f)
        except (OSError, ValueError):
            return None
        ok = isinstance(payload, dict) and "result" in payload and payload.get("key") == _canonical(task.key)
        return payload if ok else None

    def load(self, task):
        """The stored result of ``task``, or None (see :meth:`load_payload`)."""
        payload = self.load_payload(task)
        return None if payload is None else payload["result"]

    def is_done(self, task):
        return self.load_payload(task) is not None

    def save(self, task, result, provenance=None):
        """Write ``result`` atomically with the key and provenance; returns the result as it reads back."""
        from smtheory.io import git_commit, versions, write_json_atomic

        payload = dict(id=task.id, label=task.label, key=task.key, result=result, versions=versions(),
                       commit=git_commit(), finished=time.strftime("%Y-%m-%dT%H:%M:%S"), **(provenance or {}))
        write_json_atomic(self.path(task), payload)
        return self.load(task)


def _timed_call(fn, args):
    """Run ``fn(*args)`` (in a worker or here); returns (result, provenance)."""
    t0 = time.perf_counter()
    result = fn(*args)
    return result, dict(wall_time=time.perf_counter() - t0, host=socket.gethostname(), pid=os.getpid())


def _process_worker_call(fn, args):  # runs in a spawned worker process (the package's own process)
    from smtheory.compile_cache import enable_compilation_cache
    from smtheory.precision import configure_process

    configure_process()
    enable_compilation_cache()
    return _timed_call(fn, args)


def _dask_worker_call(fn, args):  # runs on a Dask worker
    from smtheory.precision import configure_process

    configure_process()
    return _timed_call(fn, args)


class InlineExecutor:
    """Run the calls in this process, one after another (exceptions are yielded, not raised)."""

    mode = "in-process"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def imap_unordered(self, calls):
        """Yield ``(index, ok, value)`` per call: ``value`` is (result, provenance) or the exception."""
        for i, (fn, args) in enumerate(calls):
            try:
                yield i, True, _timed_call(fn, args)
            except InputError:
                raise
            except Exception as exc:  # noqa: BLE001 - reported per task by run_tasks
                yield i, False, exc


class ProcessExecutor:
    """Spawned worker processes (:func:`smtheory.worker_pool.worker_pool`), one core each."""

    def __init__(self, workers):
        self.workers = workers
        self.mode = f"process pool, {workers} workers"
        self._stack = None

    def __enter__(self):
        import contextlib

        from smtheory.worker_pool import worker_pool

        self._stack = contextlib.ExitStack()
        self._pool = self._stack.enter_context(worker_pool(self.workers))
        return self

    def __exit__(self, *exc):
        return self._stack.__exit__(*exc)

    def imap_unordered(self, calls):
        from concurrent.futures import as_completed

        futures = {self._pool.submit(_process_worker_call, fn, args): i for i, (fn, args) in enumerate(calls)}
        for fut in as_completed(futures):
            try:
                yield futures[fut], True, fut.result()
            except Exception as exc:  # noqa: BLE001 - reported per task by run_tasks
                yield futures[fut], False, exc


def require_dask(feature):
    """Raise :class:`~smtheory.extras.MissingExtra` naming ``feature`` unless dask and distributed import.

    Both are checked: either may already be in ``sys.modules`` while the other is missing.
    """
    from smtheory.extras import require

    for module in ("dask", "distributed"):
        require(module, "cluster", feature)


class DaskExecutor:
    """A Dask distributed client: a running scheduler (``scheduler``) or a local cluster of ``workers``."""

    def __init__(self, scheduler=None, workers=1):
        self.scheduler, self.workers = scheduler, workers
        self.mode = f"dask scheduler {scheduler}" if scheduler else f"local dask cluster, {workers} workers"
        self._client = self._cluster = None

    def __enter__(self):
        require_dask("the Dask executor")
        import dask
        from dask.distributed import Client, LocalCluster

        if self.scheduler:
            try:
                self._client = Client(self.scheduler, timeout=dask.config.get("distributed.comm.timeouts.connect"))
            except (OSError, TimeoutError) as exc:
                raise InputError(f"--scheduler: cannot connect to the Dask scheduler at {self.scheduler!r}: "
                                 f"{exc}") from None
            return self
        from smtheory.worker_pool import worker_environment

        with worker_environment():  # the local workers start here and inherit the worker XLA flags
            self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                         dashboard_address=":0")
        self._client = Client(self._cluster)
        return self

    def __exit__(self, *exc):
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        return False

    def imap_unordered(self, calls):
        from dask.distributed import as_completed

        futures = {self._client.submit(_dask_worker_call, fn, args, pure=False): i for i, (fn, args) in enumerate(calls)}
        for fut in as_completed(futures):
            try:
                yield futures[fut], True, fut.result()
            except Exception as exc:  # noqa: BLE001 - reported per task by run_tasks
                yield futures[fut], False, exc


def make_executor(kind="inline", *, workers=1, scheduler=None):
    """An executor by name: ``"inline"``, ``"process"`` (``workers`` processes) or ``"dask"``."""
    if kind == "inline" or (kind == "process" and workers == 1):
        return InlineExecutor()
    if kind == "process":
        return ProcessExecutor(workers)
    if kind == "dask":
        return DaskExecutor(scheduler=scheduler, workers=workers)
    raise InputError(f"executor must be 'inline', 'process' or 'dask', got {kind!r}")


@dataclasses.dataclass(frozen=True)
class TaskRun:
    """What :func:`run_tasks` did.

    Attributes
    ----------
    results : dict
        Task id → result (as stored), for every task that is finished (computed now or before).
    computed, skipped : int
        Tasks computed in this run, and tasks found finished in the store.
    failed : list of dict
        ``{"task": id, "error": "Type: message"}`` per task that raised (with ``errors="record"``).
    mode : str
        The executor that ran the pending tasks (``"nothing to compute"`` when none were pending).
    wall_time : float
        Seconds.
    """

    results: dict
    computed: int
    skipped: int
    failed: list
    mode: str
    wall_time: float

    def to_record(self):
        return dict(mode=self.mode, tasks=len(self.results) + len(self.failed), computed=self.computed,
                    skipped=self.skipped, failed=list(self.failed), wall_time=self.wall_time)


def run_tasks(tasks, store, executor=None, *, errors="raise", on_done=None):
    """Run the tasks not yet in ``store`` (longest first) and return every result.

    Parameters
    ----------
    tasks : sequence of Task
        Distinct keys (a repeated key is run once).
    store : TaskStore
    executor : executor, optional
        :class:`InlineExecutor` (default), :class:`ProcessExecutor` or :class:`DaskExecutor`; it is
        entered only if a task is pending.
    errors : {"raise", "record"}
        A task that raises: re-raise at once (results finished before it stay stored), or record it in
        :attr:`TaskRun.failed`, go on, and leave it pending for the next run.  An
        :class:`~smtheory.checks.InputError` raised in this process always propagates.
    on_done : callable, optional
        ``on_done(task, result_or_None)`` after each pending task (None: it failed), e.g. a progress bar.

    Returns
    -------
    TaskRun
    """
    if errors not in ("raise", "record"):
        raise InputError(f"errors must be 'raise' or 'record', got {errors!r}")
    t0 = time.perf_counter()
    unique = list({t.id: t for t in tasks}.values())
    stored = {t.id: store.load_payload(t) for t in unique}  # a stored result may itself be None
    pending = sorted((t for t in unique if stored[t.id] is None), key=lambda t: -t.cost)
    results = {k: p["result"] for k, p in stored.items() if p is not None}
    failed, executor = [], executor or InlineExecutor()
    if pending:
        with executor:
            for i, ok, value in executor.imap_unordered([(t.fn, t.args) for t in pending]):
                task = pending[i]
                if ok:
                    results[task.id] = store.save(task, value[0], value[1])
                elif errors == "raise":
                    raise value
                else:
                    failed.append(dict(task=task.id, error=f"{type(value).__name__}: {value}"))
                    print(f"task {task.id} failed: {type(value).__name__}: {value}", file=sys.stderr)
                if on_done is not None:
                    on_done(task, results.get(task.id))
    return TaskRun(results=results, computed=len(pending) - len(failed), skipped=len(unique) - len(pending),
                   failed=failed, mode=executor.mode if pending else "nothing to compute",
                   wall_time=time.perf_counter() - t0)
