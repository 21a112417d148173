"""Atomic, bit-exact checkpoints of a sampler state pytree.

:func:`save_checkpoint` writes one ``.npz`` file holding every leaf of the flattened
pytree (``leaf_00000``, ``leaf_00001``, … in ``jax.tree_util`` flattening order) and a JSON
header (``__header__``) with the tree-structure signature, every leaf's key path, dtype,
shape and kind, library versions and the caller's metadata (config, step counter, seeds…).
The file is written to a temporary file in the destination directory, flushed, fsync'ed
and moved into place with :func:`os.replace`, so a reader sees either the previous
checkpoint or the complete new one, never a partial file.

PRNG keys: raw ``uint32`` keys are ordinary arrays; new-style typed keys
(``jax.random.key``) are stored as their ``jax.random.key_data`` together with the
implementation name and rebuilt with ``jax.random.wrap_key_data``.

:func:`load_checkpoint` needs a ``like`` pytree (real arrays or ``jax.ShapeDtypeStruct``,
e.g. from ``jax.eval_shape``) and checks that the structure, shapes, dtypes and key kinds
match before returning anything.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from smtheory.checks import InputError

__all__ = ["save_checkpoint", "load_checkpoint", "read_metadata", "fingerprint", "check_fingerprint", "FORMAT"]

#: Format tag written into every checkpoint header.
FORMAT = "smtheory.sims.checkpoint/1"

_HEADER = "__header__"


def _versions():
    import jaxlib

    try:
        import smtheory
        smt_version = smtheory.__version__
    except Exception:  # pragma: no cover
        smt_version = None
    return {"python": platform.python_version(), "numpy": np.__version__, "jax": jax.__version__,
            "jaxlib": jaxlib.__version__, "smtheory": smt_version}


def _is_typed_key(x):
    dt = getattr(x, "dtype", None)
    return dt is not None and jax.dtypes.issubdtype(dt, jax.dtypes.prng_key)


def _json_default(o):
    if isinstance(o, (np.bool_,)):
        return bool(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, (np.ndarray, jax.Array)) and not _is_typed_key(o):
        return np.asarray(o).tolist()
    raise TypeError(f"object of type {type(o).__name__} is not JSON serializable")


def _leaf_record(path, leaf):
    """(numpy array to store, header record) of one leaf."""
    name = jax.tree_util.keystr(path)
    if _is_typed_key(leaf):
        data = np.asarray(jax.random.key_data(leaf))
        rec = {"path": name, "kind": "typed_key", "impl": str(jax.random.key_impl(leaf)),
               "shape": list(leaf.shape), "dtype": str(data.dtype)}
        return data, rec
    if isinstance(leaf, jax.Array):
        kind = "jax"
    elif isinstance(leaf, np.ndarray):
        kind = "numpy"
    elif isinstance(leaf, np.generic):
        kind = "numpy_scalar"
    elif isinstance(leaf, (bool, int, float, complex)):
        kind = "python_" + type(leaf).__name__
    else:
        raise InputError(f"state_pytree leaf {name} has unsupported type {type(leaf).__name__}; "
                         "leaves must be JAX/NumPy arrays, NumPy scalars or Python numbers")
    arr = np.asarray(leaf)
    if arr.dtype == object:
        raise InputError(f"state_pytree leaf {name} is an object array, which cannot be stored without pickle")
    rec = {"path": name, "kind": kind, "shape": list(arr.shape), "dtype": str(arr.dtype)}
    if arr.dtype.kind == "V" or type(arr.dtype).__module__.startswith("ml_dtypes"):
        # extension dtypes (bfloat16, float8…): store the raw bytes as unsigned ints
        arr = arr.view(np.dtype(f"u{arr.dtype.itemsize}"))
        rec["stored_as"] = str(arr.dtype)
    return arr, rec


def _write_arrays(fileobj, arrays):
    """Serialise the arrays into an open binary file (separate for testability)."""
    np.savez(fileobj, **arrays)


def save_checkpoint(path, state_pytree, metadata=None):
    """Write ``state_pytree`` and ``metadata`` atomically to ``path`` (an ``.npz`` file).

    Parameters
    ----------
    path : str or os.PathLike
        Destination, written exactly as given (no suffix is appended); its directory must exist.
    state_pytree : pytree
        Leaves: JAX or NumPy arrays of any dtype (typed PRNG keys included), NumPy scalars or
        Python numbers.
    metadata : dict, optional
        JSON-serialisable (NumPy scalars / arrays are converted to numbers / lists), e.g.
        ``{"config": ..., "step": 1000, "seed": 0}``.  A ``"versions"`` entry (Python, NumPy,
        JAX, jaxlib, smtheory) is added unless present.

    Returns
    -------
    str
        The path written.
    """
    path = os.fspath(path)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise InputError(f"metadata must be a dict, got {type(metadata).__name__}")
    metadata = dict(metadata)
    metadata.setdefault("versions", _versions())
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InputError(f"path {path!r}: directory {directory!r} does not exist")

    # Everything that can fail on bad input happens before a file is created.
    leaves_with_paths, treedef = jax.tree_util.tree_flatten_with_path(state_pytree)
    arrays, records = {}, []
    for i, (kp, leaf) in enumerate(leaves_with_paths):
        arr, rec = _leaf_record(kp, leaf)
        arrays[f"leaf_{i:05d}"] = arr
        records.append(rec)
    header = {"format": FORMAT, "treedef": str(treedef), "n_leaves": len(records), "leaves": records,
              "metadata": metadata}
    try:
        header_json = json.dumps(header, default=_json_default, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise InputError(f"metadata must be JSON-serialisable: {e}") from None
    arrays[_HEADER] = np.array(header_json)

    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_arrays(f, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename durable (best effort; not supported everywhere)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover
        pass
    return path


def _like_kind(leaf):
    if _is_typed_key(leaf):
        return "typed_key"
    if isinstance(leaf, (jax.Array, jax.ShapeDtypeStruct)):
        return "jax"
    if isinstance(leaf, np.ndarray):
        return "numpy"
    if isinstance(leaf, np.generic):
        return "numpy_scalar"
    if isinstance(leaf, (bool, int, float, complex)):
        return "python_" + type(leaf).__name__
    return None


def _read(path, leaves):
    """``(header, stored leaves or None)`` of a checkpoint file, with clear errors."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"path {path!r} is not a checkpoint file (it does not exist)")
    try:
        with np.load(path, allow_pickle=False) as z:
            if _HEADER not in z.files:
                raise InputError(f"{path!r} is not a sims checkpoint (no {_HEADER} entry)")
            header = json.loads(str(z[_HEADER][()]))
            stored = [z[f"leaf_{i:05d}"] for i in range(header["n_leaves"])] if leaves else None
    except InputError:
        raise
    except (OSError, ValueError, KeyError, EOFError, TypeError, json.JSONDecodeError) as e:
        kind = "truncated or damaged" if isinstance(e, (EOFError, KeyError, OSError)) else "not an .npz archive"
        raise InputError(f"{path!r} is not a readable smtheory checkpoint ({kind}: {type(e).__name__}); "
                         "use the file written by the run you want to resume") from None
    return header, stored


