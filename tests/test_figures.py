"""Figure axes name the pathway distance's unit from the distance level: characters at "char",
expert ids at "token"."""

import itertools

import polars as pl
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from grokpath import figures, stages, tables


@pytest.fixture
def saved(monkeypatch):
    """The figures the plotting functions save, instead of files."""
    figs = []
    monkeypatch.setattr(figures, "save", lambda fig, png, pdf, **_: figs.append(fig))
    return figs


def _labels(fig) -> set[str]:
    return {label for ax in fig.axes for label in (ax.get_xlabel(), ax.get_ylabel()) if label}


def _distance(level: str, **extra) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "model": "m",
            "step": ["s1", "s2"],
            "step_number": [10, 20],
            "domain": "math",
            "group": "all",
            "layer": [0, 0],
            "mean_distance": [5.0, 4.0],
            "level": level,
            **extra,
        }
    )


@pytest.mark.parametrize(("level", "unit"), [("char", "characters"), ("token", "expert ids")])
def test_distance_axes_name_the_unit_of_the_level(saved, tmp_path, level, unit):
    figures.layerwise_distance(_distance(level), "a.png", "a.pdf")
    figures.tau_ablation(_distance(level, tau=[0.7, 0.7]).with_columns(layer=None), "b.png", "b.pdf")
    monitors = [
        {
            "model": "m",
            "step": step,
            "step_number": number,
            "domain": "math",
            "group": "pretrain@s1",
            "n_samples": 3,
            "mean_distance": distance,
            "mean_consistency": 0.5,
            "mean_training_loss": 1.0,
            "validation_loss": 1.2,
        }
        for step, number, distance in (("s1", 10, 5.0), ("s2", 20, 4.0))
    ]
    tables.write(monitors, tmp_path / "monitors.parquet", tables.MONITORS_SCHEMA)
    stages.plot_monitor_by_group(
        "m", {"s1": 10, "s2": 20}, str(tmp_path / "monitors.parquet"), "pathway_distance", "c.png", "c.pdf", level
    )
    joined = pl.DataFrame({"task": "t", "step_number": [10, 20], "accuracy": [0.2, 0.6], "mean_distance": [5.0, 4.0]})
    figures.accuracy_vs_monitors(joined, {"pathway_distance": "mean_distance"}, "d.png", "d.pdf", level)

    layerwise, tau, groups, accuracy = (_labels(f) for f in saved)
    assert f"mean edit distance ({unit})" in layerwise
    assert f"mean pathway edit distance ({unit})" in tau
    assert f"mean pathway edit distance ({unit})" in groups
    assert f"pathway distance ({unit})" in accuracy
    other = {"characters", "expert ids"} - {unit}
    assert not any(o in label for o in other for f in saved for label in _labels(f))


def test_layerwise_figure_without_per_layer_rows_says_so(saved):
    figures.layerwise_distance(_distance("char").with_columns(layer=None), "a.png", "a.pdf")
    (fig,) = saved
    assert "distance.layerwise: false" in fig.axes[0].texts[0].get_text()


def test_memorization_groups_are_drawn_in_training_order(saved):
    """Figs 4 and 6 list and colour the groups by their t*, earliest first, not by name: the
    paper's checkpoint ids are not zero-padded, and by name step125000 came before step5000. A
    group without a value to draw (one sample: no pair distance) is not in the legend."""
    steps = {"step5000": 5000, "step125000": 125000, "step1100000": 1100000, "step9000": 9000}
    monitors = pl.DataFrame(
        [
            {
                "domain": "math",
                "group": f"pretrain@{group}",
                "step_number": number,
                "n_samples": 1 if group == "step9000" else 2,
                "mean_distance": float("nan") if group == "step9000" else 1.0,  # one sample: no pairs
            }
            for group in sorted(steps)  # by name, as the monitors table holds them
            for number in steps.values()
        ]
    )
    figures.monitor_by_group(monitors, steps, "mean_distance", "d", "t", "a.png", "a.pdf")
    (fig,) = saved
    ax = fig.axes[0]
    labels = [text.get_text().split(" ")[0] for text in ax.get_legend().get_texts()]
    assert labels == ["pretrain@step5000", "pretrain@step125000", "pretrain@step1100000"]
    first, last = ax.get_lines()[0].get_color(), ax.get_lines()[-1].get_color()
    assert first != last


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _record_saves(monkeypatch, record) -> None:
    """`figures.save` still writes its files, after `record(fig)` (save closes the figure)."""
    save = figures.save

    def recording(fig, png, pdf, **kwargs) -> None:
        record(fig)
        save(fig, png, pdf, **kwargs)

    monkeypatch.setattr(figures, "save", recording)


