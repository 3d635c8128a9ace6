"""Harmonic calibration score (HCS), the study's single number for accurate *and* calibrated.

``HCS_beta = (1 + beta) * acc * (1 - ECE) / (beta * acc + (1 - ECE))``; ``beta = 1`` (default)
is the harmonic mean of accuracy and ``1 - ECE``. Larger is better. ``ECE`` is the study's
headline ``pre_ECE_15`` unless the spec names another column (``hcs:ece=post_ece_15``).
"""

from __future__ import annotations

import numpy as np

from calnas.objectives.catalog import HEADLINE

NAME = "hcs"
DEFAULTS = {"beta": 1.0, "ece": HEADLINE}


def hcs(acc, ece, beta: float = 1.0) -> np.ndarray:
    acc = np.asarray(acc, dtype=float)
    calibrated = 1.0 - np.asarray(ece, dtype=float)
    numerator = (1.0 + beta) * acc * calibrated
    denominator = beta * acc + calibrated
    # acc = 0 with ECE = 1 is 0/0: a network that is always wrong scores 0, not NaN.
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0)
