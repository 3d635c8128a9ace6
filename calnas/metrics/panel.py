"""The calibration panel: every column of the study's dataset, under the study's names.

See docs/metrics.md for the definitions and the choices made where the study's code and the
literature disagree.
"""

from __future__ import annotations

from typing import Iterable, Literal

import numpy as np

from calnas.errors import UserError
from calnas.metrics._inputs import (
    TopLabel,
    check_labels,
    check_matrix,
    check_probs,
    log_softmax_at,
    softmax,
)
from calnas.metrics.binning import DEFAULT_BINS, check_bins, classwise_binned, top_label_binned
from calnas.metrics.kernel import kdece_from, ksce_from, mmce_from
from calnas.metrics.selective import (
    DEFAULT_COVERAGE_TARGETS,
    check_targets,
    coverage_column,
    selective_metrics,
)
from calnas.metric_names import BINNED_KINDS, CONFIDENCE, PREFIXES, RANKING, SCALAR_KINDS  # noqa: F401 - re-exported
from calnas.metrics.temperature import TEMPERATURE_METHODS, fit_temperature

# Consistency tolerance between probs= and softmax(logits=) when both are given.
PROBS_LOGITS_ATOL = 1e-3
NLL_FLOOR = np.finfo(np.float64).eps
# How p_y enters the NLL: "float64" exactly (log-softmax of the logits; from probabilities alone
# p_y floored at float64's eps); "study" as the calibration study computed it (_study_log_prob).
NLL_CLIPS = ("float64", "study")
# The study's split of a test set: a shuffle seeded with 42 (numpy's legacy generator), the first
# 20% held out for the temperature, the rest for post_*.
STUDY_SPLIT_SEED = 42
STUDY_HELD_OUT = 0.2


def panel_columns(
    bins: Iterable[int] = DEFAULT_BINS,
    coverage_targets: Iterable[float] = DEFAULT_COVERAGE_TARGETS,
    *,
    post: bool = True,
    selective: bool = True,
    temperature: bool = True,
) -> tuple[str, ...]:
    """Every column the panel can produce, in its stable order: acc, correct_confidence,
    incorrect_confidence, the pre_* block (per kind, then per bin count, then the scalar
    metrics), the post_* block, the selective-prediction columns, and temperature."""
    bins = check_bins(bins)
    cols = ["acc", *CONFIDENCE]
    for prefix in PREFIXES if post else PREFIXES[:1]:
        cols += [f"{prefix}_{kind}_{b}" for kind in BINNED_KINDS for b in bins]
        cols += [f"{prefix}_{kind}" for kind in SCALAR_KINDS]
    if selective:
        cols += list(RANKING)
        cols += [coverage_column(t) for t in check_targets(coverage_targets)]
    if post and temperature:
        cols.append("temperature")
    return tuple(cols)


class _ColumnList(tuple):
    """The default columns as a tuple; call it to get the columns for other bin counts/targets."""

    def __call__(self, bins=DEFAULT_BINS, coverage_targets=DEFAULT_COVERAGE_TARGETS, **kwargs):
        return panel_columns(bins, coverage_targets, **kwargs)


PANEL_COLUMNS = _ColumnList(panel_columns())


def _calibration_block(
    probs: np.ndarray,
    labels: np.ndarray,
    top: TopLabel,
    bins: tuple[int, ...],
    prefix: str,
    true_log_prob: np.ndarray,
) -> dict[str, float]:
    out: dict[str, float] = {}
    top_binned = top_label_binned(top, bins)
    class_binned = classwise_binned(probs, labels, bins)
    for kind in BINNED_KINDS:
        source = class_binned if kind.startswith("cw") else top_binned
        for b in bins:
            out[f"{prefix}_{kind}_{b}"] = source[b][kind]
    out[f"{prefix}_KSCE"] = ksce_from(top)
    out[f"{prefix}_KDECE"] = kdece_from(top)
    out[f"{prefix}_MMCE"] = mmce_from(top)
    out[f"{prefix}_NLL"] = float(-true_log_prob.mean())
    brier_sum = _brier_sum(probs, labels)
    out[f"{prefix}_Brier"] = brier_sum / probs.shape[1]
    out[f"{prefix}_Brier_sum"] = brier_sum
    return out


