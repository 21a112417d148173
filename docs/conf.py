"""Sphinx configuration of the smtheory documentation site.

Build (warnings are errors; the tutorials are executed; no network is needed):

    python3 -m sphinx -W --keep-going -b html docs docs/_build/html

Offline by design: MathJax comes from the ``sphinx-mathjax-offline`` package (copied into ``_static/mathjax``),
the intersphinx inventories of Python, NumPy, SciPy, JAX and xarray are committed under
``docs/_intersphinx/`` (regenerate them with ``python3 docs/_intersphinx/make_inventories.py``), and the theme
ships its own assets.
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(HERE, "_ext"))
# Matplotlib in the Sphinx process itself (autodoc imports the plotting modules) never opens a window.  The
# executed tutorials do not inherit this choice: each starts with a hidden ``%matplotlib inline`` cell, so their
# figures are embedded as PNGs even when MPLBACKEND=Agg is set in the environment (as the docs test does).
os.environ.setdefault("MPLBACKEND", "Agg")

import api_listing  # noqa: E402 - docs/_ext, after the path set-up above
import autodoc_fixes  # noqa: E402
import shadowed_modules  # noqa: E402
import type_aliases  # noqa: E402

project = "smtheory"
author = "smtheory contributors"
copyright = "2026, smtheory contributors"
try:
    from smtheory import __version__ as release
except Exception:  # noqa: BLE001 - the build must report the import error itself, later
    release = "unknown"
version = release

extensions = [
    "myst_nb",  # MyST Markdown (the existing docs) and executed MyST notebooks (the tutorials)
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # numpydoc-style docstrings
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 bundled in the package: mathjax_path = _static/mathjax/tex-chtml.js
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "_intersphinx", "**/.ipynb_checkpoints", "**/*.ipynb"]
templates_path = ["_templates"]

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
math_eqref_format = "({number})"

# tutorials: executed on every build; a failing cell fails the build
nb_execution_mode = "force"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

# API reference: one generated page per module (docs/reference/, not committed), listing every public name
autosummary_generate = True
autosummary_generate_overwrite = True
autosummary_imported_members = False
autosummary_context = {"api": api_listing.collect(ROOT)}

# intersphinx from committed inventories: (stable documentation URL, local objects.inv); never fetched
intersphinx_mapping = {
    name: (url, os.path.join(HERE, "_intersphinx", f"{name}.inv"))
    for name, url in {
        "python": "https://docs.python.org/3/",
        "numpy": "https://numpy.org/doc/stable/",
        "scipy": "https://docs.scipy.org/doc/scipy/",
        "jax": "https://docs.jax.dev/en/latest/",
        "xarray": "https://docs.xarray.dev/en/stable/",
    }.items()
}
intersphinx_timeout = 1

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True  # dataclass "Attributes" as fields (autodoc also lists the dataclass members)
# Several configuration dataclasses share field names (chains, steps, …), so a bare field name in a docstring
# resolves to more than one target ("more than one target found for cross-reference"). That ambiguity, and only
# it, is silenced; every other warning still fails the -W build.
suppress_warnings = ["ref.python"]
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}

html_theme = "pydata_sphinx_theme"
html_title = f"smtheory {release}"
html_static_path = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 4,
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"**": ["sidebar-nav-bs"]}


# Some docstrings use a compact numpydoc form, ``name : type — description`` on one line; napoleon reads the
# whole line as the type.  Split it into the standard two-line form before napoleon sees it.  A prose paragraph
# that follows a field section after a blank line (napoleon would read its lines as fields) gets a "Notes" header.
_COMPACT = re.compile(r"^(?P<indent>\s*)(?P<name>[A-Za-z_][\w, ]*) : (?P<type>[^—]+?) — (?P<desc>.+)$")
_FIELD_SECTIONS = {"Parameters", "Attributes", "Returns", "Yields", "Raises", "Other Parameters"}


def _split_compact_fields(app, what, name, obj, options, lines):
    out, section = [], None
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if nxt.strip() and set(nxt.strip()) == {"-"}:
            section = line.strip()
        m = _COMPACT.match(line)
        if m:
            out.append(f"{m['indent']}{m['name']} : {m['type']}")
            out.append(f"{m['indent']}    {m['desc']}")
            continue
        if (section in _FIELD_SECTIONS and line and not line[0].isspace() and " : " not in line
                and len(line.split()) >= 4 and out and not out[-1].strip()):
            out += ["Notes", "-----"]
            section = "Notes"
        out.append(line)
    lines[:] = out


def setup(app):
    app.connect("autodoc-process-docstring", _split_compact_fields, priority=400)
    autodoc_fixes.install(app)
    app.connect("builder-inited", shadowed_modules.rewrite_pages, priority=600)  # after autosummary (500)
    # before intersphinx (priority 500): short type names of the docstrings (np.ndarray, …) to full ones
    app.connect("missing-reference", type_aliases.resolve_alias, priority=400)
