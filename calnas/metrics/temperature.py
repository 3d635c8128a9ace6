"""Temperature scaling: fit one scalar T on held-out logits; probabilities = softmax(logits / T).

Two protocols:

* ``"ece_grid"`` (default): the calibration study's protocol, the grid-search cross-validation
  of the focal-loss calibration code (Mukhoti et al. 2020): T in 0.1, 0.2, ..., 10.0 (100
  values), keep the one with the lowest 15-bin top-label ECE on the held-out split (the smallest
  T on ties). It is the default because the post_* columns are the study's columns: a
  calnas-built table is comparable with the published one only if its post_* values come from
  the same protocol. The grid is written exactly (k / 10) rather than by repeatedly adding 0.1.
* ``"nll"``: the usual protocol of Guo et al. 2017: minimise the held-out negative log-likelihood.
  NLL is convex in 1/T, so a bounded Brent search on log T in [0.01, 100] finds the optimum
  (to ~1e-6 relative). Prefer it when comparability with the published table does not matter:
  NLL is a proper scoring rule, it is not the metric being reported, and T is not limited to a
  0.1 grid.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
from scipy.optimize import minimize_scalar

from calnas.errors import UserError
from calnas.metrics._inputs import check_labels, check_matrix

TEMPERATURE_METHODS = ("ece_grid", "nll")
STUDY_GRID: np.ndarray = np.arange(1, 101) / 10.0
NLL_BOUNDS = (0.01, 100.0)


# Rows per pass of the grid and of the NLL: the one working buffer (rows x K float64) holds at
# most CHUNK_BYTES, so it stays in cache; and a block's buffer with its per-row vectors (maximum,
# outcome, confidence, bin index and their temporaries: ROW_BYTES a row) at most half the input,
# so the peak memory of a fit stays within twice the input's at every K, also K = 2 where the
# per-row vectors outweigh the rows. Blocks keep at least MIN_ROWS rows (or half the input), since
# each block costs a Python pass over the grid: inputs under about 1 MiB, where memory does not
# matter, keep their speed (measured with benchmarks/metrics_speed.py --memory).
CHUNK_BYTES = 2 * 1024**2
ROW_BYTES = 64
MIN_ROWS = 4096


def _blocks(z: np.ndarray):
    """(row slice, each row's maximum, a buffer for those rows) over ``z`` in blocks of rows."""
    n, k = z.shape
    half_input = n * 8 * k // (2 * (8 * k + ROW_BYTES))
    rows = max(1, min(-(-n // 2), CHUNK_BYTES // (8 * k), max(MIN_ROWS, half_input)))
    buffer = np.empty((min(n, rows), k))
    for start in range(0, n, rows):
        part = slice(start, min(n, start + rows))
        yield part, z[part].max(axis=1, keepdims=True), buffer[: part.stop - part.start]


def _scaled_exp(z: np.ndarray, top: np.ndarray, scale: float, out: np.ndarray) -> np.ndarray:
    """exp((z - row maximum) * scale) into ``out``: shifted first, so that every value is <= 0, each
    row's largest is exactly 1 and nothing overflows."""
    np.subtract(z, top, out=out)
    np.multiply(out, scale, out=out)
    return np.exp(out, out=out)


def _halving_chains(grid: np.ndarray) -> list[list[int]]:
    """The distinct grid values as chains t, t/2, t/4, ... (indices into ``grid``): along a chain
    exp(z / (t/2)) = exp(z / t)^2, a multiplication instead of an exponential. On the study's grid
    (k/10, where halving is exact in floating point) only t = 5.1 ... 10.0 are exponentiated."""
    first = {}
    for i, t in enumerate(grid.tolist()):
        first.setdefault(t, i)
    chains = []
    for t, i in sorted(first.items(), reverse=True):
        if 2 * t in first:
            continue  # on the chain of 2t
        chain = [i]
        while t / 2 in first:
            t /= 2
            chain.append(first[t])
        chains.append(chain)
    return chains


def _ece15_over_grid(z: np.ndarray, correct: np.ndarray, grid: np.ndarray, n_bins: int):
    """Top-label ECE of softmax(z / t) for every t of ``grid``.

    Rows go in cache-sized blocks, and within a block one buffer serves every t: per t and row
    only sum_k exp((z_k - max z) / t) is formed (the top-label probability is 1 / that sum),
    never the probability matrix, and along a halving chain (t, t/2, ...) by squaring the
    previous t's exponentials rather than exponentiating again. Squaring adds a rounding error
    per step (under 1e-13 relative after the study grid's longest chain, 6 steps), far below any
    difference between two grid points' ECE. Per-bin sums of (confidence - correct) add up over
    blocks, so nothing of size grid x N is kept."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    chains = _halving_chains(grid)
    gaps = np.zeros((grid.shape[0], n_bins))
    for rows, top, buffer in _blocks(z):
        outcome = correct[rows].astype(np.float64)
        for chain in chains:
            _scaled_exp(z[rows], top, 1.0 / grid[chain[0]], buffer)
            for step, i in enumerate(chain):
                if step:
                    np.multiply(buffer, buffer, out=buffer)
                conf = 1.0 / np.einsum("ij->i", buffer)  # row sums; several times faster than .sum(axis=1)
                # conf lies in (0, 1], so every sample falls in a bin (lo < c <= hi).
                idx = np.searchsorted(edges, conf, side="left") - 1
                gaps[i] += np.bincount(idx, weights=conf - outcome, minlength=n_bins)
    ece = np.abs(gaps).sum(axis=1) / z.shape[0]
    # A repeated grid value gets the ECE of its first occurrence.
    first = {t: i for i, t in reversed(list(enumerate(grid.tolist())))}
    return ece[[first[t] for t in grid.tolist()]]


def _mean_nll(z: np.ndarray, z_true: np.ndarray, t: float) -> float:
    """Mean NLL of softmax(z / t) at the labels; ``z_true`` holds each row's label logit minus the
    row's maximum."""
    total = 0.0
    for rows, top, buffer in _blocks(z):
        total += np.log(np.einsum("ij->i", _scaled_exp(z[rows], top, 1.0 / t, buffer))).sum()
    return float(total / z.shape[0] - z_true.mean() / t)


def fit_temperature(
    logits,
    labels,
    method: Literal["ece_grid", "nll"] = "ece_grid",
    *,
    grid: Sequence[float] | None = None,
    n_bins: int = 15,
    bounds: tuple[float, float] = NLL_BOUNDS,
) -> float:
    """Fit the temperature on held-out ``logits`` (N, K) and ``labels`` (N,).

    ``method="ece_grid"`` searches ``grid`` (default 0.1 ... 10.0) for the lowest ``n_bins``-bin
    ECE; ``method="nll"`` minimises the mean NLL over T in ``bounds`` (the optimum is returned even
    when it sits on a bound, e.g. for separable data whose NLL keeps falling as T -> 0).
    """
    z = check_matrix(logits, "validation logits", min_samples=1)
    y = check_labels(labels, z.shape[0], z.shape[1], "validation labels")
    if method == "ece_grid":
        g = STUDY_GRID if grid is None else np.asarray(grid, dtype=np.float64).ravel()
        if g.size == 0 or not np.all(np.isfinite(g)) or np.any(g <= 0):
            raise UserError("the temperature grid must hold positive finite values")
        correct = np.empty(z.shape[0], dtype=bool)
        for rows, _, _ in _blocks(z):  # by blocks: argmax's int64 row indices would be half a K=2 input
            np.equal(z[rows].argmax(axis=1), y[rows], out=correct[rows])
        eces = _ece15_over_grid(z, correct, g, int(n_bins))
        return float(g[int(np.argmin(eces))])
    if method == "nll":
        lo, hi = bounds
        if not 0 < lo < hi:
            raise UserError(f"temperature bounds must satisfy 0 < low < high, got {bounds}")
        z_true = z[np.arange(z.shape[0]), y] - z.max(axis=1)
        res = minimize_scalar(
            lambda log_t: _mean_nll(z, z_true, float(np.exp(log_t))),
            bounds=(np.log(lo), np.log(hi)),
            method="bounded",
            options={"xatol": 1e-6},
        )
        return float(np.exp(res.x))
    raise UserError(f"unknown temperature method {method!r}; expected one of {TEMPERATURE_METHODS}")