def _draw_live_monitors(tmp_path, domains: list[str], distances: list[float]) -> None:
    """`figures.live_monitors` on three steps per domain, with these distances at each."""
    steps = [0, 10, 20]
    live = pl.DataFrame(
        {
            "model": "m",
            "step": steps * len(domains),
            "domain": [d for d in domains for _ in steps],
            "n_samples": 8,
            "pathway_distance": distances * len(domains),
            "pathway_consistency": [0.1, 0.5, 0.9] * len(domains),
            "sample_loss": 1.0,
        }
    )
    traj = live.select("model", "step", "domain").with_columns(
        train_loss=pl.lit(1.0), train_accuracy=pl.lit(0.5), test_accuracy=pl.lit(0.2)
    )
    figures.live_monitors(live, traj, str(tmp_path / "a.png"), str(tmp_path / "a.pdf"))


def test_legends_sit_below_their_panels_clear_of_data_labels_and_other_panels(monkeypatch, tmp_path):
    """Panels with a second y axis (the live monitors, Fig. 4 with group loss) had their legends
    inside, where `loc="best"` does not see the second axis's lines: they covered curves. Legends
    now sit under the x axis label, and the figure grows so the next row of panels is clear."""
    figs = []
    _record_saves(monkeypatch, lambda fig: figs.append((fig, fig.get_figheight())))
    steps = [0, 10, 20]
    _draw_live_monitors(tmp_path, ["math", "code"], [3.0, 2.0, 1.0])
    groups = pl.DataFrame(
        {
            "domain": "math",
            "group": [f"pretrain@step{s}" for s in (10, 20) for _ in range(3)],
            "step_number": steps * 2,
            "n_samples": 2,
            "mean_distance": [1.0, 2.0, 3.0, 3.0, 2.0, 1.0],
            "mean_training_loss": [2.0, 1.0, 0.5] * 2,
        }
    )
    steps_of = {"step10": 10, "step20": 20}
    figures.monitor_by_group(
        groups, steps_of, "mean_distance", "d", "t", str(tmp_path / "b.png"), str(tmp_path / "b.pdf"), with_loss=True
    )
    assert len(figs) == 2
    for fig, height in figs:
        canvas = FigureCanvasAgg(fig)  # save() closed the figure: drawn again on a canvas of its own
        canvas.draw()
        renderer = canvas.get_renderer()
        panels = [ax for ax in fig.axes if ax.get_legend() is not None]
        assert panels
        assert fig.get_figheight() > height  # grown for the legends
        for ax in panels:
            legend = ax.get_legend().get_window_extent(renderer)
            label = ax.xaxis.label.get_window_extent(renderer)
            assert legend.y1 < label.y0  # under the x axis label
            others = [o.get_window_extent(renderer) for o in fig.axes if o.get_subplotspec() != ax.get_subplotspec()]
            assert not any(_overlap(legend, other) for other in others)


def test_a_second_y_axis_label_stands_clear_of_the_next_panels_label(monkeypatch, tmp_path):
    """With a second y axis, a panel's right-hand label faces the next panel's left-hand one:
    at tight_layout's default padding they nearly touched and read as one line (Fig. 4, the
    trajectory). The panels are set further apart in such figures."""
    figs = []
    _record_saves(monkeypatch, figs.append)
    _draw_live_monitors(tmp_path, ["code", "commonsense", "math"], [13.0, 12.0, 11.0])
    (fig,) = figs
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    rows: dict[int, list] = {}
    for ax in fig.axes:
        rows.setdefault(ax.get_subplotspec().rowspan.start, []).append(ax)
    pairs = 0
    for axes in rows.values():
        # per grid cell: the panel (y label on the left) and its twin (y label on the right)
        cells: dict[int, dict[str, object]] = {}
        for ax in axes:
            side = ax.yaxis.get_label_position()
            cells.setdefault(ax.get_subplotspec().colspan.start, {})[side] = ax
        columns = sorted(cells)
        for left, right in itertools.pairwise(columns):
            twin, neighbour = cells[left]["right"], cells[right]["left"]
            gap = neighbour.yaxis.label.get_window_extent(renderer).x0 - twin.yaxis.label.get_window_extent(renderer).x1
            font_px = twin.yaxis.label.get_size() * fig.dpi / 72
            assert gap > 2 * font_px, (left, right, gap, font_px)
            pairs += 1
    assert pairs >= 2


def test_each_file_takes_one_draw_and_holds_the_whole_figure(monkeypatch, tmp_path):
    """savefig drew the whole figure once more before each file while tight_layout's placeholder
    layout engine was left on it (and for bbox_inches="tight"): a third of a many-panel figure's
    saving time. `save` now writes each file in one draw, so the laid-out figure must fit its
    canvas on its own: legends below the panels, second y axes' labels and the title inside it."""
    from matplotlib.figure import Figure

    draws, draw = [], Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda fig, renderer: (draws.append(fig), draw(fig, renderer))[1])
    figs = []
    _record_saves(monkeypatch, figs.append)
    _draw_live_monitors(tmp_path, ["code", "math"], [3.0, 2.0, 1.0])
    (fig,) = figs
    assert len(draws) == 2  # the PNG and the PDF
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    drawn, page = fig.get_tightbbox(canvas.get_renderer()), fig.bbox_inches  # both in inches
    assert page.x0 <= drawn.x0
    assert drawn.x1 <= page.x1
    assert page.y0 <= drawn.y0
    assert drawn.y1 <= page.y1
