"""Tables from files: calibration CSVs (published or calnas-built), NATS-Bench benchmark files
through the ``nats_bench`` API, and a data directory of them (``$CALNAS_DATA_DIR``). pandas, no torch."""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from calnas import table_cache
from calnas.columns import COST_COLUMNS, IDENTITY_COLUMNS, INDEX_COLUMNS
from calnas.datasets import DATASET_ALIASES, NATS_DATASETS, nats_hp
from calnas.errors import UserError
from calnas.files import check_input
from calnas.spaces import SSS, TSS, get_space, infer_space
from calnas.table_frame import Table, table_from_frame
from calnas.table_meta import attach_meta, cost_dataset_of, sss_meta, tss_meta

DATA_DIR_ENV = "CALNAS_DATA_DIR"
# Published files: `<dataset>_<space>.csv`, dataset spelled cifar10 / cifar100 / ImageNet.
PUBLISHED_RE = re.compile(r"^(cifar10|cifar100|imagenet)_(tss|sss)\.csv(\.gz)?$", re.IGNORECASE)
# The columns load_nats_bench gives a NATS-Bench table.
NATS_BENCH_COLUMNS = ("acc", *COST_COLUMNS, "latency")


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
    return Table(str(path), get_space(space_name), dataset, _own_copy(frame), source, dict(info))


# Beyond this many columns that are not float64, _own_copy leaves the copy to pandas.
_FEW_OTHER_COLUMNS = 32


def _own_copy(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of a cached frame for one caller, its float64 columns in one block. The cached
    frame keeps a block per column (as _read_csv made it); DataFrame.copy would copy each block
    and then merge them, the table three times over at once. Here the block is allocated once
    and filled column by column: the cached frame and the copy, twice the table."""
    floats = [i for i, dtype in enumerate(frame.dtypes) if dtype == np.float64]
    others = [i for i in range(frame.shape[1]) if i not in set(floats)]
    if not floats or len(others) > _FEW_OTHER_COLUMNS or not frame.columns.is_unique:
        return frame.copy()
    block = np.empty((len(floats), len(frame)), dtype=np.float64)
    for row, i in enumerate(floats):
        block[row] = frame.iloc[:, i].to_numpy()
    copy = pd.DataFrame(block.T, index=frame.index.copy(), columns=frame.columns[floats], copy=False)
    for i in others:  # in column order, so that each lands where it was
        copy.insert(i, frame.columns[i], frame.iloc[:, i].copy())
    copy.columns.name = frame.columns.name
    return copy


# Rows read at a time. One read_csv of a whole file peaks near four times the frame it makes (its
# tokenizer's buffers on top of the columns); joining chunks of rows as frames (pd.concat) holds
# every chunk and the joined frame at once, twice the frame. Here each chunk's columns are kept
# apart and joined one column at a time, each column's pieces freed as it is joined.
CSV_CHUNK_ROWS = 2048


def _read_csv(path: Path) -> pd.DataFrame:
    pieces: dict[str, list] = {}
    rows = 0
    try:
        for part in pd.read_csv(path, compression="infer", chunksize=CSV_CHUNK_ROWS):
            for name, column in part.items():  # read_csv makes repeated names unique ("a", "a.1")
                # A copy of each column on its own: a view would keep the chunk's whole block alive.
                pieces.setdefault(name, []).append(
                    np.array(column.to_numpy()) if isinstance(column.dtype, np.dtype) else column.copy())
            rows += len(part)
            del part, column
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, gzip.BadGzipFile, EOFError, OSError) as exc:
        raise UserError(f"cannot read {str(path)!r} as CSV ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    if rows == 0:
        raise UserError(f"{str(path)!r} has no rows; expected a CSV in the published layout")
    columns = {}
    for name in list(pieces):
        columns[name] = _joined(pieces.pop(name))
    # Not consolidated into one block per dtype: that would copy every column once more.
    return pd.DataFrame(columns, copy=False)


def _joined(pieces: list):
    """One column from its chunks (numpy arrays, or Series of a pandas dtype): numpy's
    concatenation when every chunk read it as the same numpy dtype (the usual case), else
    pandas' (its rules for a column read as int in one chunk and float or text in another)."""
    first = pieces[0].dtype
    if isinstance(first, np.dtype) and all(piece.dtype == first for piece in pieces):
        joined = np.concatenate(pieces)
    else:
        joined = pd.concat([pd.Series(piece) for piece in pieces], ignore_index=True)
    pieces.clear()
    return joined


def _parse_csv(path: Path, dataset: str | None) -> tuple:
    # The frame read is handed over, not kept here: table_from_frame need not copy it, and each
    # step there frees the step before (no reference to the raw frame is left in this frame).
    table = table_from_frame(_read_csv(path), name=str(path), dataset=dataset, owned=True)
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
    hp = nats_hp(space)
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
    return Table(label, space_obj, dataset, attach_meta(frame, space_obj, dataset), source="nats-bench")


def _looks_like_nats_bench(path: Path) -> str | None:
    """'tss' / 'sss' when the path is a NATS-Bench benchmark file or directory."""
    name = path.name.lower()
    if name.startswith("nats-tss") or name.startswith("nats-sss"):
        return name[5:8]
    return None



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
    metrics = [c for c in header if c not in INDEX_COLUMNS and c not in IDENTITY_COLUMNS]
    meta = tss_meta() if space is TSS else sss_meta()
    costs = [] if meta is None else [c for c in COST_COLUMNS
                                     if c not in metrics and f"{c}_{cost_dataset_of(dataset)}" in meta.columns]
    return {"name": name, "space": space.name, "dataset": dataset, "rows": rows,
            "covers_space": rows == space.size, "source": "file", "metric_columns": metrics + costs}
