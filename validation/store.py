"""The labelled results store of a sweep: an :class:`xarray.Dataset` saved as netCDF.

Layout (see ``docs/sweeps.md``): named dimensions

- ``P`` (training-set size), ``heads`` (architecture label such as ``"2x2"``), ``seed`` (data seed),
  ``T`` (temperature), ``N`` (width) — the grid of docs/theory.md §1, §5;
- ``path``, ``path_`` — rows and columns of the path–path order parameter ``U_1`` (docs/theory.md §3); for
  architectures with fewer paths than the largest, the extra entries are NaN; ``path_name(heads, path)``
  names the paths;
- ``sampler`` — the sampling settings (only when the sweep samples; docs/theory.md §4).

Variables: theory ``accuracy``, ``gaussian_accuracy``, ``generalization_error``, ``U1``, ``U_a``,
``action``, ``converged`` (1/0), ``max_residual``, ``hessian_min_eig``, ``grad_norm``, ``iterations``,
``solve_time``, ``compile_time`` (read from the records' keys, ``accuracy`` from ``test_accuracy``); GP baselines ``gp_accuracy``, ``gp_generalization_error`` (no ``N``); sampled
``sampled_accuracy`` (+ ``_mcse``), ``sampled_generalization_error`` (+ ``_mcse``), ``sampled_U1``
(+ ``_mcse``), ``rhat_max``, ``ess_min``, ``sampled_converged``, ``sample_time``.  Points not computed
are NaN.  Provenance attributes: ``config`` (JSON of the TOML), ``seeds``, ``versions``, ``commit``,
``created``, ``run`` (JSON strings; :func:`provenance` decodes them).
"""
from __future__ import annotations

import json
import os
import tempfile
import time

import numpy as np

from smtheory.checks import InputError
from smtheory.extras import require
from smtheory.records import array_from_json, float_from_json as _float

__all__ = ["build_dataset", "save", "load", "provenance", "plot_metric", "plot_order_parameter", "require_store"]

#: Theory variables of the store and their keys in a theory point (the solve and predictor records).
_THEORY = {"accuracy": "test_accuracy", "gaussian_accuracy": "gaussian_accuracy",
           "generalization_error": "generalization_error", "U_a": "U_a", "action": "action", "converged": "converged",
           "max_residual": "max_residual", "hessian_min_eig": "hessian_min_eig", "grad_norm": "grad_norm",
           "iterations": "iterations", "solve_time": "solve_time", "compile_time": "compile_time"}
#: Sampled variables of the store and their keys in a sampled point (the sampling record).
_SAMPLED = {"sampled_accuracy": "test_accuracy", "sampled_accuracy_mcse": "test_accuracy_mcse",
            "sampled_generalization_error": "generalization_error",
            "sampled_generalization_error_mcse": "generalization_error_mcse", "rhat_max": "rhat_max",
            "ess_min": "ess_min", "sampled_converged": "converged", "sample_time": "wall_time"}
_UNITS = dict(accuracy="mean-predictor test accuracy (docs/theory.md §3)", generalization_error="docs/theory.md §3",
              U1="path-path order parameter U_1 (docs/theory.md §3)", solve_time="seconds")


def require_store():
    """xarray, once it and h5netcdf (the netCDF4 engine of ``results.nc``) are known to import.

    Raises
    ------
    smtheory.extras.MissingExtra
        Either is missing: the message names ``pip install "smtheory[store]"``.
    """
    xr = require("xarray", "store", "the sweep store (results.nc)")
    require("h5netcdf", "store", "the sweep store (results.nc)")
    return xr


def heads_label(heads):
    """``(2, 2) -> "2x2"``: the label of an architecture on the ``heads`` axis of the store."""
    return "x".join(str(int(h)) for h in heads)


def _empty_arrays(config, labels, dmax):
    """NaN-filled arrays of every variable of the store, on the grid of ``config`` (``dmax`` paths at most)."""
    shape = (len(config.P), len(labels), len(config.seed), len(config.T), len(config.N))
    sshape = (len(config.sampling),) + shape
    return dict(theory={k: np.full(shape, np.nan) for k in _THEORY}, U1=np.full(shape + (dmax, dmax), np.nan),
                gp_accuracy=np.full(shape[:-1], np.nan), gp_generalization_error=np.full(shape[:-1], np.nan),
                path_name=np.full((len(labels), dmax), "", dtype=object),
                sampled={k: np.full(sshape, np.nan) for k in _SAMPLED},
                sampled_U1=np.full(sshape + (dmax, dmax), np.nan),
                sampled_U1_mcse=np.full(sshape + (dmax, dmax), np.nan))


