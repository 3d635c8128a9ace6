"""`calnas benchmarks`: what tables are available."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table as RichTable

from calnas.commands._common import console, print_json


def benchmarks_cmd(
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", help="Folder with published calibration CSVs or NATS-Bench files (default: $CALNAS_DATA_DIR)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list on stdout."),
) -> None:
    """List the available benchmarks: embedded ones and those found in the data directory."""
    from calnas.tables import list_benchmarks

    rows = list_benchmarks(data_dir)
    if as_json:
        print_json(rows)
        return
    table = RichTable(title="calnas benchmarks")
    for column in ("name", "space", "dataset", "rows", "source", "metric columns"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for row in rows:
        metrics = row["metric_columns"]
        shown = ", ".join(metrics[:6]) + (f", ... ({len(metrics)} in all)" if len(metrics) > 6 else "")
        rows_text = "?" if row["rows"] is None else f"{row['rows']:,}"  # NATS-Bench files are not opened to list
        table.add_row(row["name"], row["space"], str(row["dataset"]), rows_text, row["source"], shown)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("benchmarks")(benchmarks_cmd)
