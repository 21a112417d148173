"""Write the small intersphinx inventories the docs build links against, with no network.

The real ``objects.inv`` files of Python, NumPy, SciPy, JAX and xarray cannot be fetched where the docs are
built (no network), so this script writes, for each project, a Sphinx inventory (format version 2, what
``sphinx.util.inventory.InventoryFile`` reads) holding the names the smtheory docs and docstrings refer to, each
with the address of its page in that project's stable documentation.  ``docs/conf.py`` points
``intersphinx_mapping`` at the files written here; the docs test checks that they load and hold the names below.

Run after adding a name:  ``python3 docs/_intersphinx/make_inventories.py``  (commit the ``*.inv`` files).
"""
import os
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

# project -> (display name, {(name, "domain:role"): page relative to the project's documentation root});
# a page ending in "#" gets the name appended as its anchor (Sphinx's own "$" shorthand).
_BUILTINS = "library/functions.html#"
_STDTYPES = "library/stdtypes.html#"
_EXC = "library/exceptions.html#"
_PY_CLASSES = {"int": _BUILTINS, "float": _BUILTINS, "bool": _BUILTINS, "complex": _BUILTINS,
               "object": _BUILTINS, "str": _STDTYPES, "bytes": _STDTYPES, "dict": _STDTYPES,
               "list": _STDTYPES, "tuple": _STDTYPES, "set": _STDTYPES, "frozenset": _STDTYPES,
               "range": _STDTYPES, "types.ModuleType": "library/types.html#", "os.PathLike": "library/os.html#",
               "pathlib.Path": "library/pathlib.html#", "typing.NamedTuple": "library/typing.html#",
               "numbers.Number": "library/numbers.html#",
               "collections.abc.Callable": "library/collections.abc.html#",
               "collections.abc.Sequence": "library/collections.abc.html#",
               "collections.abc.Mapping": "library/collections.abc.html#",
               "collections.abc.Iterable": "library/collections.abc.html#",
               "collections.abc.Iterator": "library/collections.abc.html#",
               "argparse.ArgumentParser": "library/argparse.html#", "argparse.Namespace": "library/argparse.html#",
               "concurrent.futures.Executor": "library/concurrent.futures.html#"}
_PY_EXCEPTIONS = ("Exception", "ValueError", "TypeError", "RuntimeError", "KeyError", "IndexError",
                  "ImportError", "ModuleNotFoundError", "OSError", "FileNotFoundError", "NotImplementedError",
                  "KeyboardInterrupt", "Warning", "UserWarning", "RuntimeWarning", "DeprecationWarning")
_PY_OTHER = {("callable", "py:function"): _BUILTINS, ("isinstance", "py:function"): _BUILTINS,
             ("os.replace", "py:function"): "library/os.html#", ("None", "py:data"): "library/constants.html#",
             ("typing.Any", "py:data"): "library/typing.html#"}


def _python():
    entries = {(name, "py:class"): page for name, page in _PY_CLASSES.items()}
    entries.update({(name, "py:exception"): _EXC for name in _PY_EXCEPTIONS})
    entries.update(_PY_OTHER)
    return "Python", entries


def _numpy():
    gen = "reference/generated/"
    return "NumPy", {
        ("numpy.ndarray", "py:class"): gen + "numpy.ndarray.html#", ("numpy.dtype", "py:class"): gen + "numpy.dtype.html#",
        ("numpy.float64", "py:class"): "reference/arrays.scalars.html#",
        ("numpy.float32", "py:class"): "reference/arrays.scalars.html#",
        ("numpy.random.Generator", "py:class"): "reference/random/generator.html#",
        ("numpy.random.default_rng", "py:function"): "reference/random/generator.html#",
        ("numpy.typing.ArrayLike", "py:data"): "reference/typing.html#",
        ("numpy.linalg.eigh", "py:function"): gen + "numpy.linalg.eigh.html#",
        ("numpy.savez", "py:function"): gen + "numpy.savez.html#"}


def _scipy():
    gen = "reference/generated/"
    names = {("scipy.optimize.minimize", "py:function"), ("scipy.optimize.OptimizeResult", "py:class"),
             ("scipy.linalg.cho_factor", "py:function"), ("scipy.linalg.cho_solve", "py:function"),
             ("scipy.linalg.eigh", "py:function"), ("scipy.sparse.linalg.eigsh", "py:function"),
             ("scipy.special.erfc", "py:data")}
    return "SciPy", {(name, role): f"{gen}{name}.html#" for name, role in names}


def _jax():
    functions = ("jax.jit", "jax.grad", "jax.vmap", "jax.jacfwd", "jax.jacrev", "jax.hessian", "jax.jvp",
                 "jax.vjp", "jax.linear_transpose", "jax.value_and_grad", "jax.lax.scan", "jax.lax.map",
                 "jax.lax.while_loop", "jax.lax.fori_loop", "jax.nn.softmax", "jax.random.key",
                 "jax.random.PRNGKey", "jax.random.split", "jax.numpy.linalg.cholesky")
    entries = {(name, "py:function"): f"_autosummary/{name}.html#" for name in functions}
    entries[("jax.Array", "py:class")] = "_autosummary/jax.Array.html#"
    return "JAX", entries


def _xarray():
    names = {("xarray.Dataset", "py:class"), ("xarray.DataArray", "py:class"),
             ("xarray.open_dataset", "py:function"), ("xarray.Dataset.to_netcdf", "py:method")}
    return "xarray", {(name, role): f"generated/{name}.html#" for name, role in names}


PROJECTS = {"python": _python, "numpy": _numpy, "scipy": _scipy, "jax": _jax, "xarray": _xarray}


def inventory_bytes(project, entries):
    """One inventory file (Sphinx format version 2) for ``{(name, "domain:role"): page}``."""
    header = (f"# Sphinx inventory version 2\n# Project: {project}\n# Version: stable\n"
              "# The remainder of this file is compressed using zlib.\n")
    lines = [f"{name} {role} 1 {page + '$' if page.endswith('#') else page} -"
             for (name, role), page in sorted(entries.items())]
    return header.encode() + zlib.compress(("\n".join(lines) + "\n").encode())


def main(out_dir=HERE):
    """Write ``<project>.inv`` for every project into ``out_dir``; returns the paths written."""
    paths = []
    for key, build in PROJECTS.items():
        project, entries = build()
        path = os.path.join(out_dir, f"{key}.inv")
        with open(path, "wb") as f:
            f.write(inventory_bytes(project, entries))
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in main():
        print(written)
