"""One table abstraction for every source of architecture metrics.

A :class:`Table` is a pandas frame indexed by NATS-Bench architecture index with the published
calibration dataset's column names (``acc`` as a fraction, ``pre_ECE_15``, ...) plus calnas's
own columns: ``arch``, ``iso`` (TSS: smallest index of the isomorphism class), ``params`` and
``flops`` (millions, NATS-Bench network for the table's dataset) and, for tables built one row
per isomorphism class, ``evaluated_index`` (the class member that was actually evaluated).

Sources (see :func:`load_benchmark`):

* embedded NATS-Bench accuracy tables ``nats-tss-cifar10`` / ``-cifar100`` / ``-imagenet16-120``;
* embedded calnas-built calibration tables (e.g. ``digits-tss``) when shipped;
* the published calibration CSVs (``cifar10_tss.csv`` ...), from a path or a data directory;
* NATS-Bench benchmark files through the ``nats_bench`` API.

pandas is imported, torch never.
"""

from __future__ import annotations

import difflib
import gzip
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from calnas import embedded, table_cache
from calnas.errors import UserError
from calnas.files import check_input
from calnas.spaces import SSS, TSS, Space, get_space, infer_space

DATA_DIR_ENV = "CALNAS_DATA_DIR"

# Dataset names as calnas spells them; aliases cover the published file names and NATS-Bench's.
DATASET_ALIASES = {
    "cifar10": "cifar10",
    "cifar100": "cifar100",
    "imagenet": "imagenet16-120",
    "imagenet16-120": "imagenet16-120",
    "imagenet16_120": "imagenet16-120",
    "digits": "digits",
}
# NATS-Bench API dataset keys.
NATS_DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16-120": "ImageNet16-120"}
# Published files: `<dataset>_<space>.csv`, dataset spelled cifar10 / cifar100 / ImageNet.
PUBLISHED_RE = re.compile(r"^(cifar10|cifar100|imagenet)_(tss|sss)\.csv(\.gz)?$", re.IGNORECASE)
IDENTITY_COLUMNS = ("arch", "iso", "evaluated_index")


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
        return {"index": int(index), **{k: _plain(v) for k, v in values.items()}}

    def twins(self, arch) -> list[int]:
        """Other indices of the same isomorphism class (TSS), empty for SSS."""
        if self.space is not TSS:
            return []
        index = self.space.index(arch)
        iso = tss_meta()["iso"]
        members = iso.index[iso == iso.loc[index]]
        return [int(i) for i in members if i != index]


