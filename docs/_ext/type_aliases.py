"""Resolve the short type names of the docstrings (``np.ndarray``, ``ndarray``, ``jax.Array`` …) via intersphinx."""
from sphinx.ext import intersphinx

# short or informal spellings in the numpydoc "type" fields -> the full name in an intersphinx inventory
ALIASES = {
    "ndarray": "numpy.ndarray", "np.ndarray": "numpy.ndarray", "numpy array": "numpy.ndarray",
    "np.random.Generator": "numpy.random.Generator", "Generator": "numpy.random.Generator",
    "array-like": "numpy.typing.ArrayLike", "array_like": "numpy.typing.ArrayLike",
    "np.float64": "numpy.float64", "np.float32": "numpy.float32",
    "jax.numpy.ndarray": "jax.Array", "jnp.ndarray": "jax.Array", "jax array": "jax.Array",
    "JAX array": "jax.Array", "JAX arrays": "jax.Array", "Array": "jax.Array",
    "xr.Dataset": "xarray.Dataset", "Dataset": "xarray.Dataset", "xr.DataArray": "xarray.DataArray",
    "callable": "collections.abc.Callable", "sequence": "collections.abc.Sequence",
    "mapping": "collections.abc.Mapping", "iterable": "collections.abc.Iterable",
    "module": "types.ModuleType", "path-like": "os.PathLike", "number": "numbers.Number",
    "NamedTuple": "typing.NamedTuple",
}


def resolve_alias(app, env, node, contnode):
    """``missing-reference`` handler: retry an unresolved Python reference under its full name."""
    if node.get("refdomain") != "py":
        return None
    target = ALIASES.get(node.get("reftarget"))
    if target is None:
        return None
    alias = node.deepcopy()
    alias["reftarget"] = target
    return intersphinx.missing_reference(app, env, alias, contnode)
