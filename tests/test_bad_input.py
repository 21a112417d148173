"""Bad input and faults (issue 13): one clear error, honest exit codes, no lost or mixed-up runs.

Three kinds of case:

- **CLI, in process** (``smtheory.cli.main``): the exit status, and that standard error is exactly one
  ``smtheory: error: …`` line naming the parameter (an uncaught exception would fail the test with its
  traceback).  Every case here fails before any sampling or solving, so each takes milliseconds;
- **CLI, real processes** (``python -m smtheory.cli``): the same one-line contract with nothing but
  the interpreter between the user and the error (no ``Traceback``), interrupts (SIGTERM then
  ``--resume`` equals an uninterrupted run; SIGINT), two concurrent sweeps on one folder, and memory
  refusals whose peak RSS (``os.wait4``) stays below 1 GiB;
- **API**: the :class:`smtheory.InputError` message of each validator and entry point.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import smtheory as smt
from smtheory import InputError
from smtheory import checks as val
from smtheory.cli import main
from smtheory.io import check_npz, check_output_dir, check_output_file, lock_folder, write_json_atomic

MK = ["--task", "markov", "--n-train", "4", "--n-test", "4"]
SOLVE = ["solve", *MK, "--width", "5"]
SAMPLE = ["sample", *MK, "--width", "5", "--sampler", "gibbs", "--chains", "2", "--steps", "10", "--burnin", "0",
          "--max-steps", "10"]
TINY_SWEEP = '[sweep]\nname = "t"\nn_test = 4\n[grid]\nN = [5]\nP = [4]\n'


# ----------------------------------------------------------------------------------------------- helpers


def _data(path, **override):
    """A small user data set (the shapes of tests/test_cli.py, so compiled solvers are shared)."""
    rng = np.random.default_rng(0)
    N0, T = 5, 4
    d = dict(x_train=rng.standard_normal((20, N0, T)), y_train=np.sign(rng.standard_normal(20)),
             x_test=rng.standard_normal((10, N0, T)), y_test=np.sign(rng.standard_normal(10)),
             w_layer1=rng.standard_normal((2, N0, N0)) / N0,
             q_layer2=rng.standard_normal((2, 3, N0)), k_layer2=rng.standard_normal((2, 3, N0)))
    for k, v in override.items():
        d[k] = v(d[k]) if callable(v) else v
    np.savez(path, **{k: v for k, v in d.items() if v is not None})
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Paths used by the cases: hostile files, folders, data sets and sweep configurations."""
    d = tmp_path_factory.mktemp("bad")
    f = dict(dir=str(d / "folder"), txt=str(d / "notes.txt"), missing=str(d / "missing.npz"),
             empty=str(d / "empty.npz"), new=str(d / "new-out"))
    os.makedirs(f["dir"])
    with open(f["txt"], "w") as fh:
        fh.write("this is not an npz archive\n")
    open(f["empty"], "w").close()
    f["npy"] = str(d / "array.npz")
    with open(f["npy"], "wb") as fh:
        np.save(fh, np.zeros(3))
    f["foreign"] = str(d / "foreign.npz")
    np.savez(f["foreign"], a=np.zeros(3))
    good = _data(d / "good.npz")
    f["good"] = good
    f["trunc"] = str(d / "truncated.npz")
    with open(good, "rb") as src, open(f["trunc"], "wb") as dst:
        dst.write(src.read()[: os.path.getsize(good) // 2])
    f["zip"] = str(d / "other.npz")
    with zipfile.ZipFile(f["zip"], "w") as z:
        z.writestr("readme.md", "hello")
    f["ckpt"] = str(d / "existing-ckpt.npz")
    np.savez(f["ckpt"], a=np.zeros(1))
    variants = {
        "labels01": dict(y_train=lambda y: (y + 1) / 2),
        "test01": dict(y_test=lambda y: (y + 1) / 2),
        "complex": dict(y_train=lambda y: y + 1j),
        "nan": dict(y_train=lambda y: np.where(np.arange(y.size) == 3, np.nan, y)),
        "strings": dict(y_train=lambda y: np.where(y > 0, "cat", "dog")),
        "huge": dict(x_train=lambda x: x * 1e200),
        "huge_test": dict(x_test=lambda x: x * 1e200),
        "empty_x": dict(x_train=np.zeros((0, 5, 4)), y_train=np.zeros(0)),
        "short_y": dict(y_train=lambda y: y[:7]),
        "wrong_n0": dict(x_test=np.zeros((10, 6, 4))),
        "regression": dict(y_train=lambda y: 0.3 * y + 0.1, y_test=lambda y: 0.3 * y + 0.1),
    }
    for name, over in variants.items():
        f[name] = _data(d / f"{name}.npz", **over)
    f["objects"] = str(d / "objects.npz")
    np.savez(f["objects"], x_train=np.array([None, 1], dtype=object))
    for name, text in {"cfg": TINY_SWEEP, "bad_n": TINY_SWEEP.replace("N = [5]", "N = [0]"),
                       "big_p": TINY_SWEEP.replace("P = [4]", "P = [100000]"), "bad_toml": "[grid\nN = 5"}.items():
        f[name] = str(d / f"{name}.toml")
        with open(f[name], "w") as fh:
            fh.write(text)
    return f


def _one_error_line(err, needles=()):
    """Standard error is exactly one ``smtheory: error:`` line, containing every needle."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("smtheory: error:"), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _cli(capsys, argv):
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def _fill(argv, files):
    return [a.format(**files) if isinstance(a, str) else str(a) for a in argv]


#: Real processes do not touch the user's compilation cache (``~/.cache/smtheory``).
NO_CACHE = dict(os.environ, SMTHEORY_JAX_CACHE="off")


def _smtheory(argv, cwd, env=NO_CACHE, **kw):
    """``python -m smtheory.cli ARGV`` as a real process."""
    return subprocess.run([sys.executable, "-m", "smtheory.cli", *map(str, argv)], cwd=cwd, capture_output=True,
                          text=True, env=env, **kw)


def _env(cache):
    env = dict(os.environ, SMTHEORY_JAX_CACHE=str(cache), JAX_COMPILATION_CACHE_DIR=str(cache),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0", PYTHONWARNINGS="ignore")
    return env


# ----------------------------------------------------------------------------------- CLI, in process

CLI_CASES = [
    # widths
    ("width 0", ["solve", *MK, "--width", "0"], ["--width", "positive"]),
    ("width -3", ["solve", *MK, "--width", "-3"], ["--width", "positive"]),
    ("width 1e20", ["solve", *MK, "--width", "1e20"], ["--width", "at most"]),
    ("width abc", ["solve", *MK, "--width", "abc"], ["--width", "integer"]),
    ("width 5,abc", ["solve", *MK, "--width", "5,abc"], ["--width"]),
    ("width 20.5", ["solve", *MK, "--width", "20.5"], ["--width", "positive integers"]),
    ("sample width huge", ["sample", *MK, "--width", str(10**8)], ["--width", "at most"]),
    # seeds
    ("data seed -1", [*SOLVE, "--seed", "-1"], ["--seed", "2**32"]),
    ("data seed 2**70", [*SOLVE, "--seed", str(2**70)], ["--seed", "2**32"]),
    ("data seed abc", [*SOLVE, "--seed", "abc"], ["--seed", "invalid int"]),
    ("data seed 2.0", [*SOLVE, "--seed", "2.0"], ["--seed", "invalid int"]),
    ("data seed 2**32-1", [*SOLVE, "--seed", str(2**32 - 1)], ["--seed"]),
    ("sampler seed -1", [*SAMPLE, "--seed", "-1"], ["--seed", "sampler seed"]),
    ("sampler seed 2**70", [*SAMPLE, "--seed", str(2**70)], ["--seed", "2**32"]),
    ("sampler seed abc", [*SAMPLE, "--seed", "abc"], ["--seed", "invalid int"]),
    ("sample data seed", [*SAMPLE, "--data-seed", "-5"], ["--data-seed"]),
    # temperatures and variances
    ("T 0", [*SOLVE, "--temperature", "0"], ["--temperature"]),
    ("T -1", [*SOLVE, "--temperature", "-1"], ["--temperature"]),
    ("T nan", [*SOLVE, "--temperature", "nan"], ["--temperature"]),
    ("T inf", [*SOLVE, "--temperature", "inf"], ["--temperature"]),
    ("variances count", [*SOLVE, "--variances", "1", "1", "1"], ["--variances needs L + 2 = 4"]),
    ("variances sign", [*SOLVE, "--variances", "1", "1", "-1", "1"], ["--variances"]),
    ("variances inf", [*SOLVE, "--variances", "1", "1", "1", "inf"], ["--variances"]),
    ("tol", [*SOLVE, "--tol", "0"], ["--tol"]),
    ("readout", [*SOLVE, "--readout", "middle"], ["--readout"]),
    # sizes and memory
    ("odd n-train", ["solve", "--task", "markov", "--n-train", "3", "--width", "5"], ["--n-train", "even"]),
    ("n-train memory", ["solve", "--task", "markov", "--n-train", "100000", "--width", "5"],
     ["GiB", "memory budget", "n_train"]),
    ("sample n-train memory", ["sample", "--task", "markov", "--n-train", "100000", "--width", "5"], ["GiB"]),
    # sampler settings
    ("chains 0", [*SAMPLE, "--chains", "0"], ["--chains"]),
    ("steps 0", [*SAMPLE, "--steps", "0"], ["--steps"]),
    ("thin 0", [*SAMPLE, "--thin", "0"], ["--thin"]),
    ("burnin -1", [*SAMPLE, "--burnin", "-1"], ["--burnin"]),
    ("sampler name", [*SAMPLE, "--sampler", "foo"], ["--sampler", "gibbs"]),
    ("max-steps < steps", [*SAMPLE, "--max-steps", "5"], ["--max-steps"]),
    ("step size 0", [*SAMPLE, "--sampler", "full-mala", "--step-size", "0"], ["step"]),
    # checkpoints
    ("resume without checkpoint", [*SAMPLE, "--resume"], ["--resume needs --checkpoint"]),
    ("resume missing checkpoint", [*SAMPLE, "--resume", "--checkpoint", "{missing}"], ["no checkpoint"]),
    ("resume text checkpoint", [*SAMPLE, "--resume", "--checkpoint", "{txt}"],
     ["--checkpoint", "is not an .npz archive written by smtheory sample", "text"]),
    ("resume truncated checkpoint", [*SAMPLE, "--resume", "--checkpoint", "{trunc}"], ["truncated"]),
    ("resume .npy checkpoint", [*SAMPLE, "--resume", "--checkpoint", "{npy}"], [".npy"]),
    ("resume empty checkpoint", [*SAMPLE, "--resume", "--checkpoint", "{empty}"], ["empty"]),
    ("resume foreign checkpoint", [*SAMPLE, "--resume", "--checkpoint", "{foreign}"], ["checkpoint"]),
    ("checkpoint exists", [*SAMPLE, "--checkpoint", "{ckpt}"], ["exists", "--resume"]),
    ("checkpoint is a folder", [*SAMPLE, "--checkpoint", "{dir}"], ["--checkpoint", "folder"]),
    # output paths, every command
    ("solve json folder", [*SOLVE, "--json", "{dir}"], ["--json", "folder"]),
    ("solve json under a file", [*SOLVE, "--json", "{txt}/r.json"], ["--json", "is a file"]),
    ("sample json folder", [*SAMPLE, "--json", "{dir}"], ["--json", "folder"]),
    ("train out file", ["train", "--out", "{txt}"], ["--out", "not a folder"]),
    ("train out under a file", ["train", "--out", "{txt}/run"], ["--out", "is a file"]),
    ("prune out file", ["prune", "--model", "{good}", "--out", "{txt}"], ["--out", "not a folder"]),
    ("sweep out file", ["sweep", "{cfg}", "--out", "{txt}"], ["--out", "not a folder"]),
    ("attention-figures out file", ["attention-figures", "--out", "{txt}"], ["--out", "not a folder"]),
    ("compare out file", ["compare", "markov", "--out", "{txt}"], ["--out", "not a folder"]),
    ("demo out file", ["demo", "--out", "{txt}"], ["--out", "not a folder"]),
    ("demo out under a file", ["demo", "--out", "{txt}/x"], ["--out", "is a file"]),
    # training and pruning
    ("train seed", ["train", "--out", "{new}", "--seed", "-1"], ["--seed"]),
    ("train lr", ["train", "--out", "{new}", "--lr", "0"], ["--lr"]),
    ("train odd n-test", ["train", "--out", "{new}", "--n-test", "3"], ["--n-test"]),
    ("train n-test memory", ["train", "--out", "{new}", "--n-test", str(2 * 10**8)], ["--n-test", "GiB"]),
    ("prune text model", ["prune", "--model", "{txt}", "--out", "{new}"],
     ["--model", "is not an .npz archive written by smtheory train"]),
    ("prune truncated model", ["prune", "--model", "{trunc}", "--out", "{new}"], ["--model", "truncated"]),
    ("prune foreign model", ["prune", "--model", "{foreign}", "--out", "{new}"],
     ["--model", "not a checkpoint written by smtheory train"]),
    ("prune missing model", ["prune", "--model", "{missing}", "--out", "{new}"], ["--model", "does not exist"]),
    ("prune n-train", ["prune", "--model", "{txt}", "--out", "{new}", "--n-train", "3"], ["--n-train"]),
    # sweeps, compare, equations
    ("sweep missing config", ["sweep", "{missing}.toml"], ["does not exist"]),
    ("sweep bad toml", ["sweep", "{bad_toml}"], ["not valid TOML"]),
    ("sweep N 0", ["sweep", "{bad_n}", "--out", "{new}"], ["grid.N"]),
    ("sweep P memory", ["sweep", "{big_p}", "--out", "{new}"], ["grid.P", "GiB"]),
    ("sweep workers", ["sweep", "{cfg}", "--workers", "0", "--out", "{new}"], ["--workers"]),
    ("attention-figures width", ["attention-figures", "--out", "{new}", "--width", "0"], ["--width"]),
    ("compare widths", ["compare", "markov", "--widths", str(10**8), "--out", "{new}"], ["--widths"]),
    ("compare seed", ["compare", "markov", "--seed", "-1", "--out", "{new}"], ["--seed"]),
    ("equations heads", ["equations", "--heads", "0"], ["heads"]),
    # user data files
    ("data text", ["solve", "--data", "{txt}", "--width", "5"], ["--data", "is not an .npz archive", "text"]),
    ("data truncated", ["solve", "--data", "{trunc}", "--width", "5"], ["--data", "truncated"]),
    ("data missing", ["solve", "--data", "{missing}", "--width", "5"], ["--data", "no such file"]),
    ("data empty file", ["solve", "--data", "{empty}", "--width", "5"], ["--data", "empty"]),
    ("data zip of other files", ["solve", "--data", "{zip}", "--width", "5"], ["--data", "readme.md"]),
    ("data object arrays", ["solve", "--data", "{objects}", "--width", "5"], ["--data", "plain arrays"]),
    ("labels 0/1", ["solve", "--data", "{labels01}", "--width", "5"], ["y_train", "±1"]),
    ("test labels 0/1", ["solve", "--data", "{test01}", "--width", "5"], ["y_test", "±1"]),
    ("labels complex", ["solve", "--data", "{complex}", "--width", "5"], ["y_train", "complex"]),
    ("labels NaN", ["solve", "--data", "{nan}", "--width", "5"], ["y_train", "NaN"]),
    ("labels strings", ["solve", "--data", "{strings}", "--width", "5"], ["y_train", "numeric"]),
    ("x_train 1e200", ["solve", "--data", "{huge}", "--width", "5"], ["x_train", "overflow"]),
    ("x_test 1e200", ["solve", "--data", "{huge_test}", "--width", "5"], ["x_test", "overflow"]),
    ("empty x_train", ["solve", "--data", "{empty_x}", "--width", "5"], ["x_train", "empty"]),
    ("short y_train", ["solve", "--data", "{short_y}", "--width", "5"], ["y_train must have 20 labels"]),
    ("x_test shape", ["solve", "--data", "{wrong_n0}", "--width", "5"], ["x_test must have shape"]),
    ("sample labels 0/1", ["sample", "--data", "{labels01}", "--width", "5"], ["y_train", "±1"]),
]


@pytest.mark.parametrize("argv, needles", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input_is_one_line_exit_2(capsys, files, argv, needles):
    rc, _, err = _cli(capsys, _fill(argv, files))
    assert rc == 2, err
    _one_error_line(err, needles)


def _check_regression_json(path):
    raw = open(path).read()
    assert "NaN" not in raw and "Infinity" not in raw
    res = json.loads(raw)
    assert res["task"] == "regression"
    row = res["results"][0]
    assert row["test_accuracy"] is None and row["gaussian_accuracy"] is None
    assert row["generalization_error"] > 0 and row["converged"]


def _FakeSolve(spec):
    """A :class:`smtheory.solvers.numeric.SaddlePointResult` at the GP point, marked "converged" without solving."""
    from smtheory.solvers.numeric import SaddlePointResult

    return SaddlePointResult(U=[np.eye(spec.n_paths) * spec.gp_u1_scale()], U_a=0.0, action=0.0, grad_norm=0.0,
                             hessian_min_eig=1.0, residuals=[0.0], iterations=0, n_evaluations=0, solve_time=0.0,
                             compile_time=0.0, converged=True, message="fake", spec=spec, method="newton")


def test_regression_targets_report_no_accuracy(capsys, files, tmp_path, monkeypatch):
    import smtheory.solvers

    monkeypatch.setattr(smtheory.solvers, "continuation",
                        lambda problem, spec, widths, tol: [_FakeSolve(spec.replace(widths=w)) for w in widths])
    out = tmp_path / "r.json"
    rc, text, err = _cli(capsys, ["solve", "--data", files["regression"], "--width", "5", "--temperature", "0.1",
                                  "--json", out])
    assert rc == 0, err
    assert "regression" in text and "n/a" in text
    _check_regression_json(out)


@pytest.mark.slow
def test_regression_targets_solve_for_real(capsys, files, tmp_path):
    out = tmp_path / "r.json"
    rc, text, err = _cli(capsys, ["solve", "--data", files["regression"], "--width", "5", "--temperature", "0.1",
                                  "--json", out])
    assert rc == 0, err
    _check_regression_json(out)


@pytest.mark.parametrize("sig, rc, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_interrupts_in_process(capsys, monkeypatch, sig, rc, word):
    import smtheory.cli.app as app
    import smtheory.cli.solve as solve_command

    def interrupted(args):
        os.kill(os.getpid(), sig)
        time.sleep(10)
        raise AssertionError("the signal did not interrupt the command")

    monkeypatch.setattr(solve_command, "cmd_solve", interrupted)  # read by register() when main builds the parser
    got, _, err = _cli(capsys, SOLVE)
    assert got == rc
    _one_error_line(err, [word])
    assert signal.getsignal(signal.SIGTERM) is not app._on_sigterm  # the handler is restored


class _FakeResult:
    """What ``cmd_sample`` reads from a :class:`smtheory.sims.SampleResult` (to test its reporting without sampling)."""

    def __init__(self, config, rhat):
        self.config, self.rhat_max = config, rhat
        self.test_accuracy, self.generalization_error, self.ess_min, self.steps_per_second = 0.5, 1.0, np.nan, 1.0
        self.U1_sampled, self.U1_mcse = np.eye(4), np.full((4, 4), np.nan)

    @property
    def converged(self):
        return bool(self.rhat_max <= 1.01)

    def to_record(self, traces=True):
        return dict(rhat_max=self.rhat_max, U1_mcse=self.U1_mcse, converged=self.converged)


@pytest.mark.parametrize("chains, rhats, rc, needle", [
    (1, [np.nan], 3, "R-hat is undefined with 1 chain: use --chains >= 2"),
    (4, [1.0, 1.5], 3, "raise --max-steps"),
    (4, [1.0, 1.001], 0, None),
])
def test_sample_exit_status_and_strict_json(capsys, tmp_path, monkeypatch, chains, rhats, rc, needle):
    import smtheory.sims.run

    seq = iter(rhats)
    monkeypatch.setattr(smtheory.sims.run, "sample", lambda problem, spec, config, **kw: _FakeResult(config, next(seq)))
    out = tmp_path / "s.json"
    widths = ["5", "7"][: len(rhats)]
    got, text, err = _cli(capsys, ["sample", *MK, "--width", *widths, "--sampler", "gibbs", "--chains", chains,
                                   "--burnin", "0", "--json", out])
    assert got == rc, err
    if needle:
        assert needle in text and "smtheory: warning: not converged" in err
    raw = out.read_text()
    assert "NaN" not in raw
    rows = json.loads(raw)["results"]
    assert [r["converged"] for r in rows] == [bool(r <= 1.01) for r in rhats]
    assert rows[0]["U1_mcse"][0][0] is None


# ----------------------------------------------------------------------------------------- API cases

@pytest.mark.parametrize("func, args, match", [
    (val.positive_int, ("chains", 20.5), "chains must be a positive integer, got 20.5"),
    (val.positive_int, ("chains", True), "chains must be a positive integer"),
    (val.positive_int, ("chains", "3"), "chains must be a positive integer"),
    (val.positive_int, ("chains", float("inf")), "chains"),
    (val.non_negative_int, ("burnin", -1), "burnin must be a non-negative integer"),
    (val.seed, ("seed", -1), r"seed must be an integer in \[0, 2\*\*32\)"),
    (val.seed, ("seed", 2**70), "seed"),
    (val.seed, ("seed", "abc"), "seed"),
    (val.seed, ("seed", 2.5), "seed"),
    (val.seed, ("seed", 2**32 - 1, 2), r"2\*\*32 - 1"),
    (val.width, ("N", 10**20), "at most"),
    (val.positive_float, ("temperature", "0.1"), "temperature"),
    (val.positive_float, ("temperature", float("nan")), "temperature"),
    (val.labels, ("y_train", [0, 1, 1]), "use ±1 labels"),
    (val.labels, ("y_train", [1 + 1j, -1]), "complex"),
    (val.labels, ("y_test", [1, np.nan]), "y_test contains 1 NaN"),
    (val.labels, ("y_test", ["a", "b"]), "numeric"),
    (val.labels, ("y_test", [[1, -1]]), "1 dimensions"),
    (val.labels, ("y_test", []), "empty"),
    (val.labels, ("y_test", [True, False]), "±1"),
])
def test_validators_refuse(func, args, match):
    with pytest.raises(InputError, match=match):
        func(*args)


def test_validators_return_converted_values():
    assert val.positive_int("chains", 2.0) == 2 and type(val.positive_int("chains", np.int64(3))) is int
    assert val.seed("seed", 2.0) == 2 and val.seed("seed", 2**32 - 1) == 2**32 - 1
    assert val.width("N", 1e3) == 1000
    assert val.label_task("y", [1, -1, 1.0]) == "classification" and val.label_task("y", [0.2, -1.3]) == "regression"


@pytest.fixture(scope="module")
def raw():
    rng = np.random.default_rng(1)
    N0, T = 5, 4
    x = rng.standard_normal((12, N0, T))
    y = np.sign(rng.standard_normal(12))
    layers = [smt.AttentionLayer(W=rng.standard_normal((2, N0, N0)) / N0, name="layer 1")]
    return x, y, layers


@pytest.mark.parametrize("case, match", [
    ("layers empty", "layers must be a non-empty sequence of AttentionLayer"),
    ("layer is an array", r"layers must be a non-empty sequence of AttentionLayer: layers\[0\] is a ndarray"),
    ("layers is an array", "layers must be a non-empty sequence of AttentionLayer, got ndarray"),
    ("one layer", r"write \[layer\]"),
    ("x_train 1e200", "x_train overflowed in the attention scores of layer 1"),
    ("x_test 1e200", "x_test overflowed"),
    ("x_train 1e120", "x_train is too large"),
    ("labels 0/1", "y_train holds 0/1 labels: use ±1"),
    ("test labels complex", "y_test must hold real numbers"),
    ("labels short", "y_train must have one label per example"),
    ("x_test without y_test", "give both x_test and y_test"),
    ("x_train empty", "x_train must not be empty"),
    ("x_train 2-d", "x_train must have 3 dimensions"),
    ("x_train strings", "x_train must be a numeric array"),
])
def test_from_inputs_refuses(raw, case, match):
    x, y, layers = raw
    kw = dict(x_train=x, y_train=y, layers=layers)
    kw.update({
        "layers empty": dict(layers=[]), "layer is an array": dict(layers=[layers[0].W]),
        "layers is an array": dict(layers=layers[0].W), "one layer": dict(layers=layers[0]),
        "x_train 1e200": dict(x_train=x * 1e200), "x_test 1e200": dict(x_test=x * 1e200, y_test=y),
        "x_train 1e120": dict(x_train=x * 1e120, layers=[smt.AttentionLayer(W=np.zeros((2, 5, 5)))]),
        "labels 0/1": dict(y_train=(y + 1) / 2), "test labels complex": dict(x_test=x, y_test=y + 0j),
        "labels short": dict(y_train=y[:5]), "x_test without y_test": dict(x_test=x),
        "x_train empty": dict(x_train=x[:0], y_train=y[:0]), "x_train 2-d": dict(x_train=x[:, :, 0]),
        "x_train strings": dict(x_train=np.full(x.shape, "a")),
    }[case])
    with pytest.raises(InputError, match=match):
        smt.KernelProblem.from_inputs(**kw)


def test_attention_entry_points_name_the_input(raw):
    x, _, layers = raw
    with pytest.raises(InputError, match="x overflowed in the attention scores of layer 1"):
        smt.attention_matrices(x * 1e200, layers)
    with pytest.raises(InputError, match="layers must be a non-empty sequence"):
        smt.attention_matrices(x, [])
    with pytest.raises(InputError, match="q overflowed"):
        layers[0](x * 1e200, name="q")


@pytest.fixture(scope="module")
def problems(raw):
    x, y, layers = raw
    cls = smt.KernelProblem.from_inputs(x, y, layers, x, y)
    reg = smt.KernelProblem.from_inputs(x, 0.5 * y + 0.2, layers, x, 0.5 * y + 0.2)
    return cls, reg, smt.ModelSpec(heads=(2,), widths=5, temperature=0.1)


@pytest.mark.parametrize("U1, match", [
    (np.array([[1.0, 0.0], [0.0, -1.0]]), "U1 must be positive semi-definite.*-1"),
    (np.array([[1.0, 0.5], [0.0, 1.0]]), "U1 must be symmetric"),
    (np.eye(3), "U1 must be 2x2"),
    (np.array([[np.nan, 0], [0, 1]]), "U1 contains 1 NaN"),
    (np.ones(2), "U1 must have 2 dimensions"),
])
def test_predictor_statistics_checks_u1(problems, U1, match):
    cls, _, spec = problems
    with pytest.raises(InputError, match=match):
        smt.predictor_statistics(cls, spec, U1)


def test_classification_and_regression_tasks(problems):
    from smtheory.predictor import metrics

    cls, reg, spec = problems
    assert cls.task == "classification" and reg.task == "regression"
    st = smt.predictor_statistics(reg, spec, gp=True)
    assert np.isnan(st.accuracy) and np.isnan(st.gaussian_accuracy) and st.generalization_error > 0
    assert st.to_record()["test_accuracy"] is None and st.task == "regression"
    st = smt.predictor_statistics(cls, spec, np.eye(2))
    assert 0 <= st.accuracy <= 1 and st.task == "classification"
    gen, acc, gauss = metrics(np.array([0.5, -0.2]), np.array([0.1, 0.1]), np.array([1.0, 1.0]))
    assert acc == 0.5 and 0 < gauss < 1
    assert np.isnan(metrics(np.zeros(2), np.ones(2), np.array([0.3, 2.0]))[1])
    with pytest.raises(InputError, match="±1"):
        metrics(np.zeros(2), np.ones(2), np.array([0.0, 1.0]))


@pytest.mark.parametrize("kw, match", [
    (dict(widths=1e20), "at most"), (dict(widths=0), "positive"), (dict(widths="abc"), "widths"),
    (dict(widths=20.5), "widths"), (dict(widths=(5, -3)), r"widths\[1\]"),
    (dict(temperature=0), "temperature"), (dict(temperature=float("inf")), "temperature"),
    (dict(temperature="0.1"), "temperature"), (dict(variances=(1, 1)), "variances must be L \\+ 2 = 3"),
    (dict(variances=(1, -1, 1)), r"variances\[1\]"), (dict(variances="abc"), "variances"),
])
def test_model_spec_refuses(kw, match):
    with pytest.raises(InputError, match=match):
        smt.ModelSpec(heads=(2,), **kw)


@pytest.mark.parametrize("kw, match", [
    (dict(chains=20.5), "chains"), (dict(steps="abc"), "steps"), (dict(seed="abc"), "seed"),
    (dict(seed=2**70), "seed"), (dict(seed=-1), "seed"), (dict(chains=True), "chains"),
])
def test_sample_config_refuses(kw, match):
    from smtheory.sims import SampleConfig

    with pytest.raises(InputError, match=match):
        SampleConfig(sampler="gibbs", **kw)


def test_sample_config_keeps_converted_values():
    from smtheory.sims import SampleConfig

    c = SampleConfig(sampler="gibbs", chains=2.0, steps=20.0, seed=3.0)
    assert (c.chains, c.steps, c.seed) == (2, 20, 3) and all(type(v) is int for v in (c.chains, c.steps, c.seed))


def test_markov_memory_and_seed_refused_before_generating():
    import tracemalloc

    from smtheory.tasks import markov

    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"would need about \d+\.\d GiB"):
            markov.markov_problem(4, n_train=100000, n_test=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20
    with pytest.raises(InputError, match="seed"):
        markov.markov_problem(4, 4, 4, seed=2**32 - 1)
    with pytest.raises(InputError, match="paths must be 4 or 2"):
        markov.markov_problem(3, 4, 4)


def test_npz_and_store_readers(files):
    from smtheory.sims.training import load_model
    from smtheory.validation import store

    for key, needle in (("txt", "text"), ("trunc", "truncated"), ("npy", ".npy"), ("empty", "empty"),
                        ("zip", "readme.md")):
        with pytest.raises(InputError, match=f"x: .* is not an .npz archive written by W .*{needle}"):
            check_npz(files[key], "x", "W")
    assert check_npz(files["good"], "x", "W") == files["good"]
    with pytest.raises(InputError, match="--model: .* is not an .npz archive written by smtheory train"):
        load_model(files["txt"])
    with pytest.raises(InputError, match="not a checkpoint written by smtheory train"):
        load_model(files["foreign"])
    with pytest.raises(InputError, match="is not a sweep store"):
        store.load(files["txt"])
    from smtheory.data import load_npz

    with pytest.raises(InputError, match="--data: no such file"):
        load_npz(files["missing"])


def test_sweep_config_bounds():
    import tomllib

    from smtheory.validation import sweep

    for text, match in (("[grid]\nN = [100000000]", "grid.N"), ("[grid]\nN = [5]\nseed = [4294967295]", "grid.seed"),
                        ("[sweep]\nhead_seed = -1\n[grid]\nN = [5]", "head_seed"),
                        ("[grid]\nN = [5]\nP = [100000]", "GiB")):
        with pytest.raises(InputError, match=match):
            sweep.parse_config(tomllib.loads(text))


# ------------------------------------------------------------------------------- strict JSON, paths, locks


def test_write_json_atomic_is_strict(tmp_path):
    path = tmp_path / "sub" / "r.json"
    write_json_atomic(path, dict(a=float("nan"), b=np.float32("inf"), c=np.array([1.0, np.nan, -np.inf]),
                                 d=np.int64(3), e=(np.bool_(True), {np.int32(1): -float("inf")}),
                                 f=[np.float64(0.5)], g=np.zeros((2, 2))))
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text

    def refuse(token):
        raise ValueError(token)

    got = json.loads(text, parse_constant=refuse)
    assert got == dict(a=None, b=None, c=[1.0, None, None], d=3, e=[True, {"1": None}], f=[0.5],
                       g=[[0.0, 0.0], [0.0, 0.0]])
    assert not [p for p in os.listdir(path.parent) if p.startswith(".tmp-")]
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "o.json", dict(x=object()))
    assert not (tmp_path / "o.json").exists()


def test_output_path_checks(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(InputError, match="--json: .* is a folder"):
        check_output_file(tmp_path, "--json")
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_output_file(f / "a" / "b.json", "--json")
    with pytest.raises(InputError, match="--out: .* exists and is not a folder"):
        check_output_dir(f, "--out")
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_output_dir(f / "sub", "--out")
    with pytest.raises(InputError, match="empty"):
        check_output_file("", "--json")
    assert check_output_file(tmp_path / "new" / "deeper" / "r.json") and check_output_dir(tmp_path / "n" / "m")
    assert check_output_file(f) == str(f)  # an existing file is replaced atomically
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(InputError, match="not writable"):
                check_output_file(ro / "r.json")
        finally:
            ro.chmod(0o700)


def test_lock_folder_refuses_a_second_holder(tmp_path):
    with lock_folder(tmp_path / "out"):
        assert open(tmp_path / "out" / ".smtheory.lock").read().strip() == str(os.getpid())
        with pytest.raises(InputError, match=rf"output folder .* is in use by another run \(pid {os.getpid()}\)"):
            with lock_folder(tmp_path / "out"):
                pass
    with lock_folder(tmp_path / "out"):  # released
        pass


# --------------------------------------------------------------------------------- real processes


@pytest.mark.parametrize("argv, needles", [
    (["solve", "--task", "markov", "--width", "abc"], ["--width"]),
    (["sample", "--task", "markov", "--resume", "--checkpoint", "{txt}"], ["is not an .npz archive"]),
    (["solve", "--data", "{labels01}", "--width", "5", "--json", "{dir}"], ["--json"]),
], ids=["argparse", "checkpoint", "json-folder"])
def test_real_process_one_line(files, tmp_path, argv, needles):
    p = _smtheory(_fill(argv, files), cwd=tmp_path, timeout=120)
    assert p.returncode == 2, p.stderr
    _one_error_line(p.stderr, needles)


_HWM = """
import sys
from smtheory.cli import main
path, argv = sys.argv[1], sys.argv[2:]
code = main(argv)
with open("/proc/self/status") as f:
    kb = [int(line.split()[1]) for line in f if line.startswith("VmHWM:")][0]
with open(path, "w") as out:
    out.write(str(kb * 1024))
sys.exit(code)
"""


def _peak_rss(argv, cwd):
    """Exit status, stderr and peak RSS (bytes) of one ``smtheory`` process.

    The peak is the child's own ``VmHWM`` (high-water mark of its address space after exec): the
    rusage ``ru_maxrss`` of a forked child also counts the pytest parent's memory at fork time.
    """
    hwm = cwd / "hwm.txt"
    with open(cwd / "err.txt", "w+") as err:
        proc = subprocess.run([sys.executable, "-c", _HWM, str(hwm), *argv], cwd=cwd, stdout=subprocess.DEVNULL,
                              stderr=err, env=NO_CACHE, timeout=300)
        err.seek(0)
        return proc.returncode, err.read(), int(hwm.read_text())


@pytest.mark.parametrize("argv, needle", [
    (["solve", "--task", "markov", "--n-train", "100000", "--width", "10"], "GiB"),
    pytest.param(["train", "--task", "markov", "--out", "run", "--n-test", str(10**7)], "--n-test",
                 marks=pytest.mark.slow),
], ids=["solve-n-train", "train-n-test"])
def test_memory_refusal_peak_rss(tmp_path, argv, needle):
    rc, err, rss = _peak_rss(argv, tmp_path)
    assert rc == 2, err
    _one_error_line(err, [needle, "memory budget"])
    assert rss < 2**30, f"peak RSS {rss / 2**20:.0f} MiB"


def _wait_for(predicate, timeout, proc=None):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def test_concurrent_sweeps_on_one_folder(files, tmp_path):
    out = tmp_path / "sweep"
    lock = out / ".smtheory.lock"
    a = subprocess.Popen([sys.executable, "-m", "smtheory.cli", "sweep", files["cfg"], "--out", str(out), "--quiet"],
                         cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=NO_CACHE)
    try:
        held = _wait_for(lambda: lock.exists() and lock.read_text().strip() == str(a.pid), 120, a)
        assert held, a.communicate()
        b = _smtheory(["sweep", files["cfg"], "--out", out, "--resume", "--quiet"], cwd=tmp_path, timeout=120)
        still_running = a.poll() is None
        a.send_signal(signal.SIGINT)
        _, a_err = a.communicate(timeout=300)
    finally:
        if a.poll() is None:
            a.kill()
    assert b.returncode == 2, b.stderr
    _one_error_line(b.stderr, [f"is in use by another run (pid {a.pid})"])
    if still_running:  # A was interrupted while it held the folder
        assert a.returncode == 130, a_err
        _one_error_line(a_err, ["interrupted; rerun with --resume"])
    with lock_folder(out):  # the lock died with its holder
        pass


def _numbers(path):
    rows = json.loads(open(path).read())["results"]
    skip = {"steps_per_second", "run_time", "compile_time"}
    return [{k: v for k, v in r.items() if k not in skip} for r in rows]


def _interrupt_then_resume(tmp_path, sig, expected_rc):
    """Uninterrupted run, then the same run interrupted after its first recorded block and resumed."""
    env = _env(tmp_path / "jax-cache")  # the second and third runs reuse the first one's compiled code
    argv = ["sample", *MK[:2], "--n-train", "10", "--n-test", "10", "--width", "5", "--sampler", "gibbs",
            "--chains", "2", "--burnin", "0", "--steps", "1000", "--max-steps", "1000", "--seed", "3"]
    ref = _smtheory([*argv, "--json", "ref.json"], cwd=tmp_path, env=env, timeout=600)
    assert ref.returncode in (0, 3), ref.stderr
    ck = tmp_path / "run.npz"
    proc = subprocess.Popen([sys.executable, "-m", "smtheory.cli", *argv, "--checkpoint", str(ck)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(ck.exists, 600, proc), proc.communicate()
        first = os.stat(ck).st_ino  # written after burn-in; replaced (new inode) after every block of draws
        _wait_for(lambda: os.stat(ck).st_ino != first, 60, proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == expected_rc, err
    word = "terminated" if sig == signal.SIGTERM else "interrupted"
    _one_error_line(err, [f"{word}; rerun with --resume"])
    res = _smtheory([*argv, "--checkpoint", ck, "--resume", "--json", "resumed.json"], cwd=tmp_path, env=env,
                    timeout=600)
    assert res.returncode == ref.returncode, res.stderr
    assert _numbers(tmp_path / "resumed.json") == _numbers(tmp_path / "ref.json")


def test_sigint_mid_sampling_then_resume_equals_uninterrupted(tmp_path):
    _interrupt_then_resume(tmp_path, signal.SIGINT, 130)


@pytest.mark.slow
def test_sigterm_mid_sampling_then_resume_equals_uninterrupted(tmp_path):
    _interrupt_then_resume(tmp_path, signal.SIGTERM, 143)
