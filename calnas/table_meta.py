"""Per-index columns every table of a space can carry, from the shipped meta files: the TSS
isomorphism class and the params/FLOPs of each NATS-Bench network (calnas/data, built by
:mod:`calnas.build_meta`). pandas, no torch."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from calnas import embedded
from calnas.columns import COST_COLUMNS
from calnas.datasets import NATS_DATASETS
from calnas.spaces import TSS, Space


@lru_cache(maxsize=1)
def tss_meta() -> pd.DataFrame:
    """Per-index columns derived from TSS architectures (iso class, params/FLOPs per dataset)."""
    with embedded.data_path(embedded.TSS_META_FILE).open("rb") as fh:
        return pd.read_csv(fh, compression="gzip").set_index("index")


@lru_cache(maxsize=1)
def sss_meta() -> pd.DataFrame | None:
    name = getattr(embedded, "SSS_META_FILE", None)
    if name is None or not embedded.data_path(name).is_file():
        return None
    with embedded.data_path(name).open("rb") as fh:
        return pd.read_csv(fh, compression="gzip").set_index("index")


def cost_dataset_of(dataset: str | None) -> str:
    """Which NATS-Bench dataset's network params/FLOPs describe a table on ``dataset``.

    Tables (and live searches) on other data (digits, a user's .npz) report the NATS-Bench
    network as benchmarked on CIFAR-10: cost is a property of the architecture users compare, not
    of the small proxy network.
    """
    return dataset if dataset in NATS_DATASETS else "cifar10"


def space_costs(space: Space, dataset: str | None) -> dict[str, np.ndarray]:
    """params / flops (millions) of every index of ``space``, as :func:`attach_meta` gives tables
    (a joint architecture x recipe space: the architecture's, whatever the recipe)."""
    base = getattr(space, "base", None)
    if base is not None:
        return {name: np.repeat(values, len(space.recipes)) for name, values in space_costs(base, dataset).items()}
    meta = tss_meta() if space is TSS else sss_meta()
    if meta is None:
        return {}
    chosen = cost_dataset_of(dataset)
    return {cost: meta[f"{cost}_{chosen}"].reindex(range(space.size)).to_numpy(dtype=float)
            for cost in COST_COLUMNS if f"{cost}_{chosen}" in meta.columns}


def attach_meta(frame: pd.DataFrame, space: Space, dataset: str | None, *, inplace: bool = False) -> pd.DataFrame:
    """Add iso / params / flops columns that the source itself does not carry. ``inplace``: the
    caller owns ``frame``, and the columns are added to it (a join copies every column first
    where pandas has no copy-on-write)."""
    meta = tss_meta() if space is TSS else sss_meta()
    if meta is None:
        return frame
    wanted = {}
    if space is TSS and "iso" not in frame.columns:
        wanted["iso"] = "iso"
    cost_dataset = cost_dataset_of(dataset)
    for cost in COST_COLUMNS:
        column = f"{cost}_{cost_dataset}"
        if cost not in frame.columns and column in meta.columns:
            wanted[column] = cost
    if not wanted:
        return frame
    extra = meta.loc[frame.index.intersection(meta.index), list(wanted)].rename(columns=wanted)
    if not inplace:
        return frame.join(extra)
    import warnings

    with warnings.catch_warnings():
        # A table read in chunks keeps a block per column (consolidating would copy it all once
        # more, calnas.table_files._read_csv): a few more columns are no fragmentation to warn about.
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        for column in extra.columns:
            frame[column] = extra[column].reindex(frame.index)
    return frame

