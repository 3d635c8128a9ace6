"""Curve tables: per-seed learning curves of calibration, and their final-epoch seed-mean view.

A curve build (``calnas table build --curves``, layout in :mod:`calnas.curve_layout`) holds one
row per (architecture, training seed). :class:`CurveTable` reads it:

* ``metrics(arch, epoch, seed=None)``: the point columns at an epoch, of one seed or the mean
  of the seeds (errors name an epoch, seed or architecture the table does not hold);
* ``curve(arch, seed=None)``: the whole curve, one row per recorded epoch;
* ``seed_frame(seed)``: one seed's rows, as an ordinary table frame (per-seed analysis, the
  noise ceiling);
* :func:`seed_mean_frame`: the final-epoch view, one row per architecture with the seed mean
  of every numeric column, the seed standard deviation of :data:`SPREAD_COLUMNS` as
  ``{column}_std``, and ``seeds``, the number of seeds averaged. Every calnas command reads it
  as an ordinary table (``calnas.tables.table_from_frame`` turns a curve frame into it).

pandas only; torch never.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from calnas.curve_layout import POINT_COLUMNS, curve_column, parse_curve_column
from calnas.errors import UserError

# The columns whose seed-to-seed spread the final view keeps (as ``{column}_std``).
SPREAD_COLUMNS = ("acc", "pre_ECE_15", "post_ECE_15", "pre_NLL", "post_NLL", "pre_Brier", "post_Brier", "temperature")
STD_SUFFIX = "_std"
# Per-row bookkeeping of a build that is not averaged over seeds (identity, settings, strings).
_NOT_AVERAGED = ("index", "config", "arch", "iso", "seed", "recipe")


def is_curve_frame(frame: pd.DataFrame) -> bool:
    """A curve build's rows: curve columns and a ``seed`` column."""
    return "seed" in frame.columns and any(parse_curve_column(str(c)) for c in frame.columns)


def curve_epochs(columns) -> tuple[int, ...]:
    return tuple(sorted({p[0] for p in (parse_curve_column(str(c)) for c in columns) if p}))


def _key_column(frame: pd.DataFrame) -> str:
    if "index" in frame.columns:
        return "index"
    if "config" in frame.columns:
        return "config"
    raise UserError("a curve table needs an 'index' or 'config' column")


def _check_seeds(frame: pd.DataFrame, key: str, name: str) -> None:
    seeds = pd.to_numeric(frame["seed"], errors="coerce")
    if seeds.isna().any() or (seeds != seeds.round()).any() or (seeds < 0).any():
        raise UserError(f"{name}: the seed column must hold whole non-negative numbers")
    if frame.duplicated([key, "seed"]).any():
        row = frame.loc[frame.duplicated([key, "seed"])].iloc[0]
        raise UserError(f"{name}: architecture {row[key]} has seed {row['seed']} twice")


def seed_mean_frame(frame: pd.DataFrame, name: str = "curve table") -> pd.DataFrame:
    """The final-epoch seed-mean view of a curve frame (see the module docstring)."""
    key = _key_column(frame)
    _check_seeds(frame, key, name)
    numeric = [c for c in frame.columns if c not in _NOT_AVERAGED and pd.api.types.is_numeric_dtype(frame[c])]
    grouped = frame.groupby(key, sort=True)
    parts = [grouped[[c for c in ("arch", "iso", "recipe") if c in frame.columns]].first(), grouped[numeric].mean()]
    spread = [c for c in SPREAD_COLUMNS if c in frame.columns]
    if spread:
        parts.append(grouped[spread].std(ddof=1).add_suffix(STD_SUFFIX))
    parts.append(grouped.size().rename("seeds"))
    out = pd.concat(parts, axis=1).copy().reset_index()  # copy: one block, so reset_index does not warn
    if key != "index":
        out = out.rename(columns={key: "index"})
    return out