def _true_log_prob(probs, labels, logits, temperature: float, nll_clip: str) -> np.ndarray:
    """log p_y of every sample, for the NLL.

    "float64": log-softmax of logits / T (exact, nothing clipped); from probabilities alone p_y
    is floored at float64's eps. "study": the calibration study's NLL, scikit-learn's
    ``log_loss`` (versions 1.2 to 1.4) on float32 softmax outputs: probabilities clipped to
    [eps, 1 - eps] with float32's eps (1.19e-7), rows renormalised, then log p_y. The clip caps
    an over-confident mistake's loss at -log(1.19e-7) = 15.9, which lowers the NLL of networks
    that make such mistakes."""
    rows = np.arange(labels.shape[0])
    if nll_clip == "study":
        if logits is None:
            p32 = probs.astype(np.float32)
        else:  # shifted in float64 first, and floored, so that no logit overflows float32
            shifted = (logits - logits.max(axis=1, keepdims=True)) / temperature
            p32 = softmax(np.maximum(shifted, np.finfo(np.float32).min).astype(np.float32))
        eps = np.finfo(np.float32).eps
        p32 = np.clip(p32, eps, 1 - eps)
        p32 /= p32.sum(axis=1, keepdims=True)
        return np.log(p32[rows, labels].astype(np.float64))
    if logits is None:
        return np.log(np.maximum(probs[rows, labels], NLL_FLOOR))
    return log_softmax_at(logits, labels, temperature)


def study_split_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(test, held_out) indices of the calibration study's split of an n-sample test set: indices
    0..n-1 shuffled by ``np.random.seed(42); np.random.shuffle``, the first floor(0.2 n) held out
    for fitting the temperature, the rest for the post_* columns (the study's
    ``get_test_valid_loader``; its pre_* columns use the whole test set)."""
    indices = np.arange(n)
    np.random.RandomState(STUDY_SPLIT_SEED).shuffle(indices)
    cut = int(np.floor(STUDY_HELD_OUT * n))
    return indices[cut:], indices[:cut]


def _brier_sum(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean over samples of sum_k (p_k - 1[y = k])^2, without forming the one-hot matrix."""
    n = probs.shape[0]
    p_true = probs[np.arange(n), labels]
    per_row = np.einsum("ij,ij->i", probs, probs) - 2.0 * p_true + 1.0
    return float(per_row.mean())


def _summary(top: TopLabel) -> dict[str, float]:
    conf, correct = top.confidence, top.correct
    nan = float("nan")
    return {
        "acc": float(correct.mean()),
        "correct_confidence": float(conf[correct].mean()) if correct.any() else nan,
        "incorrect_confidence": float(conf[~correct].mean()) if (~correct).any() else nan,
    }


def _test_predictions(probs, labels, logits):
    """Validated (probs, labels, logits-or-None) for the evaluated split."""
    if logits is None:
        if probs is None:
            raise UserError("give probs or logits (both missing)")
        p = check_probs(probs, min_samples=2)
        return p, check_labels(labels, *p.shape), None
    z = check_matrix(logits, "logits", min_samples=2)
    from_logits = softmax(z)
    if probs is None:
        p = from_logits
    else:
        p = check_probs(probs, min_samples=2)
        if p.shape != z.shape:
            raise UserError(f"probs has shape {p.shape} but logits has shape {z.shape}")
        worst = float(np.max(np.abs(p - from_logits)))
        if worst > PROBS_LOGITS_ATOL:
            raise UserError(
                f"probs differ from softmax(logits) by up to {worst:.3g}; "
                "pass only one of them, or the matching pair"
            )
    return p, check_labels(labels, *p.shape), z


def _choose_temperature(z, labels, val_logits, val_labels, temperature, fit_on_test, method):
    """The temperature for the post_* columns, or None when there are to be none."""
    has_val = val_logits is not None or val_labels is not None
    if has_val and (val_logits is None or val_labels is None):
        missing = "val_labels" if val_labels is None else "val_logits"
        raise UserError(f"{missing} is missing; temperature scaling needs val_logits and val_labels")
    wanted = has_val or fit_on_test or temperature is not None
    if not wanted:
        return None
    if z is None:
        raise UserError("temperature scaling needs the test logits (logits=), not only probs")
    if sum([has_val, fit_on_test, temperature is not None]) > 1:
        raise UserError("give only one of: val_logits/val_labels, fit_on_test=True, temperature=")
    if temperature is not None:
        try:
            t = float(temperature)
        except (TypeError, ValueError):
            t = float("nan")
        if not (np.isfinite(t) and t > 0):
            raise UserError(f"temperature must be a positive finite number, got {temperature!r}")
        return t
    if fit_on_test:
        return fit_temperature(z, labels, method)
    vz = check_matrix(val_logits, "val_logits", min_samples=1)
    if vz.shape[1] != z.shape[1]:
        raise UserError(f"val_logits has {vz.shape[1]} classes but logits has {z.shape[1]}")
    return fit_temperature(vz, val_labels, method)


