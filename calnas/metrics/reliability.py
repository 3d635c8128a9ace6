"""Reliability diagrams: the per-bin data behind the top-label ECE, and an optional PNG."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calnas.metrics._inputs import TopLabel, check_labels, check_matrix, check_probs, softmax
from calnas.metrics.binning import check_bins, top_label_bin_stats


@dataclass(frozen=True)
class ReliabilityDiagram:
    """Per-bin data of a top-label reliability diagram.

    Bin i covers (lower[i], upper[i]]; for equal-mass bins the first lower edge is reported as 0
    (it is unbounded below). ``confidence`` and ``accuracy`` are NaN for empty bins. ``ece`` and
    ``mce`` equal the panel's ECE_B / ECE_em_B and MCE_B for the same binning.
    """

    lower: np.ndarray
    upper: np.ndarray
    count: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    n_samples: int
    ece: float
    mce: float
    equal_mass: bool

    @property
    def gap(self) -> np.ndarray:
        return self.confidence - self.accuracy

    def to_dict(self) -> dict:
        def clean(a):
            return [None if np.isnan(v) else float(v) for v in np.asarray(a, dtype=float)]

        return {
            "lower": clean(self.lower),
            "upper": clean(self.upper),
            "count": [int(c) for c in self.count],
            "confidence": clean(self.confidence),
            "accuracy": clean(self.accuracy),
            "n_samples": self.n_samples,
            "ece": self.ece,
            "mce": self.mce,
            "equal_mass": self.equal_mass,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ReliabilityDiagram":
        """The inverse of :meth:`to_dict` (e.g. a diagram stored with a live evaluation)."""
        def floats(key):
            return np.array([np.nan if v is None else float(v) for v in data[key]], dtype=float)

        return cls(lower=floats("lower"), upper=floats("upper"), count=np.asarray(data["count"], dtype=np.int64),
                   confidence=floats("confidence"), accuracy=floats("accuracy"), n_samples=int(data["n_samples"]),
                   ece=float(data["ece"]), mce=float(data["mce"]), equal_mass=bool(data["equal_mass"]))

    def draw(self, ax, hist=None, *, title: str | None = None, legend: bool = True) -> None:
        """Draw onto matplotlib axes: accuracy per bin and the gap to the diagonal on ``ax``, the
        share of samples per bin on ``hist`` (when given)."""
        filled = self.count > 0
        width = self.upper - self.lower
        ax.bar(self.lower[filled], self.accuracy[filled], width=width[filled], align="edge",
               color="tab:blue", edgecolor="black", linewidth=0.5, label="accuracy")
        ax.bar(self.lower[filled], self.confidence[filled] - self.accuracy[filled],
               bottom=self.accuracy[filled], width=width[filled], align="edge",
               color="tab:red", alpha=0.35, edgecolor="tab:red", label="gap to confidence")
        ax.plot([0, 1], [0, 1], "k--", linewidth=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        if legend:
            ax.legend(loc="upper left", fontsize=8)
        ax.set_title(title or f"ECE {100 * self.ece:.2f}%  MCE {100 * self.mce:.2f}%", fontsize=9)
        if hist is not None:
            hist.bar(self.lower, self.count / max(self.n_samples, 1), width=width, align="edge",
                     color="grey", edgecolor="black", linewidth=0.5)
            hist.set_xlabel("confidence")
            hist.set_ylabel("share of samples")
        else:
            ax.set_xlabel("confidence")

    def plot(self, path, title: str | None = None) -> Path:
        """Write the diagram as a PNG: accuracy per bin, the gap to the diagonal, and the share of
        samples per bin."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from calnas.files import check_figure_path

        path = check_figure_path(path, "path")  # a format calnas writes, in a writable folder
        figure = Figure(figsize=(5, 6), layout="constrained")
        FigureCanvasAgg(figure)  # the object API and the Agg canvas: no pyplot, no backend change
        ax, hist = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        self.draw(ax, hist, title=title)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=120)
        return path


def reliability_diagram(
    probs,
    labels,
    n_bins: int = 15,
    *,
    logits=None,
    equal_mass: bool = False,
    path=None,
    title: str | None = None,
) -> ReliabilityDiagram:
    """Per-bin data of the top-label reliability diagram; also writes a PNG when ``path`` is set.

    Uses the panel's binning (equal-width ``lo < c <= hi``, or the equal-mass scheme). ``probs``
    may be None when ``logits`` are given (probs = softmax(logits)).
    """
    if probs is None and logits is not None:
        probs = softmax(check_matrix(logits, "logits"))
    p = check_probs(probs)
    y = check_labels(labels, *p.shape)
    (b,) = check_bins(n_bins)
    top = TopLabel.from_probs(p, y)
    stats = top_label_bin_stats(top, b, equal_mass)
    count = stats.count
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.where(count > 0, stats.value_sum / count, np.nan)
        accuracy = np.where(count > 0, stats.positive / count, np.nan)
    lower = stats.edges[:-1].copy()
    lower[0] = max(lower[0], 0.0)
    diagram = ReliabilityDiagram(
        lower=lower,
        upper=stats.edges[1:].copy(),
        count=count,
        confidence=confidence,
        accuracy=accuracy,
        n_samples=top.n,
        ece=stats.calibration_error(),
        mce=stats.max_calibration_error(),
        equal_mass=equal_mass,
    )
    if path is not None:
        diagram.plot(path, title)
    return diagram