def _fill_theory(arr, idx, base, D, out):
    """Write the points and GP baselines of one theory task's result; return the number of points written."""
    tidx, nidx = idx["T"], idx["N"]
    theory, U1 = arr["theory"], arr["U1"]
    finished_points = 0
    for row in out["points"]:
        if row["T"] not in tidx or row["N"] not in nidx:
            continue
        ix = base + (tidx[row["T"]], nidx[row["N"]])
        for k, src in _THEORY.items():
            theory[k][ix] = _float(row[src])
        U1[ix + (slice(0, D), slice(0, D))] = array_from_json(row["U1"])
        finished_points += 1
    for g in out["gp"]:
        if g["T"] in tidx:
            arr["gp_accuracy"][base + (tidx[g["T"]],)] = _float(g["test_accuracy"])
            arr["gp_generalization_error"][base + (tidx[g["T"]],)] = _float(g["generalization_error"])
    return finished_points


def _fill_sample(arr, ix, D, row):
    """Write the sampled point ``row`` of one sampling task at the index ``ix`` (sampler first)."""
    for k, src in _SAMPLED.items():
        arr["sampled"][k][ix] = _float(row[src])
    arr["sampled_U1"][ix + (slice(0, D), slice(0, D))] = array_from_json(row["U1_sampled"])
    arr["sampled_U1_mcse"][ix + (slice(0, D), slice(0, D))] = array_from_json(row["U1_mcse"])


def _fill(arr, idx, snames, payloads):
    """Write every payload that lies on the grid into ``arr``; return the number of theory points written."""
    finished_points = 0
    for pay in payloads:
        task, out = pay["task"], pay["result"]
        pr = task["problem"]
        lab = heads_label(pr["heads"])
        if pr["P"] not in idx["P"] or lab not in idx["heads"] or pr["seed"] not in idx["seed"]:
            continue
        base = (idx["P"][pr["P"]], idx["heads"][lab], idx["seed"][pr["seed"]])
        D = int(np.prod(pr["heads"]))
        if out.get("path_names"):
            arr["path_name"][idx["heads"][lab], :D] = out["path_names"]
        if task["kind"] == "theory":
            finished_points += _fill_theory(arr, idx, base, D, out)
        elif task["kind"] == "sample" and task["sampler"] in snames:
            row = out["point"]
            ix = (snames.index(task["sampler"]),) + base + (idx["T"][row["T"]], idx["N"][row["N"]])
            _fill_sample(arr, ix, D, row)
    return finished_points


def _variables(config, labels, dmax, arr):
    """The ``data_vars`` and ``coords`` of the Dataset (layout in the module docstring)."""
    dims = ("P", "heads", "seed", "T", "N")
    coords = dict(P=list(config.P), heads=labels, seed=list(config.seed), T=list(config.T), N=list(config.N),
                  path=np.arange(dmax), path_=np.arange(dmax))
    data = {k: (dims, v, {"description": _UNITS.get(k, "")}) for k, v in arr["theory"].items()}
    data["U1"] = (dims + ("path", "path_"), arr["U1"], {"description": _UNITS["U1"]})
    data["gp_accuracy"] = (dims[:-1], arr["gp_accuracy"], {"description": "accuracy of the GP (infinite-width) limit"})
    data["gp_generalization_error"] = (dims[:-1], arr["gp_generalization_error"], {"description": "GP limit"})
    data["path_name"] = (("heads", "path"), arr["path_name"].astype(str))
    snames = [s.name for s in config.sampling]
    if snames:
        coords["sampler"] = snames
        sd = ("sampler",) + dims
        for k, v in arr["sampled"].items():
            data[k] = (sd, v, {"description": "posterior sampling (docs/theory.md §4)"})
        data["sampled_U1"] = (sd + ("path", "path_"), arr["sampled_U1"],
                              {"description": "sampled <w_pi . w_pi'>/N1"})
        data["sampled_U1_mcse"] = (sd + ("path", "path_"), arr["sampled_U1_mcse"],
                                   {"description": "Monte-Carlo standard error"})
        coords["sampler_settings"] = ("sampler", [json.dumps(s.sample, sort_keys=True) for s in config.sampling])
    return data, coords


