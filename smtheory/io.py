"""Atomic result files with provenance (configuration, seeds, versions, commit)."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile


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


def write_json_atomic(path, payload):
    """Write JSON to ``path`` atomically (temporary file in the same folder, then ``os.replace``)."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=1, allow_nan=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
