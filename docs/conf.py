"""Sphinx configuration of the smtheory documentation site.

Build (warnings are errors; the tutorials are executed):

    python3 -m sphinx -W --keep-going -b html docs docs/_build/html
"""
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
os.environ.setdefault("MPLBACKEND", "Agg")

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
    "sphinx.ext.napoleon",  # numpydoc-style docstrings
    "sphinx.ext.mathjax",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "**/*.ipynb"]

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# tutorials: executed on every build; a failing cell fails the build
nb_execution_mode = "force"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

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

html_theme = "alabaster"
html_title = f"smtheory {release}"
html_static_path = []


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
