"""The study-exact options of the panel (nll_clip="study", study_split=True) and the documented
differences from the study's and Galil et al.'s formulas (docs/metrics.md)."""

from __future__ import annotations

import numpy as np
import pytest

from calnas.errors import UserError
from calnas.metrics import calibration_panel, coverage_at_accuracy, fit_temperature, study_split_indices
from calnas.metrics._inputs import softmax
from calnas.metrics.selective import optimal_aurc
from calnas.metrics.temperature import STUDY_GRID, _ece15_over_grid


def overconfident(seed: int, n: int, k: int, scale: float):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * scale
    y = rng.integers(0, k, n)
    z[np.arange(n), y] += scale
    return z, y


def sklearn_1_3_log_loss(y, p32):
    """scikit-learn 1.2-1.4's log_loss on float32 probabilities: clip at float32's eps, renormalise."""
    eps = np.finfo(np.float32).eps
    p = np.clip(p32, eps, 1 - eps)
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(p[np.arange(len(y)), y].astype(np.float64))))


@pytest.mark.parametrize("k", [10, 100])
def test_study_nll_clips_float32_probabilities_as_the_study_did(k):
    z, y = overconfident(3, 3000, k, 6.0)
    exact = calibration_panel(None, y, logits=z, temperature=1.5)
    study = calibration_panel(None, y, logits=z, temperature=1.5, nll_clip="study")
    p32 = softmax(z.astype(np.float32))
    assert study["pre_NLL"] == pytest.approx(sklearn_1_3_log_loss(y, p32), rel=1e-6)
    assert study["post_NLL"] == pytest.approx(sklearn_1_3_log_loss(y, softmax((z / 1.5).astype(np.float32))), rel=1e-6)
    # The clip caps over-confident mistakes: the study's NLL is lower; nothing else changes.
    assert study["pre_NLL"] < exact["pre_NLL"]
    assert {c: v for c, v in study.items() if "NLL" not in c} == {c: v for c, v in exact.items() if "NLL" not in c}
    # From probabilities alone the same recipe applies to the given values.
    assert calibration_panel(softmax(z), y, nll_clip="study")["pre_NLL"] == pytest.approx(study["pre_NLL"], rel=1e-5)
    sklearn = pytest.importorskip("sklearn.metrics")
    assert study["pre_NLL"] == pytest.approx(sklearn.log_loss(y, p32, labels=range(k)), rel=1e-5)


def test_study_split_is_the_studys_seeded_shuffle():
    n = 1000
    legacy = list(range(n))
    state = np.random.get_state()
    try:
        np.random.seed(42)
        np.random.shuffle(legacy)
    finally:
        np.random.set_state(state)
    test, held_out = study_split_indices(n)
    assert list(held_out) == legacy[:200] and list(test) == legacy[200:]


def test_study_split_panel_fits_on_20_percent_and_scores_post_on_the_rest():
    z, y = overconfident(4, 1000, 10, 3.0)
    test, held_out = study_split_indices(1000)
    panel = calibration_panel(None, y, logits=z, study_split=True)
    assert panel["temperature"] == fit_temperature(z[held_out], y[held_out])
    by_parts = calibration_panel(None, y[test], logits=z[test], temperature=panel["temperature"])
    whole = calibration_panel(None, y, logits=z)
    assert all(panel[c] == by_parts[c] for c in panel if c.startswith("post_"))
    assert all(panel[c] == whole[c] for c in whole)  # pre_*, acc and selective: the whole test set
    for bad in ({"val_logits": z, "val_labels": y}, {"fit_on_test": True}, {"temperature": 2.0}):
        with pytest.raises(UserError, match="study_split"):
            calibration_panel(None, y, logits=z, study_split=True, **bad)
    with pytest.raises(UserError, match="at least 5 samples"):
        calibration_panel(None, y[:4], logits=z[:4], study_split=True)
    with pytest.raises(UserError, match="nll_clip"):
        calibration_panel(None, y, logits=z, nll_clip="float32")


def galil_coverage(correct_by_confidence, target=0.95, start=200):
    """Galil et al.'s coverage_for_desired_accuracy, restated for samples in decreasing confidence."""
    run = np.cumsum(correct_by_confidence) / np.arange(1, len(correct_by_confidence) + 1)
    below = run < target
    first = int(np.argmax(below))
    later = int(np.argmax(below[start:])) + start
    return (later if later > start else first) / (len(correct_by_confidence) + 1)


def _examples():
    out = {}
    c = np.ones(1000, bool)
    out["all correct"] = (c, 1.0, 0.0)
    c = np.ones(1000, bool)
    c[[250, 260, 270, 280, 290, 295, 299, 300, 301, 302, 303, 304, 305, 306, 307, 308]] = False
    c[850:] = False
    out["dip that recovers"] = (c, 0.877, 308 / 1001)
    c = np.ones(1000, bool)
    c[800:] = False
    out["errors only at the end"] = (c, 0.842, 842 / 1001)
    return out


@pytest.mark.parametrize("name", list(_examples()))
def test_coverage_examples_of_docs_metrics_md(name):
    correct, ours, galil = _examples()[name]
    conf = np.linspace(0.99, 0.6, len(correct))  # distinct and decreasing
    probs = np.stack([conf, 1 - conf], axis=1)
    labels = np.where(correct, 0, 1)
    assert coverage_at_accuracy(probs, labels, 0.95) == pytest.approx(ours)
    assert galil_coverage(correct) == pytest.approx(galil)


@pytest.mark.parametrize("n,errors", [(10, 1), (100, 10), (1000, 100), (10000, 1000), (50, 40)])
def test_e_aurc_gap_to_the_continuous_optimum(n, errors):
    r = errors / n
    continuous = r + (1 - r) * np.log(1 - r)
    gap = continuous - optimal_aurc(n, n - errors)  # calnas's E_AURC minus the continuous-formula one
    assert gap == pytest.approx(-r / (2 * n) + r * (2 - r) / (12 * (1 - r) * n**2), rel=1e-3, abs=1e-12)


def test_temperature_grid_equals_a_softmax_per_temperature():
    for seed, n, k in ((5, 300, 10), (6, 2000, 100), (7, 7, 3)):
        z, y = overconfident(seed, n, k, 4.0)
        correct = z.argmax(axis=1) == y
        naive = []
        for t in STUDY_GRID:
            p = softmax(z, t)
            conf = p.max(axis=1)
            idx = np.searchsorted(np.linspace(0, 1, 16), conf, side="left") - 1
            naive.append(np.abs(np.bincount(idx, weights=conf - correct, minlength=15)).sum() / n)
        fast = _ece15_over_grid(z, correct, STUDY_GRID, 15)
        np.testing.assert_allclose(fast, naive, rtol=0, atol=1e-12)
        assert np.argmin(fast) == np.argmin(naive)


@pytest.mark.parametrize("n, k", [(65_536, 2), (40_000, 3), (20_000, 10)])
def test_temperature_grid_fit_peaks_under_twice_its_input(n, k):
    """Also at K = 2, where the per-row vectors of a block outweigh its rows."""
    import tracemalloc

    z, y = overconfident(11, n, k, 4.0)
    tracemalloc.start()
    try:
        t = fit_temperature(z, y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert t in STUDY_GRID and peak <= 2 * z.nbytes
