"""``smtheory sweep CONFIG.toml``: a grid of theory solves and sampling runs, locally or on Dask.

Examples
--------
``smtheory sweep validation/configs/markov_widths.toml --out sweep-widths``
``smtheory sweep grid.toml --workers 2``                       (local Dask cluster of 2 processes)
``smtheory sweep grid.toml --scheduler tcp://head:8786 --resume``   (existing cluster; skip finished tasks)
"""
from __future__ import annotations

import os
import sys

from smtheory.checks import InputError


def register(subparsers):
    """Add the ``sweep`` sub-command."""
    s = subparsers.add_parser(
        "sweep", help="run a grid of theory solves (and sampling runs) locally or on a Dask cluster",
        description="Run the grid of a TOML sweep configuration (N, T, P, heads per layer, seed, sampler settings; "
                    "format in docs/sweeps.md). Theory points are warm-started along N (or T) inside each task; "
                    "every finished task is saved, and --resume skips them. Results: OUT/results.nc, a labelled "
                    "xarray Dataset (load with smtheory.validation.store.load).")
    s.add_argument("config", metavar="CONFIG.toml", help="sweep configuration (TOML)")
    s.add_argument("--scheduler", metavar="ADDRESS",
                   help="address of a running Dask distributed scheduler, e.g. tcp://host:8786 "
                        "(default: run locally)")
    s.add_argument("--workers", type=int, default=1,
                   help="without --scheduler: 1 = run in this process (default); K > 1 = local Dask cluster of K "
                        "worker processes")
    s.add_argument("--out", metavar="DIR", default=None,
                   help="output folder (default: smtheory-sweep-<name from the config>)")
    s.add_argument("--resume", action="store_true",
                   help="reuse an existing output folder: finished tasks are skipped (the folder is locked while a "
                        "sweep runs; a second sweep on it exits with status 2)")
    s.add_argument("--plot", action="store_true", help="also write accuracy and U_1 figures (PNG) from the store")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_sweep)


def cmd_sweep(args):
    """Run the sweep into ``--out`` and print its summary; returns 0, or 3 when a task failed or a point is flagged."""
    from smtheory.validation import store, sweep

    if args.workers < 1:
        raise InputError(f"--workers must be a positive integer, got {args.workers}")
    if args.scheduler and args.workers != 1:
        raise InputError("--workers applies to the local cluster; the workers of --scheduler are the cluster's")
    from smtheory.io import check_output_dir

    config = sweep.load_config(args.config)
    out = args.out or f"smtheory-sweep-{config.name}"
    check_output_dir(out, "--out")
    ds = sweep.run_sweep(config, out, scheduler=args.scheduler, workers=args.workers, resume=args.resume,
                         progress=not args.quiet, config_path=os.path.abspath(args.config))
    run = store.provenance(ds)["run"]
    n_conv = int((ds.converged == 1).sum())
    n_done = int(ds.attrs["theory_points"])
    print(f"sweep {config.name!r}: {run['tasks']} tasks ({run['computed']} computed, {run['skipped']} skipped) "
          f"[{run['mode']}], {run['wall_time']:.1f}s")
    print(f"theory points: {n_done} of {ds.attrs['theory_points_expected']}, {n_conv} converged")
    if "sampler" in ds.dims:
        n_s = int(ds.rhat_max.notnull().sum())
        n_ok = int((ds.sampled_converged == 1).sum())
        print(f"sampling points: {n_s}, {n_ok} with R-hat <= 1.01")
    path = os.path.join(out, sweep.RESULTS_FILE)
    print(f"wrote {path}  (load with smtheory.validation.store.load({path!r}))")
    if args.plot:
        _plot(store, ds, out)
    if run.get("failed"):
        print(f"WARNING: {len(run['failed'])} task(s) failed (listed in the store's 'run' attribute); rerun with "
              "--resume to retry them", file=sys.stderr)
        return 3
    if n_conv < n_done:
        print(f"WARNING: {n_done - n_conv} theory point(s) did not converge (converged == 0 in the store)",
              file=sys.stderr)
        return 3
    return 0


def _plot(store, ds, out):
    """The accuracy and U_1 figures (PNG) of ``--plot``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sel = {d: ds[d].values[0] for d in ("P", "seed", "T")}
    fig = store.plot_metric(ds, "accuracy", **sel)
    fig.savefig(os.path.join(out, "accuracy.png"), dpi=120, bbox_inches="tight")
    plt.close(fig)
    for h in ds.heads.values:
        fig = store.plot_order_parameter(ds, heads=str(h), **sel)
        fig.savefig(os.path.join(out, f"U1_{h}.png"), dpi=120, bbox_inches="tight")
        plt.close(fig)
    print(f"wrote figures in {out}")
