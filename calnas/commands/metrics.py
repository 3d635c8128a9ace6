"""``calnas metrics FILE``: the calibration panel of saved predictions."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from calnas.errors import UserError


def _parse_bins(text: Optional[str]):
    from calnas.metrics import DEFAULT_BINS

    if text is None:
        return DEFAULT_BINS
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UserError(f"--bins must be comma-separated integers like 5,15,100, got {text!r}") from None


def _json_value(v: float):
    # JSON has no NaN or infinity; undefined metrics (and an infinite NLL) become null.
    from calnas.plain import jsonable

    return jsonable(v)


def _print_table(panel: dict[str, float], source: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    has_post = "temperature" in panel
    table = Table(title=f"calibration panel: {source}")
    table.add_column("metric")
    table.add_column("pre" if has_post else "value", justify="right")
    if has_post:
        table.add_column("post", justify="right")

    def fmt(v):
        return "n/a" if v is None or math.isnan(v) else f"{v:.6g}"

    for name, value in panel.items():
        if name.startswith("post_"):
            continue
        if name.startswith("pre_"):
            base = name[len("pre_") :]
            row = [base, fmt(value)]
            if has_post:
                row.append(fmt(panel.get(f"post_{base}")))
        else:
            row = [name, fmt(value)] + ([""] if has_post else [])
        table.add_row(*row)
    Console().print(table)


def metrics_cmd(
    file: Annotated[
        Path,
        typer.Argument(help="An .npz with labels and logits or probs (optionally val_logits, val_labels)."),
    ],
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    plot: Annotated[
        Optional[Path], typer.Option("--plot", help="Write a 15-bin reliability diagram here (.png, .pdf or .svg).")
    ] = None,
    bins: Annotated[
        Optional[str], typer.Option("--bins", help="Comma-separated bin counts (default: the study's nine).")
    ] = None,
    temperature_method: Annotated[
        str, typer.Option("--temperature-method", help="ece_grid (the study's protocol) or nll.")
    ] = "ece_grid",
    fit_on_test: Annotated[
        bool,
        typer.Option(
            "--fit-on-test",
            help="Without val_* arrays, fit the temperature on the test split itself (optimistic).",
        ),
    ] = False,
    study_split: Annotated[
        bool,
        typer.Option(
            "--study-split",
            help="The file holds a whole test set (no val_* arrays): as the study, pre_* on all of it, the "
                 "temperature on a seeded 20%, post_* on the other 80%.",
        ),
    ] = False,
    nll_clip: Annotated[
        str,
        typer.Option("--nll-clip", help="float64 (exact, default) or study (float32 probabilities clipped at "
                                        "float32's eps, as the study's scikit-learn log_loss)."),
    ] = "float64",
    calibrator: Annotated[
        Optional[str],
        typer.Option("--calibrator", help="Post-hoc calibrators to compare instead of the panel: all, or "
                                          "comma-separated names (temperature, vector, matrix, dirichlet, "
                                          "histogram, isotonic, ets); fitted on val_logits/val_labels (or "
                                          "--study-split's 20%), measured on the test split."),
    ] = None,
) -> None:
    """Compute every calibration metric of the study's dataset (and selective prediction) for
    saved predictions. post_* columns appear when the file has val_logits/val_labels (or with
    --study-split). --calibrator compares post-hoc calibrators instead."""
    from calnas.commands._common import flag_names
    from calnas.files import check_figure_path
    from calnas.metrics import load_predictions, reliability_diagram

    if plot is not None:
        check_figure_path(plot)  # before any work
    if calibrator is not None:
        from calnas.commands.calibrators import calibrators_cmd

        calibrators_cmd(file, calibrator, json_output=json_output, plot=plot, fit_on_test=fit_on_test,
                        study_split=study_split)
        return
    arrays = load_predictions(file)
    with flag_names({"study_split": "--study-split", "nll_clip": "--nll-clip"}):
        panel = _panel(arrays, bins, temperature_method, fit_on_test, nll_clip, study_split)
    if plot is not None:
        reliability_diagram(
            arrays.get("probs"), arrays["labels"], 15, logits=arrays.get("logits"), path=plot
        )
    if json_output:
        typer.echo(json.dumps({k: _json_value(v) for k, v in panel.items()}))
    else:
        _print_table(panel, file)
        if plot is not None:
            typer.echo(f"reliability diagram written to {plot}")


def _panel(arrays, bins, temperature_method, fit_on_test, nll_clip, study_split):
    from calnas.metrics import calibration_panel

    return calibration_panel(
        arrays.get("probs"),
        arrays["labels"],
        logits=arrays.get("logits"),
        val_logits=arrays.get("val_logits"),
        val_labels=arrays.get("val_labels"),
        bins=_parse_bins(bins),
        temperature_method=temperature_method,
        fit_on_test=fit_on_test,
        nll_clip=nll_clip,
        study_split=study_split,
    )


def register(app) -> None:
    app.command("metrics")(metrics_cmd)