def _attributes(config, config_path, run, finished_points):
    """Provenance attributes of the Dataset (JSON strings where structured; :func:`provenance` decodes them)."""
    from smtheory.io import git_commit, versions

    seeds = dict(data_seeds=list(config.seed), head_seed=config.head_seed,
                 sampler_seeds={s.name: s.sample.get("seed", 0) for s in config.sampling})
    return dict(
        title=f"smtheory sweep {config.name!r}", name=config.name, task=config.task, network=config.network,
        continuation=config.continuation, config=json.dumps(config.to_dict(), sort_keys=True),
        config_path=str(config_path or ""), seeds=json.dumps(seeds, sort_keys=True),
        versions=json.dumps(_versions(versions()), sort_keys=True), commit=str(git_commit() or "unknown"),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), run=json.dumps(run or {}, sort_keys=True),
        theory_points=int(finished_points), theory_points_expected=int(config.n_theory_points),
        conventions="docs/theory.md §1-§5; U1 indexed by flattened paths (h_1 most significant)",
    )


def build_dataset(config, payloads, *, config_path=None, run=None):
    """Assemble finished task results (from :func:`smtheory.validation.sweep.run_task`) into a Dataset.

    Parameters
    ----------
    config : smtheory.validation.sweep.SweepConfig
    payloads : list of dict
        Task results; missing tasks leave NaN in the store.
    config_path : str, optional
    run : dict, optional
        How the sweep ran (mode, task counts, wall time); recorded as an attribute.
    """
    xr = require_store()

    labels = [heads_label(h) for h in config.heads]
    dmax = max(int(np.prod(h)) for h in config.heads)
    idx = dict(P={p: i for i, p in enumerate(config.P)}, heads={lab: i for i, lab in enumerate(labels)},
               seed={s: i for i, s in enumerate(config.seed)}, T={t: i for i, t in enumerate(config.T)},
               N={n: i for i, n in enumerate(config.N)})
    arr = _empty_arrays(config, labels, dmax)
    finished_points = _fill(arr, idx, [s.name for s in config.sampling], payloads)
    data, coords = _variables(config, labels, dmax, arr)
    ds = xr.Dataset(data, coords=coords)
    ds.attrs = _attributes(config, config_path, run, finished_points)
    return ds


def _versions(base):
    from importlib import metadata

    out = dict(base)
    for name in ("xarray", "dask", "distributed", "h5netcdf"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def save(ds, path):
    """Write the store to ``path`` (netCDF4 via h5netcdf) atomically: temporary file, then ``os.replace``."""
    require_store()
    folder = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".nc")
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load(path):
    """Load a sweep store (``results.nc``, or the sweep's output folder) fully into memory.

    Returns
    -------
    xarray.Dataset
        Select with labels, e.g. ``ds.accuracy.sel(heads="2x2", P=100, seed=0, T=0.01)``;
        :func:`provenance` decodes the provenance attributes.
    """
    xr = require_store()

    if os.path.isdir(path):
        path = os.path.join(path, "results.nc")
    if not os.path.exists(path):
        raise InputError(f"no sweep store at {str(path)!r}")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return ds.load()
    except (OSError, ValueError) as exc:
        raise InputError(f"{str(path)!r} is not a sweep store written by smtheory sweep (a netCDF4 results.nc "
                         f"file): {type(exc).__name__}") from None


def provenance(ds):
    """The provenance attributes of a store as Python objects (config, seeds, versions, run, commit)."""
    out = {}
    for k in ("config", "seeds", "versions", "run"):
        out[k] = json.loads(ds.attrs.get(k, "null"))
    out["commit"] = ds.attrs.get("commit")
    out["created"] = ds.attrs.get("created")
    return out


def _select(da, sel):
    sel = dict(sel)
    for dim in list(da.dims):
        if dim in sel:
            continue
        if dim not in ("N", "path", "path_", "heads") and da.sizes[dim] == 1:
            sel[dim] = da[dim].values[0]
    return da.sel({k: v for k, v in sel.items() if k in da.dims})


