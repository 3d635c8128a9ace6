"""The :class:`Table` every source of architecture metrics becomes, and :func:`table_from_frame`,
which normalises a frame in the published layout (or calnas's) into one. pandas, no torch."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from calnas.columns import IDENTITY_COLUMNS
from calnas.errors import UserError
from calnas.plain import jsonable
from calnas.spaces import SSS, TSS, Space, get_space, infer_space
from calnas.table_meta import attach_meta, tss_meta


@dataclass
class Table:
    """Metrics for architectures of one space on one dataset."""

    name: str
    space: Space
    dataset: str | None
    frame: pd.DataFrame  # index: NATS-Bench architecture index (named "index"), column "arch"
    source: str = "file"
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.frame.index.name = "index"

    def __len__(self) -> int:
        return len(self.frame)

    def to_frame(self) -> pd.DataFrame:
        """A copy with ``index`` as a column, for users."""
        return self.frame.reset_index()

    @property
    def metric_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c not in IDENTITY_COLUMNS]

    @property
    def covers_space(self) -> bool:
        return len(self.frame) == self.space.size

    def has(self, column: str) -> bool:
        return column in self.frame.columns

    def row(self, arch) -> dict:
        """The row of an architecture (string or index), as a plain dict."""
        canonical = self.space.parse(arch)
        index = self.space.index(canonical)
        if index not in self.frame.index:
            raise UserError(f"architecture {index} ({canonical}) is not in {self.name}")
        values = self.frame.loc[index].to_dict()
        return {"index": int(index), **{k: jsonable(v) for k, v in values.items()}}

    def twins(self, arch) -> list[int]:
        """Other indices of the same isomorphism class (TSS), empty for SSS."""
        if self.space is not TSS:
            return []
        index = self.space.index(arch)
        iso = tss_meta()["iso"]
        members = iso.index[iso == iso.loc[index]]
        return [int(i) for i in members if i != index]


def table_from_frame(frame: pd.DataFrame, *, name: str, dataset: str | None = None, source: str = "file",
                     owned: bool = False) -> Table:
    """Normalise a frame in the published layout (or calnas's) into a Table.

    Accepts ``config`` or ``index`` for the architecture index and/or ``arch``; at least one is
    required. Rows may come in any order; indices may be absent. A curve build's rows (one per
    architecture and training seed, :mod:`calnas.curve_table`) become their final-epoch seed
    means. ``owned``: the caller hands ``frame`` over (it was just read), so it is changed in
    place instead of copied first.
    """
    from calnas.curve_table import is_curve_frame, seed_mean_frame

    if is_curve_frame(frame):
        frame = seed_mean_frame(frame, name)
    elif not owned:
        frame = frame.copy()
    # The frame is this function's own from here: it is changed in place (renaming, dropping and
    # the index by assignment), because pandas without copy-on-write copies every column for a
    # rename, drop or set_index, twice the table at a time, four times for a frame read in chunks.
    if "config" in frame.columns and "index" not in frame.columns:
        frame.columns = ["index" if c == "config" else c for c in frame.columns]
    elif "config" in frame.columns:
        del frame["config"]
    if "arch" not in frame.columns and "index" not in frame.columns:
        raise UserError(f"{name} has neither an 'arch' nor a 'config'/'index' column; expected the published layout")
    if "arch" in frame.columns:
        space = infer_space(frame["arch"].head(20))
        try:
            canonical, indices = space.parse_column(frame["arch"])
        except UserError as exc:
            raise UserError(f"{name}: {exc}") from None
        indices = np.asarray(indices, dtype=np.int64)
        if "index" in frame.columns:
            given = _index_column(frame["index"], name)
            if (given != indices).any():
                raise UserError(f"{name}: the index/config column disagrees with the arch column")
        frame["arch"] = canonical
    else:
        # Without strings the index alone must say the space: SSS indices run past TSS's range.
        indices = _index_column(frame["index"], name)
        space = SSS if indices.max() >= TSS.size else TSS
        with warnings.catch_warnings():
            # A frame read in chunks keeps a block per column (calnas.table_files._read_csv):
            # one more column is no fragmentation to warn about.
            warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
            frame["arch"] = _archs_of(space, indices)
    frame.index = pd.Index(indices, name="index")
    if "index" in frame.columns:
        del frame["index"]
    if frame.index.has_duplicates:
        dup = int(frame.index[frame.index.duplicated()][0])
        raise UserError(f"{name}: architecture {dup} appears twice")
    if not frame.index.is_monotonic_increasing:  # published tables come sorted: no second copy
        frame = frame.sort_index()
    # A metric that is +-inf is not a measurement: it counts as missing, like NaN, everywhere.
    numeric = [c for c in frame.columns if c not in IDENTITY_COLUMNS and frame[c].dtype.kind == "f"]
    if numeric:
        infinite = [c for c in numeric if np.isinf(frame[c].to_numpy()).any()]
        if infinite:
            frame[infinite] = frame[infinite].replace([np.inf, -np.inf], np.nan)
    if "acc" in frame.columns:
        acc = pd.to_numeric(frame["acc"], errors="coerce")
        outside = acc[(acc < 0.0) | (acc > 1.0)]
        if len(outside):
            raise UserError(f"{name}: column 'acc' must be a fraction in [0, 1] "
                            f"(found {outside.iloc[0]:g} for architecture {outside.index[0]})")
    frame = _expand_iso_classes(frame, space)
    frame = attach_meta(frame, space, dataset, inplace=True)
    return Table(name, space, dataset, frame, source=source)


def _archs_of(space: Space, indices: np.ndarray) -> np.ndarray:
    """The canonical strings of many indices at once."""
    return _all_archs(space.name)[np.asarray(indices, dtype=np.int64)]


@lru_cache(maxsize=None)
def _all_archs(space_name: str) -> np.ndarray:
    return np.asarray(get_space(space_name).all_archs(), dtype=object)


def _index_column(column: pd.Series, name: str) -> np.ndarray:
    """The index/config column as int64: whole numbers within the spaces' range, nothing missing
    (0.5 or 1.5 must not be truncated to 0 or 1)."""
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    largest = max(TSS.size, SSS.size)
    bad = ~np.isfinite(values) | (values != np.round(values)) | (values < 0) | (values >= largest)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserError(f"{name}: the index/config column must hold architecture indices 0..{largest - 1} "
                        f"(row {row} holds {str(column.iloc[row])[:40]!r})")
    return values.astype(np.int64)


def _expand_iso_classes(frame: pd.DataFrame, space: Space) -> pd.DataFrame:
    """A TSS table built one row per isomorphism class covers every member of those classes."""
    if space is not TSS or "iso" not in frame.columns:
        return frame
    iso = pd.to_numeric(frame["iso"], errors="coerce")
    if not (iso == frame.index).all():
        return frame
    meta_iso = tss_meta()["iso"]
    members = meta_iso[meta_iso.isin(frame.index)]
    expanded = frame.drop(columns="arch").loc[members.to_numpy()].copy()
    expanded.index = members.index
    expanded.insert(0, "arch", _archs_of(TSS, members.index.to_numpy()))
    expanded["evaluated_index"] = members.to_numpy()
    return expanded
