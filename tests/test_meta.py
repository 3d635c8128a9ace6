"""The shipped per-index files are exactly what ``python -m calnas.build_meta`` computes now."""

from __future__ import annotations

import csv
import gzip
import io
from functools import lru_cache

import pytest

from calnas.build_meta import render_csv, sss_meta_rows, tss_meta_rows
from calnas.cost import DATASET_INPUTS, sss_cost, tss_cost
from calnas.embedded import SSS_META_FILE, TSS_META_FILE, data_path
from calnas.spaces import SSS, TSS

COST_COLUMNS = [f"{kind}_{dataset}" for dataset in DATASET_INPUTS for kind in ("params", "flops")]


def shipped_text(name: str) -> str:
    # Compare the CSV, not the gzip bytes: zlib builds may compress the same text differently.
    with data_path(name).open("rb") as raw, gzip.open(raw, "rt", newline="") as fh:
        return fh.read()


@lru_cache(maxsize=None)
def shipped_rows(name: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(shipped_text(name))))


@pytest.mark.parametrize(
    "name, fresh_rows", [(TSS_META_FILE, tss_meta_rows), (SSS_META_FILE, sss_meta_rows)], ids=["tss", "sss"]
)
def test_shipped_file_equals_fresh_computation(name, fresh_rows):
    assert shipped_text(name) == render_csv(fresh_rows()), f"stale {name}: run python -m calnas.build_meta"


def test_tss_meta_shape_and_iso_classes():
    rows = shipped_rows(TSS_META_FILE)
    assert list(rows[0]) == ["index", "iso", *COST_COLUMNS]
    assert [int(r["index"]) for r in rows] == list(range(TSS.size))
    assert len({r["iso"] for r in rows}) == 6466
    # A class is named by its smallest member, which names itself.
    assert all(rows[int(r["iso"])]["iso"] == r["iso"] and int(r["iso"]) <= int(r["index"]) for r in rows)


def test_sss_meta_shape():
    rows = shipped_rows(SSS_META_FILE)
    assert list(rows[0]) == ["index", *COST_COLUMNS]
    assert [int(r["index"]) for r in rows] == list(range(SSS.size))


@pytest.mark.parametrize("index", [0, 1, 6111, 9930, 15624])
def test_rounding_to_six_decimals_loses_nothing(index):
    # Counts are integers / 1e6, so the rounded value read back is the very same float.
    tss_row = shipped_rows(TSS_META_FILE)[index]
    sss_row = shipped_rows(SSS_META_FILE)[index]
    for dataset, (resolution, classes) in DATASET_INPUTS.items():
        expected_tss = tss_cost(index, resolution=resolution, num_classes=classes)
        expected_sss = sss_cost(index, resolution=resolution, num_classes=classes)
        assert (float(tss_row[f"params_{dataset}"]), float(tss_row[f"flops_{dataset}"])) == expected_tss
        assert (float(sss_row[f"params_{dataset}"]), float(sss_row[f"flops_{dataset}"])) == expected_sss
