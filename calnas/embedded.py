"""Files shipped inside the package (``calnas/data``), loaded lazily and cached.

Readers here use only the standard library so that importing the spaces stays cheap.
"""

from __future__ import annotations

import csv
import gzip
import io
from functools import lru_cache
from importlib import resources

ACCURACY_FILE = "nats_tss_test_accuracy.csv.gz"
TSS_META_FILE = "tss_meta.csv.gz"
SSS_META_FILE = "sss_meta.csv.gz"


def data_path(name: str):
    return resources.files("calnas") / "data" / name


@lru_cache(maxsize=None)
def read_rows(name: str) -> tuple[dict, ...]:
    with data_path(name).open("rb") as raw, gzip.open(raw, "rt", newline="") as fh:
        return tuple(csv.DictReader(io.StringIO(fh.read())))


@lru_cache(maxsize=1)
def tss_arch_strings() -> list[str]:
    """Every TSS architecture string, position = NATS-Bench index."""
    rows = read_rows(ACCURACY_FILE)
    archs = [""] * len(rows)
    for row in rows:
        archs[int(row["index"])] = row["arch"]
    return archs


# The tables calnas built and ships: name -> (space, files). A large table ships as row slices
# (`calnas table ship --parts`, every file under the repository's 8 MB limit) read in order.
# The first one shipped is the embedded default (calnas.tables.default_benchmark): the curve
# table, whose networks are over-confident as trained networks are and whose rows are seed means.
CALIBRATION_TABLES = {
    "digits-tss-curves": ("tss", tuple(f"digits_tss_curves-{k}.csv.gz" for k in (1, 2, 3))),
    "digits-tss": ("tss", ("digits_tss.csv.gz",)),
    "digits-sss": ("sss", ("digits_sss-1.csv.gz", "digits_sss-2.csv.gz")),
}
# The shipped tables that are curve builds (per-seed learning curves: calnas.curve_table).
CURVE_TABLES = ("digits-tss-curves",)


def shipped(name: str) -> bool:
    """Whether every file of the calibration table ``name`` is in this install."""
    return name in CALIBRATION_TABLES and all(data_path(f).is_file() for f in CALIBRATION_TABLES[name][1])


def calibration_rows(name: str):
    """The rows of a shipped calibration table as shipped (a curve table: one row per
    architecture and training seed), its parts read in order, as a DataFrame."""
    import pandas as pd

    frames = []
    for file_name in CALIBRATION_TABLES[name][1]:
        with data_path(file_name).open("rb") as fh:
            frames.append(pd.read_csv(fh, compression="gzip"))
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
