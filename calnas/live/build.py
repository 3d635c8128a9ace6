"""Build a calibration table by live evaluation, one crash-safe CSV row per architecture.

* Order: TSS uses one representative per isomorphism class (the class's smallest index, the
  ``iso`` column of ``tss_meta``), SSS every index; both shuffled with a fixed seed
  (:data:`ORDER_SEED`) so that ``--limit N`` is a spread sample of the space.
* Rows: ``index``, ``config`` (the published name of the index), ``arch``, ``iso``, the metric
  panel in ``PANEL_COLUMNS`` order, then calnas's own columns (:data:`EXTRA_COLUMNS`, among them
  the training ``recipe``). A row depends only on (architecture, protocol, seed): every
  evaluation runs single-threaded from the same seed, whichever worker or shard runs it.
* Files written before training recipes existed have no ``recipe`` column (their rows trained
  with ``ce``) and a protocol record without ``recipe``: they are read, resumed and appended to
  in their own layout (:func:`file_columns`, :func:`protocol_identity`).
* Crash safety: the header is written once; each row is one ``write`` followed by flush and
  fsync. A killed build leaves at most one torn line at the end, which ``resume`` truncates;
  complete rows are never rewritten. The protocol sits next to the table
  (``<out>.protocol.json``); a resume is refused, and the file left untouched, unless that
  protocol file matches this build's settings and the header its columns.
* Parallelism: ``workers`` processes (spawned, one torch thread each) evaluate architectures;
  the parent appends rows as they complete, so with several workers rows are not in build order
  (the table loader does not care about row order).

The library never prints: progress goes through the ``on_row`` callback.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import random
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from calnas.calibrator_columns import CALIBRATOR_COLUMNS
from calnas.errors import UserError
from calnas.spaces import SSS, TSS, Space

ORDER_SEED = 20240501
EXTRA_COLUMNS = ("seed", "epochs", "recipe", "channels", "cells", "train_size", "train_seconds", "eval_seconds",
                 "final_train_loss", "final_train_acc")
# Columns older tables lack, in groups that came together: a table written before training
# recipes has no recipe (its rows trained with recipe ce); one written before the post-hoc
# calibrators none of their columns (calnas.calibrator_columns).
NEWER_GROUPS = (("recipe",), CALIBRATOR_COLUMNS)
NEWER_COLUMNS = tuple(c for group in NEWER_GROUPS for c in group)
ID_COLUMNS = ("index", "config", "arch", "iso")
# What makes two tables' rows interchangeable: the same space, seed and training protocol
# (``protocol_record``'s other keys, the calnas version and build order, do not change a row).
PROTOCOL_KEYS = ("space", "seed", "protocol")


def build_order(space: Space, seed: int = ORDER_SEED) -> list[int]:
    """Indices to evaluate, in the fixed shuffled order (TSS: one per isomorphism class)."""
    if space is TSS:
        from calnas.live.evaluate import _tss_iso_column

        indices = sorted(set(_tss_iso_column()))
    else:
        indices = list(range(space.size))
    random.Random(seed).shuffle(indices)
    return indices


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``I/N`` with 1 <= I <= N: the I-th of N disjoint parts (round-robin over the order)."""
    if text is None:
        return None
    try:
        i, n = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise UserError(f"--shard {text!r} is not I/N (e.g. 1/4)") from None
    if not (n >= 1 and 1 <= i <= n):
        raise UserError(f"--shard {text!r}: expected 1 <= I <= N, e.g. 1/4 ... 4/4")
    return i, n


def select(order: list[int], *, limit: int | None = None, shard: tuple[int, int] | None = None) -> list[int]:
    """``limit`` takes the first N of the order; ``shard`` then splits that set round-robin."""
    if limit is not None:
        if limit < 1:
            raise UserError(f"--limit must be at least 1, got {limit}")
        order = order[:limit]
    if shard is not None:
        i, n = shard
        order = order[i - 1::n]
    return order


def table_columns(panel_columns) -> list[str]:
    return [*ID_COLUMNS, *panel_columns, *EXTRA_COLUMNS, *CALIBRATOR_COLUMNS]


def file_columns(path: Path, columns: list[str]) -> list[str]:
    """The layout of an existing table file: ``columns``, or an older layout, ``columns`` less
    whole groups of :data:`NEWER_GROUPS` (no recipe; no calibrator columns; neither), when its
    header is that one (rows are appended in the file's layout). Anything else is left to
    :func:`read_done`'s header check."""
    with open(path, "rb") as fh:
        first = fh.readline()
    try:
        header = next(csv.reader(io.StringIO(first.decode("utf-8"))), [])
    except (UnicodeDecodeError, csv.Error):
        return columns
    for dropped in itertools.product((False, True), repeat=len(NEWER_GROUPS)):
        gone = {c for group, drop in zip(NEWER_GROUPS, dropped) if drop for c in group}
        layout = [c for c in columns if c not in gone]
        if header == layout:
            return layout
    return columns


