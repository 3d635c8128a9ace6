"""`calnas evaluate ARCH`: one architecture's metrics, from a table or by live training."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table as RichTable

from calnas.commands import _training
from calnas.commands._common import console, err_console, fmt, metrics_tables, print_json
from calnas.errors import UserError


def evaluate_cmd(
    arch: str = typer.Argument(..., help="Architecture string (TSS |op~0|+... or SSS 8:16:32:64:64) or NATS-Bench index."),
    benchmark: Optional[str] = typer.Option(
        None, "--benchmark", "-b", help="Benchmark name (see `calnas benchmarks`) or a CSV path; default: the embedded default."
    ),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Folder with published calibration CSVs (default: $CALNAS_DATA_DIR)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    live: bool = typer.Option(False, "--live", help="Train and evaluate the network now instead of looking it up."),
    dataset: Optional[str] = _training.dataset_option(),
    data_root: Optional[Path] = _training.data_root_option(),
    epochs: Optional[int] = _training.epochs_option(),
    device: str = _training.device_option("auto"),
    seed: int = typer.Option(0, "--seed", help="Live: random seed (training, split)."),
    space: Optional[str] = typer.Option(None, "--space", help="Live: tss | sss, for a bare index (strings say their space)."),
    weights: str = typer.Option("train", "--weights", help="Live: train (from scratch) | nats (NATS-Bench weights, needs --nats-path)."),
    nats_path: Optional[Path] = typer.Option(None, "--nats-path", help="Live: NATS-Bench archive directory (for --weights nats)."),
    channels: Optional[int] = _training.channels_option(),
    cells: Optional[int] = _training.cells_option(),
    recipe: Optional[str] = _training.recipe_option(),
    optimizer: Optional[str] = _training.optimizer_option(),
    lr: Optional[float] = _training.lr_option(),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Live: write a reliability diagram here (.png, .pdf or .svg)."),
    track: bool = typer.Option(False, "--track", help="Live: record validation accuracy, ECE, NLL, mean margin and loss sharpness "
                               "at initialisation and after every epoch (the record's trajectory; docs/live.md)."),
    plot_trajectory: Optional[Path] = typer.Option(None, "--plot-trajectory", help="Live: draw the tracked quantities on shared "
                                                   "epochs here (.png, .pdf or .svg); implies --track."),
    certainty: bool = typer.Option(False, "--certainty", help="Live: measure the trained network's neighbourhoods of certainty "
                                   "around training points (the record's certainty; docs/live.md)."),
) -> None:
    """Show an architecture's accuracy and calibration metrics.

    From a table (default): every column the benchmark has, plus isomorphic twins (TSS).
    With --live: build the NATS-Bench network with xautodl, train it, and compute the full
    calibration panel on the test split (temperature fitted on a held-out validation split).
    """
    if live:
        if plot is not None:
            from calnas.files import check_figure_path

            check_figure_path(plot)  # before the training, not after it
        if plot_trajectory is not None:
            from calnas.files import check_figure_path

            check_figure_path(plot_trajectory, "--plot-trajectory")
        _evaluate_live(arch, dataset=dataset or _training.DATASET_DEFAULT, data_root=data_root, epochs=epochs, device=device, seed=seed,
                       space=space, weights=weights, nats_path=nats_path, channels=channels, cells=cells,
                       recipe=recipe, optimizer=optimizer, lr=lr,
                       as_json=as_json, plot=plot, track=track or plot_trajectory is not None,
                       plot_trajectory=plot_trajectory, certainty=certainty)
        return
    if plot is not None:
        raise UserError("--plot needs --live (tables hold metrics, not predictions)")
    for flag, value in (("--recipe", recipe), ("--optimizer", optimizer), ("--lr", lr)):
        if value is not None:
            raise UserError(f"{flag} applies to live training; add --live (a table's rows are already trained)")
    for flag, given in (("--track", track), ("--plot-trajectory", plot_trajectory is not None),
                        ("--certainty", certainty)):
        if given:
            raise UserError(f"{flag} needs --live (it follows a training; tables hold final metrics only)")
    from calnas.tables import load_benchmark

    table = load_benchmark(benchmark, data_dir_path=data_dir)
    row = table.row(arch)
    record = {"arch": row.pop("arch"), "index": row.pop("index"), "benchmark": table.name,
              "space": table.space.name, "dataset": table.dataset}
    for key in ("iso", "evaluated_index"):
        if key in row:
            record[key] = row.pop(key)
    record["twins"] = table.twins(record["index"])
    record["metrics"] = row
    if as_json:
        print_json(record)
        return
    _print_record(record)


def _print_record(record: dict) -> None:
    head = RichTable(show_header=False, box=None)
    head.add_column(style="bold")
    head.add_column()
    for key in ("arch", "index", "benchmark", "space", "dataset", "iso", "evaluated_index", "device"):
        if key in record:
            head.add_row(key, fmt(record[key]))
    twins = record.get("twins")
    if twins:
        shown = ", ".join(map(str, twins[:12])) + (f", ... ({len(twins)} in all)" if len(twins) > 12 else "")
        head.add_row("isomorphic twins", shown)
    elif twins is not None and record.get("space") == "tss":
        head.add_row("isomorphic twins", "none")
    console.print(head)
    for table in metrics_tables(record["metrics"]):
        console.print(table)


def _evaluate_live(arch, *, space, as_json, plot, plot_trajectory=None, **options) -> None:
    from calnas.spaces import get_space

    if space is not None:
        arch = get_space(space).parse(arch)
    from calnas.live.evaluate import evaluate_live

    with err_console.status(f"training {arch} on {options['dataset']} ..."):
        result = evaluate_live(arch, **options)
    record = dict(result.record)
    if plot is not None:
        from calnas.metrics import reliability_diagram

        reliability_diagram(result.probs, result.labels, path=plot)
        record["plot"] = str(plot)
    if plot_trajectory is not None:
        from calnas.live.trajectory import write_trajectory_plot

        write_trajectory_plot(record["trajectory"], plot_trajectory, title=f"{record['arch']} on {record['dataset']}")
        record["trajectory_plot"] = str(plot_trajectory)
    if as_json:
        print_json(record)
        return
    _print_record(record)
    settings = RichTable(title="training settings", show_header=False)
    for key, value in record.get("settings", {}).items():
        settings.add_row(key, fmt(value))
    console.print(settings)
    _print_extras(record)
    if plot is not None:
        console.print(f"reliability diagram written to {plot}")
    if plot_trajectory is not None:
        console.print(f"trajectory plot written to {plot_trajectory}")


def _print_extras(record: dict) -> None:
    """The trajectory (one row per epoch) and the certainty metric, when the record has them."""
    trajectory = record.get("trajectory")
    if trajectory:
        from calnas.live.trajectory import TRACKED

        table = RichTable(title="trajectory (validation split; sharpness on the training batch)")
        for key in ("epoch", *TRACKED):
            table.add_column(key, justify="right")
        for entry in trajectory["epochs"]:
            table.add_row(*(fmt(entry[key]) for key in ("epoch", *TRACKED)))
        console.print(table)
    certainty = record.get("certainty")
    if certainty:
        table = RichTable(title="neighbourhoods of certainty", show_header=False)
        for key, value in certainty.items():
            table.add_row(key, fmt(value))
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_cmd)
