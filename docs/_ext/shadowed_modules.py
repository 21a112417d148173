"""Module pages that autosummary cannot generate: a package attribute that shadows its own submodule.

``smtheory.solvers.symbolic`` re-exports the function ``lambdify`` of its submodule ``lambdify``, so the dotted
name ``smtheory.solvers.symbolic.lambdify`` imports as the function, and autosummary writes a function page under
the module's name.  After autosummary has written its pages (``builder-inited``), the pages of such modules are
rendered again from the module template, with the same context.
"""
import importlib
import os

import jinja2
from sphinx.util import rst


def shadowed(names):
    """Modules ``parent.child`` for which ``getattr(parent, "child")`` is not the module itself."""
    out = []
    for name in names:
        parent, _, child = name.rpartition(".")
        if parent and getattr(importlib.import_module(parent), child, None) is not importlib.import_module(name):
            out.append(name)
    return out


def render(srcdir, fullname, context):
    """The module page of ``fullname`` from ``_templates/autosummary/module.rst``."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(srcdir, "_templates", "autosummary")))
    env.filters["escape"] = rst.escape
    env.filters["underline"] = lambda title, line="=": title + "\n" + line * len(title)
    env.globals["_"] = lambda text: text
    return env.get_template("module.rst").render(fullname=fullname, **context)


def rewrite_pages(app, folder="reference"):
    """``builder-inited`` handler (after autosummary's): re-render the pages of shadowed modules."""
    context = app.config.autosummary_context
    for name in shadowed(list(context["api"])):
        path = os.path.join(app.srcdir, folder, f"{name}.rst")
        text = render(app.srcdir, name, context)
        if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
