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


def _shifted(logits: np.ndarray) -> np.ndarray:
    """Logits minus each row's maximum: softmax is unchanged and exp never overflows."""
    return logits - logits.max(axis=1, keepdims=True)


def _ece15_over_grid(z: np.ndarray, correct: np.ndarray, grid: np.ndarray, n_bins: int):
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    correct = correct.astype(np.float64)
    n = z.shape[0]
    out = np.empty(grid.shape[0])
    for i, t in enumerate(grid):
        # The maximum of each shifted row is 0, so the top-label probability is 1 / sum(exp).
        conf = 1.0 / np.exp(z * (1.0 / t)).sum(axis=1)
        idx = np.searchsorted(edges, conf, side="left") - 1
        inside = idx >= 0
        gap = np.bincount(idx[inside], weights=(conf - correct)[inside], minlength=n_bins)
        out[i] = np.abs(gap).sum() / n
    return out


def _mean_nll(z: np.ndarray, z_true: np.ndarray, t: float) -> float:
    lse = np.log(np.exp(z * (1.0 / t)).sum(axis=1))
    return float(lse.mean() - z_true.mean() / t)


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
    z = _shifted(z)
    if method == "ece_grid":
        g = STUDY_GRID if grid is None else np.asarray(grid, dtype=np.float64).ravel()
        if g.size == 0 or not np.all(np.isfinite(g)) or np.any(g <= 0):
            raise UserError("the temperature grid must hold positive finite values")
        correct = z.argmax(axis=1) == y
        eces = _ece15_over_grid(z, correct, g, int(n_bins))
        return float(g[int(np.argmin(eces))])
    if method == "nll":
        lo, hi = bounds
        if not 0 < lo < hi:
            raise UserError(f"temperature bounds must satisfy 0 < low < high, got {bounds}")
        z_true = z[np.arange(z.shape[0]), y]
        res = minimize_scalar(
            lambda log_t: _mean_nll(z, z_true, float(np.exp(log_t))),
            bounds=(np.log(lo), np.log(hi)),
            method="bounded",
            options={"xatol": 1e-6},
        )
        return float(np.exp(res.x))
    raise UserError(f"unknown temperature method {method!r}; expected one of {TEMPERATURE_METHODS}")
