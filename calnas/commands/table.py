"""`calnas table build|ship`: build a calibration table by live evaluation, and package it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from calnas.commands._common import err_console, print_json

table_app = typer.Typer(help="Build calibration tables by live evaluation.", no_args_is_help=True)


@table_app.command("build")
def build_cmd(
    out: Path = typer.Option(..., "--out", help="CSV to append rows to (created if missing)."),
    space: str = typer.Option("tss", "--space", help="tss (one architecture per isomorphism class) | sss."),
    dataset: str = typer.Option("digits", "--dataset", help="digits | cifar10 | cifar100 | imagenet16-120."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Folder holding the dataset files (not digits)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Training epochs (default: the dataset's protocol)."),
    channels: Optional[int] = typer.Option(None, "--channels", "-C", help="TSS stem channels C (default: the protocol's)."),
    cells: Optional[int] = typer.Option(None, "--cells", "-N", help="TSS cells per stage N (default: the protocol's)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the data split and every architecture's training."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N architectures of the fixed seeded order."),
    shard: Optional[str] = typer.Option(None, "--shard", help="I/N: build only the I-th of N disjoint parts (1 <= I <= N)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Parallel processes (one torch thread each)."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto (CPU results are bit-for-bit reproducible)."),
    resume: bool = typer.Option(False, "--resume", help="Add to an existing --out, skipping architectures already in it."),
) -> None:
    """Train and evaluate architectures, appending one row per architecture to --out.

    Rows are written one at a time and synced, so a killed build loses at most the
    architectures in flight; run again with --resume to continue. With --workers > 1 rows are
    appended as they finish, not in build order. The protocol is saved next to the table as
    OUT.protocol.json.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from calnas.live.build import build_table, parse_shard
    from calnas.live.datasets import canonical_dataset
    from calnas.live.evaluate import make_protocol, resolve_device
    from calnas.spaces import get_space

    space_obj = get_space(space)
    key = canonical_dataset(dataset)
    protocol = make_protocol(space_obj, key, epochs=epochs, channels=channels, cells=cells)
    if key != "digits":
        from calnas.live.datasets import require_root

        require_root(key, data_root)
    shard_pair = parse_shard(shard)
    device_name = str(resolve_device(device))
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                        TextColumn("{task.fields[note]}"), console=err_console, transient=False)
    task = {}
    failures: list[dict] = []

    def on_start(total: int, skipped: int) -> None:
        if skipped:
            err_console.print(f"resuming {out}: {skipped} architectures already present", soft_wrap=True)
        # Started only once the build is planned, so a refused build prints just its one-line error.
        progress.start()
        task["id"] = progress.add_task(f"{space_obj.name}/{key}", total=total, note="")

    def on_row(row: dict) -> None:
        if "error" in row:
            failures.append(row)
            err_console.print(f"[red]failed[/red] {row['index']} {row['arch']}: {row['error']}", soft_wrap=True)
        note = f"last acc {row['acc']:.3f}" if "acc" in row else ""
        progress.update(task["id"], advance=1, note=note)

    try:
        summary = build_table(space=space_obj, protocol=protocol, out=out, seed=seed, data_root=data_root,
                              limit=limit, shard=shard_pair, workers=workers, resume=resume,
                              device=device_name, on_start=on_start, on_row=on_row)
    finally:
        if "id" in task:
            progress.stop()
    rate = summary.written / summary.seconds * 3600 if summary.seconds > 0 and summary.written else 0.0
    err_console.print(f"{out}: wrote {summary.written}, skipped {summary.skipped}, failed {summary.failed} "
                      f"in {summary.seconds:.1f}s ({rate:.0f} architectures/hour)", soft_wrap=True)
    if summary.failed:
        raise typer.Exit(1)


@table_app.command("ship")
def ship_cmd(
    build_csv: Path = typer.Argument(..., help="A finished build CSV (calnas table build --out)."),
    out: Path = typer.Argument(..., help="Compressed table to write, e.g. calnas/data/digits_tss.csv.gz."),
    expect_rows: Optional[int] = typer.Option(None, "--expect-rows", help="Refuse unless the build has exactly this many rows (6466 for TSS)."),
) -> None:
    """Sort, round floats to 6 significant digits, gzip reproducibly; print the README summary as JSON."""
    from calnas.live.ship import ship_table

    print_json(ship_table(build_csv, out, expected_rows=expect_rows))


def register(app: typer.Typer) -> None:
    app.add_typer(table_app, name="table")
