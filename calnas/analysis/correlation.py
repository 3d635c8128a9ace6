"""Questions answered by rank correlations: cross-dataset generalisation (1), robustness as a
calibration measure (2), metric reliability (3) and calibration vs accuracy (5)."""

from __future__ import annotations

import math
from itertools import combinations
import numpy as np
import pandas as pd
from scipy import stats

from calnas.analysis._base import (
    MIN_PAIRS,
    AnalysisResult,
    as_table,
    as_tables,
    better_high,
    distinct,
    fmt,
    heatmap,
    label,
    missing_column,
    new_figure,
    rank_correlations,
    rank_matrix,
    resolve_metric,
    top_units,
    unanswered,
    unit_word,
)
from calnas.metrics.panel import BINNED_KINDS, SCALAR_KINDS
from calnas.objectives.catalog import CORRUPTIONS, HEADLINE_BINS, PREFIXES, family

# Brier_sum is K x Brier, so within one table its ranks are Brier's: listing both would add a
# perfect correlation that says nothing about the metrics.
_RANK_REDUNDANT = {"Brier_sum"}


def calibration_columns(table, prefixes=PREFIXES) -> list[str]:
    """The table's headline calibration metrics: each binned kind at the headline bin count and
    each scalar metric, for each prefix present."""
    kinds = [f"{k}_{HEADLINE_BINS}" for k in BINNED_KINDS] + [k for k in SCALAR_KINDS if k not in _RANK_REDUNDANT]
    return [f"{p}_{k}" for p in prefixes for k in kinds if missing_column(table, f"{p}_{k}") is None]


# --------------------------------------------------------------------------------------------
# 1. cross-dataset generalisation

GENERALIZATION = (1, "generalization", "Cross-dataset generalisation")


def default_top_k(n: int) -> int:
    """1% of the shared architectures, at least 10 (and at most all of them)."""
    return min(n, max(10, round(0.01 * n)))


def generalization(tables, metric: str = "ece", *, top_k: int | None = None, data_dir=None) -> AnalysisResult:
    """Do a metric's ranks carry over between datasets? Kendall tau and Spearman rho of the metric
    over the architectures two tables share, and the overlap of their top-k sets, for every pair
    of the given tables (two or more, of one search space)."""
    tables = as_tables(tables, data_dir=data_dir)
    column = resolve_metric(metric, tables)
    if len(tables) < 2:
        return unanswered(*GENERALIZATION, f"Question 1 needs two tables (one per dataset) to compare {column} "
                          f"ranks across datasets; got only {label(tables[0])}.")
    if len({t.space.name for t in tables}) > 1:
        return unanswered(*GENERALIZATION, "Question 1 needs tables of one search space; "
                          f"got {', '.join(sorted({t.space.name for t in tables}))}, which share no architectures.")
    for table in tables:
        missing = missing_column(table, column)
        if missing:
            return unanswered(*GENERALIZATION, f"Question 1 needs {column} in every table; {missing}.")
    high = better_high(column)
    values = [distinct(t, [column])[column] for t in tables]
    rows, pairs = [], []
    for (i, a), (j, b) in combinations(enumerate(tables), 2):
        joined = pd.concat({"a": values[i], "b": values[j]}, axis=1, join="inner").dropna()
        n = len(joined)
        k = min(top_k, n) if top_k else default_top_k(n)
        corr = rank_correlations(joined["a"], joined["b"])
        overlap = len(top_units(joined["a"], k, high).intersection(top_units(joined["b"], k, high))) if n else 0
        rows.append({"table_a": label(a), "table_b": label(b), "metric": column, "shared": n,
                     "kendall": corr["kendall"], "spearman": corr["spearman"], "top_k": k,
                     "top_k_overlap": overlap, "overlap_fraction": overlap / k if k else np.nan,
                     "chance_fraction": k / n if n else np.nan})
        pairs.append(joined)
    frame = pd.DataFrame(rows)
    if (frame["shared"] < MIN_PAIRS).all():
        return unanswered(*GENERALIZATION, f"Question 1 needs tables that share architectures; these share at most "
                          f"{frame['shared'].max()}.")
    word = unit_word(tables[0])
    sentences = [
        f"{r.table_a} vs {r.table_b}: over the {r.shared:,} {word} both tables have, {column} ranks agree with "
        f"Kendall tau {fmt(r.kendall)} (Spearman rho {fmt(r.spearman)}); the two sets of the {r.top_k} best by {column} "
        f"share {r.top_k_overlap} members ({r.overlap_fraction:.0%}; {r.chance_fraction:.1%} by chance)."
        for r in frame.itertuples()
    ]
    return AnalysisResult(*GENERALIZATION, " ".join(sentences), frame, _generalization_figure(frame, pairs, high))


