"""Question 7: which design choices (an operation on a TSS edge, a width of an SSS layer) go with
better or worse calibration?"""

from __future__ import annotations

import numpy as np
import pandas as pd

from calnas.analysis._base import (
    AnalysisResult,
    as_table,
    better_high,
    heatmap,
    label,
    missing_column,
    new_figure,
    resolve_metric,
    top_units,
    unanswered,
    unit_keys,
    unit_word,
)
from calnas.errors import UserError

DESIGN = (7, "design", "Architecture design: each choice's effect, and the best architectures' choices")
N_BOOT = 1000
CONFIDENCE = 0.95
TOP_K = 100
_CHUNK = 100  # bootstrap resamples per matrix product, to bound memory on large tables


def architecture_design(table, metric: str = "ece", *, top_k: int = TOP_K, n_boot: int = N_BOOT, seed: int = 0,
                        confidence: float = CONFIDENCE, data_dir=None) -> AnalysisResult:
    """Effect of each choice (operation o on edge e for TSS, width w of layer l for SSS) on a metric:
    the mean over the architectures with that choice minus the mean over those without, with a
    percentile confidence interval from a seeded cluster bootstrap over distinct networks; and
    how often each choice occurs among the ``top_k`` networks best by the metric."""
    table = as_table(table, data_dir=data_dir)
    column = resolve_metric(metric, [table])
    if not 0 < confidence < 1:
        raise UserError(f"confidence must be in (0, 1), got {confidence!r}")
    if n_boot < 1 or top_k < 1:
        raise UserError(f"n_boot and top_k must be positive, got {n_boot} and {top_k}")
    missing = missing_column(table, column)
    if missing:
        return unanswered(*DESIGN, f"Question 7 needs {column}; {missing}.")
    values = pd.to_numeric(table.frame[column], errors="coerce").to_numpy(np.float64)
    keep = np.isfinite(values)
    values = values[keep]
    space = table.space
    options = space.param_choices()
    genes = pd.DataFrame([space.to_params(a) for a in table.frame["arch"].to_numpy()[keep]])
    pairs = [(position, choice) for position, choices in options.items() for choice in choices]
    has = np.column_stack([(genes[position] == choice).to_numpy() for position, choice in pairs]).astype(np.float64)

    # Sums per distinct network (cluster): every statistic below is a ratio of cluster sums, so
    # resampling clusters only reweights these rows.
    codes, clusters = pd.factorize(unit_keys(table)[keep])
    count = np.bincount(codes).astype(np.float64)
    total = np.bincount(codes, weights=values)
    with_count = _cluster_sums(codes, has)
    with_total = _cluster_sums(codes, has * values[:, None])
    effect = _effects(np.ones((1, len(count))), count, total, with_count, with_total)[0]
    draws = []
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, _CHUNK):
        weights = rng.multinomial(len(count), np.full(len(count), 1.0 / len(count)), size=min(_CHUNK, n_boot - start))
        draws.append(_effects(weights.astype(np.float64), count, total, with_count, with_total))
    draws = np.vstack(draws)
    tail = 100 * (1 - confidence) / 2
    low, high = np.full_like(effect, np.nan), np.full_like(effect, np.nan)
    known = np.isfinite(draws).any(axis=0)  # a choice no resample can contrast has no interval
    low[known], high[known] = np.nanpercentile(draws[:, known], [tail, 100 - tail], axis=0)

    # Top-k: each network counts once; its choice frequency is the share of its class's cells
    # having the choice (TSS), 0 or 1 for a single architecture.
    share = with_count / count[:, None]
    unit_value = pd.Series(total / count, index=clusters)
    k = min(top_k, len(unit_value))
    best = unit_value.index.get_indexer(top_units(unit_value, k, better_high(column)))
    n_with = with_count.sum(axis=0)
    frame = pd.DataFrame({
        "position": [p for p, _ in pairs], "choice": [c for _, c in pairs], "n_with": n_with.astype(int),
        "mean_with": with_total.sum(axis=0) / np.where(n_with > 0, n_with, np.nan),
        "effect": effect, "ci_low": low, "ci_high": high,
        "top_k_frequency": share[best].mean(axis=0), "all_frequency": share.mean(axis=0),
    })
    info = {"column": column, "k": k, "n_boot": n_boot, "seed": seed, "confidence": confidence,
            "rows": int(keep.sum()), "units": len(count), "constant": bool(unit_value.nunique() <= 1)}
    return AnalysisResult(*DESIGN, _summary(table, frame, info), frame, _figure(frame, options, info))


