"""calnas.metrics against the peer libraries (torchmetrics, netcal).

Where the definitions coincide the values agree to 1e-6. Where they differ, the test says how and
checks that the whole difference is that convention:

* torchmetrics buckets with ``lo <= c < hi`` and gives c == 1.0 a bin of its own; calnas uses the
  study's ``lo < c <= hi`` (1.0 in the last bin).
* torchmetrics' public ``multiclass_calibration_error`` casts confidences to float32, which alone
  moves results by ~1e-6; the 1e-6 comparisons therefore call its binning-and-formula core
  ``_ce_compute`` on float64 confidences, and one test checks the public function to float32
  precision. Its edges come from ``torch.linspace``, which differs from ``np.linspace`` in the last
  bit for some edges, so the on-edge tests use dyadic bin counts whose edges are exact in both.
* netcal clips confidences to [eps, 1 - eps] and buckets with ``lo <= c < hi`` (np.histogramdd);
  its clipping puts 1.0 in the last bin like calnas, but a confidence on an inner edge goes to
  the bin above. With K = 2 (or when the labels hold at most two classes) netcal measures the
  positive-class probability p[:, 1] against y instead of the top-label confidence.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_metrics_refs import binned_ce, random_predictions, softmax, top_label
from netcal.metrics import ECE as NetcalECE
from netcal.metrics import MCE as NetcalMCE
from netcal.metrics import MMCE as NetcalMMCE
from torchmetrics.functional.classification import multiclass_calibration_error
from torchmetrics.functional.classification.calibration_error import _ce_compute

from calnas.metrics import calibration_panel, ece, mce, mmce

BINS = (5, 10, 15, 20, 25, 50, 100, 200, 500)


def torchmetrics_ce(p, y, n_bins, norm):
    """torchmetrics' calibration error in float64: its own top-label step, binning and formula."""
    preds = torch.from_numpy(p)
    confidences, predictions = preds.max(dim=1)
    accuracies = predictions.eq(torch.from_numpy(y)).to(torch.float64)
    return float(_ce_compute(confidences, accuracies, n_bins, norm=norm))


def test_public_torchmetrics_function_agrees_to_float32_precision():
    z, y = random_predictions(np.random.default_rng(100), 3000, 10, 2.0)
    p = softmax(z)
    for b in (5, 15, 100):
        for norm, ours in (("l1", ece(p, y, b)), ("max", mce(p, y, b))):
            theirs = multiclass_calibration_error(
                torch.from_numpy(p), torch.from_numpy(y), num_classes=10, n_bins=b, norm=norm
            )
            assert float(theirs) == pytest.approx(ours, abs=2e-5)
            assert torchmetrics_ce(p, y, b, norm) == pytest.approx(ours, abs=1e-9)


def netcal_ce(cls, p, y, n_bins):
    return float(cls(n_bins).measure(p, y))


@pytest.mark.parametrize("seed,n,k,scale", [(101, 3000, 10, 2.0), (102, 3000, 100, 3.0), (103, 2000, 2, 1.0)])
def test_random_inputs_agree_with_torchmetrics(seed, n, k, scale):
    z, y = random_predictions(np.random.default_rng(seed), n, k, scale)
    p = softmax(z)
    panel = calibration_panel(p, y, bins=BINS)
    for b in BINS:
        assert panel[f"pre_ECE_{b}"] == pytest.approx(torchmetrics_ce(p, y, b, "l1"), abs=1e-6)
        assert panel[f"pre_MCE_{b}"] == pytest.approx(torchmetrics_ce(p, y, b, "max"), abs=1e-6)


@pytest.mark.parametrize("seed,n,k,scale", [(201, 2500, 10, 2.0), (202, 2000, 100, 3.0)])
def test_random_inputs_agree_with_netcal(seed, n, k, scale):
    z, y = random_predictions(np.random.default_rng(seed), n, k, scale)
    p = softmax(z)
    panel = calibration_panel(p, y, bins=BINS)
    for b in BINS:
        assert panel[f"pre_ECE_{b}"] == pytest.approx(netcal_ce(NetcalECE, p, y, b), abs=1e-6)
        assert panel[f"pre_MCE_{b}"] == pytest.approx(netcal_ce(NetcalMCE, p, y, b), abs=1e-6)
    assert panel["pre_MMCE"] == pytest.approx(NetcalMMCE().measure(p, y), abs=1e-6)


def edge_confidences(rng, n, k, n_bins):
    """Top-label confidences, half of them exactly on inner edges of linspace(0, 1, n_bins + 1)
    and half in between (so that the edge convention changes which samples share a bin)."""
    edges = np.linspace(0, 1, n_bins + 1)
    usable = edges[(edges > 1 / k + 1e-9) & (edges < 1)]
    top = np.where(rng.random(n) < 0.5, rng.choice(usable, n), rng.uniform(usable[0], 0.99, n))
    # An equal split of the rest stays below the top value because top > 1/k.
    rest = np.repeat(((1 - top) / (k - 1))[:, None], k - 1, axis=1)
    p = np.concatenate([top[:, None], rest], axis=1)
    perm = rng.permuted(np.tile(np.arange(k), (n, 1)), axis=1)
    p = np.take_along_axis(p, np.argsort(perm, axis=1), axis=1)
    # Accuracy falling with confidence: gaps change sign across bins, so moving the on-edge
    # samples to the neighbouring bin changes the error.
    right = rng.random(n) < 1.2 - top
    pred = p.argmax(axis=1)
    wrong = (pred + rng.integers(1, k, n)) % k
    return p, np.where(right, pred, wrong)


