"""`calnas table build|ship`: build a calibration table by live evaluation, and package it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from calnas.checks import MAX_WORKERS

from calnas.commands import _training
from calnas.commands._common import err_console, print_json
from calnas.errors import UserError

LOG_EVERY = 30.0  # seconds between progress lines when stderr is not a terminal


def _progress_line(done: int, total: int, elapsed: float, unit: str = "architectures") -> str:
    rate = done / elapsed * 3600 if elapsed > 0 else 0.0
    eta = (total - done) / rate * 60 if rate > 0 else float("nan")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return f"{stamp} {done}/{total} {unit}, {rate:.0f}/hour, eta {eta:.1f} min"


table_app = typer.Typer(help="Build calibration tables by live evaluation.", no_args_is_help=True)


@table_app.command("build")
def build_cmd(
    out: Path = typer.Option(..., "--out", help="CSV to append rows to (created if missing)."),
    space: str = typer.Option("tss", "--space", help="tss (one architecture per isomorphism class) | sss."),
    dataset: Optional[str] = _training.dataset_option(),
    data_root: Optional[Path] = _training.data_root_option(),
    epochs: Optional[int] = _training.epochs_option(),
    channels: Optional[int] = _training.channels_option(),
    cells: Optional[int] = _training.cells_option(),
    recipe: Optional[str] = _training.recipe_option(),
    optimizer: Optional[str] = _training.optimizer_option(),
    lr: Optional[float] = _training.lr_option(),
    seed: int = typer.Option(0, "--seed", help="Seed for the data split and every architecture's training."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N architectures of the fixed seeded order."),
    shard: Optional[str] = typer.Option(None, "--shard", help="I/N: build only the I-th of N disjoint parts (1 <= I <= N)."),
    workers: int = typer.Option(1, "--workers", min=1, help=f"Parallel processes (one torch thread each), 1 to {MAX_WORKERS}."),
    device: str = _training.device_option("cpu"),
    resume: bool = typer.Option(False, "--resume", help="Add to an existing --out, skipping architectures already in it."),
    curves: bool = typer.Option(False, "--curves", help="Learning curves: train each architecture once per --seeds on the split of --seed, "
                                "recording test/validation calibration at --curve-epochs; on digits TSS the curve protocol "
                                "(that of digits-tss-curves) is the default."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Training seeds of a --curves build, comma-separated (default 0,1,2)."),
    curve_epochs: Optional[str] = typer.Option(None, "--curve-epochs", help="Epochs of each curve, comma-separated, ending at the last "
                                               "epoch (default: 1, 2, 4, ... doubling, and the last)."),
) -> None:
    """Train and evaluate architectures, appending one row per architecture to --out.

    Rows are written one at a time and synced, so a killed build loses at most the
    architectures in flight; run again with --resume to continue. With --workers > 1 rows are
    appended as they finish, not in build order. The protocol is saved next to the table as
    OUT.protocol.json.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from calnas.live.build import build_table, parse_shard
    from calnas.live.datasets import is_npz_key, resolve_dataset
    from calnas.live.evaluate import make_protocol, resolve_device
    from calnas.spaces import get_space

    from calnas.live.protocol import curve_protocol

    space_obj = get_space(space)
    key, data_root = resolve_dataset(dataset or _training.DATASET_DEFAULT, data_root)
    if not curves and (seeds is not None or curve_epochs is not None):
        raise UserError("--seeds and --curve-epochs describe a curve build; add --curves")
    protocol = make_protocol(space_obj, key, protocol=curve_protocol(key, space_obj.name) if curves else None,
                             epochs=epochs, channels=channels, cells=cells, recipe=recipe, optimizer=optimizer, lr=lr)
    spec = _curve_spec(protocol.epochs, seeds, curve_epochs) if curves else None
    unit = "trainings" if curves else "architectures"
    if key != "digits" and not is_npz_key(key):
        from calnas.live.datasets import require_root

        require_root(key, data_root)
    shard_pair = parse_shard(shard)
    device_name = str(resolve_device(device))
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                        TextColumn("{task.fields[note]}"), console=err_console, transient=False)
    task = {}
    failures: list[dict] = []

    # A live bar for a terminal; a log (a background build's redirected stderr) gets a plain
    # progress line at most every LOG_EVERY seconds instead, which rich would not print until the end.
    live_bar = err_console.is_terminal
    log = {"last": 0.0, "done": 0, "total": 0, "start": 0.0}

    def on_start(total: int, skipped: int) -> None:
        if skipped:
            err_console.print(f"resuming {out}: {skipped} {unit} already present", soft_wrap=True)
        log.update(total=total, start=time.monotonic(), last=time.monotonic())
        if live_bar:
            # Started only once the build is planned, so a refused build prints just its one-line error.
            progress.start()
            task["id"] = progress.add_task(f"{space_obj.name}/{key}", total=total, note="")
        else:
            err_console.print(f"building {total} {unit} of {space_obj.name}/{key} into {out}", soft_wrap=True)

    def on_row(row: dict) -> None:
        if "error" in row:
            failures.append(row)
            err_console.print(f"[red]failed[/red] {row['index']} {row['arch']}: {row['error']}", soft_wrap=True)
        log["done"] += 1
        if live_bar:
            note = f"last acc {row['acc']:.3f}" if "acc" in row else ""
            progress.update(task["id"], advance=1, note=note)
            return
        now = time.monotonic()
        if now - log["last"] >= LOG_EVERY or log["done"] == log["total"]:
            log["last"] = now
            err_console.print(_progress_line(log["done"], log["total"], now - log["start"], unit), soft_wrap=True)

    try:
        summary = build_table(space=space_obj, protocol=protocol, out=out, seed=seed, data_root=data_root,
                              limit=limit, shard=shard_pair, workers=workers, resume=resume,
                              device=device_name, curves=spec, on_start=on_start, on_row=on_row)
    finally:
        if "id" in task:
            progress.stop()
    rate = summary.written / summary.seconds * 3600 if summary.seconds > 0 and summary.written else 0.0
    err_console.print(f"{out}: wrote {summary.written}, skipped {summary.skipped}, failed {summary.failed} "
                      f"in {summary.seconds:.1f}s ({rate:.0f} {unit}/hour)", soft_wrap=True)
    if summary.failed:
        raise typer.Exit(1)


