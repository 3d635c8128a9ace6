"""Question 4: does post-hoc temperature scaling treat architectures uniformly?"""

from __future__ import annotations

import numpy as np
import pandas as pd

from calnas.analysis._base import (
    AnalysisResult,
    as_table,
    distinct,
    fmt,
    label,
    missing_column,
    new_figure,
    rank_correlations,
    resolve_metric,
    unanswered,
    unit_word,
)
from calnas.objectives.catalog import PREFIXES

TEMPERATURE = (4, "temperature", "Temperature scaling across architectures")
ACCURACY_GROUPS = 10


def _base_metric(column: str) -> str | None:
    prefix, _, rest = column.partition("_")
    return rest if prefix in PREFIXES and rest else None


def temperature_scaling(table, metric: str = "ece", *, groups: int = ACCURACY_GROUPS, data_dir=None) -> AnalysisResult:
    """Pre vs post value of a calibration metric per distinct network, the fraction that temperature
    scaling makes worse, and (with a ``temperature`` column) how the fitted temperature varies with
    accuracy; rows of ``.frame``: all networks, then ``groups`` accuracy groups of equal size."""
    table = as_table(table, data_dir=data_dir)
    column = resolve_metric(metric, [table])
    base = _base_metric(column)
    if base is None:
        return unanswered(*TEMPERATURE, f"Question 4 needs a calibration metric with pre_ and post_ columns (such as "
                          f"ece); {column} has none.")
    pre, post = f"pre_{base}", f"post_{base}"
    for needed in (pre, post):
        missing = missing_column(table, needed)
        if missing:
            return unanswered(*TEMPERATURE, f"Question 4 needs {pre} and {post}; {missing}.")
    has_acc = missing_column(table, "acc") is None
    has_t = missing_column(table, "temperature") is None
    data = distinct(table, [pre, post] + ["acc"] * has_acc + ["temperature"] * has_t).dropna(subset=[pre, post])
    data["change"] = data[post] - data[pre]
    data["worse"] = data["change"] > 0
    rows = [_group_row("all", data, pre, post, has_acc, has_t)]
    if has_acc:
        # Equal-size accuracy groups; rank(method="first") makes the cut points unique under ties.
        # A network with no accuracy joins no group (it still counts in "all").
        graded = data.dropna(subset=["acc"])
        group = pd.qcut(graded["acc"].rank(method="first"), min(groups, len(graded)), labels=False) + 1
        data["acc_group"] = group
        rows += [_group_row(int(g), graded[group == g], pre, post, has_acc, has_t) for g in sorted(group.unique())]
    frame = pd.DataFrame(rows)
    summary = _summary(table, data, frame, base, pre, post, has_acc, has_t)
    return AnalysisResult(*TEMPERATURE, summary, frame, _figure(data, pre, post, has_acc, has_t),
                          details={"per_architecture": data})


def _group_row(name, sub: pd.DataFrame, pre: str, post: str, has_acc: bool, has_t: bool) -> dict:
    row = {"acc_group": name, "n": len(sub)}
    if has_acc:
        row.update(acc_min=sub["acc"].min(), acc_max=sub["acc"].max())
    row.update({f"median_{pre}": sub[pre].median(), f"median_{post}": sub[post].median(),
                "fraction_worse": sub["worse"].mean(), "median_change": sub["change"].median()})
    if has_t:
        row.update(median_temperature=sub["temperature"].median(),
                   fraction_t_below_1=(sub["temperature"] < 1).mean())
    return row


def _summary(table, data, frame, base, pre, post, has_acc, has_t) -> str:
    everything = frame.iloc[0]
    worse = data[data["worse"]]
    ranks = rank_correlations(data[pre], data[post])
    parts = [f"Temperature scaling lowers {base} for {1 - everything.fraction_worse:.1%} of the {len(data):,} "
             f"{unit_word(table)} of {label(table)} (median {everything[f'median_{pre}']:.4f} -> "
             f"{everything[f'median_{post}']:.4f}) and raises it for {everything.fraction_worse:.1%}"
             + (f" (median increase {worse['change'].median():.4f})" if len(worse) else "") + "; "
             f"pre and post ranks correlate with Kendall tau {fmt(ranks['kendall'])}."]
    if has_acc and len(frame) > 2:
        low, high = frame.iloc[1], frame.iloc[-1]
        parts.append(f"It gets worse for {low.fraction_worse:.1%} of the least accurate group "
                     f"(acc {low.acc_min:.3f}-{low.acc_max:.3f}) and {high.fraction_worse:.1%} of the most accurate "
                     f"(acc {high.acc_min:.3f}-{high.acc_max:.3f}).")
    if has_t:
        t = data["temperature"]
        text = (f"Fitted temperatures run from {t.min():g} to {t.max():g} (median {t.median():g}); "
                f"{(t < 1).mean():.1%} are below 1 (under-confident networks, sharpened) and "
                f"{(t > 1).mean():.1%} above 1 (over-confident, softened)")
        if has_acc:
            corr = rank_correlations(data["acc"], t)
            text += (f"; Spearman rho with accuracy {fmt(corr['spearman'])}, the median going from "
                     f"{frame.iloc[1].median_temperature:g} in the least accurate group to "
                     f"{frame.iloc[-1].median_temperature:g} in the most accurate")
        parts.append(text + ".")
    else:
        parts.append(f"{label(table)} has no temperature column (calnas-built tables record it), so how the "
                     "fitted temperature varies with accuracy is not shown.")
    return " ".join(parts)


def _figure(data, pre, post, has_acc, has_t):
    panels = 2 if has_t and has_acc else 1
    figure = new_figure(5.2 * panels, 4.4)
    ax = figure.add_subplot(1, panels, 1)
    points = ax.scatter(data[pre], data[post], s=4, alpha=0.6, linewidths=0,
                        c=data["acc"] if has_acc else "tab:blue", cmap="viridis")
    top = float(max(data[pre].max(), data[post].max()))
    ax.plot([0, top], [0, top], "--", color="0.3", linewidth=1, label="no change (above: worse)")
    ax.set_xlabel(pre)
    ax.set_ylabel(post)
    ax.set_title(f"{data['worse'].mean():.1%} get worse after temperature scaling", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    if has_acc:
        figure.colorbar(points, ax=ax, label="acc", shrink=0.8)
    if panels == 2:
        ax = figure.add_subplot(1, 2, 2)
        ax.scatter(data["acc"], data["temperature"], s=4, alpha=0.25, color="0.45", linewidths=0,
                   label="one network")
        by_group = data.groupby("acc_group").agg(acc=("acc", "median"), t=("temperature", "median"),
                                                 lo=("temperature", lambda s: s.quantile(0.25)),
                                                 hi=("temperature", lambda s: s.quantile(0.75)))
        ax.plot(by_group["acc"], by_group["t"], "o-", color="tab:red", label="median per accuracy group")
        ax.fill_between(by_group["acc"], by_group["lo"], by_group["hi"], color="tab:red", alpha=0.15,
                        label="interquartile range")
        ax.axhline(1.0, color="0.3", linewidth=1, linestyle="--")
        ax.set_yscale("log")
        ax.set_xlabel("acc")
        ax.set_ylabel("fitted temperature (log scale)")
        ax.set_title("temperature vs accuracy", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return figure
