"""Selective-prediction metrics on the top-label confidence.

The score is the confidence; "positive" means the prediction is correct. Tied confidences are
never split arbitrarily:

* AUROC counts a tie between a correct and an incorrect sample as 1/2 (Mann-Whitney with average
  ranks, as sklearn's roc_auc_score). Undefined (NaN) when every prediction is correct or every
  one is wrong.
* AURC is the mean selective risk over coverages k/N, k = 1..N, samples taken by decreasing
  confidence (Geifman et al. 2019). Within a run of equal confidences the expected error count
  under a random order is used (linear interpolation), so AURC is the average over all orderings
  of the ties; with distinct confidences it is the usual value.
* E-AURC = AURC - AURC of a perfect ranking with the same number of errors, computed with the
  same discrete estimator (so E-AURC >= 0 and is 0 for a perfect ranking). The continuous formula
  r + (1 - r) ln(1 - r) often quoted for the optimum is this value's large-N limit.
* coverage at selective accuracy t: the largest fraction of samples that can be kept, by a
  confidence threshold, with accuracy >= t among the kept ones. Thresholds only fall between
  different confidences. If no threshold reaches t the value is 0.0 (reject everything).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from calnas.metric_names import COVERAGE_TARGETS, coverage_column  # noqa: F401 - coverage_column is this module's API too
from calnas.errors import UserError
from calnas.metrics._inputs import TopLabel

DEFAULT_COVERAGE_TARGETS: tuple[float, ...] = COVERAGE_TARGETS


def check_targets(targets: Iterable[float]) -> tuple[float, ...]:
    out = []
    for t in targets:
        if isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating)):
            raise UserError(f"coverage targets must be numbers in (0, 1], got {t!r}")
        if not 0.0 < float(t) <= 1.0:
            raise UserError(f"coverage targets must lie in (0, 1], got {t}")
        out.append(float(t))
    names = [coverage_column(t) for t in out]
    if len(set(names)) != len(names):
        raise UserError(f"coverage targets {out} give duplicate column names {names}")
    return tuple(out)


def _descending_groups(top: TopLabel):
    """Runs of equal confidence, most confident first: (sizes, correct counts)."""
    return top.size[::-1], top.n_correct[::-1]


def auroc_from(top: TopLabel) -> float:
    n_pos = int(top.n_correct.sum())
    n_neg = top.n - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # Every sample of a run of equal confidences gets the run's mean rank (ties count 1/2).
    first_rank = np.cumsum(top.size) - top.size + 1
    mean_rank = first_rank + (top.size - 1) / 2.0
    rank_sum = float(np.dot(mean_rank, top.n_correct))
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def _expected_errors_at_each_coverage(top: TopLabel) -> np.ndarray:
    sizes, correct = _descending_groups(top)
    errors = sizes - correct
    before = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    errors_before = np.concatenate(([0], np.cumsum(errors)[:-1]))
    group = np.repeat(np.arange(sizes.shape[0]), sizes)
    k = np.arange(1, top.n + 1)
    return errors_before[group] + (k - before[group]) * (errors[group] / sizes[group])


def aurc_from(top: TopLabel) -> float:
    k = np.arange(1, top.n + 1)
    return float(np.mean(_expected_errors_at_each_coverage(top) / k))


def optimal_aurc(n: int, n_correct: int) -> float:
    k = np.arange(1, n + 1)
    return float(np.mean(np.maximum(k - n_correct, 0) / k))


def e_aurc_from(top: TopLabel) -> float:
    return aurc_from(top) - optimal_aurc(top.n, int(top.n_correct.sum()))


def coverage_from(top: TopLabel, target: float) -> float:
    sizes, correct = _descending_groups(top)
    kept = np.cumsum(sizes)
    kept_correct = np.cumsum(correct)
    # The tolerance only absorbs float error in target * kept (e.g. 0.95 * 20).
    ok = kept_correct + 1e-9 >= target * kept
    return float(kept[ok].max() / top.n) if ok.any() else 0.0


def selective_metrics(top: TopLabel, targets: Iterable[float]) -> dict[str, float]:
    out = {"AUROC": auroc_from(top), "AURC": aurc_from(top), "E_AURC": e_aurc_from(top)}
    for t in check_targets(targets):
        out[coverage_column(t)] = coverage_from(top, t)
    return out


# --- single-metric entry points ------------------------------------------------------------



def auroc(probs, labels) -> float:
    """AUROC of the confidence for separating correct from incorrect predictions (ties = 1/2)."""
    return auroc_from(TopLabel.checked(probs, labels))


def aurc(probs, labels) -> float:
    """Area under the risk-coverage curve (tie-averaged)."""
    return aurc_from(TopLabel.checked(probs, labels))


def e_aurc(probs, labels) -> float:
    """AURC minus the AURC of a perfect ranking with the same accuracy."""
    return e_aurc_from(TopLabel.checked(probs, labels))


def coverage_at_accuracy(probs, labels, target: float = 0.95) -> float:
    """Largest coverage whose selective accuracy is at least ``target`` (0.0 if none)."""
    (t,) = check_targets((target,))
    return coverage_from(TopLabel.checked(probs, labels), t)
