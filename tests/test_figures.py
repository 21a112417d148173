"""Every figure the package writes is readable (issue 15, item 6).

Each figure function is run on small synthetic inputs; the figure it saves is caught (``pyplot.close`` is
replaced by a collector), drawn again and checked in display coordinates:

* every heat map (image / QuadMesh) has a colour bar, or shares the scale of one that has; when panels share
  a scale the figure says so; every colour bar is labelled;
* no legend, and no free text box, covers a data artist (line vertices and segments, markers, error bars,
  bars, images) of any axes;
* no two texts overlap (titles, axis and tick labels, colour-bar labels, legends, cell annotations), and no
  text lies over another axes;
* ``U_1`` (and the other symbols) is written in mathtext: no plain ``U1`` / ``U_1`` or lone ``N``, ``P``,
  ``T``, ``D``, no Unicode sub- or superscripts, Greek letters, angle brackets or roots outside ``$...$``;
* every curve panel labels both axes; one font family, nothing under 7 pt;
* sampled ``U_1`` shows its Monte-Carlo standard error (in the cells for ``D ≤ 6``, else an MCSE panel).
"""
import re
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg", force=True)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection, QuadMesh  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from smtheory.sims.hessian import plot_hessian_blocks  # noqa: E402
from smtheory.validation import finite_size_figures, markov_figures, store  # noqa: E402
from smtheory.validation.hypernetwork_figures import metric_figure  # noqa: E402

_BANNED = set("⟨⟩√∇∑∏‖ᵀℓ²³¹⁰⁴⁵⁶⁷⁸⁹₀₁₂₃₄₅₆₇₈₉ᵢⱼ") | {chr(c) for c in range(0x0370, 0x0400)}


# ----------------------------------------------------------------------------------------------- capture
@pytest.fixture
def caught(monkeypatch):
    """Figures the code under test closes are kept (and closed at the end of the test)."""
    figs, real_close = [], plt.close

    def keep(fig=None):
        if isinstance(fig, matplotlib.figure.Figure):
            figs.append(fig)
        else:
            real_close(fig)

    monkeypatch.setattr(plt, "close", keep)
    yield figs
    for f in figs:
        real_close(f)


# ----------------------------------------------------------------------------------------------- helpers
def _mappables(ax):
    return list(ax.images) + [c for c in ax.collections if isinstance(c, QuadMesh)]


def _colorbar_axes(fig):
    return {m.colorbar.ax for ax in fig.axes for m in _mappables(ax) if m.colorbar is not None}


def _heatmaps(fig):
    cbars = _colorbar_axes(fig)
    return [(ax, m) for ax in fig.axes if ax not in cbars for m in _mappables(ax)]


def _figures(fig):
    out = [fig]
    for sub in getattr(fig, "subfigs", []):
        out += _figures(sub)
    return out


def _ticklabels(ax):
    """The tick labels matplotlib draws: those of ticks inside the view limits."""
    out = []
    for labels, (lo, hi), k in ((ax.get_xticklabels(), sorted(ax.get_xlim()), 0),
                                (ax.get_yticklabels(), sorted(ax.get_ylim()), 1)):
        tol = 1e-9 * max(abs(lo), abs(hi), 1e-300)
        out += [t for t in labels if lo - tol <= t.get_position()[k] <= hi + tol]
    return out


def _texts(fig, r):
    """``(owner axes or None, bbox, string, Text or Legend)`` of every visible text of the figure."""
    out = []

    def add(owner, t):
        if t.get_visible() and t.get_text().strip():
            out.append((owner, t.get_window_extent(r), t.get_text(), t))

    for f in _figures(fig):
        for t in f.texts:
            add(None, t)
        for leg in f.legends:
            out.append((None, leg.get_window_extent(r), "legend", leg))
    for ax in fig.axes:
        for a in [ax] + list(ax.child_axes):
            axis = [a.xaxis.label, a.yaxis.label] + _ticklabels(a) if a.axison else []  # axis("off"): not drawn
            for t in [a.title] + axis + a.texts:
                add(ax, t)
        if ax.get_legend() is not None:
            out.append((ax, ax.get_legend().get_window_extent(r), "legend", ax.get_legend()))
    return out


