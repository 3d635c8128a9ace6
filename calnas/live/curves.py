"""Learning curves: a few calibration metrics at chosen epochs of one training.

A :class:`CurveRecorder` is :func:`calnas.live.train.train`'s ``on_epoch`` hook. At each epoch of
its set it predicts the validation and test splits with the network in eval mode (no gradients,
batch-norm running statistics untouched, no random numbers drawn), fits the temperature on the
validation split with the panel's protocol (the study's ECE grid), and records on the test
split accuracy, ECE_15, NLL and Brier before and after scaling, the temperature, and on the
validation split the quantities a multi-fidelity search may rank by without looking at the test
labels (``val_acc``, ``val_ECE_15``, ``val_NLL``, ``val_post_ECE_15``). The training's own
per-epoch loss, accuracy and CPU seconds come from ``train``'s history (:func:`merge_history`).

Recording never changes the training: with a recorder or without, the trained network is
bit-for-bit the same (a test checks it), so a curve's last point is the table row's panel.
"""

from __future__ import annotations

import math

import numpy as np

from calnas.curve_layout import (CURVE_SEEDS, POINT_COLUMNS, TEST_POINT_COLUMNS, TRAIN_POINT_COLUMNS,
                                 VAL_POINT_COLUMNS, curve_column)

def geometric_epochs(last: int, ratio: float = 2.0) -> tuple[int, ...]:
    """1, then each epoch ``ratio`` times the one before (rounded, distinct), and ``last``."""
    if last < 1:
        raise ValueError(f"last epoch must be at least 1, got {last}")
    if not ratio > 1:
        raise ValueError(f"ratio must be above 1, got {ratio}")
    out, e = [1], 1.0
    while True:
        e *= ratio
        k = int(round(e))
        if k >= last:
            break
        if k > out[-1]:
            out.append(k)
    if out[-1] != last:
        out.append(last)
    return tuple(out)


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    from calnas.metrics._inputs import log_softmax_at

    return float(-np.mean(log_softmax_at(logits, labels, temperature)))


def _brier(probs: np.ndarray, labels: np.ndarray) -> float:
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(labels)), labels] = 1.0
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def point_metrics(val_logits: np.ndarray, val_labels: np.ndarray, test_logits: np.ndarray,
                  test_labels: np.ndarray) -> dict:
    """One curve point from the two splits' logits (see the module docstring)."""
    from calnas.metrics import ece
    from calnas.metrics._inputs import softmax
    from calnas.metrics.temperature import fit_temperature

    if not (np.isfinite(val_logits).all() and np.isfinite(test_logits).all()):
        return {c: math.nan for c in TEST_POINT_COLUMNS + VAL_POINT_COLUMNS}
    t = float(fit_temperature(val_logits, val_labels, "ece_grid"))
    pre, post = softmax(test_logits), softmax(test_logits, t)
    val_pre, val_post = softmax(val_logits), softmax(val_logits, t)
    return {
        "acc": float(np.mean(test_logits.argmax(1) == test_labels)),
        "pre_ECE_15": ece(pre, test_labels, 15), "post_ECE_15": ece(post, test_labels, 15),
        "pre_NLL": _nll(test_logits, test_labels), "post_NLL": _nll(test_logits, test_labels, t),
        "pre_Brier": _brier(pre, test_labels), "post_Brier": _brier(post, test_labels),
        "temperature": t,
        "val_acc": float(np.mean(val_logits.argmax(1) == val_labels)),
        "val_ECE_15": ece(val_pre, val_labels, 15), "val_post_ECE_15": ece(val_post, val_labels, 15),
        "val_NLL": _nll(val_logits, val_labels),
    }


class CurveRecorder:
    """Records :data:`POINT_COLUMNS` (less the training ones) at ``epochs``; ``recorder(epoch,
    model)`` is ``train``'s hook. After training, ``final_logits`` holds the (val, test) logits of
    the last recorded epoch, so the caller need not predict again when that epoch is the last."""

    def __init__(self, splits, epochs, *, device, eval_batch_size: int = 1024):
        self.splits = splits
        self.epochs = tuple(sorted({int(e) for e in epochs}))
        self.device = device
        self.eval_batch_size = int(eval_batch_size)
        self.points: list[dict] = []
        self.final_logits: tuple[np.ndarray, np.ndarray] | None = None
        self._last_epoch = 0

    def __call__(self, epoch: int, model) -> None:
        self._last_epoch = int(epoch)
        self.final_logits = None
        if epoch not in self.epochs:
            return
        from calnas.live.train import predict_logits

        was_training = model.training
        try:
            val = predict_logits(model, self.splits.val_x, device=self.device, batch_size=self.eval_batch_size)
            test = predict_logits(model, self.splits.test_x, device=self.device, batch_size=self.eval_batch_size)
        finally:
            model.train(was_training)
        if not (np.isfinite(val).all() and np.isfinite(test).all()):
            from calnas.live.train import diverged

            raise diverged(epoch, "outputs")
        self.points.append({"epoch": int(epoch), **point_metrics(val, self.splits.val_y, test, self.splits.test_y)})
        self.final_logits = (val, test)


def merge_history(points: list[dict], history: list[dict]) -> list[dict]:
    """Curve points with train()'s per-epoch training loss, accuracy and CPU seconds added."""
    by_epoch = {h["epoch"]: h for h in history}
    return [{**p, **{c: by_epoch[p["epoch"]][c] for c in TRAIN_POINT_COLUMNS}} for p in points]


# -- what a curve build records ----------------------------------------------------------------

class CurveSpec:
    """What a curve build records: the epochs of each curve and the training seeds.

    The data split stays that of the build's ``--seed``; each architecture is trained once per
    seed here, and every training is one table row (its ``seed`` column is the training seed)."""

    def __init__(self, epochs, seeds=CURVE_SEEDS):
        self.epochs = tuple(sorted({int(e) for e in epochs}))
        self.seeds = tuple(dict.fromkeys(int(s) for s in seeds))
        if not self.epochs or self.epochs[0] < 1:
            raise ValueError(f"curve epochs must be positive, got {epochs!r}")
        if not self.seeds:
            raise ValueError("a curve build needs at least one training seed")

    @classmethod
    def geometric(cls, last_epoch: int, seeds=CURVE_SEEDS) -> "CurveSpec":
        return cls(geometric_epochs(last_epoch), seeds)

    def record(self) -> dict:
        return {"epochs": list(self.epochs), "seeds": list(self.seeds), "columns": list(POINT_COLUMNS)}

    def columns(self) -> list[str]:
        return [curve_column(e, c) for e in self.epochs for c in POINT_COLUMNS]

    def row_values(self, curve: list[dict]) -> dict:
        return {curve_column(p["epoch"], c): p[c] for p in curve for c in POINT_COLUMNS}