def protocol_identity(record: dict) -> dict:
    """The parts of a protocol record (:func:`protocol_record`) that decide whether two tables'
    rows are interchangeable (:data:`PROTOCOL_KEYS`), with a protocol recorded before a setting
    existed read as this version records it (absent settings take their defaults: no recipe
    means ``ce``; :func:`calnas.live.protocol.normalise_settings`)."""
    from calnas.live.protocol import normalise_settings

    out = {k: record.get(k) for k in PROTOCOL_KEYS}
    if isinstance(out["protocol"], dict):
        out["protocol"] = normalise_settings(out["protocol"])
    return out


# -- the CSV file ------------------------------------------------------------------------------

def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def _line(values: list) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_format(v) for v in values])
    return buf.getvalue()


def read_done(path: Path, columns: list[str]) -> set[int]:
    """Indices already in a build file; a torn last line (no newline) is truncated away, but only
    once the header shows the file is a build with these columns (nothing else is modified)."""
    with open(path, "rb") as fh:
        data = fh.read()
    if not data:
        return set()
    try:
        header = next(csv.reader(io.StringIO(data[:data.find(b"\n")].decode("utf-8"))), [])
    except (UnicodeDecodeError, csv.Error):
        header = None
    if header != columns:
        raise UserError(f"{path} has different columns from this build (not a calnas build of this "
                        "protocol/metric panel?); use a new --out")
    end = data.rfind(b"\n") + 1
    if end < len(data):
        # Only the incomplete tail is cut; every complete line stays byte for byte.
        with open(path, "r+b") as fh:
            fh.truncate(end)
            fh.flush()
            os.fsync(fh.fileno())
        data = data[:end]
    if not data:
        return set()
    try:
        reader = csv.reader(io.StringIO(data.decode("utf-8")))
        next(reader)
        done = set()
        for row in reader:
            if len(row) != len(columns) or not row[0].isascii() or not row[0].isdigit():
                raise UserError(f"{path} has a malformed row (index {row[0][:20] if row else '?'}); fix or remove it")
            done.add(int(row[0]))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path} has a malformed row ({type(exc).__name__}); fix or remove it") from None
    return done