def _densify(pts, k=20):
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if len(pts) < 2:
        return pts
    t = np.linspace(0.0, 1.0, k)[:, None, None]
    return (pts[:-1][None] * (1 - t) + pts[1:][None] * t).reshape(-1, 2)


def _data_points(ax, r):
    """Display coordinates of the data of ``ax`` (line vertices and segments, markers, error bars)."""
    pts = [np.zeros((0, 2))]
    for line in ax.lines:
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), float))
        pts.append(_densify(xy) if line.get_linestyle() not in ("None", "none", "") else xy)
    for c in ax.collections:
        if isinstance(c, LineCollection):
            pts += [_densify(c.get_transform().transform(np.asarray(s, float))) for s in c.get_segments()]
        elif isinstance(c, PathCollection) and len(c.get_offsets()):
            pts.append(c.get_offset_transform().transform(np.asarray(c.get_offsets(), float)))
    xy = np.concatenate(pts)
    box = ax.get_window_extent(r)
    inside = (xy[:, 0] >= box.x0) & (xy[:, 0] <= box.x1) & (xy[:, 1] >= box.y0) & (xy[:, 1] <= box.y1)
    return xy[inside]


def _data_boxes(ax, r):
    boxes = [m.get_window_extent(r) for m in ax.images]
    return boxes + [p.get_window_extent(r) for p in ax.patches if isinstance(p, Rectangle) and p.get_height()]


def _overlap(a, b, tol=1.0):
    return min(a.x1, b.x1) - max(a.x0, b.x0) > tol and min(a.y1, b.y1) - max(a.y0, b.y0) > tol


def _plain(s):
    """The parts of ``s`` outside mathtext ``$...$``."""
    return "".join(re.split(r"(?<!\\)\$", s)[0::2])


# ----------------------------------------------------------------------------------------------- the checks
def check_colour_bars(fig):
    heat = _heatmaps(fig)
    owners = [m for _, m in heat if m.colorbar is not None]
    words = " ".join(t.get_text() for f in _figures(fig) for t in f.texts)
    words += " ".join(a.get_title() + a.get_ylabel() + a.get_xlabel() for a in fig.axes)
    for ax, m in heat:
        same = [o for o in owners if o is m or (o.get_cmap().name == m.get_cmap().name
                                                 and np.allclose(o.get_clim(), m.get_clim()))]
        assert same, f"heat map {ax.get_title()!r} has no colour bar and shares no colour-barred scale"
    for o in owners:
        users = {ax for ax, m in heat if m.get_cmap().name == o.get_cmap().name
                 and np.allclose(m.get_clim(), o.get_clim())}
        if len(users) > 1:
            assert re.search(r"shared|share|one colour scale", words), "shared colour scale not stated"
        cb = o.colorbar
        assert (cb.ax.get_ylabel() or cb.ax.get_xlabel()).strip(), "colour bar without a label"
    return len(heat)


def check_no_cover(fig):
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    cbars = _colorbar_axes(fig)
    heat_axes = {ax for ax, _ in _heatmaps(fig)}
    data = [(ax, _data_points(ax, r), _data_boxes(ax, r)) for ax in fig.axes if ax not in cbars]
    texts = _texts(fig, r)
    covers = [(o, b, s) for o, b, s, t in texts if s == "legend" or (o is not None and t in o.texts
                                                                     and o not in heat_axes and o.axison)]
    for owner, box, what in covers:
        for ax, pts, boxes in data:
            inside = ((pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1))
            assert not inside.any(), f"{what} covers {int(inside.sum())} data points of {ax.get_title()!r}"
            assert not any(_overlap(box, b) for b in boxes), f"{what} covers an image / bar of {ax.get_title()!r}"
    for i, (o1, b1, s1, _) in enumerate(texts):
        for o2, b2, s2, _ in texts[i + 1:]:
            assert not _overlap(b1, b2), f"texts overlap: {s1!r} and {s2!r}"
    areas = [ax for ax in fig.axes if ax.axison]
    for owner, box, s, _ in texts:
        for ax in areas:
            if ax is not owner and ax not in getattr(owner, "child_axes", ()):
                assert not _overlap(box, ax.get_window_extent(r), tol=2.0), f"text {s!r} lies over another axes"


