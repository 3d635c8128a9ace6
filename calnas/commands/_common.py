"""Output helpers shared by the CLI commands (the library itself never prints)."""

from __future__ import annotations

import json
import math
import re
import sys
from contextlib import contextmanager

from rich.console import Console
from rich.table import Table as RichTable

# Status and progress go to stderr so that --json output on stdout stays machine-readable.
# Piped output (files, CI logs) gets a wide fixed width instead of rich's 80 columns, so long
# architecture strings are not cut.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)

def quiet_optuna() -> None:
    """The CLI reports on its own; Optuna's INFO lines ("A new study created ...") are noise.
    (Set after importing optuna, whose import resets its logger to INFO.)"""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


@contextmanager
def flag_names(flags: dict[str, str]):
    """Library errors name Python parameters (``budget must be ...``, ``data_dir 'x' does not
    exist``); on the command line the same message names the flag that sets it (``--budget must
    be ...``)."""
    from calnas.errors import UserError

    try:
        yield
    except UserError as exc:
        text = original = str(exc)
        for param, flag in flags.items():
            if text.startswith(f"{param} ") or text.startswith(f"{param}="):
                text = flag + text[len(param):]
            text = text.replace(f"another {param}", f"another {flag}")  # "... use another study_name"
        if text != original:
            raise UserError(text) from None
        raise


_BINNED = re.compile(r"^(pre|post)_(.+)_(\d+)$")


def print_json(obj) -> None:
    """One JSON object on stdout; NaN becomes null so every JSON reader accepts it."""
    from calnas.plain import jsonable

    sys.stdout.write(json.dumps(jsonable(obj), indent=2) + "\n")
    sys.stdout.flush()


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def metrics_tables(metrics: dict, title: str = "metrics") -> list[RichTable]:
    """Binned columns as a kind x bin-count grid per prefix, the rest as name/value rows."""
    grids: dict[str, dict[str, dict[int, object]]] = {}
    scalars = []
    for name, value in metrics.items():
        match = _BINNED.match(name)
        if match:
            prefix, kind, bins = match.groups()
            grids.setdefault(prefix, {}).setdefault(kind, {})[int(bins)] = value
        else:
            scalars.append((name, value))
    out = []
    if scalars:
        table = RichTable(title=title, show_header=True)
        table.add_column("metric", style="bold")
        table.add_column("value", justify="right")
        for name, value in scalars:
            table.add_row(name, fmt(value))
        out.append(table)
    for prefix, kinds in grids.items():
        bins = sorted({b for per_kind in kinds.values() for b in per_kind})
        label = "before temperature scaling" if prefix == "pre" else "after temperature scaling"
        table = RichTable(title=f"{prefix}_*: binned errors {label} (columns: bin count)")
        table.add_column("metric", style="bold")
        for b in bins:
            table.add_column(str(b), justify="right")
        for kind, per_kind in kinds.items():
            table.add_row(f"{prefix}_{kind}_B", *(fmt(per_kind.get(b)) for b in bins))
        out.append(table)
    return out
