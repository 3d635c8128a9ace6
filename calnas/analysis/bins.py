"""Question 6: how much does the bin count of a binned calibration metric matter?"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from calnas.analysis._base import (
    AnalysisResult,
    as_table,
    distinct,
    heatmap,
    label,
    new_figure,
    rank_matrix,
    unanswered,
    unit_word,
)
from calnas.errors import UserError
from calnas.metrics.panel import BINNED_KINDS
from calnas.objectives.catalog import HEADLINE_BINS, PREFIXES

BIN_COUNT = (6, "bins", "Bin count: values, rank stability and spread per architecture")


def binned_columns(table, prefix: str, kinds=BINNED_KINDS) -> dict[str, dict[int, str]]:
    """kind -> {bin count: column} for every kind with two or more bin counts in the table.

    Bin counts are read from the column names, so tables built with other bin counts work too.
    """
    out = {}
    for kind in kinds:
        pattern = re.compile(rf"^{prefix}_{re.escape(kind)}_(\d+)$")
        found = {int(m.group(1)): c for c in table.frame.columns if (m := pattern.match(c))}
        if len(found) >= 2:
            out[kind] = dict(sorted(found.items()))
    return out


def bin_count(table, *, prefix: str = "pre", kinds=BINNED_KINDS, data_dir=None) -> AnalysisResult:
    """Every binned metric at every bin count the table has (the study: 5 ... 500): its mean and
    median, the Kendall tau-b between each pair of bin counts (``tau_<B>`` columns of ``.frame``),
    and per distinct network the spread max - min over the bin counts (``.details["spread"]``)."""
    table = as_table(table, data_dir=data_dir)
    if prefix not in PREFIXES:
        raise UserError(f"unknown prefix {prefix!r}; expected one of {', '.join(PREFIXES)}")
    columns = binned_columns(table, prefix, kinds)
    if not columns:
        return unanswered(*BIN_COUNT, f"Question 6 needs binned metrics at two or more bin counts (such as "
                          f"{prefix}_ECE_5 ... {prefix}_ECE_500); {label(table)} has none.")
    data = distinct(table, [c for per_kind in columns.values() for c in per_kind.values()])
    all_bins = sorted({b for per_kind in columns.values() for b in per_kind})
    rows, spread, taus = [], {}, {}
    for kind, per_kind in columns.items():
        values = data[list(per_kind.values())].dropna().set_axis(list(per_kind), axis=1)
        tau = rank_matrix(values, "kendall").reindex(index=list(per_kind), columns=list(per_kind))
        taus[kind] = tau
        spread[kind] = values.max(axis=1) - values.min(axis=1)
        for b in per_kind:
            rows.append({"kind": kind, "bins": b, "n": len(values), "mean": values[b].mean(),
                         "median": values[b].median(),
                         **{f"tau_{other}": tau.loc[b, other] if other in per_kind else np.nan for other in all_bins}})
    frame = pd.DataFrame(rows)
    spread_frame = pd.DataFrame(spread)
    summary = _summary(table, prefix, frame, taus, spread_frame)
    return AnalysisResult(*BIN_COUNT, summary, frame, _figure(prefix, frame, taus, spread_frame),
                          details={"spread": spread_frame})


def _summary(table, prefix, frame: pd.DataFrame, taus: dict, spread: pd.DataFrame) -> str:
    lead = "ECE" if "ECE" in taus else next(iter(taus))
    means = frame.groupby("kind", sort=False).agg(first=("mean", "first"), last=("mean", "last"),
                                                  lo=("bins", "first"), hi=("bins", "last"))
    moves = ", ".join(f"{k} {r.first:.4f} -> {r.last:.4f}" for k, r in means.iterrows())
    n = int(frame["n"].max())
    parts = [f"Over {n:,} {unit_word(table)} of {label(table)}, the mean {prefix} value from the fewest to the most "
             f"bins ({means.loc[lead, 'lo']} -> {means.loc[lead, 'hi']}): {moves}."]
    tau = taus[lead]
    bins = list(tau.index)
    near = (HEADLINE_BINS, bins[bins.index(HEADLINE_BINS) + 1]) if HEADLINE_BINS in bins[:-1] else (bins[0], bins[1])
    parts.append(f"{lead} ranks are stable between neighbouring bin counts (Kendall tau {near[0]} vs {near[1]}: "
                 f"{tau.loc[near]:.3f}) and less so across the range ({bins[0]} vs {bins[-1]}: "
                 f"{tau.loc[bins[0], bins[-1]]:.3f}).")
    lowest = min(((k, a, b, t.loc[a, b]) for k, t in taus.items() for i, a in enumerate(t.index)
                  for b in t.index[i + 1:] if np.isfinite(t.loc[a, b])), key=lambda x: x[3], default=None)
    if lowest:
        parts.append(f"The lowest tau of all is {lowest[0]} at {lowest[1]} vs {lowest[2]} bins ({lowest[3]:.3f}).")
    s = spread[lead].dropna()
    parts.append(f"The spread of {lead} across the bin counts (max - min per network) has median {s.median():.4f} "
                 f"(90th percentile {s.quantile(0.9):.4f}, largest {s.max():.4f}).")
    return " ".join(parts)


def _figure(prefix, frame: pd.DataFrame, taus: dict, spread: pd.DataFrame):
    kinds = list(taus)
    figure = new_figure(max(10.0, 2.9 * len(kinds)), 6.8)
    grid = figure.add_gridspec(2, max(len(kinds), 2), height_ratios=[1.0, 0.9])
    for n, kind in enumerate(kinds):
        ax = figure.add_subplot(grid[0, n])
        heatmap(figure, ax, taus[kind], vmin=0.0, vmax=1.0, cmap="viridis", fmt="{:.2f}", fontsize=6,
                label="Kendall tau" if n == len(kinds) - 1 else None)
        ax.set_title(f"{prefix}_{kind}_B", fontsize=9)
    half = max(len(kinds), 2) // 2
    ax = figure.add_subplot(grid[1, :half])
    for kind, sub in frame.groupby("kind", sort=False):
        ax.plot(sub["bins"], sub["mean"], "o-", markersize=3, label=kind)
    ax.set_xscale("log")
    ax.set_xticks(sorted(frame["bins"].unique()), [str(b) for b in sorted(frame["bins"].unique())])
    ax.set_xlabel("bin count B")
    ax.set_ylabel("mean over architectures")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax = figure.add_subplot(grid[1, half:])
    # Drawn by hand: Axes.boxplot reads every rcParam, and reading "backend" imports pyplot.
    q = np.array([spread[k].dropna().quantile([0.1, 0.25, 0.5, 0.75, 0.9]).to_numpy() for k in kinds])
    x = np.arange(len(kinds))
    ax.vlines(x, q[:, 0], q[:, 4], color="0.4", linewidth=1, label="10-90%")
    ax.vlines(x, q[:, 1], q[:, 3], color="tab:blue", linewidth=8, label="25-75%")
    ax.plot(x, q[:, 2], "_", color="white", markersize=12, markeredgewidth=2, label="median")
    ax.set_xticks(x, kinds)
    ax.set_ylabel("spread per architecture (max - min over B)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    return figure
