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

This module holds the embedded tables and resolves names; the rest of the table layer lives
in :mod:`calnas.table_frame` (the Table and normalising a frame), :mod:`calnas.table_files`
(CSV and NATS-Bench files, data directories) and :mod:`calnas.table_meta` (the shipped
per-index meta: isomorphism classes, params, FLOPs), each imported back here.

pandas is imported, torch never.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path

import pandas as pd

from calnas import embedded, table_cache
from calnas.columns import IDENTITY_COLUMNS  # noqa: F401 - a public name of calnas.tables
from calnas.datasets import DATASET_ALIASES, NATS_DATASETS  # noqa: F401 - public names of calnas.tables
from calnas.errors import UserError
from calnas.spaces import TSS, get_space
# The parts of the table layer, imported back so that calnas.tables keeps every public name.
from calnas.table_files import (DATA_DIR_ENV, NATS_BENCH_COLUMNS, PUBLISHED_RE, _dataset_from_filename,  # noqa: F401
                                _looks_like_nats_bench, _parse_csv, data_dir, data_dir_benchmarks, describe_file,
                                load_csv, load_nats_bench)
from calnas.table_frame import (Table, _all_archs, _archs_of, _expand_iso_classes, _index_column,  # noqa: F401
                                table_from_frame)
from calnas.table_meta import (attach_meta as _attach_meta, cost_dataset_of, space_costs, sss_meta,  # noqa: F401
                               tss_meta)

# --------------------------------------------------------------------------------------------
# embedded data


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
        # A curve table's rows become its final-epoch seed-mean view here (table_from_frame).
        table = table_from_frame(embedded_rows(name), name=name, dataset="digits", source="embedded")
        table.info["description"] = "calnas-built calibration table (live training on scikit-learn digits)"
        return table

    meta = embedded.TSS_META_FILE if space == "tss" else embedded.SSS_META_FILE
    return _shipped((*files, meta), name, "digits", parse)


# The tables calnas built and ships, defined in calnas.embedded (read there by name, without this module).
_EMBEDDED_CALIBRATION = embedded.CALIBRATION_TABLES
EMBEDDED_CURVES = embedded.CURVE_TABLES
embedded_rows = embedded.calibration_rows


def embedded_benchmarks() -> dict[str, tuple[str, str]]:
    """name -> (space, dataset) for every embedded benchmark present in this install."""
    out = {name: (space, "digits") for name, (space, _) in _EMBEDDED_CALIBRATION.items() if embedded.shipped(name)}
    out.update({f"nats-tss-{d}": ("tss", d) for d in ("cifar10", "cifar100", "imagenet16-120")})
    return out


def default_benchmark() -> str:
    """The calibration table when shipped, else real CIFAR-10 accuracies."""
    return next(iter(embedded_benchmarks()))


# --------------------------------------------------------------------------------------------
# resolution of names


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


def list_benchmarks(directory=None) -> list[dict]:
    """What `calnas benchmarks` shows: the embedded tables (loaded; they are small and cached) and
    the data directory's files described from their headers, without parsing them."""
    rows = [describe(load_benchmark(name)) for name in embedded_benchmarks()]
    for name, path in data_dir_benchmarks(data_dir(directory)).items():
        rows.append(describe_file(name, path))
    return rows


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


def resolve_table(benchmark, data_dir=None) -> Table:
    """The table a search names: a :class:`Table` as it is, a DataFrame in the table layout, or a
    name or path for :func:`load_benchmark` (None: the embedded default)."""
    if isinstance(benchmark, Table):
        return benchmark
    if isinstance(benchmark, pd.DataFrame):
        return table_from_frame(benchmark, name="dataframe")
    return load_benchmark(benchmark, data_dir_path=data_dir)