def _check_own_build(out: Path, meta_path: Path, meta: dict) -> None:
    """Refuse to resume ``out`` unless its protocol file proves it a calnas build of these settings."""
    from calnas.files import check_input

    if not meta_path.exists():
        raise UserError(f"{out} has no {meta_path.name} beside it, so it is not provably a calnas build; "
                        "choose another --out")
    check_input(meta_path, "protocol file", "protocol")
    try:
        old = json.loads(meta_path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        old = None
    if not isinstance(old, dict):
        raise UserError(f"{meta_path} is not a calnas protocol record (JSON object); choose another --out")
    if protocol_identity(old) != protocol_identity(meta):
        raise UserError(f"{out} was built with a different protocol or seed ({meta_path}); "
                        "resume with the same settings or choose another --out")


class RowWriter:
    """Appends rows one line at a time, durably."""

    def __init__(self, path: Path, columns: list[str]):
        self.columns = columns
        self._fh = open(path, "a", encoding="utf-8", newline="")
        if self._fh.tell() == 0:
            self._write(_line(columns))

    def _write(self, text: str) -> None:
        self._fh.write(text)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def append(self, row: dict) -> None:
        self._write(_line([row.get(c) for c in self.columns]))

    def close(self) -> None:
        self._fh.close()


# -- one evaluation (runs in a worker) ---------------------------------------------------------

_STATE: dict = {}


def _init_worker(protocol_dict: dict, space_name: str, data_root, seed: int, device: str = "cpu") -> None:
    import torch

    from calnas.live.evaluate import load_protocol_splits
    from calnas.live.protocol import Protocol

    protocol = Protocol.from_settings(protocol_dict)
    # One thread per worker unless the protocol says otherwise: tiny networks gain nothing from
    # intra-op threads, and a fixed count keeps results independent of the machine.
    torch.set_num_threads(protocol.threads or 1)
    _STATE.update(protocol=protocol, space=TSS if space_name == "tss" else SSS, seed=seed,
                  splits=load_protocol_splits(protocol, data_root=data_root, seed=seed),
                  device=torch.device(device))


def evaluate_row(index: int) -> dict:
    """One table row (or ``{"index": i, "error": ...}``): a failure must not end a long build."""
    from calnas.live.evaluate import evaluate_prepared

    space, protocol = _STATE["space"], _STATE["protocol"]
    arch = space.arch(index)
    try:
        result = evaluate_prepared(arch, space, protocol, _STATE["splits"], device=_STATE["device"],
                                   seed=_STATE["seed"])
    except Exception as exc:  # noqa: BLE001 - reported to the parent and retried on resume
        return {"index": index, "arch": arch, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()}
    return table_row(result.record, space, protocol, _STATE["seed"], len(_STATE["splits"].train_y))


def table_row(record: dict, space: Space, protocol, seed: int, train_size: int) -> dict:
    """The table row of one live evaluation's record (shared with live search's table file)."""
    index = record["index"]
    training = record["training"]
    return {"index": index, "config": index, "arch": record["arch"], "iso": record.get("iso", index),
            **record["metrics"], "seed": seed, "epochs": protocol.epochs, "recipe": protocol.recipe,
            "channels": protocol.channels if space is TSS else "",
            "cells": protocol.cells if space is TSS else "",
            "train_size": train_size,
            "train_seconds": round(training["train_seconds"], 4),
            "eval_seconds": round(record["seconds"] - training["train_seconds"], 4),
            "final_train_loss": training.get("final_train_loss"), "final_train_acc": training.get("final_train_acc")}


# -- the build --------------------------------------------------------------------------------

@dataclass
class BuildSummary:
    out: Path
    planned: int        # architectures in this build's selection
    skipped: int        # already present (resume)
    written: int
    failed: int
    seconds: float


def protocol_record(protocol, space: Space, seed: int) -> dict:
    from calnas import __version__

    return {"space": space.name, "seed": seed, "order_seed": ORDER_SEED, "protocol": protocol.settings(),
            "calnas_version": __version__}


def build_table(*, space: Space, protocol, out, seed: int = 0, data_root=None, limit: int | None = None,
                shard: tuple[int, int] | None = None, workers: int = 1, resume: bool = False, device: str = "cpu",
                on_start: Callable[[int, int], None] | None = None,
                on_row: Callable[[dict], None] | None = None) -> BuildSummary:
    """Evaluate the selected architectures and append their rows to ``out``.

    ``device`` is a resolved torch device name ("cpu", "cuda", "cuda:1"); the digits table is
    built on CPU, where results are bit-for-bit reproducible.
    ``on_start(total, skipped)`` is called once, ``on_row(row)`` after each architecture (rows
    with an ``error`` key were not written; a later ``resume`` retries them).
    """
    from calnas.metrics import PANEL_COLUMNS

    out = Path(out)
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    from calnas.searching import SEED_RANGE, check_int

    seed = check_int("seed", seed, minimum=0, maximum=SEED_RANGE - 1)
    if not out.parent.is_dir():
        raise UserError(f"output folder {str(out.parent)!r} does not exist")
    if out.exists() and not out.is_file():
        raise UserError(f"--out {str(out)!r} is not a regular file (a folder or a device); expected a CSV file")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise UserError(f"output folder {str(out.parent)!r} is not writable")
    columns = table_columns(PANEL_COLUMNS)
    meta_path = out.with_name(out.name + ".protocol.json")
    meta = protocol_record(protocol, space, seed)
    done: set[int] = set()
    if out.exists() and out.stat().st_size > 0:
        if not resume:
            raise UserError(f"{out} already exists; pass --resume to add to it, or choose another --out")
        _check_own_build(out, meta_path, meta)
        columns = file_columns(out, columns)  # an older build's rows go on in its layout
        done = read_done(out, columns)
    else:
        # No rows yet: the protocol file describes the build that starts now.
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    todo_all = select(build_order(space), limit=limit, shard=shard)
    todo = [i for i in todo_all if i not in done]
    if on_start is not None:
        on_start(len(todo), len(todo_all) - len(todo))
    start = time.perf_counter()
    written = failed = 0
    writer = RowWriter(out, columns)
    init_args = (protocol.settings(), space.name, None if data_root is None else str(data_root), seed, str(device))
    try:
        for row in _rows(todo, workers, init_args):
            if "error" in row:
                failed += 1
            else:
                writer.append(row)
                written += 1
            if on_row is not None:
                on_row(row)
    finally:
        writer.close()
    return BuildSummary(out=out, planned=len(todo_all), skipped=len(todo_all) - len(todo), written=written,
                        failed=failed, seconds=time.perf_counter() - start)


def _rows(todo: list[int], workers: int, init_args):
    if not todo:
        return
    if workers == 1:
        _init_worker(*init_args)
        for index in todo:
            yield evaluate_row(index)
        return
    import multiprocessing as mp

    # spawn, not fork: the parent may hold torch/OpenMP state that forked children must not inherit.
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=init_args) as pool:
        yield from pool.imap_unordered(evaluate_row, todo, chunksize=1)
