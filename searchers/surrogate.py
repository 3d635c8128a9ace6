"""A small Gaussian-process surrogate over architectures, numpy only (no torch, no scipy).

An architecture is a vector of choices (an operation per TSS edge, a width per SSS layer), and
two architectures are as alike as they are close: ``d`` counts the edges on which they differ,
and along an ordinal parameter (the widths, ``Space.ordinal_params``) how many steps apart their
choices are (``Domain.code``), so 8 and 16 channels are nearer than 8 and 64. The kernel is

    k(a, b) = mix * exp(-d / lengthscale) + (1 - mix) * (1 - d / D)

with ``D`` the largest distance: the first part is local, the second additive (a sum over the
edges/layers, so a cost such as FLOPs, which *is* a sum over edges, is fitted from few points).
Each output column (an objective, or the constraint violation) is standardised and gets its own
length-scale, mix and noise, the largest log marginal likelihood over a small grid: accuracy,
a noisy ECE and an exact parameter count want different ones. Fitted on 100 random
architectures this model ranks unseen CIFAR-100 FLOPs at Spearman 0.996 and digits-sss
accuracy at 0.53, where the Hamming kernel alone gave 0.973 and 0.45
(``benchmarks/surrogate_fit.py``, docs/search.md). They are chosen again each time the data has grown by half (on the first 10,
15, 23, ... points, so the model is a function of the history alone), and between refits each
output's inverse kernel matrix grows one row per new architecture (block inversion through the
Schur complement), so a proposal costs O(n^2) rather than O(n^3). numpy only: importing
scipy.linalg would cost a CLI run more than the whole surrogate does.

The noise term matters: on a calibration table the same architecture trained again would land
elsewhere (ECE especially), so the surrogate should not chase single lucky points.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from threadpoolctl import ThreadpoolController

# The matrices here are at most a few hundred rows: BLAS threads cost more than they save
# (a 500-evaluation search spent 1.2 s more wall time, and twice the CPU, with 2 threads than
# with 1), so every call runs single-threaded. Built after numpy loads its BLAS.
_BLAS = ThreadpoolController()

# (lengthscale, mix) pairs: purely local kernels over a wide range of length-scales, and local
# plus additive mixtures; and the noise variances, in units of the standardised output.
KERNELS = tuple((ls, 1.0) for ls in (1.0, 2.0, 4.0, 8.0, 16.0)) + tuple(
    (ls, mix) for ls in (1.0, 2.0, 4.0) for mix in (0.25, 0.5, 0.75))
NOISES = (0.01, 0.03, 0.1, 0.3)
REFIT_GROWTH = 1.5
FIRST_FIT = 10


def refit_point(n: int) -> int:
    """The largest of FIRST_FIT, ceil(FIRST_FIT * 1.5), ... that is at most ``n`` (``n`` below
    FIRST_FIT): hyperparameters are chosen on that many points, a function of ``n`` alone."""
    point = FIRST_FIT
    if n < point:
        return n
    while True:
        following = int(np.ceil(point * REFIT_GROWTH))
        if following > n:
            return point
        point = following


class ArchitectureGP:
    def __init__(self, encode: Callable[[Sequence[int]], np.ndarray], max_distance: float):
        self._encode = encode  # positions -> rows whose half squared distance is d (Domain.code)
        self._span = float(max_distance)  # D
        self._rows: list[int] = []
        self._inv: list[np.ndarray] = []  # per output, (K + noise I)^-1 over self._rows
        self._fitted_at = 0
        self.hyper: list[tuple[float, float, float]] = []  # per output (lengthscale, mix, noise)

    def distance(self, a, b) -> np.ndarray:
        xa, xb = self._encode(a), self._encode(b)
        squared = (xa * xa).sum(axis=1)[:, None] + (xb * xb).sum(axis=1)[None, :] - 2.0 * (xa @ xb.T)
        return np.rint(np.maximum(squared, 0.0) / 2.0)  # whole steps: exact whatever the BLAS

    def kernel_of(self, d: np.ndarray, lengthscale: float, mix: float) -> np.ndarray:
        out = mix * np.exp(-d / lengthscale)
        if mix < 1.0:
            out += (1.0 - mix) * (1.0 - d / self._span)
        return out

    def fit(self, positions, targets) -> "ArchitectureGP":
        """Bring the model up to ``positions`` (history order; earlier ones unchanged) with
        ``targets`` ``(n, m)`` aligned with them."""
        with _BLAS.limit(limits=1, user_api="blas"):
            return self._fit(list(positions), targets)

    def _fit(self, positions: list[int], targets) -> "ArchitectureGP":
        targets = np.asarray(targets, dtype=float)
        start = refit_point(len(positions))
        if (self._fitted_at != start or positions[: len(self._rows)] != self._rows or not self._inv
                or len(self._inv) != targets.shape[1]):
            # Hyperparameters from the first `start` points alone: the model at n points is the
            # same whether it grew here step by step or was rebuilt by a resumed search.
            self._rows = positions[:start]
            self._select(_standardise(targets[:start])[0])
        if len(positions) > len(self._rows):
            self._append(positions[len(self._rows):])
        self._z, self._mean, self._scale = _standardise(targets)
        return self

    def predict(self, candidates) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean ``(c, m)`` in the targets' units and standard deviation ``(c, m)``
        of the latent function (noise excluded)."""
        with _BLAS.limit(limits=1, user_api="blas"):
            return self._predict(candidates)

    def _predict(self, candidates) -> tuple[np.ndarray, np.ndarray]:
        d = self.distance(candidates, np.asarray(self._rows))
        mean = np.empty((d.shape[0], len(self._inv)))
        sd = np.empty_like(mean)
        for j, ((ls, mix, _), inv) in enumerate(zip(self.hyper, self._inv)):
            cross = self.kernel_of(d, ls, mix)
            mean[:, j] = cross @ (inv @ self._z[:, j])
            var = 1.0 - np.einsum("ij,ij->i", cross @ inv, cross)
            sd[:, j] = np.sqrt(np.clip(var, 1e-12, None))
        return self._mean + self._scale * mean, self._scale * sd

    # -- internals -------------------------------------------------------------------------------
    def _select(self, z: np.ndarray) -> None:
        rows = np.asarray(self._rows)
        d = self.distance(rows, rows)
        eye = np.eye(len(rows))
        self.hyper, self._inv = [], []
        for j in range(z.shape[1]):
            best = None
            for ls, mix in KERNELS:
                gram = self.kernel_of(d, ls, mix)
                for noise in NOISES:
                    matrix = gram + noise * eye
                    chol = np.linalg.cholesky(matrix)
                    alpha = np.linalg.solve(matrix, z[:, j])
                    loglik = -0.5 * float(z[:, j] @ alpha) - float(np.sum(np.log(np.diag(chol))))
                    if best is None or loglik > best[0]:
                        best = (loglik, (ls, mix, noise), matrix)
            self.hyper.append(best[1])
            self._inv.append(np.linalg.inv(best[2]))
        self._fitted_at = len(rows)

    def _append(self, new: list[int]) -> None:
        cross_d = self.distance(np.asarray(self._rows + new), np.asarray(new))  # (n + t, t)
        for j, (ls, mix, noise) in enumerate(self.hyper):
            cross_all = self.kernel_of(cross_d, ls, mix)
            inv, n = self._inv[j], len(self._rows)
            for t in range(len(new)):
                cross = cross_all[: n + t, t]
                b = inv @ cross
                schur = max(1.0 + noise - float(cross @ b), 1e-9)
                grown = np.empty((n + t + 1, n + t + 1))
                grown[:-1, :-1] = inv + np.outer(b, b) / schur
                grown[:-1, -1] = grown[-1, :-1] = -b / schur
                grown[-1, -1] = 1.0 / schur
                inv = grown
            self._inv[j] = inv
        self._rows.extend(new)


def _standardise(y: np.ndarray):
    mean = y.mean(axis=0)
    scale = y.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return (y - mean) / scale, mean, scale
