"""Plain-loop reference implementations of the published formulas, for the metrics tests.

Written from the definitions (Guo et al. 2017 binning as in the calibration study's code, the
uncertainty-calibration equal-mass scheme, Gupta et al. 2021, Zhang et al. 2020, Kumar et al.
2018), slow and obvious on purpose: the fast implementations in calnas.metrics are checked
against these on inputs the implementations were not tuned to.
"""

from __future__ import annotations

import itertools

import numpy as np


def softmax(z, t=1.0):
    z = np.asarray(z, dtype=float) / t
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def random_predictions(rng, n, k, scale=2.0, boost=2.0):
    """Logits of a plausible, imperfect classifier and matching labels."""
    z = rng.normal(size=(n, k)) * scale
    y = rng.integers(0, k, n)
    z[np.arange(n), y] += boost
    return z, y


def top_label(p, y):
    pred = p.argmax(axis=1)
    return p[np.arange(len(y)), pred], (pred == y).astype(float)


def binned_ce(values, outcomes, n_bins, *, closed="right", extra_bin_at_one=False):
    """Sum over bins of (n_b / N) |mean value - mean outcome| with equal-width bins.

    closed="right": lo < v <= hi (the study's convention); closed="left": lo <= v < hi (numpy /
    torch bucketing), optionally with v == 1.0 in a bin of its own (torchmetrics)."""
    edges = np.linspace(0, 1, n_bins + 1)
    n = len(values)
    bins = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        if closed == "right":
            bins.append((values > lo) & (values <= hi))
        else:
            upper = (values < hi) if (extra_bin_at_one or hi < 1) else (values <= hi)
            bins.append((values >= lo) & upper)
    if extra_bin_at_one:
        bins.append(values == 1.0)
    ce, mce = 0.0, 0.0
    for mask in bins:
        if mask.any():
            gap = abs(values[mask].mean() - outcomes[mask].mean())
            ce += mask.sum() / n * gap
            mce = max(mce, gap)
    return ce, mce


def equal_mass_ce(values, outcomes, n_bins):
    """Equal-mass CE: sorted values cut into min(B, N) near-equal chunks, edges at the midpoints
    between chunks and 1.0, membership e[j-1] < v <= e[j]."""
    s = np.sort(values)
    m = min(n_bins, len(s))
    chunks = np.array_split(s, m)
    edges = [(chunks[i][-1] + chunks[i + 1][0]) / 2.0 for i in range(m - 1)] + [1.0]
    ce, lo = 0.0, -np.inf
    for hi in edges:
        mask = (values > lo) & (values <= hi)
        if mask.any():
            ce += mask.sum() / len(values) * abs(values[mask].mean() - outcomes[mask].mean())
        lo = hi
    return ce


def classwise(p, y, fn, *args):
    k = p.shape[1]
    return float(np.mean([fn(p[:, c], (y == c).astype(float), *args) for c in range(k)]))


def ksce_gupta(conf, correct):
    order = np.argsort(conf, kind="stable")
    gap = np.cumsum(conf[order] - correct[order]) / len(conf)
    return float(np.max(np.abs(gap)))


def mmce_dense(conf, correct, width=0.4):
    d = correct - conf
    k = np.exp(-np.abs(conf[:, None] - conf[None, :]) / width)
    return float(np.sqrt(d @ k @ d) / len(conf))


def kdece_direct(conf, correct, grid=np.linspace(-0.6, 1.6, 2**14)):
    """KDECE with the triweight densities evaluated point by point (no binning, no FFT)."""
    n = len(conf)
    bw = np.std(conf[correct == 1]) * (2 * n) ** -0.2
    radius = 3 * bw
    inside = (grid >= 0) & (grid <= 1)
    x = grid[inside]

    def density(points):
        mirrored = np.concatenate((-points[points < 0.5], points, 2 - points[points >= 0.5]))
        u = (x[:, None] - mirrored[None, :]) / radius
        k = np.where(np.abs(u) < 1, 35 / 32 * (1 - u**2) ** 3, 0.0) / radius
        f = 2 * k.mean(axis=1)
        f[(x <= 0) | (x >= 1)] = 0
        return f

    f_all, f_correct = density(conf), density(conf[correct == 1])
    acc_curve = np.minimum(correct.mean() * f_correct / np.maximum(f_all, 1e-300), 1.0)
    integrand = np.abs(x - acc_curve) * f_all
    return float(np.trapezoid(integrand, x) / np.trapezoid(f_all, x))


def aurc_ordered(conf_order_correct):
    """AURC for samples already in selection order (most confident first)."""
    errors = np.cumsum(1 - np.asarray(conf_order_correct, dtype=float))
    return float(np.mean(errors / np.arange(1, len(errors) + 1)))


def aurc_all_tie_orders(conf, correct):
    """Mean AURC over every ordering of tied confidences (brute force, tiny N only)."""
    values = []
    for perm in itertools.permutations(range(len(conf))):
        perm = np.array(perm)
        c = conf[perm]
        if np.all(np.diff(c) <= 0):  # a descending order: one tie-breaking
            values.append(aurc_ordered(correct[perm]))
    return float(np.mean(values))


def coverage_bruteforce(conf, correct, target):
    best = 0.0
    for tau in np.unique(conf):
        kept = conf >= tau
        if correct[kept].mean() >= target - 1e-12:
            best = max(best, kept.mean())
    return best
