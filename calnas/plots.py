"""Figures of search results.

A search's figures are described once, as a :class:`FigureSpec` (panels of series with labels),
and drawn by two renderers: :func:`to_matplotlib` (a Figure, for notebooks and the Python API:
matplotlib's object-oriented API with the Agg canvas, no pyplot, no global state) and
:mod:`calnas.raster` (the PNG files a search writes, drawn with Pillow: matplotlib's import and
layout cost more than a whole 500-evaluation table search). Reliability grids are matplotlib
only. matplotlib is imported only when a Figure is asked for."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


# What each kind of series looks like, for both renderers (matplotlib here, Pillow in
# calnas.raster): colour (grey level or RGB hex), marker size in points squared as matplotlib's
# ``s``, hollow or filled, and drawing order.
STYLES = {
    "trials": {"color": "#a6a6a6", "size": 9, "marker": "o", "zorder": 1},
    "infeasible": {"color": "#d9d9d9", "size": 9, "marker": "x", "zorder": 1},
    "true": {"color": "#000000", "size": 42, "marker": "o", "hollow": True, "zorder": 2},
    "found": {"color": "#ff7f0e", "size": 16, "marker": "o", "zorder": 3},
    "curve": {"color": "#ff7f0e", "zorder": 3},
    "true_level": {"color": "#000000", "dashed": True, "zorder": 2},
    "pruned": {"color": "#a6a6a6", "zorder": 1},
    "completed": {"color": "#ff7f0e", "zorder": 2},
}
BAR_WIDTH = 0.8  # of the distance between neighbouring bar positions
DPI = 110


@dataclass
class Series:
    kind: str  # "points", "step" (drawn post-wise), "level" (a horizontal line at y) or "bars" (from 0 to y at x)
    style: str  # a key of STYLES
    label: str
    x: np.ndarray | None
    y: np.ndarray | float


@dataclass
class Panel:
    xlabel: str
    ylabel: str
    series: list[Series] = field(default_factory=list)
    legend: str | None = None  # "best", "lower right", ...; None: no legend
    xticks: tuple[tuple[float, str], ...] | None = None  # (position, label) pairs instead of numeric ticks


@dataclass
class FigureSpec:
    """What a figure shows, independent of the library that draws it."""

    title: str
    panels: list[Panel]
    cols: int
    panel_size: tuple[float, float]  # inches


def pareto_spec(result) -> FigureSpec:
    """All trials, the found front and (when known) the true front, objectives pairwise."""
    from itertools import combinations

    objectives = result.info["objectives"]
    names = [o["name"] for o in objectives]
    pairs = [(None, 0)] if len(names) == 1 else list(combinations(range(len(names)), 2))[:6]
    trials, front, true_front = result.trials, result.front, result.true_front
    feasible = (trials["feasible"].to_numpy(dtype=bool) if "feasible" in trials
                else np.ones(len(trials), dtype=bool))
    panels = []
    for n, (x, y) in enumerate(pairs):
        if x is None:
            on = ["index", "recipe"] if "recipe" in trials else ["index"]  # a joint search: (arch, recipe)
            trial_x = trials["trial"].to_numpy(dtype=float)
            front_x = front.merge(trials[[*on, "trial"]], on=on)["trial"].to_numpy(dtype=float)
        else:
            trial_x = trials[names[x]].to_numpy(dtype=float)
            front_x = front[names[x]].to_numpy(dtype=float)
        trial_y = trials[names[y]].to_numpy(dtype=float)
        panel = Panel("evaluation" if x is None else _axis_label(objectives[x]), _axis_label(objectives[y]),
                      legend="best" if n == 0 else None)
        panel.series.append(Series("points", "trials", "trials", trial_x[feasible], trial_y[feasible]))
        if not feasible.all():
            panel.series.append(Series("points", "infeasible", "infeasible trials", trial_x[~feasible], trial_y[~feasible]))
        if x is not None and len(true_front):
            panel.series.append(Series("points", "true", "true front", true_front[names[x]].to_numpy(dtype=float),
                                       true_front[names[y]].to_numpy(dtype=float)))
        panel.series.append(Series("points", "found", "found front", front_x, front[names[y]].to_numpy(dtype=float)))
        panels.append(panel)
    ratio = result.hypervolume_ratio
    ratio_text = f", hypervolume ratio {ratio:.3f}" if ratio is not None else ""
    title = f"{result.info['searcher']} on {result.info['benchmark']}: {result.evaluations} evaluations{ratio_text}"
    return FigureSpec(title, panels, cols=min(len(panels), 3), panel_size=(5.2, 4.4))


def _axis_label(objective: dict) -> str:
    arrow = "higher is better" if objective["direction"] == "maximize" else "lower is better"
    name = objective["name"]
    if objective.get("column") and objective["column"] != name:
        name = f"{name} ({objective['column']})"
    return f"{name}, {arrow}"


def hypervolume_spec(result) -> FigureSpec:
    """The anytime curve of a search: hypervolume of the found front after each evaluation and,
    for a search with training time (a simulated one: ``sim_end``, ``train_seconds_total``),
    against the simulated wall-clock and the training seconds spent."""
    trials = result.trials
    curves = [("evaluations", np.arange(1, len(trials) + 1, dtype=float), trials["hypervolume"].to_numpy(dtype=float))]
    if {"sim_end", "train_seconds_total", "hypervolume_at_end"} <= set(trials.columns):
        timed = trials.sort_values("sim_end", kind="stable")
        at_end = timed["hypervolume_at_end"].to_numpy(dtype=float)
        curves += [("simulated wall-clock (s)", timed["sim_end"].to_numpy(dtype=float), at_end),
                   ("training seconds spent", timed["train_seconds_total"].to_numpy(dtype=float), at_end)]
    panels = []
    for n, (xlabel, x, y) in enumerate(curves):
        panel = Panel(xlabel, "hypervolume (normalised objectives)", legend="lower right" if n == 0 else None)
        panel.series.append(Series("step", "curve", "found front", x, y))
        if np.isfinite(result.true_hypervolume):
            panel.series.append(Series("level", "true_level", "true front", None, float(result.true_hypervolume)))
        panels.append(panel)
    return FigureSpec(f"{result.info['searcher']} on {result.info['benchmark']}", panels, cols=len(panels),
                      panel_size=(6.0, 4.0) if len(panels) == 1 else (4.6, 3.8))


def rung_spec(result) -> FigureSpec | None:
    """How far each trial of an early-stopping search trained: trials per epoch reached, pruned
    (stopped at that rung) and completed (the full schedule). None for a search without early
    stopping."""
    trials = result.trials
    simulation = result.info.get("simulation") or {}
    if simulation.get("early_stopping", "none") == "none" or not {"stopped", "epochs"} <= set(trials.columns):
        return None
    reached = trials.dropna(subset=["epochs"])
    reached = reached[reached["epochs"] > 0]
    if reached.empty:
        return None
    epochs = sorted({int(e) for e in reached["epochs"]})
    position = {e: k for k, e in enumerate(epochs)}
    panel = Panel("epochs trained (a rung, or the full schedule)", "trials", legend="upper right",
                  xticks=tuple((float(k), str(e)) for k, e in enumerate(epochs)))
    for style, label, mask in (("pruned", "stopped there (pruned)", reached["stopped"] == "pruned"),
                               ("completed", "trained to the end", reached["stopped"] != "pruned")):
        counts = reached[mask]["epochs"].astype(int).value_counts()
        if len(counts):
            panel.series.append(Series("bars", style, label, np.array([position[e] for e in counts.index], dtype=float),
                                       counts.to_numpy(dtype=float)))
    return FigureSpec(f"{result.info['searcher']} on {result.info['benchmark']}: {len(reached)} trials by the epoch "
                      "they reached", [panel], cols=1, panel_size=(6.0, 4.0))


def to_matplotlib(spec: FigureSpec):
    """A matplotlib Figure of ``spec`` (for notebooks and the Python API; files are drawn by
    calnas.raster, which needs no matplotlib)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = -(-len(spec.panels) // spec.cols)
    figure = Figure(figsize=(spec.panel_size[0] * spec.cols, spec.panel_size[1] * rows), layout="constrained")
    FigureCanvasAgg(figure)
    for n, panel in enumerate(spec.panels):
        ax = figure.add_subplot(rows, spec.cols, n + 1)
        for series in panel.series:
            style = STYLES[series.style]
            if series.kind == "points":
                kwargs = ({"facecolors": "none", "edgecolors": style["color"], "linewidths": 0.9} if style.get("hollow")
                          else {"color": style["color"]})
                ax.scatter(series.x, series.y, s=style["size"], marker=style["marker"], label=series.label,
                           zorder=style["zorder"], **kwargs)
            elif series.kind == "step":
                ax.step(series.x, series.y, where="post", color=style["color"], label=series.label, zorder=style["zorder"])
            elif series.kind == "bars":
                ax.bar(series.x, series.y, width=BAR_WIDTH, color=style["color"], label=series.label,
                       zorder=style["zorder"])
            else:
                ax.axhline(series.y, color=style["color"], linestyle="--" if style.get("dashed") else "-",
                           linewidth=1, label=series.label, zorder=style["zorder"])
        if panel.xticks is not None:
            ax.set_xticks([p for p, _ in panel.xticks], [t for _, t in panel.xticks])
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        ax.grid(alpha=0.3)
        if panel.legend:
            ax.legend(fontsize=8, loc=panel.legend)
    figure.suptitle(spec.title, fontsize=10)
    return figure


def pareto_figure(result):
    """A matplotlib Figure of :func:`pareto_spec`."""
    return to_matplotlib(pareto_spec(result))


def hypervolume_figure(result):
    """A matplotlib Figure of :func:`hypervolume_spec`."""
    return to_matplotlib(hypervolume_spec(result))


RELIABILITY_MEMBERS = 12  # front members drawn in one reliability grid (the first in front order)


def reliability_figure(members, title: str = ""):
    """Reliability diagrams of front members in one grid: for each member (label, diagrams) with
    diagrams {"pre": ReliabilityDiagram, "post": ReliabilityDiagram (optional)}, the test split's
    diagram before temperature scaling above the one after it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    members = list(members)[:RELIABILITY_MEMBERS]
    cols = min(max(len(members), 1), 4)
    blocks = -(-len(members) // cols)
    figure = Figure(figsize=(3.2 * cols, 5.6 * blocks), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2 * blocks, cols)
    for n, (label, diagrams) in enumerate(members):
        block, col = divmod(n, cols)
        for row, stage in enumerate(("pre", "post")):
            ax = figure.add_subplot(grid[2 * block + row, col])
            diagram = diagrams.get(stage)
            if diagram is None:
                ax.set_axis_off()
                ax.text(0.5, 0.5, f"no {stage}-scaling diagram", ha="center", va="center", fontsize=8)
                continue
            name = "before" if stage == "pre" else "after"
            diagram.draw(ax, title=f"{label}\n{name} T-scaling: ECE {100 * diagram.ece:.1f}%",
                         legend=n == 0 and row == 0)
            ax.tick_params(labelsize=7)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def calibrator_figure(panels, title: str = ""):
    """Reliability diagrams side by side, one per (label, ReliabilityDiagram): the test split
    before calibration and after each post-hoc calibrator (``calnas metrics --calibrator``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = list(panels)
    cols = min(max(len(panels), 1), 4)
    rows = -(-len(panels) // cols)
    figure = Figure(figsize=(3.2 * cols, 3.4 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, cols, squeeze=False)
    for n, ax in enumerate(axes.ravel()):
        if n >= len(panels):
            ax.set_axis_off()
            continue
        label, diagram = panels[n]
        diagram.draw(ax, title=f"{label}: ECE {100 * diagram.ece:.2f}%", legend=n == 0)
        ax.tick_params(labelsize=7)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure
