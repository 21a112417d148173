"""The documentation site builds offline with warnings as errors, executing the tutorials (issues 8 and 15).

The site is built once per module, ``python -m sphinx -W --keep-going -b html docs <tmp>`` in a subprocess whose
proxy settings point at a closed local port, so any attempt to fetch something (an intersphinx inventory, a
theme asset) fails the ``-W`` build.  The tests then read the built HTML: MathJax is served locally, the executed
tutorials embed their figures, the API pages list every public name of every module, and the intersphinx links
come from the committed inventories.  The docs tools come with the ``test`` extra (``pip install -e ".[test]"``);
the tests are skipped, saying so, only where they are missing.
"""
import ast
import importlib
import importlib.util
import os
import re
import runpy
import subprocess
import sys
import zlib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
TOOLS = ("sphinx", "myst_parser", "myst_nb", "ipykernel", "pydata_sphinx_theme", "sphinx-mathjax-offline")
MISSING = [m for m in TOOLS if importlib.util.find_spec(m) is None]
TUTORIALS = ("tutorials/solve", "tutorials/compare", "tutorials/prune")
# setup.cfg's package_dir: these folders are installed inside smtheory
FOLDERS = {"smtheory": "smtheory", "smtheory.solvers": "solvers", "smtheory.sims": "sims",
           "smtheory.validation": "validation"}
OFFLINE = "http://127.0.0.1:9"  # the discard port: nothing listens, every request through the proxy fails

pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"documentation tools not installed ({', '.join(MISSING)}); "
                                                       "install them with: python3 -m pip install -e '.[docs]'")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Build the site once, offline; returns the output folder."""
    tmp = tmp_path_factory.mktemp("docs")
    out = tmp / "html"
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONWARNINGS="ignore::DeprecationWarning",
               HTTP_PROXY=OFFLINE, HTTPS_PROXY=OFFLINE, ALL_PROXY=OFFLINE, http_proxy=OFFLINE,
               https_proxy=OFFLINE, all_proxy=OFFLINE, NO_PROXY="", no_proxy="")
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           "-d", str(tmp / "doctrees"), DOCS, str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f"sphinx failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    return out


def read(site, page):
    return (site / f"{page}.html").read_text(encoding="utf-8")


def ids(html):
    return set(re.findall(r'\bid="([^"]+)"', html))


def test_site_builds_and_tutorials_run(site):
    for page in ("index", "api", "theory", "sweeps", "sampling", "validation", "pruning") + TUTORIALS:
        assert (site / f"{page}.html").exists(), page
    assert "converged=True" in read(site, "tutorials/solve")
    assert "sampled" in read(site, "tutorials/compare")
    assert "theory ranking" in read(site, "tutorials/prune")


def test_theory_page_is_complete(site):
    """§1–§8 and §8.1–§8.4 are there with their labels, the equations are typeset as maths, and nothing in the
    docs sources points outside the project."""
    html = read(site, "theory")
    anchors = ids(html)
    for label in [f"theory-{i}" for i in range(1, 9)] + [f"theory-8-{i}" for i in range(1, 5)]:
        assert label in anchors, label
    assert len(re.findall(r'<div class="math[^"]*"', html)) >= 15  # display equations
    assert html.count('<span class="math') >= 100  # inline maths
    outside = "/".join(("..", "shared"))  # the folder beside the checkout that held the theory before
    for path, _, files in os.walk(DOCS):
        for f in files:
            if f.endswith((".md", ".py")) and "reference" not in path:
                assert outside not in open(os.path.join(path, f), encoding="utf-8").read(), f


def test_mathjax_is_served_locally(site):
    """No page loads a script from the network; the maths pages load the bundled MathJax."""
    for path in site.rglob("*.html"):
        html = path.read_text(encoding="utf-8")
        remote = [src for src in re.findall(r'<script[^>]*\bsrc="([^"]+)"', html)
                  if src.startswith(("http:", "https:", "//"))]
        assert not remote, f"{path.relative_to(site)} loads {remote}"
        assert not re.search(r"https?://[^\"' ]*(mathjax|cdn)", html, re.IGNORECASE), path
    for page in ("theory", "symbolic"):
        srcs = re.findall(r'<script[^>]*\bsrc="([^"]+)"', read(site, page))
        mathjax = [s for s in srcs if "mathjax" in s.lower()]
        assert mathjax, f"{page}: no MathJax script"
        local = site / os.path.normpath(mathjax[0].split("?")[0])
        assert local.is_file() and local.stat().st_size > 100_000, local


@pytest.mark.parametrize("page", TUTORIALS)
def test_executed_tutorials_embed_their_figures(site, page):
    """Every tutorial draws a figure; the executed page embeds it as a PNG written by the build."""
    html = read(site, page)
    srcs = [s for s in re.findall(r'<img[^>]*\bsrc="([^"]+)"', html) if "_images/" in s]
    assert srcs, f"{page}: no generated figure"
    for src in srcs:
        image = (site / page).parent / src
        data = image.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, image


def module_names():
    """Every public module and package of the installed package, from the source folders (not from the docs)."""
    names = set()
    for package, folder in FOLDERS.items():
        base = os.path.join(ROOT, folder)
        for path, dirs, files in os.walk(base):
            dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
            if "__init__.py" not in files:
                dirs[:] = []
                continue
            rel = os.path.relpath(path, base)
            dotted = ".".join([package] + ([] if rel == "." else rel.split(os.sep)))
            names.add(dotted)
            names.update(f"{dotted}.{f[:-3]}" for f in files if f.endswith(".py") and not f.startswith("_"))
    return sorted(names)


def expected_names(module):
    """``__all__``; without one, the public functions and classes defined in the module's source."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    tree = ast.parse(open(module.__file__, encoding="utf-8").read())
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))
            and not node.name.startswith("_")]


