"""A small Gaussian-process surrogate over architectures, numpy only (no torch, no scipy).

Architectures are categorical vectors (an operation per TSS edge, a width per SSS layer), so the
kernel is ``exp(-hamming(a, b) / lengthscale)``: the more edges two cells share, the more alike
their results. Each output column (an objective, or the constraint violation) is standardised
and shares the kernel. Length-scale and noise come from the largest summed log marginal
likelihood over a small grid; they are chosen again each time the data has grown by half (on the first 10, 15, 23, ...
points, so the model is a function of the history alone), and between refits the inverse of the kernel matrix grows one row per new architecture
(block inversion through the Schur complement), so a proposal costs O(n^2) rather than O(n^3).
numpy only: importing scipy.linalg would cost a CLI run more than the whole surrogate does.

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

LENGTHSCALES = (1.0, 2.0, 4.0)
NOISES = (0.03, 0.1, 0.3)
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


class HammingGP:
    def __init__(self, encode: Callable[[Sequence[int]], np.ndarray]):
        self._encode = encode  # positions -> one-hot rows (Domain.onehot)
        self._rows: list[int] = []
        self._inv: np.ndarray | None = None  # (K + noise I)^-1 over self._rows
        self._fitted_at = 0
        self.lengthscale, self.noise = LENGTHSCALES[1], NOISES[1]

    def kernel(self, a, b, lengthscale: float | None = None) -> np.ndarray:
        ls = self.lengthscale if lengthscale is None else lengthscale
        xa, xb = self._encode(a), self._encode(b)
        genes = xa[:1].sum() if len(xa) else 0.0
        return np.exp((xa @ xb.T - genes) / ls)

    def fit(self, positions, targets) -> "HammingGP":
        """Bring the model up to ``positions`` (history order; earlier ones unchanged) with
        ``targets`` ``(n, m)`` aligned with them."""
        with _BLAS.limit(limits=1, user_api="blas"):
            return self._fit(list(positions), targets)

    def _fit(self, positions: list[int], targets) -> "HammingGP":
        targets = np.asarray(targets, dtype=float)
        start = refit_point(len(positions))
        if self._fitted_at != start or positions[: len(self._rows)] != self._rows or self._inv is None:
            # Hyperparameters from the first `start` points alone: the model at n points is the
            # same whether it grew here step by step or was rebuilt by a resumed search.
            self._rows = positions[:start]
            self._select(_standardise(targets[:start])[0])
        for pos in positions[len(self._rows):]:
            self._append(pos)
        self._z, self._mean, self._scale = _standardise(targets)
        return self

    def predict(self, candidates) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean ``(c, m)`` in the targets' units and standard deviation ``(c, m)``
        of the latent function (noise excluded)."""
        with _BLAS.limit(limits=1, user_api="blas"):
            return self._predict(candidates)

    def _predict(self, candidates) -> tuple[np.ndarray, np.ndarray]:
        cross = self.kernel(candidates, np.asarray(self._rows))
        mean = cross @ (self._inv @ self._z)
        var = 1.0 - np.einsum("ij,ij->i", cross @ self._inv, cross)
        sd = np.sqrt(np.clip(var, 1e-12, None))
        return self._mean + self._scale * mean, self._scale * sd[:, None]

    # -- internals -------------------------------------------------------------------------------
    def _select(self, z: np.ndarray) -> None:
        rows = np.asarray(self._rows)
        best = None
        for ls in LENGTHSCALES:
            gram = self.kernel(rows, rows, ls)
            for noise in NOISES:
                matrix = gram + noise * np.eye(len(rows))
                chol = np.linalg.cholesky(matrix)
                alpha = np.linalg.solve(matrix, z)
                loglik = -0.5 * float(np.sum(z * alpha)) - z.shape[1] * float(np.sum(np.log(np.diag(chol))))
                if best is None or loglik > best[0]:
                    best = (loglik, ls, noise, matrix)
        _, self.lengthscale, self.noise, matrix = best
        self._inv = np.linalg.inv(matrix)
        self._fitted_at = len(rows)

    def _append(self, pos: int) -> None:
        cross = self.kernel(np.asarray(self._rows), [pos])[:, 0]
        b = self._inv @ cross
        schur = max(1.0 + self.noise - float(cross @ b), 1e-9)
        n = len(self._rows)
        inv = np.empty((n + 1, n + 1))
        inv[:n, :n] = self._inv + np.outer(b, b) / schur
        inv[:n, n] = inv[n, :n] = -b / schur
        inv[n, n] = 1.0 / schur
        self._inv = inv
        self._rows.append(pos)


def _standardise(y: np.ndarray):
    mean = y.mean(axis=0)
    scale = y.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return (y - mean) / scale, mean, scale