@pytest.mark.parametrize("k,n_bins", [(3, 8), (10, 16)])
def test_confidences_on_bin_edges_follow_the_study_convention(k, n_bins):
    rng = np.random.default_rng(300 + k)
    p, y = edge_confidences(rng, 1500, k, n_bins)
    conf, correct = top_label(p, y)
    assert np.isin(conf, np.linspace(0, 1, n_bins + 1)).mean() > 0.4
    study = binned_ce(conf, correct, n_bins, closed="right")
    left_closed = binned_ce(conf, correct, n_bins, closed="left", extra_bin_at_one=True)
    assert ece(p, y, n_bins) == pytest.approx(study[0], abs=1e-12)
    assert mce(p, y, n_bins) == pytest.approx(study[1], abs=1e-12)
    # torchmetrics is the same formula with lo <= c < hi.
    assert torchmetrics_ce(p, y, n_bins, "l1") == pytest.approx(left_closed[0], abs=1e-9)
    assert torchmetrics_ce(p, y, n_bins, "max") == pytest.approx(left_closed[1], abs=1e-9)
    assert abs(study[0] - left_closed[0]) > 1e-3  # the conventions really differ here
    # So is netcal (its eps-clipping does not move inner-edge values).
    assert netcal_ce(NetcalECE, p, y, n_bins) == pytest.approx(left_closed[0], abs=1e-9)


def test_confidence_exactly_one():
    rng = np.random.default_rng(400)
    z, y = random_predictions(rng, 1000, 10, 2.0)
    p = softmax(z)
    sure = rng.random(1000) < 0.3
    p[sure] = np.eye(10)[p[sure].argmax(axis=1)]
    conf, correct = top_label(p, y)
    assert (conf == 1.0).sum() == sure.sum()
    for b in (5, 15, 100):
        ours = ece(p, y, b)
        # calnas and netcal (clipping 1.0 to 1 - eps) keep 1.0 in the last bin ...
        assert ours == pytest.approx(netcal_ce(NetcalECE, p, y, b), abs=1e-6)
        assert mce(p, y, b) == pytest.approx(netcal_ce(NetcalMCE, p, y, b), abs=1e-6)
        # ... torchmetrics gives it a bin of its own.
        separate = binned_ce(conf, correct, b, closed="left", extra_bin_at_one=True)
        assert torchmetrics_ce(p, y, b, "l1") == pytest.approx(separate[0], abs=1e-6)
        assert ours == pytest.approx(binned_ce(conf, correct, b)[0], abs=1e-12)
    assert NetcalMMCE().measure(p, y) == pytest.approx(mmce(p, y), abs=1e-6)


def test_ties_agree_with_both_peers():
    rng = np.random.default_rng(500)
    levels = np.array([0.33, 0.47, 0.61, 0.78, 0.93])  # never on an edge of the bin counts used
    n, k = 1200, 4
    top = rng.choice(levels, n)
    p = np.empty((n, k))
    p[:, 0] = top
    p[:, 1:] = ((1 - top) / (k - 1))[:, None]
    y = rng.integers(0, k, n)
    for b in (5, 15, 20):
        ours = ece(p, y, b)
        assert ours == pytest.approx(torchmetrics_ce(p, y, b, "l1"), abs=1e-6)
        assert ours == pytest.approx(netcal_ce(NetcalECE, p, y, b), abs=1e-6)
        assert mce(p, y, b) == pytest.approx(torchmetrics_ce(p, y, b, "max"), abs=1e-6)
    assert mmce(p, y) == pytest.approx(NetcalMMCE().measure(p, y), abs=1e-6)


def test_two_classes():
    z, y = random_predictions(np.random.default_rng(600), 2000, 2, 1.5)
    p = softmax(z)
    conf, correct = top_label(p, y)
    for b in (5, 15, 100):
        # top-label: calnas and torchmetrics agree
        assert ece(p, y, b) == pytest.approx(torchmetrics_ce(p, y, b, "l1"), abs=1e-6)
        # netcal switches to positive-class calibration: ECE of p[:, 1] against y, lo <= p < hi
        positive = binned_ce(np.clip(p[:, 1], 1e-16, 1 - 1e-16), y.astype(float), b, closed="left")[0]
        assert netcal_ce(NetcalECE, p, y, b) == pytest.approx(positive, abs=1e-6)
    assert mmce(p, y) == pytest.approx(NetcalMMCE().measure(p, y), abs=1e-6)


def test_one_hundred_classes_with_many_bins():
    z, y = random_predictions(np.random.default_rng(700), 4000, 100, 4.0, 5.0)
    p = softmax(z)
    for b in (200, 500):
        assert ece(p, y, b) == pytest.approx(torchmetrics_ce(p, y, b, "l1"), abs=1e-6)
        assert mce(p, y, b) == pytest.approx(torchmetrics_ce(p, y, b, "max"), abs=1e-6)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_tiny_n(n):
    rng = np.random.default_rng(800 + n)
    z, y = random_predictions(rng, n, 10, 2.0)
    p = softmax(z)
    panel = calibration_panel(p, y, bins=(5, 15, 500))
    for b in (5, 15, 500):
        assert panel[f"pre_ECE_{b}"] == pytest.approx(torchmetrics_ce(p, y, b, "l1"), abs=1e-6)
        assert panel[f"pre_MCE_{b}"] == pytest.approx(torchmetrics_ce(p, y, b, "max"), abs=1e-6)
    # netcal's ECE goes binary when the labels hold <= 2 classes; its MMCE does not.
    assert panel["pre_MMCE"] == pytest.approx(NetcalMMCE().measure(p, y), abs=1e-6)
