"""The curve build's checkpointed rows (builds/digits_tss_curves) re-train to the same values.

One code path: a training with the curve protocol, split seed 0 and training seed s, recorded at
the curve epochs, gives the row the build wrote, at two epochs of its curve and in its final
panel. Within float32's last digits, not exactly: two sessions' machines, both reported as
"AMD EPYC" with AVX-512, gave the same accuracies and losses differing by about 1e-6 (the
network's float32 kernels differ between CPU models), and a table's rows are built on several.
On an Intel Xeon machine the same losses moved one test confidence across an ECE bin edge
(pre_ECE_15 2.3e-4 apart), so binned errors get the 2/N a single crossing can move them.
When the table ships, this reads the shipped rows instead.
"""


from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


ROOT = Path(__file__).resolve().parents[1]
SLICES = sorted((ROOT / "builds" / "digits_tss_curves").glob("rows-*.csv.gz"))

# float32 training: the seventh significant digit can differ between CPU models (AMD EPYC and
# Intel Xeon machines both built rows); the accuracy (a count of test images) by at most one image.
RTOL, ATOL = 1e-4, 1e-5


def _shipped() -> bool:
    from calnas.tables import embedded_benchmarks

    return "digits-tss-curves" in embedded_benchmarks()


pytestmark = pytest.mark.skipif(not SLICES and not _shipped(), reason="no curve-build checkpoint in builds/ and no "
                                                                       "shipped digits-tss-curves")


def _first_rows() -> pd.DataFrame:
    if _shipped():  # rounded to 6 significant digits: far inside RTOL
        from calnas.tables import embedded_rows

        return embedded_rows("digits-tss-curves")
    with gzip.open(SLICES[0], "rb") as fh:
        return pd.read_csv(io.BytesIO(fh.read()))  # repr floats: pandas reads them back exactly


def test_checkpointed_curve_rows_retrain_to_the_same_values():
    pytest.importorskip("torch")
    pytest.importorskip("xautodl")
    import torch

    from calnas.curve_layout import TEST_POINT_COLUMNS, VAL_POINT_COLUMNS, curve_column
    from calnas.live.curves import geometric_epochs
    from calnas.live.evaluate import evaluate_prepared, load_protocol_splits
    from calnas.live.protocol import DIGITS_TSS_CURVES
    from calnas.spaces import TSS

    rows = _first_rows()
    first = rows.iloc[[0, 1]]  # an architecture's seeds 0 and 1
    splits = load_protocol_splits(DIGITS_TSS_CURVES, seed=0)
    threads = torch.get_num_threads()
    mismatched = []
    try:
        for row in first.itertuples(index=False):
            row = row._asdict()
            rec = evaluate_prepared(TSS.arch(int(row["index"])), TSS, DIGITS_TSS_CURVES, splits,
                                    device=torch.device("cpu"), seed=int(row["seed"]),
                                    curve_epochs=geometric_epochs(DIGITS_TSS_CURVES.epochs)).record
            points = {p["epoch"]: p for p in rec["curve"]}
            for epoch in (4, 16):
                for column in TEST_POINT_COLUMNS + VAL_POINT_COLUMNS + ("train_loss",):
                    if not _close(column, points[epoch][column], row[curve_column(epoch, column)], splits):
                        mismatched.append((row["index"], row["seed"], epoch, column))
            for column in ("acc", "pre_ECE_15", "post_ECE_15", "pre_NLL", "AURC", "temperature"):
                if not _close(column, rec["metrics"][column], row[column], splits):
                    mismatched.append((row["index"], row["seed"], "final", column))
    finally:
        torch.set_num_threads(threads)
    assert not mismatched


def _close(column: str, got: float, want: float, splits) -> bool:
    if np.isnan(got) and np.isnan(want):
        return True
    images = len(splits.val_y) if column.startswith("val") else len(splits.test_y)
    if column.endswith("acc"):
        return abs(got - want) <= 1.0 / images + 1e-12
    if "ECE" in column:
        # A confidence that moves across a bin edge by a last-digit difference moves the binned
        # error by up to 2/N (its weight leaves one bin's gap and joins another's).
        return abs(got - want) <= 2.0 / images + ATOL
    return bool(np.isclose(got, want, rtol=RTOL, atol=ATOL))