def _int_list(text: str, option: str, minimum: int, maximum: int) -> list[int]:
    values = []
    for part in str(text).split(","):
        part = part.strip()
        if not (part.isascii() and part.isdigit()) or not (minimum <= int(part) <= maximum):
            raise UserError(f"{option} takes comma-separated integers in [{minimum}, {maximum}], got {part[:20]!r}")
        values.append(int(part))
    return values


def _curve_spec(last_epoch: int, seeds: str | None, epochs: str | None):
    from calnas.live.curves import CURVE_SEEDS, CurveSpec
    from calnas.checks import SEED_RANGE

    seed_list = CURVE_SEEDS if seeds is None else _int_list(seeds, "--seeds", 0, SEED_RANGE - 1)
    if epochs is None:
        return CurveSpec.geometric(last_epoch, seed_list)
    epoch_list = _int_list(epochs, "--curve-epochs", 1, last_epoch)
    if max(epoch_list) != last_epoch:
        raise UserError(f"--curve-epochs must end at the last epoch ({last_epoch}), the table row's")
    return CurveSpec(epoch_list, seed_list)


@table_app.command("ship")
def ship_cmd(
    build_csv: Path = typer.Argument(..., help="A finished build CSV (calnas table build --out)."),
    out: Path = typer.Argument(..., help="Compressed table to write, e.g. calnas/data/digits_tss.csv.gz."),
    expect_rows: Optional[int] = typer.Option(None, "--expect-rows", help="Refuse unless the build has exactly this many rows (6466 for TSS, 32768 for SSS)."),
    parts: int = typer.Option(1, "--parts", help="Write N row slices OUT-1.csv.gz ... OUT-N.csv.gz, each a whole gzipped CSV with the header (to keep every file small)."),
) -> None:
    """Sort, round floats to 6 significant digits, gzip reproducibly; print the README summary (and the files' sizes) as JSON."""
    from calnas.live.ship import ship_table

    print_json(ship_table(build_csv, out, expected_rows=expect_rows, parts=parts))


def register(app: typer.Typer) -> None:
    app.add_typer(table_app, name="table")
