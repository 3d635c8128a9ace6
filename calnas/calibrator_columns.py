"""The names of the post-hoc calibrators and of the table columns that record them.

Defined here, apart from :mod:`calnas.metrics` (which fits the calibrators), because the
objective language and the table-search path read these names and must not pay for importing
scipy: this module imports nothing.

A calibrator's test-split column is ``<metric column>@<calibrator>`` with the panel's own
spelling of the metric (``post_ECE_15@dirichlet``, ``acc@isotonic``, ``AURC@ets``); its
validation-split column, the one a per-architecture choice of calibrator is made on, is
``val_ECE_15@<calibrator>`` (cross-validated within the validation split, see docs/metrics.md).
"""

from __future__ import annotations

# In the order they are fitted, reported and tried when two tie for the best validation value.
CALIBRATOR_NAMES = ("temperature", "vector", "matrix", "dirichlet", "histogram", "isotonic", "ets")

# The compact block recorded per calibrator (key -> the panel column it is the "after" of).
METRICS = ("ECE_15", "cwCE_15", "NLL", "Brier", "acc", "AURC")
_UNPREFIXED = ("acc", "AURC")  # panel columns without a pre_/post_ twin
VALIDATION_METRIC = "ECE_15"  # what the choice of calibrator minimises, on the validation split
SEPARATOR = "@"


def column(metric: str, calibrator: str, split: str = "test") -> str:
    """The table column of ``metric`` (one of :data:`METRICS`) after ``calibrator``, on the test
    split (``post_ECE_15@dirichlet``) or the validation split (``val_ECE_15@dirichlet``)."""
    if split == "val":
        return f"val_{metric}{SEPARATOR}{calibrator}"
    base = metric if metric in _UNPREFIXED else f"post_{metric}"
    return f"{base}{SEPARATOR}{calibrator}"


def validation_columns() -> tuple[str, ...]:
    return tuple(column(VALIDATION_METRIC, c, "val") for c in CALIBRATOR_NAMES)


def test_columns(metric: str = VALIDATION_METRIC) -> tuple[str, ...]:
    return tuple(column(metric, c) for c in CALIBRATOR_NAMES)


# Every calibrator column a table or live evaluation records, in their stable order: per
# calibrator its test block, then its validation value.
CALIBRATOR_COLUMNS = tuple(
    name
    for c in CALIBRATOR_NAMES
    for name in (*(column(m, c) for m in METRICS), column(VALIDATION_METRIC, c, "val"))
)


def split_column(name: str) -> tuple[str, str] | None:
    """(metric column, calibrator) of a ``COLUMN@CALIBRATOR`` name, or None for another name."""
    base, sep, calibrator = name.partition(SEPARATOR)
    if not sep:
        return None
    return base, calibrator
