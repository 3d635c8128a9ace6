"""Each calibrator fitted on the validation split and measured on the test split.

* :func:`calibrator_results` -- per calibrator: the compact metric block on the test split
  (:data:`calnas.calibrator_columns.METRICS`), its cross-validated validation ECE_15, its fitted
  parameters where they are few, and its calibrated test probabilities;
* :func:`calibrator_columns` -- the same as one flat row of table columns
  (:data:`calnas.calibrator_columns.CALIBRATOR_COLUMNS`), as evaluations and table builds record it.

Honest splits: every parameter is fitted on the validation split alone; the test labels enter
only the reported metrics. The validation value that picks a calibrator per architecture
(``best_post_ece``) is cross-validated inside the validation split (:data:`CV_FOLDS` folds, a fixed
shuffle): an in-sample value would favour the flexible methods, which fit their own bins (a
15-bin histogram calibrator's in-sample ECE_15 is about half its held-out value on the test
suite's random logits).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calnas.calibrator_columns import CALIBRATOR_NAMES, METRICS, VALIDATION_METRIC, column
from calnas.errors import UserError
from calnas.metrics._inputs import TopLabel, check_labels, check_matrix, log_softmax_at
from calnas.metrics.binning import classwise_binned, top_label_binned
from calnas.metrics.calibrators import make_calibrator
from calnas.metrics.panel import NLL_FLOOR, _brier_sum
from calnas.metrics.selective import aurc_from

CV_FOLDS = 5
CV_SEED = 0  # the folds' shuffle: fixed, so that a row depends only on its predictions
BINS = 15  # the bin count of ECE_15 / cwCE_15


@dataclass
class CalibratorResult:
    name: str
    test: dict[str, float]          # METRICS on the test split after calibration
    val_ece: float                  # cross-validated ECE_15 on the validation split
    params: dict = field(default_factory=dict)
    probs: np.ndarray | None = None  # calibrated test probabilities (N, K)
    keeps_top1: bool = True



FULL_MATRIX = ("matrix", "dirichlet")   # K(K+1) parameters each
PER_EVALUATION_MAX_CLASSES = 20

def compact_metrics(probs: np.ndarray, labels: np.ndarray, true_log_prob: np.ndarray | None = None) -> dict:
    """ECE_15, cwCE_15, NLL, Brier, acc, AURC of calibrated probabilities, computed as the panel
    computes its columns. ``true_log_prob`` (log p_y from calibrated logits) makes the NLL exact;
    without it p_y is floored at float64's eps, as the panel does for probabilities alone."""
    top = TopLabel.from_probs(probs, labels)
    if true_log_prob is None:
        true_log_prob = np.log(np.maximum(probs[np.arange(labels.shape[0]), labels], NLL_FLOOR))
    values = {
        "ECE_15": top_label_binned(top, (BINS,))[BINS]["ECE"],
        "cwCE_15": classwise_binned(probs, labels, (BINS,))[BINS]["cwCE"],
        "NLL": float(-true_log_prob.mean()),
        "Brier": _brier_sum(probs, labels) / probs.shape[1],
        "acc": float(top.correct.mean()),
        "AURC": aurc_from(top),
    }
    return {m: values[m] for m in METRICS}


