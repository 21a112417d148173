"""The experiment engine (smtheory.validation.engine): content-hashed store, resume, executors, failures."""
import json
import math
import operator
import os

import pytest

from smtheory.checks import InputError
from smtheory.validation.engine import (InlineExecutor, ProcessExecutor, Task, TaskStore, make_executor,
                                        run_tasks, task_hash)

CALLS = []


def _counted(x):
    CALLS.append(x)
    return dict(x=x, sq=x * x, nan=float("nan"))


def _fails(x):
    raise RuntimeError(f"lost {x}")


def _bad_input(x):
    raise InputError("x: expected something else")


def _tasks(values, fn=_counted):
    return [Task(key=dict(x=v, schema=1), fn=fn, args=(v,), label=f"t{v}", cost=v) for v in values]


def test_ids_hash_the_key_only():
    a, b = Task(key=dict(x=1, y=(1, 2)), fn=_counted), Task(key={"y": [1, 2], "x": 1}, fn=_fails, args=(5,))
    assert a.id == b.id == f"task-{task_hash(dict(x=1, y=[1, 2]))}"  # key order, tuple/list: same task
    assert Task(key=dict(x=2), fn=_counted).id != Task(key=dict(x=1), fn=_counted).id
    assert len(task_hash(dict(x=1))) == 12


def test_finished_tasks_are_reused_and_a_changed_key_recomputes(tmp_path):
    store = TaskStore(tmp_path / "tasks")
    CALLS.clear()
    first = run_tasks(_tasks([1, 2, 3]), store)
    assert sorted(CALLS) == [1, 2, 3] and first.computed == 3 and first.skipped == 0
    assert first.mode == "in-process"
    CALLS.clear()
    again = run_tasks(_tasks([1, 2, 3, 4]), store)
    assert CALLS == [4] and again.computed == 1 and again.skipped == 3
    assert again.results == {**first.results, _tasks([4])[0].id: dict(x=4, sq=16, nan=None)}
    # a fresh run and a resumed run return the same values (NaN reads back as None)
    assert first.results[_tasks([2])[0].id] == dict(x=2, sq=4, nan=None)
    # a file whose key differs (same name, edited) is not reused
    t = _tasks([1])[0]
    payload = json.load(open(store.path(t)))
    payload["key"]["schema"] = 0
    json.dump(payload, open(store.path(t), "w"))
    CALLS.clear()
    assert run_tasks(_tasks([1]), store).computed == 1 and CALLS == [1]
    # a torn / unreadable file is recomputed, not trusted
    open(store.path(t), "w").write("{not json")
    CALLS.clear()
    run_tasks(_tasks([1]), store)
    assert CALLS == [1]
    nothing = run_tasks(_tasks([1, 2]), store)
    assert nothing.mode == "nothing to compute" and nothing.computed == 0


def test_store_files_are_strict_json_with_provenance(tmp_path):
    store = TaskStore(tmp_path)
    run_tasks(_tasks([3]), store)
    text = open(store.path(_tasks([3])[0])).read()
    payload = json.loads(text)  # strict JSON: NaN was written as null
    assert "NaN" not in text and payload["result"]["nan"] is None
    assert payload["key"] == dict(x=3, schema=1) and payload["label"] == "t3"
    assert payload["versions"]["jax"] and payload["pid"] == os.getpid() and payload["wall_time"] >= 0
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]  # atomic: no temporary left


def test_failures_are_recorded_or_raised(tmp_path):
    store = TaskStore(tmp_path)
    mixed = _tasks([1]) + _tasks([2], fn=_fails)
    seen = []
    run = run_tasks(mixed, store, errors="record", on_done=lambda t, r: seen.append((t.label, r)))
    assert [f["task"] for f in run.failed] == [mixed[1].id] and "lost 2" in run.failed[0]["error"]
    assert run.computed == 1 and set(run.results) == {mixed[0].id}
    assert sorted(seen, key=str) == sorted([("t1", dict(x=1, sq=1, nan=None)), ("t2", None)], key=str)
    assert run.to_record()["tasks"] == 2
    with pytest.raises(RuntimeError, match="lost 2"):
        run_tasks(mixed, store, errors="raise")
    with pytest.raises(InputError, match="x: expected"):  # bad input is never swallowed
        run_tasks(_tasks([9], fn=_bad_input), store, errors="record")
    with pytest.raises(InputError, match="errors must be"):
        run_tasks(mixed, store, errors="ignore")


def test_longest_task_runs_first(tmp_path):
    CALLS.clear()
    run_tasks(_tasks([1, 5, 3]), TaskStore(tmp_path), InlineExecutor())
    assert CALLS == [5, 3, 1]


def test_process_executor_runs_in_workers_and_matches_inline(tmp_path):
    tasks = [Task(key=dict(a=a, b=b), fn=operator.mul, args=(a, b), label="mul") for a, b in ((2, 3), (4, 5))]
    tasks.append(Task(key=dict(f="pow"), fn=math.pow, args=(2.0, 0.5), label="pow"))
    store = TaskStore(tmp_path / "p")
    run = run_tasks(tasks, store, ProcessExecutor(2))
    inline = run_tasks(tasks, TaskStore(tmp_path / "i"))
    assert run.results == inline.results and run.mode == "process pool, 2 workers"
    assert {store.load_payload(t)["pid"] for t in tasks} != {os.getpid()}


def test_make_executor_names():
    assert isinstance(make_executor("inline"), InlineExecutor)
    assert isinstance(make_executor("process", workers=1), InlineExecutor)
    assert isinstance(make_executor("process", workers=3), ProcessExecutor)
    with pytest.raises(InputError, match="executor must be"):
        make_executor("threads")
