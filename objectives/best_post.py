"""``best_post_ece``: each architecture calibrated its own best way.

Per architecture (row), the calibrator with the lowest validation ECE_15 (``val_ECE_15@NAME``,
cross-validated within the validation split: calnas.metrics.calibrated) is chosen, and the
objective is that calibrator's test ECE_15 (``post_ECE_15@NAME``). The choice never looks at the
test split. Ties go to the first calibrator in :data:`CALIBRATOR_NAMES` order; a calibrator whose
values are missing is never chosen. Smaller is better.
"""

from __future__ import annotations

import numpy as np

from calnas.calibrator_columns import CALIBRATOR_NAMES, test_columns, validation_columns

NAME = "best_post_ece"
VALIDATION = validation_columns()
TEST = test_columns()
INPUTS = (*VALIDATION, *TEST)
ANNOTATION = "calibrator"  # the result frames' column naming each member's chosen calibrator


def _stack(frame, columns) -> np.ndarray:
    return np.column_stack([np.asarray(frame[c], dtype=float) for c in columns])


def choices(frame) -> np.ndarray:
    """Per row, the position in :data:`CALIBRATOR_NAMES` of the chosen calibrator; -1 where no
    calibrator has both its values."""
    val, test = _stack(frame, VALIDATION), _stack(frame, TEST)
    val = np.where(np.isfinite(val) & np.isfinite(test), val, np.inf)
    chosen = np.argmin(val, axis=1)  # the first of equal values
    return np.where(np.isfinite(val[np.arange(val.shape[0]), chosen]), chosen, -1)


def values(frame) -> np.ndarray:
    chosen = choices(frame)
    test = _stack(frame, TEST)
    picked = test[np.arange(test.shape[0]), np.maximum(chosen, 0)]
    return np.where(chosen >= 0, picked, np.nan)


def chosen_names(frame) -> list[str]:
    return [CALIBRATOR_NAMES[i] if i >= 0 else "" for i in choices(frame)]
