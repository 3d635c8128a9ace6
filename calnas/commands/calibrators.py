"""``calnas metrics FILE --calibrator NAME|all``: post-hoc calibrators compared on saved predictions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from calnas.errors import UserError


def parse_calibrators(text: str) -> tuple[str, ...]:
    from calnas.calibrator_columns import CALIBRATOR_NAMES

    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if names == ["all"]:
        return CALIBRATOR_NAMES
    unknown = [n for n in names if n not in CALIBRATOR_NAMES]
    if unknown or not names:
        raise UserError(f"--calibrator {text!r}: expected all or names among {', '.join(CALIBRATOR_NAMES)}")
    return tuple(dict.fromkeys(names))


def _splits(arrays, fit_on_test: bool, study_split: bool):
    """(test logits, test labels, fit logits, fit labels) as the panel's options choose them."""
    if "logits" not in arrays:
        raise UserError("--calibrator needs the test logits (a 'logits' array), not only probs")
    z, y = arrays["logits"], arrays["labels"]
    has_val = "val_logits" in arrays
    if sum([has_val, fit_on_test, study_split]) > 1:
        raise UserError("give only one source for the calibrators' fit: val_logits/val_labels in the file, "
                        "--fit-on-test or --study-split")
    if has_val:
        return z, y, arrays["val_logits"], arrays["val_labels"]
    if study_split:
        from calnas.metrics import study_split_indices

        test, held_out = study_split_indices(z.shape[0])
        return z[test], y[test], z[held_out], y[held_out]
    if fit_on_test:
        return z, y, z, y
    raise UserError("--calibrator fits on a validation split: the file needs val_logits/val_labels "
                    "(or pass --study-split, or --fit-on-test)")


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, list):
        return [_json_value(x) for x in v]
    return v


def calibrators_cmd(file: Path, names: str, *, json_output: bool, plot, fit_on_test: bool, study_split: bool) -> None:
    from calnas.metrics import calibrator_results, load_predictions

    chosen = parse_calibrators(names)
    arrays = load_predictions(file)
    z, y, vz, vy = _splits(arrays, fit_on_test, study_split)
    results = calibrator_results(z, y, vz, vy, chosen, keep_probs=plot is not None)
    if plot is not None:
        _plot(results, z, y, plot, file)
    if json_output:
        typer.echo(json.dumps({name: entry(r) for name, r in results.items()}))
        return
    _print_table(results, file)
    if plot is not None:
        typer.echo(f"reliability diagrams written to {plot}")


def entry(result) -> dict:
    """One calibrator's JSON entry: its test metrics, its validation ECE_15, its few parameters."""
    from calnas.calibrator_columns import VALIDATION_METRIC

    out = {k: _json_value(v) for k, v in result.test.items()}
    out[f"val_{VALIDATION_METRIC}"] = _json_value(result.val_ece)
    out["keeps_top1"] = result.keeps_top1
    out.update({k: _json_value(v) for k, v in result.params.items()})
    return out


def _print_table(results, source: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from calnas.calibrator_columns import METRICS, VALIDATION_METRIC

    table = Table(title=f"post-hoc calibrators on the test split: {source}")
    table.add_column("calibrator", no_wrap=True)  # the name, whole, on a narrow terminal too
    for metric in METRICS:
        table.add_column(metric, justify="right")
    table.add_column(f"val {VALIDATION_METRIC} (cv)", justify="right")
    table.add_column("fitted")

    def fmt(v):
        return "n/a" if v is None or math.isnan(v) else f"{v:.4g}"

    for name, r in results.items():
        params = ", ".join(f"{k} {fmt(v) if isinstance(v, float) else '/'.join(fmt(x) for x in v)}"
                           for k, v in r.params.items())
        table.add_row(name, *(fmt(r.test[m]) for m in METRICS), fmt(r.val_ece), params)
    Console().print(table)


def _plot(results, z, y, path, source) -> None:
    from calnas.metrics import reliability_diagram
    from calnas.plots import calibrator_figure

    panels = [("uncalibrated", reliability_diagram(None, y, logits=z))]
    panels += [(name, reliability_diagram(r.probs, y)) for name, r in results.items()]
    figure = calibrator_figure(panels, title=f"test-split reliability after each calibrator: {Path(source).name}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
