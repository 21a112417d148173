"""Three fixes of how autodoc and autosummary present docstrings (connected in ``docs/conf.py``).

1. A module-level constant without a ``#:`` comment has no docstring of its own; autodoc then shows the
   docstring of its *type* (``dict``'s, ``tuple``'s), which is wrong and is not valid reST.  Drop it.
2. Sphinx 9's autosummary cuts a summary at the first ". " even inside an inline literal
   (``$$ ... $$``), and the cut-off literal is a reST warning.  Such a summary is extended to the next
   sentence end outside a literal (or to the whole first paragraph).
3. The docstrings write absolute values and norms as ``|x|``; reST reads ``|x|`` as a substitution reference,
   and this project defines none, so every such reference would be an "undefined substitution" error.  Outside
   literals (inline, blocks, roles) the bars are escaped, and the text shows as written.
"""
import inspect
import re

from sphinx.ext import autosummary


def drop_type_docstring(app, what, name, obj, options, lines):
    """``autodoc-process-docstring`` handler for fix 1."""
    if what not in ("data", "attribute") or inspect.isclass(obj) or inspect.isroutine(obj):
        return
    inherited = inspect.getdoc(type(obj))
    if inherited and "\n".join(lines).strip() == inspect.cleandoc(inherited).strip():
        lines[:] = []


def _first_paragraph(doc):
    lines = []
    for line in doc:
        if not line.strip():
            if lines:
                break
            continue
        lines.append(line.strip())
    return " ".join(lines)


def balanced_summary(extract):
    """Wrap autosummary's ``extract_summary`` (fix 2)."""
    def summary(doc, settings):
        text = extract(doc, settings)
        if text.count("``") % 2 == 0:
            return text
        paragraph = _first_paragraph(doc)
        end = len(text.rstrip("."))
        while end < len(paragraph):
            end = paragraph.find(". ", end + 1)
            if end < 0:
                return paragraph
            if paragraph[:end].count("``") % 2 == 0:
                return paragraph[:end + 1]
        return paragraph
    summary.wrapped = extract
    return summary


_LITERAL = re.compile(r"(``.*?``|`[^`]*`)")
_SUBSTITUTION = re.compile(r"\|(?=\S)([^|`]*?\S)\|")


def _escape_bars(text):
    parts = _LITERAL.split(text)
    parts[::2] = [_SUBSTITUTION.sub(r"\\|\1\\|", p) for p in parts[::2]]
    return "".join(parts)


def escape_absolute_values(app, what, name, obj, options, lines):
    """``autodoc-process-docstring`` handler for fix 3 (after napoleon); literal blocks are left alone."""
    opened_at = None  # indentation of the line ending in "::" whose literal block follows
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if opened_at is not None and indent > opened_at:
            continue  # inside the literal block (or directive body)
        opened_at = None
        if line.lstrip().startswith(">>>"):
            continue  # doctest
        lines[i] = _escape_bars(line)
        if line.rstrip().endswith("::"):
            opened_at = indent


def install(app):
    """Connect fixes 1 and 3 and wrap autosummary's summary extraction (once) for fix 2."""
    app.connect("autodoc-process-docstring", drop_type_docstring)
    app.connect("autodoc-process-docstring", escape_absolute_values, priority=600)
    if not hasattr(autosummary.extract_summary, "wrapped"):
        autosummary.extract_summary = balanced_summary(autosummary.extract_summary)
