import json

import numpy as np
import pytest

from smtheory.cli import main


def _write_data(path, **override):
    rng = np.random.default_rng(0)
    N0, T = 5, 4
    d = dict(x_train=rng.standard_normal((20, N0, T)), y_train=np.sign(rng.standard_normal(20)),
             x_test=rng.standard_normal((10, N0, T)), y_test=np.sign(rng.standard_normal(10)),
             w_layer1=rng.standard_normal((2, N0, N0)) / N0,
             q_layer2=rng.standard_normal((2, 3, N0)), k_layer2=rng.standard_normal((2, 3, N0)))
    d.update(override)
    d = {k: v for k, v in d.items() if v is not None}
    np.savez(path, **d)
    return path


def test_solve_user_data_writes_json(tmp_path, capsys):
    data = _write_data(tmp_path / "d.npz")
    out = tmp_path / "r.json"
    rc = main(["solve", "--data", str(data), "--width", "5", "20", "--temperature", "0.1",
               "--variances", "1", "1", "1", "1", "--readout", "mean", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "D=4 paths" in text and "converged" in text
    res = json.loads(out.read_text())
    assert [r["width"] for r in res["results"]] == [5, 20]
    for r in res["results"]:
        for key in ("U1", "U_a", "action", "test_accuracy", "generalization_error", "converged", "grad_norm",
                    "hessian_min_eig", "solve_time", "compile_time"):
            assert key in r
        assert "Ua" not in r and "time" not in r and "accuracy" not in r  # one key set (issue 14)
        assert r["compile_time"] >= 0 and r["solve_time"] >= 0
        assert np.array(r["U1"]).shape == (4, 4) and r["converged"] and r["hessian_min_eig"] > 0
    assert res["versions"]["jax"] and res["config"]["temperature"] == 0.1


def test_per_layer_widths(tmp_path):
    data = _write_data(tmp_path / "d.npz")
    out = tmp_path / "r.json"
    assert main(["solve", "--data", str(data), "--width", "5,7,9", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["results"][0]["width"] == [5, 7, 9]


@pytest.mark.parametrize("override,args,message", [
    (dict(x_train=np.full((20, 5, 4), np.nan)), [], "x_train contains"),
    (dict(y_train=np.ones(19)), [], "y_train must have 20 labels"),
    (dict(x_test=np.zeros((10, 6, 4))), [], "x_test must have shape"),
    (dict(w_layer1=np.zeros((2, 5, 4))), [], "w_layer1 must have shape"),
    (dict(k_layer2=None), [], "needs both q_layer2 and k_layer2"),
    (dict(y_test=None), [], "has no array 'y_test'"),
    ({}, ["--temperature", "0"], "--temperature"),
    ({}, ["--temperature", "-1"], "--temperature"),
    ({}, ["--variances", "1", "1", "1"], "--variances needs L \\+ 2 = 4"),
    ({}, ["--variances", "1", "1", "-1", "1"], "--variances must be positive"),
    ({}, ["--readout", "middle"], "--readout must be one of"),
])
def test_bad_input_gives_one_clear_error(tmp_path, capsys, override, args, message):
    data = _write_data(tmp_path / "d.npz", **override)
    rc = main(["solve", "--data", str(data), "--width", "5"] + args)
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("smtheory: error:") and err.count("\n") == 1
    assert pytest.importorskip("re").search(message, err), err


def test_bad_widths_and_missing_file(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["solve", "--task", "markov", "--width", "0"])
    assert exc.value.code == 2
    assert "widths must be positive" in capsys.readouterr().err
    assert main(["solve", "--data", str(tmp_path / "missing.npz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_too_many_paths_is_refused_before_allocating(tmp_path, capsys):
    rng = np.random.default_rng(0)
    N0 = 5
    data = _write_data(tmp_path / "d.npz", w_layer1=rng.standard_normal((400, N0, N0)),
                       q_layer2=rng.standard_normal((400, 2, N0)), k_layer2=rng.standard_normal((400, 2, N0)),
                       w_layer3=rng.standard_normal((400, N0, N0)))
    rc = main(["solve", "--data", str(data), "--width", "5"])
    assert rc == 2
    assert "memory budget" in capsys.readouterr().err


def test_markov_task_cli(capsys, tmp_path):
    out = tmp_path / "m.json"
    rc = main(["solve", "--task", "markov", "--paths", "2", "--n-train", "40", "--n-test", "100", "--width", "10",
               "100", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "GP(g)" in text and "GP(g+d)" in text
    assert json.loads(out.read_text())["path_names"] == ["g", "d"]


@pytest.mark.parametrize("compile_time, shown", [(1.25, True), (0.0, False)])
def test_solve_reports_compile_time_apart_from_solve_time(tmp_path, capsys, monkeypatch, compile_time, shown):
    import smtheory.solvers
    from smtheory.solvers.numeric import SaddlePointResult

    def fake(spec):
        return SaddlePointResult(U=[np.eye(spec.n_paths) * spec.gp_u1_scale()], U_a=0.0, action=0.0, grad_norm=0.0,
                                 hessian_min_eig=1.0, residuals=[0.0], iterations=0, n_evaluations=0,
                                 solve_time=0.5, compile_time=compile_time, converged=True, message="fake",
                                 spec=spec, method="newton")

    monkeypatch.setattr(smtheory.solvers, "continuation",
                        lambda problem, spec, widths, tol: [fake(spec.replace(widths=w)) for w in widths])
    data = _write_data(tmp_path / "d.npz")
    assert main(["solve", "--data", str(data), "--width", "5", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [ln for ln in lines if ln.split() and ln.split()[0] in ("5", "20")]
    assert len(rows) == 2 and all(row.split()[-2] == "0.500" for row in rows)  # time[s]: the solve time
    note = [ln for ln in lines if ln.startswith("compile time")]
    if shown:
        assert note == ["compile time (JIT, first call per shape): 2.5 s; solve times above exclude it"]
        assert lines.index(note[0]) == lines.index(rows[-1]) + 1  # right after the table
    else:
        assert note == []


@pytest.mark.parametrize("args,message", [
    (["--mass-matrix", "full"], "--mass-matrix: mass_matrix must be one of 'auto', 'diagonal', 'dense'"),
    (["--sampler", "gibbs", "--mass-matrix", "dense"], "--mass-matrix: .*only for the overlap sampler"),
])
def test_sample_mass_matrix_errors(capsys, args, message):
    rc = main(["sample", "--task", "markov", "--width", "10"] + args)
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("smtheory: error:") and err.count("\n") == 1
    assert pytest.importorskip("re").search(message, err), err