def listed_names(site, html, page):
    """Names shown as links in a page, each mapped to whether its link target exists in the built site."""
    out, cache = {}, {}
    for href, text in re.findall(r'<a class="reference internal" href="([^"]*#[^"]+)"[^>]*>(.*?)</a>', html, re.S):
        target, anchor = href.split("#", 1)
        target_page = os.path.normpath(os.path.join(os.path.dirname(page), target)) if target else page
        if target_page not in cache:
            cache[target_page] = ids((site / target_page).read_text(encoding="utf-8"))
        name = re.sub(r"<[^>]+>", "", text).strip()
        out[name] = out.get(name, False) or anchor in cache[target_page]
    return out


def test_api_pages_list_every_public_name(site):
    """Each module has a page; every name of its ``__all__`` (or, without one, every public function and class
    it defines) is documented on that page or linked from it to where it is documented."""
    api = read(site, "api")
    for root in FOLDERS:
        assert f'href="reference/{root}.html"' in api, root
    missing = []
    for name in module_names():
        page = f"reference/{name}"
        assert (site / f"{page}.html").exists(), f"no API page for {name}"
        html = read(site, page)
        assert f'id="module-{name}"' in html, name
        here, links = ids(html), listed_names(site, html, f"{page}.html")
        for public in expected_names(importlib.import_module(name)):
            if f"{name}.{public}" not in here and not links.get(public, False):
                missing.append(f"{name}.{public}")
    assert not missing, f"public names missing from the API pages: {missing}"


def test_intersphinx_is_local_and_links_out(site):
    """The inventories are the committed files (regenerated identically by their script), and the pages link to
    the Python, NumPy, SciPy, JAX and xarray documentation through them."""
    from sphinx.util.inventory import InventoryFile

    folder = os.path.join(DOCS, "_intersphinx")
    script = runpy.run_path(os.path.join(folder, "make_inventories.py"))
    for key, build in script["PROJECTS"].items():
        committed = open(os.path.join(folder, f"{key}.inv"), "rb").read()
        fresh = script["inventory_bytes"](*build())
        assert zlib.decompress(committed.split(b"zlib.\n", 1)[1]) == zlib.decompress(fresh.split(b"zlib.\n", 1)[1])
        InventoryFile.loads(committed, uri="https://example.invalid/")
    html = read(site, "api")
    for url in ("https://docs.python.org/3/library/os.html#os.PathLike",
                "https://numpy.org/doc/stable/reference/generated/numpy.ndarray.html#numpy.ndarray",
                "https://docs.scipy.org/doc/scipy/reference/generated/scipy.optimize.minimize.html",
                "https://docs.jax.dev/en/latest/_autosummary/jax.Array.html#jax.Array",
                "https://docs.xarray.dev/en/stable/generated/xarray.Dataset.html#xarray.Dataset"):
        assert f'href="{url}' in html, url
