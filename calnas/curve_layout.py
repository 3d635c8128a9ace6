"""The layout of a curve table's rows (one fact, one place for the builder and the reader).

A curve build (``calnas table build --curves``) writes one row per (architecture, training
seed): the final-epoch panel, and for every recorded epoch E the point columns of
:data:`POINT_COLUMNS` as ``e{E}_{column}``. Test-split columns come before and after
temperature scaling (the temperature fitted on the validation split at that epoch); the
validation columns are what a multi-fidelity search may rank by without the test labels; the
training columns come from the training itself (``cpu_seconds``: CPU time to reach the epoch,
evaluation left out, what a simulator charges).

Standard library only: the table-search path reads this without torch or calnas.live.
"""

from __future__ import annotations

import re

TEST_POINT_COLUMNS = ("acc", "pre_ECE_15", "post_ECE_15", "pre_NLL", "post_NLL", "pre_Brier", "post_Brier",
                      "temperature")
VAL_POINT_COLUMNS = ("val_acc", "val_ECE_15", "val_post_ECE_15", "val_NLL")
TRAIN_POINT_COLUMNS = ("train_loss", "train_acc", "cpu_seconds")
POINT_COLUMNS = TEST_POINT_COLUMNS + VAL_POINT_COLUMNS + TRAIN_POINT_COLUMNS

CURVE_SEEDS = (0, 1, 2)   # training seeds of a curve build (NATS-Bench's three for its long schedule)

_CURVE_COLUMN_RE = re.compile(r"^e([0-9]{1,6})_(.+)$")


def curve_column(epoch: int, column: str) -> str:
    """A curve point's column in a table row: ``e{epoch}_{column}`` (e.g. ``e4_pre_ECE_15``)."""
    return f"e{int(epoch)}_{column}"


def parse_curve_column(name: str) -> tuple[int, str] | None:
    """(epoch, point column) of a curve column name, or None for any other column."""
    m = _CURVE_COLUMN_RE.match(name)
    if m is None or m.group(2) not in POINT_COLUMNS:
        return None
    return int(m.group(1)), m.group(2)
