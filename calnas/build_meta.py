"""Regenerate ``calnas/data/tss_meta.csv.gz``: per-index columns derived from the architecture.

Run ``python -m calnas.build_meta``. The table-search path must not import torch, so anything
that needs computing per architecture (isomorphism class, later cost) is computed here once and
shipped. A test checks that the shipped file equals a fresh computation.
"""

from __future__ import annotations

import csv
import gzip
import io

from calnas.embedded import TSS_META_FILE, data_path
from calnas.spaces import TSS


def tss_meta_rows() -> list[dict]:
    archs = TSS.all_archs()
    representative: dict[str, int] = {}
    rows = []
    for index, arch in enumerate(archs):
        key = TSS.iso_key(arch)
        # The smallest index of a class stands for the class: stable and readable ("twin of 12").
        rep = representative.setdefault(key, index)
        rows.append({"index": index, "iso": rep})
    return rows


def render(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    # mtime=0 keeps the gzip bytes reproducible.
    return gzip.compress(buf.getvalue().encode(), compresslevel=9, mtime=0)


def main() -> None:
    path = data_path(TSS_META_FILE)
    with open(str(path), "wb") as fh:
        fh.write(render(tss_meta_rows()))


if __name__ == "__main__":
    main()
