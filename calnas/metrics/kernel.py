"""Bin-free top-label calibration errors: KSCE, KDECE and MMCE.

* KSCE (Gupta et al. 2021, "Calibration of Neural Networks using Splines"): with samples sorted by
  confidence, the largest absolute difference between the cumulative sums of confidence and of
  correctness, divided by N. It is read only where the confidence changes (at the end of each run
  of equal confidences), which makes it independent of how ties are ordered; with distinct
  confidences this is exactly Gupta et al.'s value. The study's code reads it at every prefix of an
  unstable argsort, which with ties can be larger and depends on the order.

* KDECE (Zhang et al. 2020, "Mix-n-Match", ``ece_kde_binary`` as the study used it): densities of
  the top-label confidence over all samples (f) and over correct samples (f1) are estimated with a
  triweight kernel (bandwidth = its standard deviation, as in KDEpy) and reflection at 0 and 1,
  by linear binning on the grid ``linspace(-0.6, 1.6, 2**14)`` and FFT convolution (KDEpy's
  FFTKDE). The accuracy curve is acc(c) = min(acc * f1(c) / f(c), 1) and
  KDECE = int_0^1 |c - acc(c)| f(c) dc / int_0^1 f(c) dc (trapezoid rule on the grid). One
  bandwidth serves both densities: std(correct confidences) * (2N)^(-1/5), as in the study's code.
  Where the reference fails (and the study's code then returned 0), calnas defines:
  fewer than 2 correct predictions or a zero spread among them -> the bandwidth uses the spread of
  all confidences instead; all confidences identical (c0) -> |c0 - acc|, the zero-bandwidth limit.

* MMCE (Kumar et al. 2018): sqrt(sum_ij d_i d_j k(c_i, c_j)) / N with d = correct - confidence and
  the Laplacian kernel k = exp(-|c_i - c_j| / 0.4) (netcal's and the study's choice). On sorted
  confidences exp(-(c_i - c_j)/w) = exp(-(c_i - 1/2)/w) * exp((c_j - 1/2)/w), so the double sum is
  one cumulative sum: exact, O(N log N), and no N x N matrix.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

from calnas.errors import UserError
from calnas.metrics._inputs import TopLabel

KDE_GRID = np.linspace(-0.6, 1.6, num=2**14)
MMCE_KERNEL_WIDTH = 0.4


def ksce_from(top: TopLabel) -> float:
    # Cumulative sums read at the end of each run of equal confidences.
    cum_conf = np.cumsum(top.values * top.size)
    cum_correct = np.cumsum(top.n_correct)
    return float(np.max(np.abs(cum_conf - cum_correct)) / top.n)


def mmce_from(top: TopLabel, width: float = MMCE_KERNEL_WIDTH) -> float:
    if not width >= 2e-3:
        # Below this exp(0.5 / width) overflows float64.
        raise UserError(f"MMCE kernel width must be at least 0.002, got {width}")
    # Samples with equal confidence share the kernel value 1, so each run enters through the sum
    # of its d = correct - confidence.
    c = top.values
    d = top.n_correct - top.size * c
    up = d * np.exp((c - 0.5) / width)
    down = d * np.exp(-(c - 0.5) / width)
    before = np.cumsum(up) - up  # sum over runs of smaller confidence
    total = np.dot(d, d) + 2.0 * np.dot(down, before)
    return float(np.sqrt(max(total, 0.0)) / top.n)


def _mirror(x: np.ndarray) -> np.ndarray:
    """The data plus its reflection about 0 (points below 1/2) or about 1 (points above)."""
    low = x < 0.5
    return np.concatenate((-x[low], x, 2.0 - x[~low]))


def _triweight_kde(points: np.ndarray, bw: float, grid: np.ndarray = KDE_GRID) -> np.ndarray:
    """KDEpy FFTKDE(kernel="triweight", bw=bw).fit(points).evaluate(grid), reimplemented:
    linear binning of the points onto the equidistant grid, then convolution with the kernel
    sampled on the grid. ``bw`` is the kernel's standard deviation (support 3 * bw)."""
    n_grid = grid.shape[0]
    dx = (grid[-1] - grid[0]) / (n_grid - 1)
    t = (points - grid[0]) / dx
    left = np.floor(t).astype(np.intp)
    frac = t - left
    w = 1.0 / points.shape[0]
    binned = np.bincount(left, weights=(1.0 - frac) * w, minlength=n_grid + 1)
    binned += np.bincount(left + 1, weights=frac * w, minlength=n_grid + 1)
    binned = binned[:n_grid]

    radius = 3.0 * bw
    half = int(min(np.floor(radius / dx), n_grid))
    u = np.linspace(-dx * half, dx * half, 2 * half + 1) / radius
    kernel = np.where(u * u < 1.0, (35.0 / 32.0) * np.clip(1.0 - u * u, 0.0, None) ** 3, 0.0)
    kernel /= radius
    density = fftconvolve(binned, kernel, mode="same")
    return density + np.finfo(float).eps


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


def kdece_from(top: TopLabel) -> float:
    conf = top.confidence
    n = top.n
    acc = float(top.correct.mean())
    if top.values.shape[0] == 1:
        return abs(float(top.values[0]) - acc)

    correct_conf = conf[top.correct]
    spread = float(np.std(correct_conf)) if correct_conf.size >= 2 else 0.0
    if spread == 0.0:
        spread = float(np.std(conf))
    bw = spread * (2.0 * n) ** -0.2

    x = KDE_GRID
    outside = (x <= 0.0) | (x >= 1.0)
    dens_all = _triweight_kde(_mirror(conf), bw)
    dens_all[outside] = 0.0
    dens_all *= 2.0
    if correct_conf.size:
        dens_correct = _triweight_kde(_mirror(correct_conf), bw)
        dens_correct[outside] = 0.0
        dens_correct *= 2.0
    else:
        dens_correct = np.zeros_like(x)

    supported = np.maximum(dens_all, dens_correct) > 1e-6
    # Outside [0, 1] both densities are 0 and the ratio is NaN; those points are not used.
    with np.errstate(divide="ignore", invalid="ignore"):
        acc_curve = np.minimum(acc * dens_correct / dens_all, 1.0)
        value = np.where(supported & ~np.isnan(acc_curve), np.abs(x - acc_curve) * dens_all, 0.0)
    # Where both densities vanish the reference carries the previous grid value forward.
    last = np.maximum.accumulate(np.where(supported, np.arange(x.shape[0]), -1))
    integrand = np.where(last >= 0, value[np.maximum(last, 0)], 0.0)

    inside = (x >= 0.0) & (x <= 1.0)
    return _trapezoid(integrand[inside], x[inside]) / _trapezoid(dens_all[inside], x[inside])


# --- single-metric entry points ------------------------------------------------------------



def ksce(probs, labels) -> float:
    """Kolmogorov-Smirnov calibration error of the top-label confidence."""
    return ksce_from(TopLabel.checked(probs, labels))


def kdece(probs, labels) -> float:
    """Kernel-density ECE of Zhang et al. 2020 on the top-label confidence."""
    return kdece_from(TopLabel.checked(probs, labels))


def mmce(probs, labels, width: float = MMCE_KERNEL_WIDTH) -> float:
    """MMCE of Kumar et al. 2018 with a Laplacian kernel of the given width."""
    return mmce_from(TopLabel.checked(probs, labels), width)
