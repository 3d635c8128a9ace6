"""Figures of search results (matplotlib's object-oriented API with the Agg canvas: no pyplot, no
GUI backend, no global state), imported only when a figure is drawn."""

from __future__ import annotations

import numpy as np


def pareto_figure(result):
    """All trials, the found front and (when known) the true front, objectives pairwise."""
    from itertools import combinations

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    objectives = result.info["objectives"]
    names = [o["name"] for o in objectives]
    if len(names) == 1:
        pairs = [(None, 0)]
    else:
        pairs = list(combinations(range(len(names)), 2))[:6]
    cols = min(len(pairs), 3)
    rows = -(-len(pairs) // cols)
    figure = Figure(figsize=(5.2 * cols, 4.4 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    trials, front, true_front = result.trials, result.front, result.true_front
    for n, (x, y) in enumerate(pairs):
        ax = figure.add_subplot(rows, cols, n + 1)
        xs = (lambda f: f["trial"]) if x is None else (lambda f, x=x: f[names[x]])
        if x is None:
            on = ["index", "recipe"] if "recipe" in trials else ["index"]  # a joint search: (arch, recipe)
            front_x = front.merge(trials[[*on, "trial"]], on=on)["trial"]
            true_x = None
        else:
            front_x, true_x = front[names[x]], true_front[names[x]]
        feasible = trials["feasible"] if "feasible" in trials else np.ones(len(trials), dtype=bool)
        ax.scatter(xs(trials)[feasible], trials[names[y]][feasible], s=9, color="0.65", label="trials", zorder=1)
        if not np.all(feasible):
            ax.scatter(xs(trials)[~feasible], trials[names[y]][~feasible], s=9, color="0.85", marker="x",
                       label="infeasible trials", zorder=1)
        if true_x is not None:
            ax.scatter(true_x, true_front[names[y]], s=42, facecolors="none", edgecolors="black",
                       linewidths=0.9, label="true front", zorder=2)
        ax.scatter(front_x, front[names[y]], s=16, color="tab:orange", label="found front", zorder=3)
        ax.set_xlabel("evaluation" if x is None else _axis_label(objectives[x]))
        ax.set_ylabel(_axis_label(objectives[y]))
        ax.grid(alpha=0.3)
        if n == 0:
            ax.legend(fontsize=8, loc="best")
    ratio = result.hypervolume_ratio
    ratio_text = f", hypervolume ratio {ratio:.3f}" if ratio is not None else ""
    figure.suptitle(f"{result.info['searcher']} on {result.info['benchmark']}: "
                    f"{result.evaluations} evaluations{ratio_text}", fontsize=10)
    return figure


def _axis_label(objective: dict) -> str:
    arrow = "higher is better" if objective["direction"] == "maximize" else "lower is better"
    name = objective["name"]
    if objective.get("column") and objective["column"] != name:
        name = f"{name} ({objective['column']})"
    return f"{name}, {arrow}"


def hypervolume_figure(result):
    """The anytime curve of a search: hypervolume of the found front after each evaluation."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 4.0), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    trials = result.trials
    ax.step(np.arange(1, len(trials) + 1), trials["hypervolume"], where="post", color="tab:orange",
            label="found front")
    if np.isfinite(result.true_hypervolume):
        ax.axhline(result.true_hypervolume, color="black", linestyle="--", linewidth=1, label="true front")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("hypervolume (normalised objectives)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    figure.suptitle(f"{result.info['searcher']} on {result.info['benchmark']}", fontsize=10)
    return figure


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
