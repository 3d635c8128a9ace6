"""``calnas analyze``: the calibration study's seven questions, answered from calibration tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from calnas.errors import UserError

_QUESTIONS_HELP = (
    "Questions by number or name (default: all seven): 1 generalization (rank agreement of a metric "
    "between two or more tables), 2 robustness (robustness vs calibration columns), 3 metrics "
    "(rank correlations between calibration metrics), 4 temperature (pre vs post scaling per "
    "architecture, temperature vs accuracy), 5 accuracy (calibration vs accuracy, all and top "
    "10%/1%), 6 bins (binned metrics across bin counts), 7 design (effect of each operation/width)."
)


def analyze_cmd(
    questions: Annotated[Optional[list[str]], typer.Argument(help=_QUESTIONS_HELP, show_default=False)] = None,
    benchmark: Annotated[
        Optional[list[str]],
        typer.Option("--benchmark", "-b", help="A benchmark name or table path (repeat for question 1, which "
                     "compares tables; the other questions use the first). Default: the embedded default."),
    ] = None,
    metric: Annotated[
        str,
        typer.Option("--metric", "-m", help="The metric of questions 1, 4, 5 and 7: a column (pre_ECE_15) or a short "
                     "name (ece, post_nll, ece_em_50, acc); question 4 uses its pre_ and post_ forms."),
    ] = "ece",
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for q<N>-<name>.png/.csv per question and index.html.")
    ] = ...,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summaries as JSON on stdout.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of question 7's bootstrap.")] = 0,
    data_dir: Annotated[
        Optional[Path],
        typer.Option("--data-dir", help="Folder with published calibration CSVs (default: $CALNAS_DATA_DIR)."),
    ] = None,
) -> None:
    """Answer the questions of the ICLR 2024 calibration study from calibration tables.

    Writes q<N>-<name>.csv and .png per question, and index.html showing them with their summaries.

    A question the tables cannot answer (1 with one table, 2 without robustness columns) gets a one-line note instead of a plot.

    Example: calnas analyze 3 bins --benchmark digits-tss --out runs/analysis (docs/analysis.md).
    """
    from calnas.analysis import as_table, resolve_metric, resolve_questions, write_report
    from calnas.analysis.report import prepare_out
    from calnas.commands._common import console, err_console, print_json

    from calnas.checks import check_seed
    from calnas.files import claim_folder

    seed = check_seed(seed)  # before any table is read: numpy takes 0..2^32-1
    chosen = resolve_questions(questions)
    tables = [as_table(name, data_dir=data_dir) for name in (benchmark or [None])]
    column = resolve_metric(metric, tables)
    if not any(column in t.frame.columns for t in tables):
        raise UserError(f"metric {metric!r} ({column}) is in none of the tables "
                        f"({', '.join(t.name for t in tables)}); pick one of their columns")
    prepare_out(out)
    # Held like search's --out: a second run naming the folder is refused, not interleaved.
    with claim_folder(out):
        results = []
        for question in chosen:
            err_console.print(f"[dim]{question.number}. {question.title}[/dim]")
            results.append(question.run(tables, column, seed))
        paths = write_report(results, out, tables=tables, metric=column)
    if as_json:
        print_json({
            "out": str(out), "index": str(paths["index.html"]), "metric": column,
            "benchmarks": [t.name for t in tables],
            "questions": [{"number": r.number, "name": r.name, "title": r.title, "answered": r.answered,
                           "summary": r.summary,
                           "files": [p.name for k, p in paths.items() if k.startswith(f"q{r.number}-")]}
                          for r in results],
        })
        return
    for r in results:
        console.print(f"[bold]{r.number}. {r.title}[/bold]")
        console.print(r.summary, style=None if r.answered else "yellow", highlight=False)
        console.print()
    console.print(f"wrote {len(paths)} files; open {paths['index.html']}")


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze_cmd)