def _calibrated(cal, z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    scaled = cal.calibrated_logits(z)
    if scaled is None:
        return cal.predict_proba(z), None
    return cal.predict_proba(z), log_softmax_at(scaled, y)


def _folds(n: int) -> np.ndarray | None:
    """Fold of each validation sample, or None when the split is too small to cross-validate
    (fewer than 2 samples per fold)."""
    folds = min(CV_FOLDS, n // 2)
    if folds < 2:
        return None
    return np.random.default_rng(CV_SEED).permutation(n) % folds


def cross_validated_ece(name: str, vz: np.ndarray, vy: np.ndarray, **options) -> float:
    """ECE_15 on the validation split of out-of-fold predictions: each fold calibrated by a fit
    on the other folds. In-sample when the split is too small to fold (see :func:`_folds`)."""
    folds = _folds(vz.shape[0])
    if folds is None:
        probs = make_calibrator(name, **options).fit(vz, vy).predict_proba(vz)
    else:
        probs = np.empty_like(vz)
        for f in range(int(folds.max()) + 1):
            held = folds == f
            probs[held] = make_calibrator(name, **options).fit(vz[~held], vy[~held]).predict_proba(vz[held])
    return top_label_binned(TopLabel.from_probs(probs, vy), (BINS,))[BINS]["ECE"]


def _checked(test_logits, test_labels, val_logits, val_labels):
    if val_logits is None or val_labels is None:
        raise UserError("calibrators are fitted on a validation split: give val_logits and val_labels")
    z = check_matrix(test_logits, "logits", min_samples=2)
    y = check_labels(test_labels, *z.shape)
    vz = check_matrix(val_logits, "val_logits", min_samples=2)
    if vz.shape[1] != z.shape[1]:
        raise UserError(f"val_logits has {vz.shape[1]} classes but logits has {z.shape[1]}")
    vy = check_labels(val_labels, *vz.shape, "val_labels")
    return z, y, vz, vy


def calibrator_results(test_logits, test_labels, val_logits, val_labels, names=None, *,
                       keep_probs: bool = False, options: dict | None = None) -> dict[str, CalibratorResult]:
    """Every calibrator of ``names`` (default: all, in :data:`CALIBRATOR_NAMES` order) fitted on
    the validation logits and labels, measured on the test ones. ``options``: per-calibrator
    constructor options, e.g. ``{"dirichlet": {"lam": 0.1}}``."""
    from threadpoolctl import threadpool_limits

    z, y, vz, vy = _checked(test_logits, test_labels, val_logits, val_labels)
    names = CALIBRATOR_NAMES if names is None else tuple(names)
    options = options or {}
    # One BLAS thread: the fits' matrices are small, and threads contending with a build's other
    # workers made them several times slower. The limit is lifted on return.
    with threadpool_limits(1):
        return {name: _result(name, options.get(name, {}), z, y, vz, vy, keep_probs) for name in names}


def _result(name, opts, z, y, vz, vy, keep_probs) -> CalibratorResult:
    cal = make_calibrator(name, **opts).fit(vz, vy)
    probs, true_log_prob = _calibrated(cal, z, y)
    return CalibratorResult(name=name, test=compact_metrics(probs, y, true_log_prob),
                            val_ece=cross_validated_ece(name, vz, vy, **opts), params=cal.params(),
                            probs=probs if keep_probs else None, keeps_top1=cal.keeps_top1)


def calibrator_columns(test_logits, test_labels, val_logits, val_labels) -> dict[str, float]:
    """Every calibrator's columns of one evaluation (``post_ECE_15@dirichlet`` ...,
    ``val_ECE_15@dirichlet``), in :data:`calnas.calibrator_columns.CALIBRATOR_COLUMNS` order."""
    k = np.shape(test_logits)[1] if np.ndim(test_logits) == 2 else 0
    # matrix and dirichlet fit K(K+1) parameters, six times (the fit and five folds): at ImageNet16's
    # 120 classes that is minutes per evaluation, more than the training of a small table's row.
    # Every evaluation records them up to PER_EVALUATION_MAX_CLASSES; `calnas metrics
    # --calibrator` fits them at any K.
    names = CALIBRATOR_NAMES if k <= PER_EVALUATION_MAX_CLASSES else tuple(
        n for n in CALIBRATOR_NAMES if n not in FULL_MATRIX)
    results = calibrator_results(test_logits, test_labels, val_logits, val_labels, names)
    row = {}
    for name in CALIBRATOR_NAMES:
        result = results.get(name)
        for metric in METRICS:
            row[column(metric, name)] = float("nan") if result is None else result.test[metric]
        row[column(VALIDATION_METRIC, name, "val")] = float("nan") if result is None else result.val_ece
    return row
