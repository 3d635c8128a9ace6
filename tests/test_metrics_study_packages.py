"""calnas against the packages the calibration study computed with, when they are installed.

KDEpy (KDECE densities) and uncertainty-calibration (``get_ece_em`` for ECE_em and, with
mode='marginal', cwCE_em) are not calnas dependencies, so these tests skip without them; with
them (``pip install KDEpy uncertainty-calibration``) they check the reimplementations bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_metrics_refs import random_predictions, softmax, top_label

from calnas.metrics import classwise_ece_em, ece_em, kdece

CASES = [(901, 500, 10, 2.0), (902, 2000, 100, 3.0), (903, 800, 3, 0.7)]


def quantised(p, step=0.02):
    q = np.round(p / step) * step
    q[np.arange(len(q)), q.argmax(axis=1)] += 1 - q.sum(axis=1)
    return np.clip(q, 0, 1)


@pytest.mark.parametrize("seed,n,k,scale", CASES)
def test_equal_mass_estimators_match_uncertainty_calibration(seed, n, k, scale):
    cal = pytest.importorskip("calibration")
    z, y = random_predictions(np.random.default_rng(seed), n, k, scale)
    for p in (softmax(z), quantised(softmax(z))):
        for b in (5, 15, 100, 500):
            assert ece_em(p, y, b) == pytest.approx(cal.get_ece_em(p, y, num_bins=b), abs=1e-12)
            want = cal.get_ece_em(p, y, num_bins=b, mode="marginal")
            assert classwise_ece_em(p, y, b) == pytest.approx(want, abs=1e-12)


def kdepy_kdece(conf, correct):
    """The Mix-n-Match KDECE recipe with KDEpy's FFTKDE for both densities."""
    kdepy = pytest.importorskip("KDEpy")
    grid = np.linspace(-0.6, 1.6, 2**14)
    bw = np.std(conf[correct == 1]) * (2 * len(conf)) ** -0.2

    def density(points):
        mirrored = np.concatenate((-points[points < 0.5], points, 2 - points[points >= 0.5]))
        f = kdepy.FFTKDE(bw=bw, kernel="triweight").fit(mirrored[:, None]).evaluate(grid)
        f[(grid <= 0) | (grid >= 1)] = 0
        return 2 * f

    f_all, f_correct = density(conf), density(conf[correct == 1])
    integrand = np.zeros_like(grid)
    for i in range(len(grid)):
        if max(f_all[i], f_correct[i]) > 1e-6:
            acc = min(correct.mean() * f_correct[i] / f_all[i], 1.0)
            integrand[i] = abs(grid[i] - acc) * f_all[i]
        elif i > 1:
            integrand[i] = integrand[i - 1]
    inside = (grid >= 0) & (grid <= 1)
    return np.trapezoid(integrand[inside], grid[inside]) / np.trapezoid(f_all[inside], grid[inside])


@pytest.mark.parametrize("seed,n,k,scale", CASES)
def test_kdece_matches_kdepy(seed, n, k, scale):
    pytest.importorskip("KDEpy")
    z, y = random_predictions(np.random.default_rng(seed), n, k, scale)
    p = softmax(z)
    assert kdece(p, y) == pytest.approx(kdepy_kdece(*top_label(p, y)), abs=1e-9)