def calibration_panel(
    probs=None,
    labels=None,
    *,
    logits=None,
    val_logits=None,
    val_labels=None,
    bins: Iterable[int] = DEFAULT_BINS,
    coverage_targets: Iterable[float] = DEFAULT_COVERAGE_TARGETS,
    temperature_method: Literal["ece_grid", "nll"] = "ece_grid",
    temperature: float | None = None,
    fit_on_test: bool = False,
    nll_clip: Literal["float64", "study"] = "float64",
    study_split: bool = False,
) -> dict[str, float]:
    """Every calibration metric of the study's dataset, plus selective prediction, as a dict.

    Arguments are numpy arrays, array-likes or torch tensors. ``probs`` (N, K) rows must sum to 1;
    ``labels`` (N,) are class indices; N >= 2 and K >= 2. ``logits`` may replace ``probs`` (then
    probs = softmax(logits)) or accompany them (they must agree to 1e-3).

    Columns (order of :data:`PANEL_COLUMNS`): ``acc``, ``correct_confidence``,
    ``incorrect_confidence``; ``pre_*`` for every kind and bin count; ``AUROC``, ``AURC``,
    ``E_AURC``, ``coverage_<100 t>`` on the pre-scaling confidences. The ``post_*`` twins and
    ``temperature`` are present only when a temperature is available: fitted on
    ``val_logits``/``val_labels`` with ``temperature_method`` ("ece_grid", the study's protocol
    and the default, or "nll"), fitted on the test split itself when ``fit_on_test=True``
    (optimistic; never done implicitly), or given as ``temperature=``. Logits without any of
    these give no post_* columns. Without logits there are no post_* columns either.

    ``study_split=True`` reproduces the study's use of one full test set (given as ``logits``,
    without any other temperature source): pre_* and the selective columns on all of it, T
    fitted on the held-out 20% of :func:`study_split_indices`, post_* on the other 80%.
    ``nll_clip="study"`` computes pre_NLL and post_NLL as the study did (float32 probabilities
    clipped at float32's eps, see :func:`_true_log_prob`); the default is exact float64.

    Values are floats. NaN appears only where a quantity is undefined: ``correct_confidence`` with
    no correct prediction, ``incorrect_confidence`` and ``AUROC`` when all are correct, ``AUROC``
    when none is. Bad input raises :class:`calnas.errors.UserError`.
    """
    if labels is None:
        raise UserError("labels are missing; expected class indices of shape (N,)")
    bins = check_bins(bins)
    targets = check_targets(coverage_targets)
    if temperature_method not in TEMPERATURE_METHODS:
        raise UserError(
            f"unknown temperature method {temperature_method!r}; expected one of "
            f"{TEMPERATURE_METHODS}"
        )
    if nll_clip not in NLL_CLIPS:
        raise UserError(f"nll_clip must be one of {', '.join(NLL_CLIPS)}, got {nll_clip!r}")
    p, y, z = _test_predictions(probs, labels, logits)
    post_z, post_y = z, y
    if study_split:
        if z is None or val_logits is not None or val_labels is not None or fit_on_test or temperature is not None:
            raise UserError("study_split needs the whole test set as logits= and no other temperature source "
                            "(val_logits/val_labels, fit_on_test, temperature)")
        test, held_out = study_split_indices(z.shape[0])
        if held_out.shape[0] < 1:
            raise UserError(f"study_split holds out 20% of the test set, so it needs at least 5 samples, got {z.shape[0]}")
        t = fit_temperature(z[held_out], y[held_out], temperature_method)
        post_z, post_y = z[test], y[test]
    else:
        t = _choose_temperature(
            z, y, val_logits, val_labels, temperature, fit_on_test, temperature_method
        )

    top = TopLabel.from_probs(p, y)
    values = _summary(top)
    values.update(_calibration_block(p, y, top, bins, "pre", _true_log_prob(p, y, z, 1.0, nll_clip)))
    values.update(selective_metrics(top, targets))
    if t is not None:
        post = softmax(post_z, t)
        values.update(
            _calibration_block(
                post, post_y, TopLabel.from_probs(post, post_y), bins, "post",
                _true_log_prob(post, post_y, post_z, t, nll_clip),
            )
        )
        values["temperature"] = t
    order = panel_columns(bins, targets, post=t is not None)
    return {name: values[name] for name in order}