def _plain(value):
    """numpy scalars to Python ones so rows serialise to JSON."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


# --------------------------------------------------------------------------------------------
# embedded data


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


def space_costs(space: Space, dataset: str | None) -> dict[str, "np.ndarray"]:  # noqa: F821
    """params / flops (millions) of every index of ``space``, as :func:`_attach_meta` gives tables
    (a joint architecture x recipe space: the architecture's, whatever the recipe)."""
    base = getattr(space, "base", None)
    if base is not None:
        return {name: np.repeat(values, len(space.recipes)) for name, values in space_costs(base, dataset).items()}
    meta = tss_meta() if space is TSS else sss_meta()
    if meta is None:
        return {}
    chosen = cost_dataset_of(dataset)
    return {cost: meta[f"{cost}_{chosen}"].reindex(range(space.size)).to_numpy(dtype=float)
            for cost in ("params", "flops") if f"{cost}_{chosen}" in meta.columns}


def _attach_meta(frame: pd.DataFrame, space: Space, dataset: str | None) -> pd.DataFrame:
    """Add iso / params / flops columns that the source itself does not carry."""
    meta = tss_meta() if space is TSS else sss_meta()
    if meta is None:
        return frame
    wanted = {}
    if space is TSS and "iso" not in frame.columns:
        wanted["iso"] = "iso"
    cost_dataset = cost_dataset_of(dataset)
    for cost in ("params", "flops"):
        column = f"{cost}_{cost_dataset}"
        if cost not in frame.columns and column in meta.columns:
            wanted[column] = cost
    if not wanted:
        return frame
    extra = meta.loc[frame.index.intersection(meta.index), list(wanted)].rename(columns=wanted)
    return frame.join(extra)


@lru_cache(maxsize=None)
def _nats_accuracy_frame() -> pd.DataFrame:
    with embedded.data_path(embedded.ACCURACY_FILE).open("rb") as fh:
        return pd.read_csv(fh, compression="gzip").set_index("index")


def _shipped(files, name: str, dataset: str, parse) -> Table:
    """The table ``parse()`` makes of files shipped in calnas/data, through the table cache
    (calnas.table_cache, keyed by all ``files``) when the package is installed as plain files."""
    def cacheable() -> tuple:
        table = parse()
        return table.space.name, table.frame, table.source, table.info

    paths = [embedded.data_path(f) for f in files]
    if all(isinstance(p, Path) for p in paths):
        space_name, frame, source, info = table_cache.remember(paths, name, cacheable)
    else:  # a zipped install: parse every time
        space_name, frame, source, info = cacheable()
    return Table(name, get_space(space_name), dataset, frame, source, dict(info))


def _embedded_accuracy(dataset: str) -> Table:
    name = f"nats-tss-{dataset}"

    def parse() -> Table:
        raw = _nats_accuracy_frame()
        column = {"cifar10": "cifar10_test_acc", "cifar100": "cifar100_test_acc",
                  "imagenet16-120": "imagenet16_120_test_acc"}[dataset]
        frame = pd.DataFrame({"arch": raw["arch"], "acc": raw[column] / 100.0})
        frame = _attach_meta(frame, TSS, dataset)
        return Table(name, TSS, dataset, frame, source="embedded",
                     info={"description": f"NATS-Bench TSS test accuracy on {dataset}, 200 epochs (real data)"})

    return _shipped((embedded.ACCURACY_FILE, embedded.TSS_META_FILE), name, dataset, parse)


def _embedded_calibration(name: str) -> Table:
    space, files = _EMBEDDED_CALIBRATION[name]

    def parse() -> Table:
        frames = []
        for file_name in files:
            with embedded.data_path(file_name).open("rb") as fh:
                frames.append(pd.read_csv(fh, compression="gzip"))
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        table = table_from_frame(frame, name=name, dataset="digits", source="embedded")
        table.info["description"] = "calnas-built calibration table (live training on scikit-learn digits)"
        return table

    meta = embedded.TSS_META_FILE if space == "tss" else embedded.SSS_META_FILE
    return _shipped((*files, meta), name, "digits", parse)


# The tables calnas built and ships: name -> (space, files). A large table ships as row slices
# (`calnas table ship --parts`, every file under the repository's 8 MB limit) read in order.
_EMBEDDED_CALIBRATION = {
    "digits-tss": ("tss", ("digits_tss.csv.gz",)),
    "digits-sss": ("sss", ("digits_sss-1.csv.gz", "digits_sss-2.csv.gz")),
}


def embedded_benchmarks() -> dict[str, tuple[str, str]]:
    """name -> (space, dataset) for every embedded benchmark present in this install."""
    out = {name: (space, "digits") for name, (space, files) in _EMBEDDED_CALIBRATION.items()
           if all(embedded.data_path(f).is_file() for f in files)}
    out.update({f"nats-tss-{d}": ("tss", d) for d in ("cifar10", "cifar100", "imagenet16-120")})
    return out


def default_benchmark() -> str:
    """The calibration table when shipped, else real CIFAR-10 accuracies."""
    return next(iter(embedded_benchmarks()))


# --------------------------------------------------------------------------------------------
# files


def table_from_frame(frame: pd.DataFrame, *, name: str, dataset: str | None = None, source: str = "file") -> Table:
    """Normalise a frame in the published layout (or calnas's) into a Table.

    Accepts ``config`` or ``index`` for the architecture index and/or ``arch``; at least one is
    required. Rows may come in any order; indices may be absent. A curve build's rows (one per
    architecture and training seed, :mod:`calnas.curve_table`) become their final-epoch seed
    means.
    """
    from calnas.curve_table import is_curve_frame, seed_mean_frame

    frame = seed_mean_frame(frame, name) if is_curve_frame(frame) else frame.copy()
    if "config" in frame.columns and "index" not in frame.columns:
        frame = frame.rename(columns={"config": "index"})
    elif "config" in frame.columns:
        frame = frame.drop(columns="config")
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
        frame["index"] = indices
    else:
        # Without strings the index alone must say the space: SSS indices run past TSS's range.
        idx = _index_column(frame["index"], name)
        space = SSS if idx.max() >= TSS.size else TSS
        frame["index"] = idx
        frame["arch"] = _archs_of(space, idx)
    if frame["index"].duplicated().any():
        dup = int(frame.loc[frame["index"].duplicated(), "index"].iloc[0])
        raise UserError(f"{name}: architecture {dup} appears twice")
    frame = frame.set_index("index").sort_index()
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
    frame = _attach_meta(frame, space, dataset)
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


def _dataset_from_filename(path: Path) -> str | None:
    match = PUBLISHED_RE.match(path.name)
    if match:
        return DATASET_ALIASES[match.group(1).lower()]
    stem = path.name.split(".")[0].lower()
    for alias, dataset in DATASET_ALIASES.items():
        if stem.startswith(alias + "_") or stem.startswith(alias + "-"):
            return dataset
    return None


def load_csv(path: str | os.PathLike, *, dataset: str | None = None) -> Table:
    """A table in the published layout (or one calnas built), from a CSV (optionally gzipped)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"table file {str(path)!r} does not exist; expected a CSV in the published layout")
    if path.is_dir():
        raise UserError(f"{str(path)!r} is a directory; expected a CSV file (a folder of tables is a data_dir)")
    check_input(path, "table file", "table")
    dataset = dataset or _dataset_from_filename(path)
    # Parsed once per file content (calnas.table_cache: on disk, and in memory per process); the
    # cache holds plain data (the space by name), every caller gets a table of its own.
    space_name, frame, source, info = table_cache.remember(path, dataset, lambda: _parse_csv(path, dataset))
    return Table(str(path), get_space(space_name), dataset, frame.copy(), source, dict(info))


def _parse_csv(path: Path, dataset: str | None) -> tuple:
    try:
        frame = pd.read_csv(path, compression="infer")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, gzip.BadGzipFile, EOFError, OSError) as exc:
        raise UserError(f"cannot read {str(path)!r} as CSV ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    if frame.empty:
        raise UserError(f"{str(path)!r} has no rows; expected a CSV in the published layout")
    table = table_from_frame(frame, name=str(path), dataset=dataset)
    return table.space.name, table.frame, table.source, table.info


# --------------------------------------------------------------------------------------------
# NATS-Bench benchmark files


def load_nats_bench(source, space: str = "tss", dataset: str = "cifar10", *, name: str | None = None) -> Table:
    """Accuracy, params, FLOPs and latency from NATS-Bench benchmark files via the nats_bench API.

    ``source`` is a benchmark file/directory path or an in-memory benchmark dict (``meta_archs``,
    ``arch2infos``, ``evaluated_indexes``). Accuracy is the test accuracy after the full schedule
    (hp 200 for TSS, 90 for SSS), averaged over seeds as NATS-Bench reports it, as a fraction.
    """
    import nats_bench

    space_obj = TSS if space == "tss" else SSS
    key = NATS_DATASETS.get(dataset)
    if key is None:
        raise UserError(f"NATS-Bench has no dataset {dataset!r}; expected one of {', '.join(NATS_DATASETS)}")
    if not isinstance(source, dict) and not Path(source).exists():
        raise UserError(f"NATS-Bench benchmark {str(source)!r} does not exist")
    try:
        api = nats_bench.create(source, space, fast_mode=True, verbose=False)
    except Exception as exc:  # nats_bench raises bare asserts / ValueErrors on bad files
        raise UserError(f"nats_bench cannot open {name or source!s}: {exc}") from None
    hp = "200" if space == "tss" else "90"
    rows = []
    indices = sorted(api.evaluated_indexes) if api.evaluated_indexes else range(len(api))
    for index in indices:
        info = api.get_more_info(index, key, hp=hp, is_random=False)
        cost = api.get_cost_info(index, key, hp=hp)
        rows.append({"index": int(index), "arch": api.arch(index), "acc": info["test-accuracy"] / 100.0,
                     "params": cost["params"], "flops": cost["flops"], "latency": cost["latency"]})
    frame = pd.DataFrame(rows).set_index("index")
    frame["arch"] = [space_obj.parse(a) for a in frame["arch"]]
    label = name or f"nats-bench-{space}-{dataset}"
    return Table(label, space_obj, dataset, _attach_meta(frame, space_obj, dataset), source="nats-bench")


def _looks_like_nats_bench(path: Path) -> str | None:
    """'tss' / 'sss' when the path is a NATS-Bench benchmark file or directory."""
    name = path.name.lower()
    if name.startswith("nats-tss") or name.startswith("nats-sss"):
        return name[5:8]
    return None


# --------------------------------------------------------------------------------------------
# resolution of names


def data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    chosen = explicit or os.environ.get(DATA_DIR_ENV)
    if not chosen:
        return None
    path = Path(chosen)
    if not path.is_dir():
        problem = "is not a folder" if path.exists() else "does not exist"
        raise UserError(f"data_dir {str(path)!r} {problem} (set by data_dir or {DATA_DIR_ENV})")
    return path


def data_dir_benchmarks(directory: Path | None) -> dict[str, Path]:
    """name -> path for the published calibration CSVs (and NATS-Bench files) in a data directory."""
    if directory is None:
        return {}
    found = {}
    for path in sorted(directory.iterdir()):
        if PUBLISHED_RE.match(path.name):
            found[path.name.split(".")[0]] = path
        elif _looks_like_nats_bench(path):
            for dataset in NATS_DATASETS:
                found[f"{path.name.split('.')[0]}:{dataset}"] = path
    return found


def known_benchmark_names(directory=None) -> list[str]:
    return list(embedded_benchmarks()) + list(data_dir_benchmarks(data_dir(directory)))


def load_benchmark(name_or_path=None, *, data_dir_path=None) -> Table:
    """Resolve a benchmark name, a data-directory table or a file path to a :class:`Table`.

    ``None`` is the embedded default. Names are case-insensitive. A path ending in
    ``:<dataset>`` selects a dataset of a NATS-Bench benchmark file.
    """
    name = default_benchmark() if name_or_path is None else str(name_or_path)
    lowered = name.lower()
    builtin = embedded_benchmarks()
    if lowered in builtin:
        space, dataset = builtin[lowered]
        if lowered.startswith("nats-tss-"):
            return _copy(_cached_embedded_accuracy(dataset))
        return _copy(_cached_embedded_calibration(lowered))
    directory = data_dir(data_dir_path)
    in_dir = {k.lower(): v for k, v in data_dir_benchmarks(directory).items()}
    if lowered in in_dir:
        dataset = lowered.rpartition(":")[2] if ":" in lowered else None
        return _load_path(in_dir[lowered], lowered, dataset=dataset)
    path, dataset = Path(name), None
    if not path.exists() and ":" in name:
        # `path:dataset` picks one dataset of a NATS-Bench benchmark file.
        head, _, tail = name.rpartition(":")
        path, dataset = Path(head), DATASET_ALIASES.get(tail.lower(), tail)
    if path.exists():
        return _load_path(path, name, dataset=dataset)
    if any(sep in name for sep in ("/", "\\")) or name.endswith((".csv", ".gz")):
        raise UserError(f"table file {name!r} does not exist; expected a CSV in the published layout")
    known = known_benchmark_names(data_dir_path)
    close = difflib.get_close_matches(lowered, known, n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise UserError(f"unknown benchmark {name!r}{hint}; expected one of {', '.join(known)} or a CSV path")


def _load_path(path: Path, name: str, dataset: str | None = None) -> Table:
    nats_space = _looks_like_nats_bench(path)
    if nats_space:
        return load_nats_bench(str(path), nats_space, dataset or "cifar10", name=name)
    table = load_csv(path, dataset=dataset)
    table.name = name
    return table


def _copy(table: Table) -> Table:
    """Every caller gets a table of its own: editing one never changes what the next gets."""
    return Table(table.name, table.space, table.dataset, table.frame.copy(), table.source, dict(table.info))


@lru_cache(maxsize=None)
def _cached_embedded_accuracy(dataset: str) -> Table:
    return _embedded_accuracy(dataset)


@lru_cache(maxsize=None)
def _cached_embedded_calibration(name: str) -> Table:
    return _embedded_calibration(name)


# The columns load_nats_bench gives a NATS-Bench table.
NATS_BENCH_COLUMNS = ("acc", "params", "flops", "latency")


def list_benchmarks(directory=None) -> list[dict]:
    """What `calnas benchmarks` shows: the embedded tables (loaded; they are small and cached) and
    the data directory's files described from their headers, without parsing them."""
    rows = [describe(load_benchmark(name)) for name in embedded_benchmarks()]
    for name, path in data_dir_benchmarks(data_dir(directory)).items():
        rows.append(describe_file(name, path))
    return rows


def describe_file(name: str, path: Path) -> dict:
    """:func:`describe`'s fields for a data-directory file, from its header and line count."""
    nats_space = _looks_like_nats_bench(path)
    if nats_space:
        dataset = name.rpartition(":")[2]
        return {"name": name, "space": nats_space, "dataset": dataset, "rows": None, "covers_space": None,
                "source": "nats-bench", "metric_columns": list(NATS_BENCH_COLUMNS)}
    check_input(path, "table file", "table")
    import csv
    import io

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            reader = csv.reader(text)
            header = next(reader, None)
            first = next(reader, None)
            rows = (first is not None) + sum(1 for _ in reader)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"cannot read {str(path)!r} as CSV ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not header or first is None:
        raise UserError(f"{str(path)!r} has no rows; expected a CSV in the published layout")
    columns = dict(zip(header, first))
    space = infer_space([columns["arch"]]) if "arch" in columns else TSS
    dataset = _dataset_from_filename(path)
    metrics = [c for c in header if c not in ("config", "index") and c not in IDENTITY_COLUMNS]
    meta = tss_meta() if space is TSS else sss_meta()
    costs = [] if meta is None else [c for c in ("params", "flops")
                                     if c not in metrics and f"{c}_{cost_dataset_of(dataset)}" in meta.columns]
    return {"name": name, "space": space.name, "dataset": dataset, "rows": rows,
            "covers_space": rows == space.size, "source": "file", "metric_columns": metrics + costs}


def describe(table: Table) -> dict:
    """What `calnas benchmarks` shows for one table."""
    return {
        "name": table.name,
        "space": table.space.name,
        "dataset": table.dataset,
        "rows": len(table),
        "covers_space": table.covers_space,
        "source": table.source,
        "metric_columns": table.metric_columns,
    }
