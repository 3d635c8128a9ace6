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
* Curves (``curves``, a :class:`calnas.live.curves.CurveSpec`): every architecture is trained
  once per training seed of the spec on the split of ``seed``; each training is one row (its
  ``seed`` column the training seed) that adds the curve points (``e{epoch}_{column}``) to the
  final-epoch panel. A build's rows are keyed by (index, seed), and the seeds of one
  architecture are queued together, so a partial build holds whole architectures.
* Parallelism: ``workers`` processes (spawned, one torch thread each) evaluate architectures;
  the parent appends rows as they complete, so with several workers rows are not in build order
  (the table loader does not care about row order).

The library never prints: progress goes through the ``on_row`` callback.
"""

from __future__ import annotations

import os
import random
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from calnas.calibrator_columns import CALIBRATOR_COLUMNS
from calnas.columns import FILE_ID_COLUMNS
from calnas.errors import UserError
from calnas.live.protocol_file import PROTOCOL_KEYS, protocol_identity, protocol_path, read_protocol, write_protocol
from calnas.live.table_file import NEWER_COLUMNS, RowWriter, file_columns, line as _line, read_done
from calnas.spaces import SSS, TSS, Space

ORDER_SEED = 20240501
EXTRA_COLUMNS = ("seed", "epochs", "recipe", "channels", "cells", "train_size", "train_seconds", "eval_seconds",
                 "final_train_loss", "final_train_acc")
ID_COLUMNS = FILE_ID_COLUMNS


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


# -- the CSV file ------------------------------------------------------------------------------

def _check_own_build(out: Path, meta_path: Path, meta: dict) -> None:
    """Refuse to resume ``out`` unless its protocol file proves it a calnas build of these settings."""
    if not meta_path.exists():
        raise UserError(f"{out} has no {meta_path.name} beside it, so it is not provably a calnas build; "
                        "choose another --out")
    old = read_protocol(meta_path, "; choose another --out")
    if protocol_identity(old) != protocol_identity(meta):
        raise UserError(f"{out} was built with a different protocol or seed ({meta_path}); "
                        "resume with the same settings or choose another --out")


# -- one evaluation (runs in a worker) ---------------------------------------------------------

_STATE: dict = {}


def _init_worker(protocol_dict: dict, space_name: str, data_root, seed: int, device: str = "cpu",
                 curves: dict | None = None) -> None:
    import torch

    from calnas.live.evaluate import load_protocol_splits
    from calnas.live.protocol import Protocol

    protocol = Protocol.from_settings(protocol_dict)
    # One thread per worker unless the protocol says otherwise: tiny networks gain nothing from
    # intra-op threads, and a fixed count keeps results independent of the machine.
    torch.set_num_threads(protocol.threads or 1)
    from calnas.live.curves import CurveSpec

    _STATE.update(protocol=protocol, space=TSS if space_name == "tss" else SSS, seed=seed,
                  splits=load_protocol_splits(protocol, data_root=data_root, seed=seed),
                  device=torch.device(device),
                  curves=None if curves is None else CurveSpec(curves["epochs"], curves["seeds"]))
    if curves is not None:
        _warm_up(_STATE["space"], protocol, _STATE["splits"], _STATE["device"])


def _warm_up(space: Space, protocol, splits, device) -> None:
    """One epoch of a throw-away network before the first row: torch's one-time set-up (about 2 s
    of CPU in the first training step) would otherwise be charged to the first training's curve
    seconds, which a simulator reads as the cost of reaching each epoch. Each evaluation seeds
    its own network and streams afterwards, so no row changes (a test checks it)."""
    from dataclasses import replace

    from calnas.live.networks import build_network, network_config
    from calnas.live.train import train

    config = network_config(space.name, space.arch(0), splits.num_classes, protocol.channels, protocol.cells)
    train(build_network(config), splits, replace(protocol, epochs=1), device=device, seed=0)


def evaluate_row(job) -> dict:
    """One table row (or ``{"index": i, "error": ...}``): a failure must not end a long build.
    ``job`` is an index, or (index, training seed) in a curve build."""
    from calnas.live.evaluate import evaluate_prepared

    space, protocol, curves = _STATE["space"], _STATE["protocol"], _STATE["curves"]
    index, seed = job if curves is not None else (job, _STATE["seed"])
    arch = space.arch(index)
    try:
        result = evaluate_prepared(arch, space, protocol, _STATE["splits"], device=_STATE["device"],
                                   seed=seed, curve_epochs=None if curves is None else curves.epochs)
    except Exception as exc:  # noqa: BLE001 - reported to the parent and retried on resume
        return {"index": index, "arch": arch, "seed": seed, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()}
    row = table_row(result.record, space, protocol, seed, len(_STATE["splits"].train_y))
    if curves is not None:
        row.update(curves.row_values(result.record["curve"]))
    return row


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


def protocol_record(protocol, space: Space, seed: int, curves=None) -> dict:
    """The build's ``.protocol.json``: ``seed`` is the split's (and, without curves, the
    training's) seed; ``curves`` the curve spec's record when the build has one."""
    from calnas import __version__

    out = {"space": space.name, "seed": seed, "order_seed": ORDER_SEED, "protocol": protocol.settings(),
           "calnas_version": __version__}
    if curves is not None:
        out["curves"] = curves.record()
    return out


def build_table(*, space: Space, protocol, out, seed: int = 0, data_root=None, limit: int | None = None,
                shard: tuple[int, int] | None = None, workers: int = 1, resume: bool = False, device: str = "cpu",
                curves=None, on_start: Callable[[int, int], None] | None = None,
                on_row: Callable[[dict], None] | None = None) -> BuildSummary:
    """Evaluate the selected architectures and append their rows to ``out``.

    ``device`` is a resolved torch device name ("cpu", "cuda", "cuda:1"); the digits table is
    built on CPU, where results are bit-for-bit reproducible.
    ``curves`` (a :class:`calnas.live.curves.CurveSpec`) trains each architecture once per
    seed of the spec and adds its curve columns; ``total``/``skipped``/``planned`` then count
    trainings, not architectures.
    ``on_start(total, skipped)`` is called once, ``on_row(row)`` after each architecture (rows
    with an ``error`` key were not written; a later ``resume`` retries them).
    """
    from calnas.metrics import PANEL_COLUMNS

    out = Path(out)
    from calnas.checks import SEED_RANGE, check_int, check_workers

    workers = check_workers(workers, "--workers")

    seed = check_int("seed", seed, minimum=0, maximum=SEED_RANGE - 1)
    if not out.parent.is_dir():
        raise UserError(f"output folder {str(out.parent)!r} does not exist")
    if out.exists() and not out.is_file():
        raise UserError(f"--out {str(out)!r} is not a regular file (a folder or a device); expected a CSV file")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise UserError(f"output folder {str(out.parent)!r} is not writable")
    columns = table_columns(PANEL_COLUMNS) + ([] if curves is None else curves.columns())
    if curves is not None and max(curves.epochs) != protocol.epochs:
        raise UserError(f"the curve epochs must end at the protocol's last epoch {protocol.epochs}, "
                        f"not {max(curves.epochs)}")
    meta_path = protocol_path(out)
    meta = protocol_record(protocol, space, seed, curves)
    done: set[int] = set()
    if out.exists() and out.stat().st_size > 0:
        if not resume:
            raise UserError(f"{out} already exists; pass --resume to add to it, or choose another --out")
        _check_own_build(out, meta_path, meta)
        columns = file_columns(out, columns)  # an older build's rows go on in its layout
        done = read_done(out, columns, by_seed=curves is not None)
    else:
        # No rows yet: the protocol file describes the build that starts now.
        write_protocol(out, meta)
    todo_all = select(build_order(space), limit=limit, shard=shard)
    if curves is not None:  # an architecture's seeds together: a partial build holds whole architectures
        todo_all = [(i, s) for i in todo_all for s in curves.seeds]
    todo = [i for i in todo_all if i not in done]
    if on_start is not None:
        on_start(len(todo), len(todo_all) - len(todo))
    start = time.perf_counter()
    written = failed = 0
    writer = RowWriter(out, columns)
    init_args = (protocol.settings(), space.name, None if data_root is None else str(data_root), seed, str(device),
                 None if curves is None else curves.record())
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