def plot_metric(ds, var="accuracy", *, ax=None, sampler=None, gp=True, **sel):
    """A theory metric against the width ``N`` straight from the store, one line per remaining label.

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`load`.
    var : {"accuracy", "generalization_error", "gaussian_accuracy", ...}
    ax : matplotlib Axes, optional
    sampler : str, optional
        Overlay the sampled values of this sampler setting (± MCSE); default: the first, if any.
    gp : bool
        Draw the GP baseline as a dashed line.
    **sel
        Label selections for the other dimensions (``P=100, seed=0, T=0.01``); dimensions of length one
        are selected automatically; the remaining one (besides ``N``) gives one line per label
        (``heads`` by default).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if var not in ds:
        raise InputError(f"plot_metric: the store has no variable {var!r}")
    da = _select(ds[var], sel)
    extra = [d for d in da.dims if d != "N"]
    if len(extra) > 1:
        raise InputError(f"plot_metric: select labels for {extra[1:]} (e.g. {extra[-1]}=...)")
    if ax is None:
        _, ax = plt.subplots(figsize=(7.6, 3.8))
    groups = [(None, da)] if not extra else [(v, da.sel({extra[0]: v})) for v in da[extra[0]].values]
    sname = sampler if sampler is not None else (str(ds.sampler.values[0]) if "sampler" in ds.dims else None)
    for i, (label, line) in enumerate(groups):
        color = f"C{i}"
        name = f"{extra[0]}={label}" if extra else var
        ax.plot(line.N, line, "o-", color=color, label=f"theory {name}")
        if gp and f"gp_{var}" in ds:
            g = _select(ds[f"gp_{var}"], dict(sel, **({extra[0]: label} if extra else {})))
            if g.ndim == 0:
                ax.axhline(float(g), color=color, ls="--", lw=1, label=f"GP {name}")
        if sname is not None and f"sampled_{var}" in ds:
            sel_s = dict(sel, sampler=sname, **({extra[0]: label} if extra else {}))
            s = _select(ds[f"sampled_{var}"], sel_s)
            err = _select(ds[f"sampled_{var}_mcse"], sel_s) if f"sampled_{var}_mcse" in ds else None
            ok = np.isfinite(s.values)
            if ok.any():
                ax.errorbar(s.N.values[ok], s.values[ok], yerr=None if err is None else err.values[ok], fmt="s",
                            color=color, mfc="none", capsize=3, label=f"sampled ({sname}) {name} $\\pm$ MCSE")
    ax.set_xscale("log")
    ax.set_xlabel(r"width $N$ (log scale)")
    ax.set_ylabel({"accuracy": "test accuracy (fraction correct)", "generalization_error":
                   r"generalisation error $\epsilon_g$ (test MSE)"}.get(var, var.replace("_", " ")))
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8, frameon=False)
    where = ", ".join(f"${key} = {v}$" if len(key) == 1 else f"{key} {v}" for key, v in sel.items())
    ax.set_title(f"{ds.attrs.get('name', '')}: {where}" if where else ds.attrs.get("name", ""), fontsize=10)
    return ax.figure


def plot_order_parameter(ds, *, heads=None, ax=None, sampler=None, **sel):
    """Entries of ``U_1`` (docs/theory.md §3) against ``N`` for one architecture, sampled values overlaid.

    Diagonal entries are solid lines, off-diagonal ones dashed; ``sel`` fixes the other labels.
    """
    import matplotlib.pyplot as plt

    heads = heads if heads is not None else str(ds.heads.values[0])
    da = _select(ds.U1.sel(heads=heads), sel)
    if set(da.dims) != {"N", "path", "path_"}:
        raise InputError(f"plot_order_parameter: select labels for {sorted(set(da.dims) - {'N', 'path', 'path_'})}")
    names = [str(n) for n in ds.path_name.sel(heads=heads).values]
    D = sum(1 for n in names if n)
    if ax is None:
        _, ax = plt.subplots(figsize=(7.6, 3.8))
    sname = sampler if sampler is not None else (str(ds.sampler.values[0]) if "sampler" in ds.dims else None)
    colors = plt.get_cmap("tab10" if D * (D + 1) // 2 <= 10 else "tab20")
    k, shown = 0, False
    for i in range(D):
        for j in range(i, D):
            color = colors(k % colors.N)
            k += 1
            ax.plot(da.N, da.isel(path=i, path_=j), "-" if i == j else "--", color=color,
                    label=rf"$U_1[\mathrm{{{names[i]}}},\mathrm{{{names[j]}}}]$")
            if sname is not None and "sampled_U1" in ds:
                s = _select(ds.sampled_U1.sel(heads=heads, sampler=sname), sel).isel(path=i, path_=j)
                e = _select(ds.sampled_U1_mcse.sel(heads=heads, sampler=sname), sel).isel(path=i, path_=j)
                ok = np.isfinite(s.values)
                if ok.any():
                    ax.errorbar(s.N.values[ok], s.values[ok], yerr=e.values[ok], fmt="s", mfc="none", color=color,
                                capsize=3)
                    shown = True
    if shown:
        ax.plot([], [], "s", mfc="none", color="gray", label=f"squares: sampled ({sname}) $\\pm$ MCSE")
    ax.set_xscale("log")
    ax.set_xlabel(r"width $N$ (log scale)")
    ax.set_ylabel("$U_1$ entry\n(solid: diagonal, dashed: off-diagonal)")
    where = "".join(f", ${key} = {v}$" if len(key) == 1 else f", {key} {v}" for key, v in sel.items())
    ax.set_title(f"{ds.attrs.get('name', '')}: heads {heads}{where}", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8, frameon=False,
              ncol=1 if k <= 12 else 2)
    return ax.figure
