"""Binned calibration errors (ECE, equal-mass ECE, MCE, classwise CE) for many bin counts at once.

Conventions (those of the calibration study's code, see docs/metrics.md):

* Equal-width bins have edges ``np.linspace(0, 1, B + 1)`` and membership ``lo < c <= hi``.
  A value of exactly 0 therefore falls in no bin but still counts in N (this only happens for
  classwise probabilities; a top-label confidence is at least 1/K).
* Equal-mass bins follow ``get_equal_bins`` of the uncertainty-calibration package (Kumar et al.
  2019), which the study called through ``get_ece_em``: the sorted values are cut into
  ``min(B, N)`` chunks whose sizes differ by at most one (``np.array_split``); the edges are the
  midpoints between neighbouring chunks plus 1.0, and membership is ``e[j-1] < c <= e[j]``.
  Tied values straddling a cut all land in the lower bin, so the result depends only on the data,
  never on the order of ties.
* CE = sum over bins of (n_b / N) |mean value - mean outcome| = sum |sum(value - outcome)| / N.
  MCE = the largest |mean value - mean outcome| over non-empty bins.

How it stays fast: each row of values (the top-label confidences, or one class's probabilities) is
sorted once; per-bin sums for every bin count are then differences of a cumulative sum read at
``np.searchsorted`` positions of all edges together. Outcomes are counted by searching the sorted
values of the positive samples, so no per-sample bin index is ever materialised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from calnas.metric_names import BINS
from calnas.errors import UserError
from calnas.metrics._inputs import TopLabel, check_labels, check_probs

DEFAULT_BINS: tuple[int, ...] = BINS
# The largest bin count (the study's largest is 500): memory grows with K x bins for classwise CE.
MAX_BINS = 10_000


def check_bins(bins: Iterable[int] | int) -> tuple[int, ...]:
    """Positive, distinct integer bin counts of at most :data:`MAX_BINS`, in the order given."""
    if isinstance(bins, (int, np.integer)):
        bins = (bins,)
    try:
        bins = list(bins)
    except TypeError:
        raise UserError(f"bin counts must be an integer or a sequence of integers, got {bins!r}") from None
    out = []
    for b in bins:
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or not 1 <= b <= MAX_BINS:
            raise UserError(f"bin counts must be positive integers of at most {MAX_BINS}, got {b!r}")
        out.append(int(b))
    if not out:
        raise UserError("at least one bin count is needed")
    if len(set(out)) != len(out):
        raise UserError(f"bin counts must be distinct, got {out}")
    return tuple(out)


@dataclass(frozen=True)
class _SortedRows:
    """R rows of N values, each sorted, with what is needed to sum over any value threshold."""

    values: np.ndarray  # (R, N), each row ascending
    cumsum: np.ndarray  # (R, N + 1), cumsum[r, i] = sum of the i smallest values of row r
    positives: list  # per row: ascending values of the samples whose outcome is 1

    @classmethod
    def build(cls, values: np.ndarray, positives: list) -> "_SortedRows":
        values = np.sort(values, axis=1)
        cumsum = np.zeros((values.shape[0], values.shape[1] + 1))
        np.cumsum(values, axis=1, out=cumsum[:, 1:])
        return cls(values, cumsum, [np.sort(p) for p in positives])

    @property
    def n(self) -> int:
        return self.values.shape[1]

    def at_thresholds(self, edges: np.ndarray):
        """For each row r and edge e (edges has shape (R, E)): how many values are <= e, their
        sum, and how many of them are positives."""
        rows, n_edges = edges.shape
        count = np.empty((rows, n_edges), dtype=np.intp)
        pos = np.empty((rows, n_edges), dtype=np.intp)
        for r in range(rows):
            count[r] = np.searchsorted(self.values[r], edges[r], side="right")
            pos[r] = np.searchsorted(self.positives[r], edges[r], side="right")
        total = np.take_along_axis(self.cumsum, count, axis=1)
        return count, total, pos


def _equal_width_edges(n_bins: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, n_bins + 1)


def _equal_mass_edges(sorted_values: np.ndarray, n_bins: int) -> np.ndarray:
    """Edges (R, m + 1) of the uncertainty-calibration equal-mass scheme, with -inf prepended so
    that bins are always "between consecutive edges"."""
    rows, n = sorted_values.shape
    m = min(n_bins, n)
    q, r = divmod(n, m)
    starts = np.arange(1, m) * q + np.minimum(np.arange(1, m), r)
    mids = (sorted_values[:, starts - 1] + sorted_values[:, starts]) / 2.0
    edges = np.empty((rows, m + 1))
    edges[:, 0] = -np.inf
    edges[:, 1:-1] = mids
    edges[:, -1] = 1.0
    return edges


@dataclass(frozen=True)
class BinStats:
    """Per-bin totals for one row and one binning: bins lie between consecutive ``edges``."""

    edges: np.ndarray  # (m + 1,)
    count: np.ndarray  # (m,)
    value_sum: np.ndarray  # (m,)
    positive: np.ndarray  # (m,)
    n: int

    def calibration_error(self) -> float:
        return float(np.abs(self.value_sum - self.positive).sum() / self.n)

    def max_calibration_error(self) -> float:
        filled = self.count > 0
        if not filled.any():
            raise UserError("no value falls in any bin (all values are exactly 0)")
        gap = np.abs(self.value_sum - self.positive)[filled] / self.count[filled]
        return float(gap.max())


def _block_errors(rows: _SortedRows, blocks: list[np.ndarray], want_max: bool):
    """CE (and MCE) of every row under every block of edges, in one pass.

    ``blocks[i]`` is an (R, m_i + 1) edge array. Returns ce (R, n_blocks) and mce (R, n_blocks) or
    None. All edges are searched together; per-bin totals are differences between consecutive
    edges, and the difference that would straddle two blocks is zeroed before the per-block
    reductions."""
    edges = np.concatenate(blocks, axis=1)
    count, total, pos = rows.at_thresholds(edges)
    starts = np.cumsum([0] + [b.shape[1] for b in blocks[:-1]])
    gap = np.abs(np.diff(total - pos, axis=1))
    gap[:, starts[1:] - 1] = 0.0
    ce = np.add.reduceat(gap, starts, axis=1) / rows.n
    if not want_max:
        return ce, None
    n_in_bin = np.diff(count, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_gap = np.where(n_in_bin > 0, gap / n_in_bin, 0.0)
    mean_gap[:, starts[1:] - 1] = 0.0
    return ce, np.maximum.reduceat(mean_gap, starts, axis=1)


def _top_rows(top: TopLabel) -> _SortedRows:
    cumsum = np.zeros(top.n + 1)
    np.cumsum(top.sorted_confidence, out=cumsum[1:])
    return _SortedRows(top.sorted_confidence[None, :], cumsum[None, :], [top.sorted_correct_confidence])


def _class_rows(probs: np.ndarray, labels: np.ndarray) -> _SortedRows:
    k = probs.shape[1]
    by_class = np.argsort(labels, kind="stable")
    splits = np.cumsum(np.bincount(labels, minlength=k))[:-1]
    members = np.split(by_class, splits)
    positives = [probs[idx, c] for c, idx in enumerate(members)]
    return _SortedRows.build(np.ascontiguousarray(probs.T), positives)


def top_label_binned(top: TopLabel, bins: Sequence[int]) -> dict[int, dict[str, float]]:
    """{B: {"ECE": .., "ECE_em": .., "MCE": ..}} for every bin count B."""
    rows = _top_rows(top)
    width = [_equal_width_edges(b)[None, :] for b in bins]
    mass = [_equal_mass_edges(rows.values, b) for b in bins]
    ce_w, mce_w = _block_errors(rows, width, want_max=True)
    ce_m, _ = _block_errors(rows, mass, want_max=False)
    return {
        b: {"ECE": float(ce_w[0, i]), "ECE_em": float(ce_m[0, i]), "MCE": float(mce_w[0, i])}
        for i, b in enumerate(bins)
    }


def classwise_binned(
    probs: np.ndarray, labels: np.ndarray, bins: Sequence[int]
) -> dict[int, dict[str, float]]:
    """{B: {"cwCE": .., "cwCE_em": ..}}: per-class CE of p_k against 1[y = k], averaged over all
    K classes (classes absent from ``labels`` included)."""
    rows = _class_rows(probs, labels)
    k = probs.shape[1]
    width = [np.broadcast_to(_equal_width_edges(b), (k, b + 1)) for b in bins]
    mass = [_equal_mass_edges(rows.values, b) for b in bins]
    ce, _ = _block_errors(rows, width + mass, want_max=False)
    ce = ce.mean(axis=0)
    return {
        b: {"cwCE": float(ce[i]), "cwCE_em": float(ce[len(bins) + i])} for i, b in enumerate(bins)
    }


def top_label_bin_stats(top: TopLabel, n_bins: int, equal_mass: bool = False) -> BinStats:
    """Per-bin totals of the top-label confidences (used by the reliability diagram)."""
    rows = _top_rows(top)
    if equal_mass:
        edges = _equal_mass_edges(rows.values, n_bins)
    else:
        edges = _equal_width_edges(n_bins)[None, :]
    count, total, pos = rows.at_thresholds(edges)
    return BinStats(edges[0], np.diff(count[0]), np.diff(total[0]), np.diff(pos[0]), rows.n)


# --- single-metric entry points ------------------------------------------------------------


def _top_label_metric(probs, labels, n_bins: int, key: str) -> float:
    (b,) = check_bins(n_bins)
    return top_label_binned(TopLabel.checked(probs, labels), (b,))[b][key]


def _prepare(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    p = check_probs(probs)
    return p, check_labels(labels, p.shape[0], p.shape[1])


def binned_errors(probs, labels, bins: Iterable[int] = DEFAULT_BINS, *, classwise: bool = False) -> dict[str, float]:
    """Every binned error at every bin count in one pass, validating the input once:
    ``{"ECE_5": .., ..., "ECE_em_5": .., ..., "MCE_5": .., ...}`` (the panel's column names without
    the pre_/post_ prefix), plus ``cwCE_B`` and ``cwCE_em_B`` when ``classwise``.

    Equal to calling :func:`ece`, :func:`ece_em`, :func:`mce` (and the classwise ones) per bin
    count, which re-validates and re-sorts the input every call: at the study's nine bin counts
    this is many times faster (docs/metrics.md, "Speed")."""
    bins = check_bins(bins)
    p, y = _prepare(probs, labels)
    top = top_label_binned(TopLabel.from_probs(p, y), bins)
    out = {f"{kind}_{b}": top[b][kind] for kind in ("ECE", "ECE_em", "MCE") for b in bins}
    if classwise:
        per_class = classwise_binned(p, y, bins)
        out.update({f"{kind}_{b}": per_class[b][kind] for kind in ("cwCE", "cwCE_em") for b in bins})
    return out


def ece(probs, labels, n_bins: int = 15) -> float:
    """Top-label ECE with equal-width bins (``lo < c <= hi``)."""
    return _top_label_metric(probs, labels, n_bins, "ECE")


def ece_em(probs, labels, n_bins: int = 15) -> float:
    """Top-label ECE with equal-mass bins (uncertainty-calibration ``get_ece_em`` scheme)."""
    return _top_label_metric(probs, labels, n_bins, "ECE_em")


def mce(probs, labels, n_bins: int = 15) -> float:
    """Maximum calibration error: the largest per-bin gap over non-empty equal-width bins."""
    return _top_label_metric(probs, labels, n_bins, "MCE")


def classwise_ece(probs, labels, n_bins: int = 15) -> float:
    """Classwise CE with equal-width bins, averaged over all K classes."""
    p, y = _prepare(probs, labels)
    (b,) = check_bins(n_bins)
    return classwise_binned(p, y, (b,))[b]["cwCE"]


def classwise_ece_em(probs, labels, n_bins: int = 15) -> float:
    """Classwise CE with equal-mass bins per class (``get_ece_em(..., mode='marginal')``)."""
    p, y = _prepare(probs, labels)
    (b,) = check_bins(n_bins)
    return classwise_binned(p, y, (b,))[b]["cwCE_em"]
