"""Turning user input into validated float64 / int64 arrays.

Everything in :mod:`calnas.metrics` goes through here, so the checks (and their messages) are
the same for the panel, the single metrics, the CLI and the reliability diagram. Torch tensors are
accepted by duck typing (``.detach().cpu()``) so that this package never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calnas.errors import UserError

# float16 softmax outputs are off by up to ~1e-3 per row; anything further is not a distribution.
ROW_SUM_ATOL = 1e-3
# Values this far outside [0, 1] are float noise and are clipped; further out is an error.
RANGE_ATOL = 1e-6


def _all_finite(arr: np.ndarray) -> bool:
    # min/max propagate NaN and inf, and are much cheaper than isfinite on the whole array.
    return bool(np.isfinite(arr.min()) and np.isfinite(arr.max()))


def as_array(x, name: str) -> np.ndarray:
    """``x`` as a numpy array; torch tensors (anything with ``.detach``) are moved to the CPU."""
    if x is None:
        raise UserError(f"{name} is missing; expected an array")
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
        try:
            x = x.numpy()
        except TypeError:
            # bfloat16 and friends have no numpy dtype.
            x = x.float().numpy()
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise UserError(f"{name} is not a rectangular numeric array ({exc})") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise UserError(f"{name} must be numeric, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise UserError(f"{name} must be real numbers, got dtype {arr.dtype}")
    return arr


def _first_bad_row(bad: np.ndarray) -> int:
    rows = bad.reshape(bad.shape[0], -1).any(axis=1) if bad.ndim > 1 else bad
    return int(np.flatnonzero(rows)[0])


def check_matrix(x, name: str, *, min_samples: int = 1) -> np.ndarray:
    """A finite (N, K) float64 matrix with N >= ``min_samples`` and K >= 2."""
    arr = as_array(x, name)
    if arr.ndim != 2:
        raise UserError(f"{name} must be 2-D (samples x classes), got shape {arr.shape}")
    n, k = arr.shape
    if n < min_samples:
        raise UserError(f"{name} has {n} samples; at least {min_samples} needed")
    if k < 2:
        raise UserError(f"{name} has {k} class column(s); at least 2 needed")
    arr = arr.astype(np.float64, copy=False)
    if not _all_finite(arr):
        row = _first_bad_row(~np.isfinite(arr))
        raise UserError(f"{name} contains NaN or infinite values (first at row {row})")
    return arr


def check_probs(x, name: str = "probs", *, min_samples: int = 1) -> np.ndarray:
    """Rows of probabilities: each in [0, 1] and summing to 1 (within :data:`ROW_SUM_ATOL`)."""
    p = check_matrix(x, name, min_samples=min_samples)
    low, high = p.min(), p.max()
    if low < -RANGE_ATOL or high > 1 + RANGE_ATOL:
        row = _first_bad_row((p < -RANGE_ATOL) | (p > 1 + RANGE_ATOL))
        raise UserError(
            f"{name} has values outside [0, 1] (first at row {row}); "
            "pass raw network outputs as logits= instead"
        )
    sums = p @ np.ones(p.shape[1])  # a matrix-vector product is several times faster than sum
    off = np.abs(sums - 1.0) > ROW_SUM_ATOL
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise UserError(
            f"{name} rows must sum to 1 (row {row} sums to {sums[row]:.6g}); "
            "pass raw network outputs as logits= instead"
        )
    if low < 0 or high > 1:
        p = np.clip(p, 0.0, 1.0)
    return p


def check_labels(y, n: int, k: int, name: str = "labels") -> np.ndarray:
    """Integer class indices of shape (n,), each in [0, k)."""
    arr = as_array(y, name)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise UserError(f"{name} must be 1-D class indices, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise UserError(f"{name} has {arr.shape[0]} entries but the predictions have {n} rows")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise UserError(f"{name} must be integer class indices, got non-integer values")
    # The range is checked before the cast, which would wrap values beyond int64 around.
    if n and (arr.min() < 0 or arr.max() >= k):
        bad = int(np.flatnonzero((arr < 0) | (arr >= k))[0])
        raise UserError(
            f"{name} must lie in [0, {k - 1}] for {k} classes (entry {bad} is {arr[bad].item()})"
        )
    return arr.astype(np.int64, copy=False)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    # Shifted before dividing: every value is then <= 0 and each row's maximum exactly 0, so no
    # finite input (however large, however small T) overflows into inf - inf = NaN.
    z = logits - logits.max(axis=1, keepdims=True)
    z /= temperature
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def log_softmax_at(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """log softmax(logits / T)[i, labels[i]] for every row, without forming the probabilities."""
    z = logits - logits.max(axis=1, keepdims=True)
    z /= temperature
    lse = np.log(np.exp(z).sum(axis=1))
    return z[np.arange(z.shape[0]), labels] - lse


@dataclass(frozen=True)
class TopLabel:
    """Top-label view of a prediction matrix, summarised once and shared by every estimator.

    The predicted class is ``argmax`` (ties in a row go to the lowest class index, as numpy does).
    Every estimator here depends on the samples only through the runs of equal confidence, so
    they are kept as groups: distinct confidences (ascending), their sizes and how many of each
    are correct. Nothing downstream depends on how tied samples are ordered.
    """

    confidence: np.ndarray  # (N,) input order
    correct: np.ndarray  # (N,) bool, input order
    sorted_confidence: np.ndarray  # (N,) ascending
    sorted_correct_confidence: np.ndarray  # ascending confidences of the correct samples
    values: np.ndarray  # (G,) distinct confidences, ascending
    size: np.ndarray  # (G,) samples per distinct confidence
    n_correct: np.ndarray  # (G,) correct samples per distinct confidence

    @classmethod
    def checked(cls, probs, labels) -> "TopLabel":
        """Validate raw user inputs, then summarise (the single-metric entry points use this)."""
        p = check_probs(probs)
        return cls.from_probs(p, check_labels(labels, p.shape[0], p.shape[1]))

    @classmethod
    def from_probs(cls, probs: np.ndarray, labels: np.ndarray) -> "TopLabel":
        pred = probs.argmax(axis=1)
        conf = probs[np.arange(probs.shape[0]), pred]
        correct = pred == labels
        return cls.from_confidence(conf, correct)

    @classmethod
    def from_confidence(cls, conf: np.ndarray, correct: np.ndarray) -> "TopLabel":
        sc = np.sort(conf)
        scc = np.sort(conf[correct])
        starts = np.flatnonzero(np.concatenate(([True], sc[1:] != sc[:-1])))
        values = sc[starts]
        size = np.diff(np.append(starts, sc.shape[0]))
        correct_upto = np.searchsorted(scc, values, side="right")
        n_correct = np.diff(correct_upto, prepend=0)
        return cls(conf, correct, sc, scc, values, size, n_correct)

    @property
    def n(self) -> int:
        return self.confidence.shape[0]
