"""`calnas show`: the result files and front of a stored search, from its storage alone."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from calnas.commands._common import flag_names, quiet_optuna
from calnas.commands._search_options import FLAGS
from calnas.commands._search_report import report, result_folder


def show_cmd(
    storage: str = typer.Option(..., "--storage", help="The storage the search wrote (sqlite:///FILE.db, journal:///FILE.log, postgresql://...)."),
    study_name: Optional[str] = typer.Option(None, "--study-name", help="Study name (default: calnas)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: a new folder under runs/)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    no_plot: bool = typer.Option(False, "--no-plot", help="Write no figures (pareto.png, hypervolume.png, reliability.png); an earlier run's copies in --out are removed."),
) -> None:
    """Rebuild front.csv, trials.csv, summary.json and pareto.png of a stored search and print its
    front. Needs nothing but the storage: the table, objectives and true front are in the study.
    Works while the search is still running (it shows what is finished)."""
    from calnas.rebuild import load_result
    from calnas.study import load_stored_study

    quiet_optuna()
    with flag_names(FLAGS):
        # The storage is checked (it exists and holds the study) before --out is created or
        # claimed, so a refused storage leaves no folder behind.
        study = load_stored_study(storage, study_name)
    with result_folder(out) as out_dir:
        with flag_names(FLAGS):
            result = load_result(study)
        report(result, out_dir, as_json=as_json, plot=not no_plot)


def register(app: typer.Typer) -> None:
    app.command("show")(show_cmd)