def _generalization_figure(frame: pd.DataFrame, pairs: list[pd.DataFrame], high: bool):
    shown = min(len(pairs), 6)
    cols = min(shown, 3)
    rows = math.ceil(shown / cols)
    figure = new_figure(4.4 * cols, 4.2 * rows)
    for n in range(shown):
        row, joined = frame.iloc[n], pairs[n]
        ax = figure.add_subplot(rows, cols, n + 1)
        # Rank 1 = best, so the best architectures sit in the lower-left corner.
        ra = joined["a"].rank(ascending=not high, method="average")
        rb = joined["b"].rank(ascending=not high, method="average")
        both = (ra <= row.top_k) & (rb <= row.top_k)
        ax.scatter(ra, rb, s=3, alpha=0.35, color="0.45", linewidths=0, label=f"{row.shared:,} shared")
        ax.scatter(ra[both], rb[both], s=10, color="tab:orange", label=f"top {row.top_k} in both ({row.top_k_overlap})")
        ax.set_xlabel(f"rank in {row.table_a} (1 = best)")
        ax.set_ylabel(f"rank in {row.table_b} (1 = best)")
        ax.set_title(f"{row.metric}: tau {fmt(row.kendall)}, rho {fmt(row.spearman)}", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", markerscale=2)
        ax.grid(alpha=0.3)
    return figure


# --------------------------------------------------------------------------------------------
# 2. robustness as a calibration measure

ROBUSTNESS = (2, "robustness", "Robustness as a calibration measure")
MEAN_CORRUPTION = "mean corruption acc"
MEAN_ADVERSARIAL = "mean adversarial acc"


def _spearman(x: np.ndarray, y: np.ndarray, z: np.ndarray | None = None) -> tuple[int, float, float]:
    """(n, rho, rho with z's ranks partialled out) over the rows where all are finite."""
    ok = np.isfinite(x) & np.isfinite(y) & (np.isfinite(z) if z is not None else True)
    n = int(ok.sum())
    if n < MIN_PAIRS or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return n, np.nan, np.nan
    rx, ry = stats.rankdata(x[ok]), stats.rankdata(y[ok])
    rho = float(np.corrcoef(rx, ry)[0, 1])
    if z is None or np.ptp(z[ok]) == 0:
        return n, rho, np.nan
    # Partial rank correlation: correlate what is left of both ranks after a linear fit on z's.
    design = np.column_stack([np.ones(n), stats.rankdata(z[ok])])
    resid_x = rx - design @ np.linalg.lstsq(design, rx, rcond=None)[0]
    resid_y = ry - design @ np.linalg.lstsq(design, ry, rcond=None)[0]
    if np.ptp(resid_x) == 0 or np.ptp(resid_y) == 0:
        return n, rho, np.nan
    return n, rho, float(np.corrcoef(resid_x, resid_y)[0, 1])


def robustness_columns(table) -> list[str]:
    return [c for c in table.frame.columns if family(c) == "robustness" and missing_column(table, c) is None]


def robustness(table, *, data_dir=None) -> AnalysisResult:
    """Is robustness a calibration measure? Spearman rho between each robustness column (and the
    mean corruption / adversarial accuracy) and each headline calibration metric, also with
    accuracy's ranks partialled out (robustness and calibration both follow accuracy)."""
    table = as_table(table, data_dir=data_dir)
    robust = robustness_columns(table)
    if not robust:
        return unanswered(*ROBUSTNESS, f"Question 2 needs robustness columns (corruption accuracies such as "
                          f"brightness, adversarial accuracies such as fgsm_Linf_acc0_1, or pre_auc_* OOD AUROCs); "
                          f"{label(table)} has none.")
    calibration = calibration_columns(table)
    if not calibration:
        return unanswered(*ROBUSTNESS, f"Question 2 needs calibration columns such as pre_ECE_15; "
                          f"{label(table)} has none.")
    has_acc = missing_column(table, "acc") is None
    data = distinct(table, (["acc"] if has_acc else []) + robust + calibration)
    corruption = [c for c in robust if c.lower() in CORRUPTIONS]
    adversarial = [c for c in robust if c not in corruption and not c.lower().startswith("pre_auc_")]
    rows_of = {}
    if len(corruption) > 1:
        rows_of[MEAN_CORRUPTION] = data[corruption].mean(axis=1)
    if len(adversarial) > 1:
        rows_of[MEAN_ADVERSARIAL] = data[adversarial].mean(axis=1)
    rows_of.update({c: data[c] for c in robust})
    z = data["acc"].to_numpy(np.float64) if has_acc else None
    records = []
    for name, series in rows_of.items():
        x = series.to_numpy(np.float64)
        for target in (["acc"] if has_acc else []) + calibration:
            n, rho, partial = _spearman(x, data[target].to_numpy(np.float64), None if target == "acc" else z)
            records.append({"robustness": name, "versus": target, "n": n, "spearman": rho,
                            "spearman_given_acc": partial})
    frame = pd.DataFrame(records)
    matrix = frame.pivot(index="robustness", columns="versus", values="spearman").loc[list(rows_of),
                                                                                       frame["versus"].unique()]
    return AnalysisResult(*ROBUSTNESS, _robustness_summary(table, frame, rows_of, corruption, adversarial, has_acc),
                          frame, _robustness_figure(matrix))


def _robustness_summary(table, frame, rows_of, corruption, adversarial, has_acc) -> str:
    lead = next(iter(rows_of))
    n = int(frame["n"].max())
    parts = [f"Over {n:,} {unit_word(table)} of {label(table)} with {len(corruption)} corruption and "
             f"{len(adversarial)} adversarial accuracy columns:"]
    for name in [r for r in (MEAN_CORRUPTION, MEAN_ADVERSARIAL) if r in rows_of] or [lead]:
        sub = frame[(frame["robustness"] == name) & (frame["versus"] != "acc")].set_index("versus")
        shown = [c for c in (f"pre_ECE_{HEADLINE_BINS}", f"post_ECE_{HEADLINE_BINS}") if c in sub.index] or [sub.index[0]]
        text = ", ".join(f"rho {fmt(sub.loc[c, 'spearman'])} with {c}" for c in shown)
        if has_acc:
            text += " (" + ", ".join(f"{fmt(sub.loc[c, 'spearman_given_acc'])}" for c in shown) + " with accuracy held fixed)"
        parts.append(f"{name} has {text}.")
    calib = frame[frame["versus"] != "acc"].dropna(subset=["spearman"])
    if len(calib):
        strongest = calib.loc[calib["spearman"].abs().idxmax()]
        parts.append(f"The strongest link is {strongest.robustness} with {strongest.versus} "
                     f"(rho {fmt(strongest.spearman)}).")
    if has_acc:
        acc = frame[(frame["robustness"] == lead) & (frame["versus"] == "acc")]["spearman"].iloc[0]
        parts.append(f"Accuracy itself has rho {fmt(acc)} with {lead}, so the accuracy-adjusted values are the "
                     "better guide to robustness as a calibration measure.")
    return " ".join(parts)


def _robustness_figure(matrix: pd.DataFrame):
    height = 1.6 + 0.26 * len(matrix)
    figure = new_figure(1.8 + 0.55 * matrix.shape[1], max(3.5, height))
    ax = figure.add_subplot(1, 1, 1)
    heatmap(figure, ax, matrix, label="Spearman rho", annotate=len(matrix) <= 40)
    ax.set_title("robustness vs calibration (rows: robustness columns)", fontsize=9)
    return figure


# --------------------------------------------------------------------------------------------
# 3. metric reliability

AGREEMENT = (3, "metrics", "Metric reliability: do the calibration metrics rank alike?")


def metric_agreement(table, *, method: str = "kendall", columns=None, data_dir=None) -> AnalysisResult:
    """Rank-correlation matrix (Kendall tau-b by default) between the calibration metrics, pre and
    post temperature scaling, over one row per distinct network."""
    table = as_table(table, data_dir=data_dir)
    columns = [resolve_metric(c, [table]) for c in columns] if columns else calibration_columns(table)
    present = [c for c in columns if missing_column(table, c) is None]
    if len(present) < 2:
        return unanswered(*AGREEMENT, "Question 3 needs two or more calibration metric columns (such as "
                          f"pre_ECE_15 and pre_NLL); {label(table)} has {len(present)}.")
    data = distinct(table, present)
    matrix = rank_matrix(data, method)
    if len(matrix) < 2:
        # rank_matrix keeps only metrics that vary: a constant one ranks nothing
        return unanswered(*AGREEMENT, f"Question 3 needs two or more calibration metrics that vary over the table; "
                          f"{len(present)} are present in {label(table)} but {len(matrix)} vary.")
    matrix.index.name = "metric"
    n = len(data[list(matrix.columns)].dropna())
    figure = new_figure(2.2 + 0.5 * len(matrix), 1.6 + 0.45 * len(matrix))
    ax = figure.add_subplot(1, 1, 1)
    heatmap(figure, ax, matrix, label=f"{method} rank correlation", fontsize=7 if len(matrix) <= 20 else 5)
    ax.set_title(f"{label(table)}: {n:,} {unit_word(table)}", fontsize=9)
    summary = _agreement_summary(table, matrix, method, n)
    details = {}
    seeds = seed_agreement(table, list(matrix.columns))
    if seeds is not None:
        details["seeds"] = seeds
        summary += " " + _seed_summary(seeds)
    return AnalysisResult(*AGREEMENT, summary, matrix, figure, details=details)


# Below this seed-to-seed rho a metric's ranks are mostly noise, and correcting for attenuation
# (dividing by its square root) would multiply noise.
MIN_RELIABILITY = 0.2


def seed_agreement(table, columns) -> pd.DataFrame | None:
    """Do the metrics agree beyond seed noise? On a table with several training seeds (a curve
    table), per pair of metrics: Spearman's rho on one seed (``same_seed_rho``, the mean over
    seeds), between one seed's values of the first and another seed's of the second
    (``cross_seed_rho``, the mean over seed pairs: seed noise shared by the two metrics drops
    out), each metric's seed-to-seed rho (``reliability_a``/``_b``: how well a second training
    reproduces its ranks) and ``corrected_rho``, cross-seed rho over the square root of the two
    reliabilities (Spearman's correction for attenuation: the agreement the metrics would show
    without seed noise), left empty where a reliability is below :data:`MIN_RELIABILITY` (there
    the correction divides noise by noise). None for a single-seed table. Spearman, not Kendall: the cross-seed
    matrices are products of standardised ranks, cheap for every pair."""
    from calnas.curve_table import curve_source

    curves = curve_source(table.name)
    if curves is None or len(curves.seeds) < 2:
        return None
    frames = [curves.seed_frame(s).set_index("index") for s in curves.seeds]
    columns = [c for c in columns if all(c in f.columns for f in frames)]
    if len(columns) < 2:
        return None
    common = frames[0].index
    for f in frames[1:]:
        common = common.intersection(f.index)
    z = []
    for f in frames:
        ranks = f.loc[common, columns].astype(float).rank()
        ranks = ranks.fillna(ranks.mean())  # a missing value takes the middle rank, moving no correlation
        spread = ranks.std(ddof=0).replace(0, np.nan)
        z.append(((ranks - ranks.mean()) / spread).to_numpy())
    n, k = len(common), len(z)
    same = sum(zs.T @ zs for zs in z) / (k * n)
    cross = sum(z[a].T @ z[b] for a in range(k) for b in range(k) if a != b) / (k * (k - 1) * n)
    cross = (cross + cross.T) / 2
    reliability = np.diag(cross)
    with np.errstate(invalid="ignore", divide="ignore"):
        corrected = cross / np.sqrt(np.outer(reliability, reliability))
    i, j = np.triu_indices(len(columns), 1)
    return pd.DataFrame({"metric_a": np.array(columns)[i], "metric_b": np.array(columns)[j],
                         "same_seed_rho": same[i, j], "cross_seed_rho": cross[i, j],
                         "reliability_a": reliability[i], "reliability_b": reliability[j],
                         "corrected_rho": np.where(np.minimum(reliability[i], reliability[j]) >= MIN_RELIABILITY,
                                                   corrected[i, j], np.nan),
                         "networks": n, "seeds": k})


def _seed_summary(frame: pd.DataFrame) -> str:
    per_metric = pd.concat([frame.set_index("metric_a")["reliability_a"],
                            frame.set_index("metric_b")["reliability_b"]]).groupby(level=0).first()
    text = (f"Beyond seed noise ({int(frame['seeds'].iloc[0])} training seeds, Spearman): a metric's ranks "
            f"reproduce from one seed to another with rho {per_metric.min():.2f} ({per_metric.idxmin()}) to "
            f"{per_metric.max():.2f} ({per_metric.idxmax()})")
    kept = frame.dropna(subset=["corrected_rho"])
    if len(kept):
        low = kept.loc[kept["corrected_rho"].idxmin()]
        text += (f"; over the {len(kept)} pairs of metrics that both reproduce with rho >= {MIN_RELIABILITY}, "
                 f"median rho {kept['same_seed_rho'].median():.2f} on one seed and {kept['corrected_rho'].median():.2f} "
                 f"corrected for seed noise (least: {low.metric_a} / {low.metric_b}, {low.corrected_rho:.2f})")
    return text + " (per pair: q3-metrics-seeds.csv)."


def _agreement_summary(table, matrix: pd.DataFrame, method: str, n: int) -> str:
    symbol = "tau" if method == "kendall" else "rho"
    parts = [f"{method.capitalize()} rank correlations of {len(matrix)} calibration metrics over {n:,} "
             f"{unit_word(table)} of {label(table)}."]
    for prefix in PREFIXES:
        cols = [c for c in matrix.columns if c.startswith(prefix + "_")]
        if len(cols) < 2:
            continue
        block = matrix.loc[cols, cols].to_numpy()
        i, j = np.triu_indices(len(cols), 1)
        off = block[i, j]
        worst = int(np.argmin(off))
        parts.append(f"Between the {len(cols)} {prefix} metrics {symbol} runs from {off.min():.2f} to "
                     f"{off.max():.2f} (median {np.median(off):.2f}); the least agreeing pair is "
                     f"{cols[i[worst]]} / {cols[j[worst]]}.")
    same = [(c, "post" + c[3:]) for c in matrix.columns if c.startswith("pre_") and "post" + c[3:] in matrix.columns]
    if same:
        taus = pd.Series({a[4:]: matrix.loc[a, b] for a, b in same})
        parts.append(f"A metric's pre and post ranks agree with median {symbol} {taus.median():.2f} "
                     f"(lowest {taus.idxmin()}: {taus.min():.2f}), so temperature scaling reorders architectures.")
    return " ".join(parts)


# --------------------------------------------------------------------------------------------
# 5. calibration vs accuracy

ACCURACY = (5, "accuracy", "Calibration vs accuracy")
TOP_FRACTIONS = (1.0, 0.1, 0.01)


def calibration_vs_accuracy(table, metric: str = "ece", *, fractions=TOP_FRACTIONS, data_dir=None) -> AnalysisResult:
    """Rank correlation between accuracy and a calibration metric over all distinct networks and
    within the most accurate 10% and 1% (each subset: ceil(fraction x n) networks)."""
    table = as_table(table, data_dir=data_dir)
    column = resolve_metric(metric, [table])
    if column == "acc":
        return unanswered(*ACCURACY, "Question 5 needs a calibration metric (such as ece) to set against accuracy.")
    for needed in ("acc", column):
        missing = missing_column(table, needed)
        if missing:
            return unanswered(*ACCURACY, f"Question 5 needs acc and {column}; {missing}.")
    data = distinct(table, ["acc", column]).dropna()
    ordered = data.sort_index(kind="stable").sort_values("acc", ascending=False, kind="stable")
    rows, subsets = [], []
    for fraction in fractions:
        k = min(len(ordered), math.ceil(fraction * len(ordered)))
        sub = ordered.iloc[:k]
        corr = rank_correlations(sub["acc"], sub[column])
        name = "all" if fraction >= 1 else f"top {fraction:.0%}"
        rows.append({"subset": name, "fraction": fraction, "n": k, "acc_min": sub["acc"].min(),
                     "acc_max": sub["acc"].max(), f"median_{column}": sub[column].median(), **corr})
        subsets.append((name, sub))
    frame = pd.DataFrame(rows)
    return AnalysisResult(*ACCURACY, _accuracy_summary(table, frame, column), frame,
                          _accuracy_figure(subsets, column))


def _accuracy_summary(table, frame: pd.DataFrame, column: str) -> str:
    parts = []
    for r in frame.itertuples():
        where = f"all {r.n:,} {unit_word(table)}" if r.subset == "all" else \
            f"the {r.subset} most accurate ({r.n:,}, acc >= {r.acc_min:.3f})"
        if np.isfinite(r.spearman):
            parts.append(f"over {where}, Spearman rho {r.spearman:.3f} (Kendall tau {r.kendall:.3f}, "
                         f"p {_p_value(r.spearman_p)})")
        elif r.n >= 3:
            parts.append(f"over {where}, no rank correlation (acc or {column} is constant there)")
        else:
            parts.append(f"over {where}, too few to correlate")
    whole = frame.iloc[0]
    sign = "higher" if whole.spearman > 0 else "lower"
    lead = (f"Accuracy vs {column} on {label(table)}: " + "; ".join(parts) + ".")
    if np.isfinite(whole.spearman):
        lead += f" Overall, more accurate networks have {sign} {column}{_judgement(column, sign == 'higher')}."
    return lead


def _judgement(column: str, higher: bool) -> str:
    """' (better calibration)' or ' (worse calibration)' for a calibration metric only: a higher
    temperature or parameter count is neither."""
    if family(column) != "calibration":
        return ""
    return f" ({'better' if higher == better_high(column) else 'worse'} calibration)"


def _p_value(p: float) -> str:
    # Below about 1e-16 scipy's p-values are rounding noise or underflow to 0.
    return "< 1e-16" if p < 1e-16 else f"{p:.2g}"


def _accuracy_figure(subsets, column: str):
    figure = new_figure(10, 4.2)
    colours = ["0.6", "tab:blue", "tab:orange", "tab:red"]
    for n, zoom in enumerate((False, True)):
        ax = figure.add_subplot(1, 2, n + 1)
        shown = subsets[1:] if zoom and len(subsets) > 1 else subsets
        for (name, sub), colour in zip(shown, colours[1:] if zoom else colours):
            ax.scatter(sub["acc"], sub[column], s=4 if name == "all" else 8, alpha=0.5 if name == "all" else 0.8,
                       color=colour, linewidths=0, label=f"{name} (n={len(sub):,})")
        ax.set_xlabel("acc")
        ax.set_ylabel(column)
        ax.set_title("most accurate subsets" if zoom else "all distinct networks", fontsize=9)
        ax.legend(fontsize=7, markerscale=2)
        ax.grid(alpha=0.3)
    return figure