def check_text(fig):
    fig.canvas.draw()
    texts = _texts(fig, fig.canvas.get_renderer())
    strings = [s for _, _, s, t in texts if s != "legend"]
    strings += [t.get_text() for _, _, s, leg in texts if s == "legend" for t in leg.get_texts()]
    for s in strings:
        plain = _plain(s)
        assert not re.search(r"U_?1", plain), f"U_1 not in mathtext: {s!r}"
        assert not _BANNED & set(plain), f"Unicode symbol outside mathtext: {s!r}"
        assert not re.search(r"(?<![\w\[])[NPTD](?![\w\]])", plain), f"symbol N/P/T/D not in mathtext: {s!r}"
    objs = [t for _, _, s, t in texts if s != "legend"]
    objs += [t for _, _, s, leg in texts if s == "legend" for t in leg.get_texts()]
    assert len({tuple(t.get_fontfamily()) for t in objs}) == 1, "more than one font family"
    small = [t.get_text() for t in objs if t.get_fontsize() < 7]
    assert not small, f"text under 7 pt: {small[:3]}"
    heat = {ax for ax, _ in _heatmaps(fig)} | _colorbar_axes(fig)
    for ax in fig.axes:
        if ax.axison and ax not in heat and (ax.lines or ax.collections or ax.patches):
            assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), f"unlabelled axes {ax.get_title()!r}"


def check_all(fig):
    check_colour_bars(fig)
    check_no_cover(fig)
    check_text(fig)


