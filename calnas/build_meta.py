"""Regenerate the per-index files in ``calnas/data``: ``tss_meta.csv.gz`` and ``sss_meta.csv.gz``.

Run ``python -m calnas.build_meta``. The table-search path must not import torch, so anything
that needs computing per architecture (isomorphism class, cost) is computed here once and
shipped. Tests check that the shipped files equal a fresh computation.

Columns:

* ``index`` — NATS-Bench index in the space.
* ``iso`` (TSS only) — isomorphism class, named by its smallest index.
* ``params_<dataset>``, ``flops_<dataset>`` for each dataset of
  :data:`calnas.cost.DATASET_INPUTS` (``cifar10``, ``cifar100``, ``imagenet16-120``): millions
  of parameters and millions of FLOPs (multiply-accumulates) as NATS-Bench reports them, for
  its own networks (TSS: C=16, N=5). See :mod:`calnas.cost` for the convention.

Costs are rounded to 6 decimals. Both counts are integers divided by 1e6, so the rounding only
strips float noise; the file holds the exact counts.
"""

from __future__ import annotations

import csv
import gzip
import io

from calnas.cost import DATASET_INPUTS, sss_cost, tss_cost
from calnas.embedded import SSS_META_FILE, TSS_META_FILE, data_path
from calnas.spaces import SSS, TSS

DECIMALS = 6


def _cost_columns(cost, arch) -> dict:
    row = {}
    for dataset, (resolution, classes) in DATASET_INPUTS.items():
        params, flops = cost(arch, resolution=resolution, num_classes=classes)
        row[f"params_{dataset}"] = round(params, DECIMALS)
        row[f"flops_{dataset}"] = round(flops, DECIMALS)
    return row


def tss_meta_rows() -> list[dict]:
    archs = TSS.all_archs()
    representative: dict[str, int] = {}
    rows = []
    for index, arch in enumerate(archs):
        key = TSS.iso_key(arch)
        # The smallest index of a class stands for the class: stable and readable ("twin of 12").
        rep = representative.setdefault(key, index)
        rows.append({"index": index, "iso": rep, **_cost_columns(tss_cost, arch)})
    return rows


def sss_meta_rows() -> list[dict]:
    return [{"index": index, **_cost_columns(sss_cost, SSS.arch(index))} for index in range(SSS.size)]


def render_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def render(rows: list[dict]) -> bytes:
    # mtime=0 keeps the gzip bytes reproducible.
    return gzip.compress(render_csv(rows).encode(), compresslevel=9, mtime=0)


def main() -> None:
    for name, rows in ((TSS_META_FILE, tss_meta_rows()), (SSS_META_FILE, sss_meta_rows())):
        with open(str(data_path(name)), "wb") as fh:
            fh.write(render(rows))


if __name__ == "__main__":
    main()
