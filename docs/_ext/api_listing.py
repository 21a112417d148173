"""The public names of every module of ``smtheory``, for the autosummary templates of the API reference.

Every module gets one generated page (``docs/_templates/autosummary/module.rst``).  A module's public names are
its ``__all__`` or, without one, the public functions and classes it defines.  Each name is *documented* once,
on the page of the module that defines it (its canonical module); every other page that lists it (a package
re-exporting it, say) links there.  The template reads the result through ``autosummary_context``.
"""
import ast
import importlib
import inspect
import os

# setup.cfg's package_dir: the design folders solvers/, sims/, validation/ are installed inside smtheory
PACKAGE_DIRS = {"smtheory": "smtheory", "smtheory.solvers": "solvers", "smtheory.sims": "sims",
                "smtheory.validation": "validation"}
KINDS = ("modules", "classes", "functions", "exceptions", "data")


def module_names(root):
    """Dotted names of every public module and package of the installed package, from the source folders."""
    names = set()
    for package, folder in PACKAGE_DIRS.items():
        base = os.path.join(root, folder)
        for path, dirs, files in os.walk(base):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
            if "__init__.py" not in files:
                dirs[:] = []
                continue
            rel = os.path.relpath(path, base)
            dotted = ".".join([package] + ([] if rel == "." else rel.split(os.sep)))
            names.add(dotted)
            names.update(f"{dotted}.{f[:-3]}" for f in files if f.endswith(".py") and not f.startswith("_"))
    return sorted(names)


def kind_of(obj):
    """``"modules"``, ``"classes"``, ``"exceptions"``, ``"functions"`` or ``"data"``."""
    if inspect.ismodule(obj):
        return "modules"
    if inspect.isclass(obj):
        return "exceptions" if issubclass(obj, BaseException) else "classes"
    return "functions" if callable(obj) else "data"


def assigned_names(module):
    """Names bound by a top-level assignment in a module's source (where its constants are defined)."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError):
        return set()
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def defined_names(module):
    """Public functions and classes defined (``def``/``class``, decorated or not) in a module's source."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError):
        return []
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))
            and not node.name.startswith("_") and hasattr(module, node.name)]


def public_names(module):
    """``__all__``, or the public functions and classes a module defines."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return defined_names(module)


def canonical_name(modname, name, obj, modules, assigned):
    """Full dotted name of the place where ``obj`` (public as ``modname.name``) is defined and documented."""
    if inspect.ismodule(obj):
        return obj.__name__
    home = getattr(obj, "__module__", None) if kind_of(obj) != "data" else None
    qualname = getattr(obj, "__qualname__", name)
    if home in modules and "." not in qualname and getattr(modules[home], qualname, None) is obj:
        return f"{home}.{qualname}"
    if name in assigned[modname]:
        return f"{modname}.{name}"
    for other, mod in modules.items():
        if name in assigned[other] and getattr(mod, name, None) is obj:
            return f"{other}.{name}"
    return f"{modname}.{name}"


def source_line(obj):
    """Line of an object's definition (autodoc's "bysource" order), or a large number if unknown."""
    try:
        return inspect.getsourcelines(inspect.unwrap(obj))[1]
    except (OSError, TypeError):
        return 10 ** 9


def collect(root):
    """``{module: {"table": {kind: [canonical names]}, "doc": {kind: [names]}, "submodules": [...]}}``."""
    names = module_names(root)
    modules = {n: importlib.import_module(n) for n in names}
    assigned = {n: assigned_names(m) for n, m in modules.items()}
    info = {n: {"table": {k: [] for k in KINDS}, "doc": {k: [] for k in KINDS},
                "submodules": [s for s in names if s.rpartition(".")[0] == n]} for n in names}
    documented = set()
    for modname, module in modules.items():
        for name in public_names(module):
            obj = getattr(module, name)
            canon, kind = canonical_name(modname, name, obj, modules, assigned), kind_of(obj)
            info[modname]["table"][kind].append(canon)
            home = canon.rpartition(".")[0]
            if kind != "modules" and canon not in documented and home in info:
                documented.add(canon)
                info[home]["doc"][kind].append((source_line(obj), canon))
    for entry in info.values():
        entry["doc"] = {k: [c for _, c in sorted(v, key=lambda t: t[0])] for k, v in entry["doc"].items()}
    return info