# ----------------------------------------------------------------------------------------------- inputs
def markov_results(D=4, widths=(10, 100, 1000), sampled=(10, 100), n=12, n_test=40, seed=0):
    rng = np.random.default_rng(seed)
    names = ["g", "a1", "d", "a2"][:D] if D <= 4 else [f"p{k}" for k in range(D)]
    y = np.where(np.arange(n_test) % 2, 1.0, -1.0)

    def sym(scale):
        A = rng.standard_normal((D, D))
        return np.eye(D) * scale + 0.1 * (A + A.T)

    theory = [dict(width=w, U1=sym(1 + 10 / w).tolist(), test_accuracy=0.75 + 2 / w, generalization_error=1 - 3 / w,
                   converged=True, predictor_mean=(0.8 * y + 0.2 * rng.standard_normal(n_test)).tolist())
              for w in widths]
    samples = {}
    for w in sampled:
        U, E = sym(1 + 10 / w), np.full((D, D), 0.02)
        U[0, 0] = 0.41
        samples[str(w)] = dict(U1_sampled=U.tolist(), U1_mcse=E.tolist(), converged=w != sampled[-1],
                               predictor_mean=(0.8 * y + 0.2 * rng.standard_normal(n_test)).tolist(),
                               test_accuracy=0.75 + 2 / w, test_accuracy_mcse=0.01,
                               generalization_error=1 - 3 / w, generalization_error_mcse=0.02)
    C = rng.random((D, D, n, n))
    kernels = dict(path_pair=C.tolist(), labels=[1.0] * (n // 2) + [-1.0] * (n // 2), gp=C.sum((0, 1)).tolist(),
                   renormalized=(2 * C.sum((0, 1))).tolist(), renormalized_width=widths[0],
                   alignment=dict(gp=rng.random(10).tolist(), renormalized=rng.random(10).tolist(), width=widths[0]))
    gp = {k: dict(test_accuracy=a, generalization_error=e) for k, a, e in (("all", 0.74, 1.0), ("g", 0.8, 0.6),
                                                                          ("g+d", 0.95, 0.3))}
    return dict(name=f"markov{D}", path_names=names, theory=theory, gp=gp, samples=samples, kernels=kernels,
                y_test=y.tolist(), sampler="overlap")


def fs_results(alphas=(0.5, 1.0, 2.0), widths=(10, 20, 40, 80), fixed=(10, 100, 1000)):
    rng = np.random.default_rng(1)
    qs = ("rel_max", "rel_frob", "abs_dacc", "abs_dgen")

    def group(series, alpha, N, P):
        g = dict(series=series, alpha=alpha, N=N, P=P, n=3, excluded=dict(theory_unconverged=0), rel_frob_noise=2e-3)
        for k, q in enumerate(qs):
            g[q] = (0.5 + k) * max(alpha, 0.1) / N * np.exp(0.1 * rng.standard_normal())
            g[q + "_se"] = 0.15 * g[q]
        return g

    def fit(ws, noisy=()):
        return dict(gamma=1.0, ci=[0.9, 1.1], widths=list(ws), noise_limited=list(noisy))

    groups = [group("alpha", a, N, int(a * N)) for a in alphas for N in widths]
    groups += [group("fixed", 10 / N, N, 10) for N in fixed]
    fits = {"alpha": {f"{a:g}": {q: fit(widths, (widths[-1],) if q == "abs_dacc" else ()) for q in qs}
                      for a in alphas},
            "fixed": dict({q: fit(fixed) for q in qs}, abs_dacc=dict(gamma=None, noise_limited=[100, 1000]))}
    return dict(groups=groups, fits=fits, config=dict(paths=4, data_seeds=[0, 1, 2], fixed_train=10))


def store_dataset(D=4, widths=(10, 30, 100)):
    rng = np.random.default_rng(2)
    heads, names = ["2x2"], ["g", "a1", "d", "a2"][:D]
    U = np.stack([np.eye(D) * (1 + 10 / w) + 0.05 * rng.standard_normal((D, D)) for w in widths])[None]
    S = U[:, None] + 0.01
    S[:, :, 1:] = np.nan  # sampled at the first width only
    acc = np.array([[0.75 + 2 / w for w in widths]])
    return xr.Dataset(
        dict(U1=(("heads", "N", "path", "path_"), U), path_name=(("heads", "path"), np.array([names])),
             sampled_U1=(("heads", "sampler", "N", "path", "path_"), S),
             sampled_U1_mcse=(("heads", "sampler", "N", "path", "path_"), np.full(S.shape, 0.05)),
             accuracy=(("heads", "N"), acc), gp_accuracy=(("heads",), [0.74]),
             sampled_accuracy=(("heads", "sampler", "N"), acc[:, None] + 0.002),
             sampled_accuracy_mcse=(("heads", "sampler", "N"), np.full((1, 1, len(widths)), 0.01))),
        coords=dict(heads=heads, N=list(widths), sampler=["gibbs"]), attrs=dict(name="tiny"))


# ----------------------------------------------------------------------------------------------- tests
MARKOV = ["accuracy_vs_width", "generalization_vs_width", "u1_heatmaps", "kernel_panels", "alignment_bars",
          "predictor_scatter"]


@pytest.mark.parametrize("D", [2, 4])
@pytest.mark.parametrize("name", MARKOV)
def test_markov_figures_are_readable(tmp_path, caught, name, D):
    stem = getattr(markov_figures, name)(markov_results(D=D), str(tmp_path))
    assert (tmp_path / f"{stem}.png").stat().st_size > 0 and (tmp_path / f"{stem}.pdf").exists()
    (fig,) = caught
    check_all(fig)
    if name in ("u1_heatmaps", "kernel_panels"):
        assert check_colour_bars(fig) >= (5 if name == "u1_heatmaps" else D * D + 2)


def test_u1_cells_carry_the_mcse(tmp_path, caught):
    res = markov_results(D=4)
    res["samples"]["100"]["U1_mcse"][1][2] = None  # an MCSE the sampler could not estimate
    markov_figures.u1_heatmaps(res, str(tmp_path))
    (fig,) = caught
    sampled = [ax for ax in fig.axes if "sampled" in ax.get_title()]
    assert len(sampled) == 2
    cells = [t.get_text().replace("\n", "") for t in sampled[0].texts]
    assert "0.41±0.02" in cells and len(cells) == 16
    assert all("±" in c for ax in sampled for c in (t.get_text() for t in ax.texts))
    assert any(t.get_text().endswith("±n/a") for t in sampled[1].texts)
    theory = [ax for ax in fig.axes if ax.get_title().startswith("theory")]
    assert len(theory) == 3 and not any("±" in t.get_text() for ax in theory for t in ax.texts)


def test_u1_many_paths_get_an_mcse_panel(tmp_path, caught):
    markov_figures.u1_heatmaps(markov_results(D=8, n=6), str(tmp_path))
    (fig,) = caught
    check_all(fig)
    mcse = [ax for ax in fig.axes if "MCSE" in ax.get_title() and ax.images]
    assert len(mcse) == 2
    assert any(im.colorbar is not None for ax in mcse for im in ax.images)
    assert np.allclose(mcse[0].images[0].get_array(), 0.02)


def test_finite_size_figure_is_readable(tmp_path, caught):
    paths = finite_size_figures.finite_size_figure(fs_results(), str(tmp_path))
    assert all((tmp_path / p.split("/")[-1]).exists() for p in paths)
    (fig,) = caught
    check_all(fig)
    assert sum(ax.get_yscale() == "log" for ax in fig.axes) == 6


def test_finite_size_figure_without_fixed_series(tmp_path, caught):
    res = fs_results(fixed=())
    res["fits"]["fixed"] = None
    finite_size_figures.finite_size_figure(res, str(tmp_path))
    check_all(caught[0])


def test_metric_figure_is_readable(tmp_path, caught):
    rng = np.random.default_rng(3)
    U = np.diag([9.0, 1.0, 4.0, 0.8]) - 0.3
    pairs = (rng.random(300), rng.random(300) * 3)
    metric_figure(U, np.eye(4), ["g", "a1", "d", "a2"], str(tmp_path / "m"), pairs, title="Markov, $N = 10$")
    (fig,) = caught
    assert check_colour_bars(fig) == 2
    check_no_cover(fig)
    check_text(fig)


def test_hessian_figure_is_readable(tmp_path, caught):
    rng = np.random.default_rng(4)
    labels = ["V0", "V1[0]", "V1[1]", "V2[0]", "V2[1]", "a"]
    norms = {k: np.abs(rng.standard_normal((6, 6))) + 0.1 for k in ("gauss_newton", "functional", "full")}
    norms["functional"][np.arange(6), np.arange(6)] = 0.0
    parts = SimpleNamespace(labels=labels, block_norms=lambda part: norms[part])
    plot_hessian_blocks(parts, str(tmp_path / "h"), title="random model, $N = 3$")
    (fig,) = caught
    assert check_colour_bars(fig) == 3
    check_no_cover(fig)
    check_text(fig)


def test_store_plots_are_readable():
    ds = store_dataset()
    for fig in (store.plot_metric(ds, "accuracy"), store.plot_order_parameter(ds, heads="2x2")):
        try:
            check_no_cover(fig)
            check_text(fig)
        finally:
            plt.close(fig)


def test_store_order_parameter_shows_the_mcse():
    fig = store.plot_order_parameter(store_dataset(), heads="2x2")
    try:
        ax = fig.axes[0]
        bars = [c for c in ax.collections if isinstance(c, LineCollection)]
        assert len(bars) == 10  # one error bar per U_1 entry, at the sampled width
        lengths = [abs(s[1, 1] - s[0, 1]) for c in bars for s in c.get_segments()]
        assert np.allclose(lengths, 2 * 0.05)
        assert any("MCSE" in t.get_text() for t in ax.get_legend().get_texts())
    finally:
        plt.close(fig)


def test_checks_catch_what_they_should():
    """The checks fail on a figure with the faults they look for (so the tests above can fail)."""
    fig, (a, b) = plt.subplots(1, 2)
    try:
        a.imshow(np.eye(3), cmap="viridis")
        with pytest.raises(AssertionError, match="colour bar"):
            check_colour_bars(fig)
        b.plot([0, 1], [0, 1], label="a line")
        b.legend(loc="center")
        b.set_xlabel("x")
        b.set_ylabel("U1 entries")
        with pytest.raises(AssertionError, match="covers"):
            check_no_cover(fig)
        with pytest.raises(AssertionError, match="mathtext"):
            check_text(fig)
        b.set_ylabel("φ_k")
        with pytest.raises(AssertionError, match="Unicode"):
            check_text(fig)
    finally:
        plt.close(fig)


def test_coinciding_gp_baselines_share_one_line(tmp_path, caught):
    res = markov_results(D=2)
    res["gp"]["g+d"] = dict(res["gp"]["all"])  # the 2-path network: its full GP is its GP(g+d)
    markov_figures.generalization_vs_width(res, str(tmp_path))
    (fig,) = caught
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "GP (all = g+d)" in labels and "GP (g)" in labels and not any(lab == "GP (all)" for lab in labels)
    assert sum(1 for line in fig.axes[0].lines if line.get_label().startswith("GP")) == 2
