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
