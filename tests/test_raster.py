"""The PNG renderer of search figures (calnas.raster): ticks, sizes, and what lands where."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import calnas
from calnas.plots import DPI, STYLES, FigureSpec, Panel, Series, hypervolume_spec, pareto_spec, to_matplotlib
from calnas.raster import MARGINS, TITLE_BAND, nice_ticks, render, tick_label


@pytest.mark.parametrize("lo,hi,expected", [
    (0.0, 1.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (0.03, 1.31, [0.25, 0.5, 0.75, 1.0, 1.25]),
    (-7.0, 12.0, [-5.0, 0.0, 5.0, 10.0]),
    (120.0, 980.0, [200.0, 400.0, 600.0, 800.0]),
])
def test_ticks_are_round_and_inside(lo, hi, expected):
    assert nice_ticks(lo, hi) == pytest.approx(expected)


def test_tick_labels():
    assert [tick_label(t, [0.0, 0.25, 0.5]) for t in (0.0, 0.25, 0.5)] == ["0", "0.25", "0.50"]
    assert [tick_label(t, [0, 100, 200]) for t in (0, 100, 200)] == ["0", "100", "200"]
    assert tick_label(2e7, [1e7, 2e7]) == "2e+07"


def _spec(x, y, **extra):
    panel = Panel("x", "y", [Series("points", "trials", "trials", np.array([0.0, 10.0]), np.array([0.0, 10.0])),
                             Series("points", "found", "found front", np.array([x]), np.array([y]))], **extra)
    return FigureSpec("title", [panel], cols=1, panel_size=(5.0, 4.0))


def test_a_point_is_drawn_where_its_value_is(tmp_path):
    path = render(_spec(5.0, 5.0), tmp_path / "p.png")
    image = Image.open(path).convert("RGB")
    assert image.size == (round(5.0 * DPI), round(4.0 * DPI) + TITLE_BAND)
    # the axes span the data with 5% margins; (5, 5) is the middle of the axes box
    left, right = MARGINS["left"], image.width - MARGINS["right"]
    top, bottom = TITLE_BAND + MARGINS["top"], image.height - MARGINS["bottom"]
    centre = ((left + right) // 2, (top + bottom) // 2)
    orange = tuple(int(STYLES["found"]["color"][i:i + 2], 16) for i in (1, 3, 5))
    assert np.abs(np.array(image.getpixel(centre)) - orange).max() <= 10
    pixels = np.asarray(image)
    near_orange = np.all(np.abs(pixels.astype(int) - orange) <= 10, axis=2)
    ys, xs = np.nonzero(near_orange)
    assert abs(xs.mean() - centre[0]) <= 1.5 and abs(ys.mean() - centre[1]) <= 1.5  # only that marker is orange


def test_bars_stand_on_zero_at_their_positions_under_their_labels(tmp_path):
    panel = Panel("x", "y", xticks=((0.0, "1"), (1.0, "16")))
    panel.series.append(Series("bars", "completed", "bars", np.array([0.0, 1.0]), np.array([4.0, 2.0])))
    image = np.asarray(Image.open(render(FigureSpec("t", [panel], cols=1, panel_size=(5.0, 4.0)),
                                         tmp_path / "b.png")).convert("RGB")).astype(int)
    orange = np.array([int(STYLES["completed"]["color"][i:i + 2], 16) for i in (1, 3, 5)])
    ys, xs = np.nonzero(np.all(np.abs(image - orange) <= 10, axis=2))
    left, right = MARGINS["left"], image.shape[1] - MARGINS["right"]
    mid = (left + right) / 2
    first, second = ys[xs < mid], ys[xs >= mid]
    assert first.max() == pytest.approx(second.max(), abs=2)  # both stand on the same baseline
    height = first.max() - first.min(), second.max() - second.min()
    assert height[0] == pytest.approx(2 * height[1], rel=0.05)  # 4 vs 2
    figure = to_matplotlib(FigureSpec("t", [panel], cols=1, panel_size=(5.0, 4.0)))
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["1", "16"]


def test_search_files_are_drawn_without_matplotlib(tmp_path):
    code = ("import sys, calnas; r = calnas.search(objectives='acc,ece', budget=20, seed=0); "
            f"r.save({str(tmp_path)!r}); print('matplotlib' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    for name in ("pareto.png", "hypervolume.png"):
        assert Image.open(tmp_path / name).format == "PNG"


def test_the_api_figure_and_the_file_show_the_same_spec(tmp_path):
    result = calnas.search(objectives="acc,ece,params", budget=30, seed=0, constraints="params<=0.3")
    spec = pareto_spec(result)
    assert len(spec.panels) == 3 and spec.cols == 3
    labels = [s.label for s in spec.panels[0].series]
    assert labels == ["trials", "infeasible trials", "true front", "found front"]
    infeasible = spec.panels[1].series[1]  # (acc, params): every infeasible trial is above the bound
    assert (infeasible.y > 0.3).all() and len(infeasible.y) == (~result.trials["feasible"]).sum()
    figure = to_matplotlib(spec)
    assert len(figure.axes) == 3 and figure.axes[0].get_legend() is not None
    curve = hypervolume_spec(result).panels[0].series[0]
    assert np.array_equal(curve.y, result.trials["hypervolume"].to_numpy())
    image = Image.open(render(spec, tmp_path / "p.png"))
    assert image.size == (3 * round(5.2 * DPI), round(4.4 * DPI) + TITLE_BAND)