class CurveTable:
    """The rows of a curve build (one per architecture and training seed)."""

    def __init__(self, frame: pd.DataFrame, *, name: str = "curve table", space=None):
        from calnas.spaces import TSS, infer_space

        if not is_curve_frame(frame):
            raise UserError(f"{name} has no learning curves (no e<epoch>_<metric> columns and seed column); "
                            "build one with `calnas table build --curves`")
        key = _key_column(frame)
        _check_seeds(frame, key, name)
        self.name = name
        self.space = space if space is not None else (infer_space(frame["arch"].head(20)) if "arch" in frame else TSS)
        self.frame = frame.assign(index=pd.to_numeric(frame[key]).astype(np.int64),
                                  seed=pd.to_numeric(frame["seed"]).astype(np.int64)).set_index(["index", "seed"]).sort_index().copy()
        self.epochs = curve_epochs(frame.columns)
        self.seeds = tuple(int(s) for s in sorted(self.frame.index.get_level_values("seed").unique()))
        self.indices = tuple(int(i) for i in self.frame.index.get_level_values("index").unique())
        self._held = set(self.indices)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def last_epoch(self) -> int:
        return self.epochs[-1]

    # -- lookups -----------------------------------------------------------------------------

    def held_index(self, arch) -> int:
        """The row index of an architecture: its own, or (TSS) its isomorphism class's."""
        from calnas.spaces import TSS

        index = self.space.index(self.space.parse(arch))
        if index in self._held:
            return index
        if self.space is TSS:
            from calnas.table_meta import tss_meta

            iso = int(tss_meta()["iso"].loc[index])
            if iso in self._held:
                return iso
        raise UserError(f"architecture {index} is not in {self.name}")

    def check_epoch(self, epoch) -> int:
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or int(epoch) not in self.epochs:
            raise UserError(f"{self.name} holds epochs {', '.join(map(str, self.epochs))}, not {epoch!r}")
        return int(epoch)

    def check_seed(self, seed):
        if seed is None:
            return None
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) not in self.seeds:
            raise UserError(f"{self.name} holds seeds {', '.join(map(str, self.seeds))}, not {seed!r}")
        return int(seed)

    def metrics(self, arch, epoch: int, seed: int | None = None) -> dict:
        """The point columns of ``arch`` at ``epoch``: of training ``seed``, or (None) the mean
        over the seeds the table holds for it."""
        epoch, seed = self.check_epoch(epoch), self.check_seed(seed)
        rows = self.frame.loc[self.held_index(arch)]
        if seed is not None:
            if seed not in rows.index:
                raise UserError(f"{self.name} has no seed {seed} for architecture {self.space.index(arch)}")
            rows = rows.loc[[seed]]
        cols = [curve_column(epoch, c) for c in POINT_COLUMNS if curve_column(epoch, c) in rows.columns]
        values = rows[cols].astype(float).mean(axis=0)
        return {c: float(values[curve_column(epoch, c)]) for c in POINT_COLUMNS if curve_column(epoch, c) in values}

    def curve(self, arch, seed: int | None = None) -> pd.DataFrame:
        """One row per recorded epoch (index ``epoch``), the point columns as columns."""
        return pd.DataFrame([self.metrics(arch, e, seed) for e in self.epochs],
                            index=pd.Index(self.epochs, name="epoch"))

    def column_at(self, column: str, epoch: int, seed: int | None = None) -> pd.Series:
        """A point column at an epoch for every architecture (index: row index), one seed or the mean."""
        epoch, seed = self.check_epoch(epoch), self.check_seed(seed)
        name = curve_column(epoch, column)
        if name not in self.frame.columns:
            raise UserError(f"{self.name} has no column {name!r}")
        values = self.frame[name].astype(float)
        if seed is not None:
            return values.xs(seed, level="seed")
        return values.groupby(level="index").mean()

    def seed_frame(self, seed: int) -> pd.DataFrame:
        """One seed's rows (final-epoch panel and curve columns), one per architecture."""
        seed = self.check_seed(seed)
        return self.frame.xs(seed, level="seed").copy().reset_index()

    def final_frame(self) -> pd.DataFrame:
        return seed_mean_frame(self.frame.reset_index(), self.name)



def load_curves(benchmark, data_dir=None) -> CurveTable:
    """The curve table a search names: a :class:`CurveTable`, a DataFrame of curve rows, or the
    path of a curve build CSV (optionally gzipped). Anything else has no curves: one line says so."""
    from pathlib import Path

    if isinstance(benchmark, CurveTable):
        return benchmark
    if isinstance(benchmark, pd.DataFrame):
        return CurveTable(benchmark, name="the given frame")
    if benchmark is None:
        raise UserError("early stopping needs a curve table: give --benchmark digits-tss-curves or the CSV of a "
                        "`calnas table build --curves` build")
    embedded = _embedded_curves(benchmark)
    if embedded is not None:
        return embedded
    path = Path(str(benchmark))
    if not path.is_file():
        raise UserError(f"{str(benchmark)!r} has no learning curves (a curve table is the CSV of "
                        "`calnas table build --curves`)")
    from calnas.files import check_input

    check_input(path, "table file", "table")
    try:
        frame = pd.read_csv(path, compression="infer")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise UserError(f"cannot read {str(path)!r} as CSV ({type(exc).__name__})") from None
    return CurveTable(frame, name=str(path))


def _embedded_curves(benchmark) -> CurveTable | None:
    """The embedded curve table ``benchmark`` names (parsed once per process), or None."""
    from calnas import embedded

    if not isinstance(benchmark, str) or benchmark not in embedded.CURVE_TABLES:
        return None
    if not embedded.shipped(benchmark):
        raise UserError(f"{benchmark} is not in this install (its files are missing from calnas/data)")
    if benchmark not in _EMBEDDED_CACHE:
        _EMBEDDED_CACHE[benchmark] = CurveTable(embedded.calibration_rows(benchmark), name=benchmark)
    return _EMBEDDED_CACHE[benchmark]


_EMBEDDED_CACHE: dict[str, CurveTable] = {}


def _embedded_curves_present(benchmark: str) -> bool:
    from calnas import embedded

    return benchmark in embedded.CURVE_TABLES and embedded.shipped(benchmark)


def curve_source(benchmark) -> CurveTable | None:
    """The curve table behind a search's benchmark, or None when it has no curves (quietly: a
    search on any other table is no error)."""
    from pathlib import Path

    if isinstance(benchmark, CurveTable):
        return benchmark
    if benchmark is None or isinstance(benchmark, pd.DataFrame) or not isinstance(benchmark, (str, Path)):
        return None
    if isinstance(benchmark, str) and _embedded_curves_present(benchmark.lower()):
        return _embedded_curves(benchmark.lower())
    path = Path(str(benchmark))
    if not path.is_file():
        return None
    try:
        header = pd.read_csv(path, compression="infer", nrows=0)
    except Exception:  # noqa: BLE001 - the search itself reported any problem with the file
        return None
    if not is_curve_frame(header):
        return None
    try:
        return load_curves(path)
    except UserError:
        return None