def read_metadata(path):
    """The metadata dict of a checkpoint, without reading its arrays (e.g. to size the ``like`` pytree)."""
    return _read(path, leaves=False)[0]["metadata"]


def load_checkpoint(path, like_pytree):
    """Read a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : str or os.PathLike
    like_pytree : pytree
        A pytree of the expected structure (arrays or ``jax.ShapeDtypeStruct`` leaves); its
        structure, leaf shapes, dtypes and key kinds must match the stored ones.

    Returns
    -------
    state : pytree
        Same structure as ``like_pytree``; every leaf has the stored dtype and bits and the
        container type of the ``like`` leaf (JAX array, NumPy array / scalar, Python number).
        Typed PRNG keys are rebuilt with their stored implementation.
    metadata : dict
        The metadata saved (with ``"versions"``).
    """
    path = os.fspath(path)
    header, stored = _read(path, leaves=True)
    if header.get("format") != FORMAT:
        raise InputError(f"{path!r} has format {header.get('format')!r}, expected {FORMAT!r}")

    like_leaves_wp, like_treedef = jax.tree_util.tree_flatten_with_path(like_pytree)
    records = header["leaves"]
    if str(like_treedef) != header["treedef"] or len(like_leaves_wp) != len(records):
        like_paths = [jax.tree_util.keystr(kp) for kp, _ in like_leaves_wp]
        saved_paths = [r["path"] for r in records]
        only_saved = [p for p in saved_paths if p not in like_paths]
        only_like = [p for p in like_paths if p not in saved_paths]
        detail = ""
        if only_saved or only_like:
            detail = f"; leaves only in the checkpoint: {only_saved[:5]}, only in like_pytree: {only_like[:5]}"
        raise InputError(
            f"checkpoint {path!r} does not match the structure of like_pytree: stored {header['treedef']}, "
            f"like_pytree has {like_treedef}{detail}")

    out = []
    for (kp, like), rec, arr in zip(like_leaves_wp, records, stored):
        name = jax.tree_util.keystr(kp)
        kind = _like_kind(like)
        if kind is None:
            raise InputError(f"like_pytree leaf {name} has unsupported type {type(like).__name__}")
        if (kind == "typed_key") != (rec["kind"] == "typed_key"):
            raise InputError(
                f"checkpoint leaf {name} is {'a typed PRNG key' if rec['kind'] == 'typed_key' else 'not a typed key'}"
                f" but like_pytree's is {'a typed PRNG key' if kind == 'typed_key' else 'not'}")
        if kind.startswith("python_") and rec["kind"] != kind:
            raise InputError(f"checkpoint leaf {name} was stored as {rec['kind']} ({rec['dtype']}), "
                             f"like_pytree expects a Python {type(like).__name__}")
        like_shape = tuple(np.shape(like)) if not kind.startswith("python_") else ()
        if tuple(rec["shape"]) != like_shape:
            raise InputError(f"checkpoint leaf {name} has shape {tuple(rec['shape'])}, like_pytree expects {like_shape}")
        if kind == "typed_key":
            impl = str(jax.random.key_impl(like)) if isinstance(like, jax.Array) else None
            if impl is not None and impl != rec["impl"]:
                raise InputError(f"checkpoint leaf {name} is a {rec['impl']} key, like_pytree expects {impl}")
            out.append(jax.random.wrap_key_data(jnp.asarray(arr), impl=rec["impl"]))
            continue
        dtype = jnp.dtype(rec["dtype"])
        if "stored_as" in rec:
            arr = arr.view(dtype)
        if arr.dtype != dtype:
            raise InputError(f"checkpoint leaf {name}: stored dtype {arr.dtype} differs from its header {dtype}")
        if not kind.startswith("python_") and jnp.dtype(like.dtype) != dtype:
            raise InputError(f"checkpoint leaf {name} has dtype {dtype}, like_pytree expects {jnp.dtype(like.dtype)}")
        if kind == "jax":
            out.append(jnp.asarray(arr, dtype=dtype))
        elif kind == "numpy":
            out.append(np.array(arr, dtype=dtype))
        elif kind == "numpy_scalar":
            out.append(arr.reshape(())[()])
        else:
            out.append(type(like)(arr.reshape(()).item()))
    return jax.tree_util.tree_unflatten(like_treedef, out), header["metadata"]