def _cluster_sums(codes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return pd.DataFrame(matrix).groupby(codes, sort=True).sum().to_numpy()


def _effects(weights, count, total, with_count, with_total) -> np.ndarray:
    """Mean with minus mean without each choice, for each row of cluster weights (R, clusters)."""
    n_all, s_all = weights @ count, weights @ total
    n_with, s_with = weights @ with_count, weights @ with_total
    with np.errstate(invalid="ignore", divide="ignore"):
        return s_with / n_with - (s_all[:, None] - s_with) / (n_all[:, None] - n_with)


def _summary(table, frame: pd.DataFrame, info: dict) -> str:
    column, word = info["column"], unit_word(table)
    kind = "operation on an edge" if table.space.name == "tss" else "width of a layer"
    parts = [f"Effect of each {kind} on {column} over {info['rows']:,} architectures of {label(table)} "
             f"(mean with it minus mean without; {info['confidence']:.0%} CI from {info['n_boot']:,} "
             f"cluster-bootstrap resamples of the {info['units']:,} {word}, seed {info['seed']}):"]
    known = frame.dropna(subset=["effect"])
    if len(known):
        up, down = known.loc[known["effect"].idxmax()], known.loc[known["effect"].idxmin()]
        parts.append(f"the largest increase is {up.choice} at {up.position} ({up.effect:+.4f}, CI {up.ci_low:+.4f} "
                     f"to {up.ci_high:+.4f}), the largest decrease {down.choice} at {down.position} "
                     f"({down.effect:+.4f}, CI {down.ci_low:+.4f} to {down.ci_high:+.4f});")
        clear = int(((known["ci_low"] > 0) | (known["ci_high"] < 0)).sum())
        parts.append(f"{clear} of {len(known)} intervals exclude 0.")
    lift = frame["top_k_frequency"] - frame["all_frequency"]
    if info["constant"]:
        parts.append(f"{column} is constant over the table, so no choice is over- or under-represented among "
                     f"the best.")
        return " ".join(parts)
    over, under = frame.loc[lift.idxmax()], frame.loc[lift.idxmin()]
    parts.append(f"Among the {info['k']} {word} best by {column}, the most over-represented choice is {over.choice} "
                 f"at {over.position} ({over.top_k_frequency:.0%} vs {over.all_frequency:.0%} overall), the most "
                 f"under-represented {under.choice} at {under.position} ({under.top_k_frequency:.0%} vs "
                 f"{under.all_frequency:.0%}).")
    return " ".join(parts)


def _figure(frame: pd.DataFrame, options: dict, info: dict):
    positions = list(options)
    choices = list(dict.fromkeys(c for opts in options.values() for c in opts))
    effect = frame.pivot(index="position", columns="choice", values="effect").reindex(index=positions, columns=choices)
    clear = (frame.assign(clear=(frame["ci_low"] > 0) | (frame["ci_high"] < 0))
             .pivot(index="position", columns="choice", values="clear").reindex(index=positions, columns=choices))
    top = frame.pivot(index="position", columns="choice", values="top_k_frequency").reindex(index=positions,
                                                                                             columns=choices)
    figure = new_figure(12, 1.8 + 0.5 * len(positions))
    ax = figure.add_subplot(1, 2, 1)
    span = float(np.nanmax(np.abs(effect.to_numpy()))) if np.isfinite(effect.to_numpy()).any() else 1.0
    texts = [[f"{v:+.3f}" + ("*" if c is True else "") for v, c in zip(vs, cs)]
             for vs, cs in zip(effect.to_numpy(), clear.to_numpy())]
    heatmap(figure, ax, effect, vmin=-span, vmax=span, texts=texts, label=f"effect on {info['column']}")
    ax.set_title(f"mean with - mean without (* {info['confidence']:.0%} CI excludes 0)", fontsize=9)
    ax = figure.add_subplot(1, 2, 2)
    heatmap(figure, ax, top, vmin=0.0, vmax=1.0, cmap="viridis", fmt="{:.0%}", label="frequency")
    ax.set_title(f"frequency among the {info['k']} best by {info['column']}", fontsize=9)
    return figure
