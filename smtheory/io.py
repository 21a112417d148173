"""Files: atomic strict-JSON results with provenance, output-path checks, ``.npz`` checks, folder locks.

- :func:`write_json_atomic` writes *strict* JSON (NaN and infinities become ``null``; NumPy scalars
  and arrays become numbers and lists) through a temporary file and ``os.replace``;
- :func:`check_output_file` and :func:`check_output_dir` check, before any work starts, that an
  output path can be written and is of the right kind (every CLI command calls them first);
- :func:`check_npz` refuses a file that is not an ``.npz`` archive with one clear message (never
  NumPy's ``allow_pickle`` text);
- :func:`lock_folder` holds an exclusive lock on an output folder for the duration of a run, so
  that two runs cannot write into the same folder at once.
"""
from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import zipfile

from .checks import InputError

#: Name of the lock file :func:`lock_folder` keeps in an output folder.
LOCK_FILE = ".smtheory.lock"


def versions():
    import jax
    import numpy
    import scipy

    from . import __version__

    return dict(smtheory=__version__, python=sys.version.split()[0], numpy=numpy.__version__,
                scipy=scipy.__version__, jax=jax.__version__, platform=platform.platform())


def git_commit(path=None):
    """The current git commit of the source tree, or None."""
    try:
        here = path or os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


# ----------------------------------------------------------------------------- strict JSON


def json_ready(obj):
    """``obj`` with NumPy scalars / arrays as Python numbers / lists and non-finite floats as ``None``.

    Dicts (keys made strings), lists, tuples and sets are converted recursively; other objects are
    returned unchanged (``json.dumps`` then refuses them with a TypeError naming the type).
    """
    import numpy as np

    if isinstance(obj, dict):
        return {str(k) if not isinstance(k, (str, int, float, bool)) or k is None else k: json_ready(v)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.ndarray) or type(obj).__module__.startswith(("jax", "jaxlib")):
        return json_ready(np.asarray(obj).tolist())
    return obj


def write_json_atomic(path, payload):
    """Write strict JSON to ``path`` atomically (temporary file in the same folder, then ``os.replace``).

    NaN and infinities are written as ``null`` and NumPy values as plain numbers (:func:`json_ready`),
    so every file is valid JSON (``allow_nan=False``).
    """
    text = json.dumps(json_ready(payload), indent=1, allow_nan=False)
    folder = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ----------------------------------------------------------------------------- output paths


def _existing_ancestor(path):
    """The nearest existing ancestor folder of ``path`` (``path`` itself excluded)."""
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        up = os.path.dirname(parent)
        if up == parent:
            break
        parent = up
    return parent


def _check_creatable(path, what):
    anc = _existing_ancestor(path)
    if not os.path.isdir(anc):
        raise InputError(f"{what}: cannot create {str(path)!r}: {anc!r} is a file, not a folder")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise InputError(f"{what}: cannot create {str(path)!r}: the folder {anc!r} is not writable")


def check_output_file(path, what="--json"):
    """Check, before any work, that a result file can be written at ``path``.

    ``path`` must not be a folder; if it exists it must be writable (it is replaced atomically);
    otherwise its nearest existing ancestor must be a writable folder (missing folders are created
    when the file is written).

    Parameters
    ----------
    path : str or os.PathLike
    what : str
        The option or parameter that named the path (for the message).

    Raises
    ------
    InputError
    """
    path = os.fspath(path)
    if not path:
        raise InputError(f"{what}: the path is empty")
    if os.path.isdir(path):
        raise InputError(f"{what}: {path!r} is a folder; give the path of a file")
    if os.path.exists(path):
        if not os.path.isfile(path):
            raise InputError(f"{what}: {path!r} exists and is not a regular file")
        if not os.access(path, os.W_OK):
            raise InputError(f"{what}: {path!r} is not writable")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.access(folder, os.W_OK | os.X_OK):
            raise InputError(f"{what}: the folder {folder!r} is not writable (the file is replaced atomically)")
        return path
    _check_creatable(path, what)
    return path


def check_output_dir(path, what="--out"):
    """Check, before any work, that ``path`` is (or can be created as) a writable folder.

    Raises
    ------
    InputError
        If ``path`` is an existing file, an unwritable folder, or lies under a file.
    """
    path = os.fspath(path)
    if not path:
        raise InputError(f"{what}: the path is empty")
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise InputError(f"{what}: {path!r} exists and is not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise InputError(f"{what}: the folder {path!r} is not writable")
        return path
    _check_creatable(path, what)
    return path


# ----------------------------------------------------------------------------- .npz inputs


def check_npz(path, what, writer):
    """Refuse ``path`` unless it is a readable ``.npz`` (zip) archive.

    Parameters
    ----------
    path : str or os.PathLike
    what : str
        The option or parameter that named the file (``"--data"``, ``"--model"``, ``"checkpoint"``).
    writer : str
        What writes such files (``"numpy.savez"``, ``"smtheory train"``), for the message.

    Raises
    ------
    InputError
        ``"WHAT: FILE is not an .npz archive written by WRITER (…)"`` for text, foreign, truncated
        or damaged files; ``"WHAT: no such file …"`` when it is missing.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{what}: no such file {path!r}")
    if not os.path.isfile(path):
        raise InputError(f"{what}: {path!r} is not a file")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
        ok = zipfile.is_zipfile(path)
    except OSError as exc:
        raise InputError(f"{what}: cannot read {path!r}: {exc.strerror or exc}") from None
    if not ok:
        if head.startswith(b"PK"):
            why = "truncated or damaged zip archive"
        elif not head:
            why = "the file is empty"
        elif head.startswith(b"\x93NUMPY"):
            why = "a single .npy array, not an .npz archive"
        else:
            why = "not a zip archive; a text or other file"
        raise InputError(f"{what}: {path!r} is not an .npz archive written by {writer} ({why})")
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise InputError(f"{what}: {path!r} is not an .npz archive written by {writer} "
                         f"(damaged zip archive: {exc})") from None
    if names and not all(n.endswith(".npy") for n in names):
        raise InputError(f"{what}: {path!r} is not an .npz archive written by {writer} (a zip archive of other "
                         f"files, e.g. {next(n for n in names if not n.endswith('.npy'))!r})")
    return path


# ----------------------------------------------------------------------------- folder locks


@contextlib.contextmanager
def lock_folder(folder, what="--out"):
    """Hold an exclusive lock on an output folder (created if missing) while the block runs.

    The lock is an ``fcntl.flock`` on ``FOLDER/.smtheory.lock``, which records the holder's pid; it is
    released when the block ends or the process dies, so a crashed run never leaves a stale lock.

    Raises
    ------
    InputError
        ``"WHAT: output folder FOLDER is in use by another run (pid N)"`` when another process holds it.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no locking
        yield folder
        return
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise InputError(f"{what}: output folder {folder!r} is in use by another run (pid {holder}); "
                             "wait for it to finish or choose another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        try:
            yield folder
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