# --------------------------------------------------------------------------- problem fingerprints
def _digest(*arrays):
    import hashlib

    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def fingerprint(problem, spec, config):
    """Short hashes of what a sampling run belongs to: training data, test data, model, settings.

    ``config`` entries that may differ on resume (``steps``, ``max_steps``: extending a run) are left
    out. Stored in every sampling checkpoint and compared by :func:`check_fingerprint`.
    """
    import dataclasses

    cfg = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("steps", "max_steps")}
    return {"training data": _digest(problem.xi_train, problem.y_train),
            "test data": _digest(problem.xi_test, problem.y_test),
            "model": json.dumps(spec.to_dict(), sort_keys=True, default=str),
            "settings": json.dumps(cfg, sort_keys=True, default=str)}


def check_fingerprint(path, stored, current):
    """Refuse to resume ``path`` when it belongs to another problem; the message names what differs."""
    if not isinstance(stored, dict):
        raise InputError(f"resume: {path!r} is not a sampling checkpoint of this version (no fingerprint)")
    diff = [k for k in current if stored.get(k) != current[k]]
    if not diff:
        return
    detail = []
    for k in diff:
        if k == "settings":
            try:
                a, b = json.loads(stored.get(k, "{}")), json.loads(current[k])
                detail.append("settings (" + ", ".join(f"{n}: {a.get(n)!r} -> {b.get(n)!r}"
                                                       for n in sorted(set(a) | set(b)) if a.get(n) != b.get(n)) + ")")
            except (TypeError, ValueError):
                detail.append("settings")
        else:
            detail.append(k)
    raise InputError(f"resume: the checkpoint {path!r} belongs to another problem; it differs in "
                     f"{'; '.join(detail)} (only steps/max_steps may change, to extend a run; "
                     "use another --checkpoint path for a new run)")
