"""The seven questions by number and name, running a selection of them, and the report files
(one PNG and CSV per question, an ``index.html`` page) that ``calnas analyze`` writes."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from calnas.analysis._base import FIGURE_DPI, AnalysisResult, label
from calnas.analysis.bins import BIN_COUNT, bin_count
from calnas.analysis.correlation import (
    ACCURACY,
    AGREEMENT,
    GENERALIZATION,
    ROBUSTNESS,
    calibration_vs_accuracy,
    generalization,
    metric_agreement,
    robustness,
)
from calnas.analysis.design import DESIGN, architecture_design
from calnas.analysis.temperature import TEMPERATURE, temperature_scaling
from calnas.errors import UserError

FLOAT_FORMAT = "%.6g"


@dataclass(frozen=True)
class Question:
    number: int
    name: str
    title: str
    aliases: tuple[str, ...]
    run: Callable  # (tables, metric, seed) -> AnalysisResult

    @property
    def stem(self) -> str:
        """File name stem of its report files, e.g. ``q1-generalization``."""
        return f"q{self.number}-{self.name}"


def _question(spec, aliases, run) -> Question:
    return Question(*spec, aliases=aliases, run=run)


# Questions 2-7 read one table: the first given. Question 1 compares all of them.
QUESTIONS: tuple[Question, ...] = (
    _question(GENERALIZATION, ("generalisation", "transfer", "cross-dataset"),
              lambda tables, metric, seed: generalization(tables, metric)),
    _question(ROBUSTNESS, (), lambda tables, metric, seed: robustness(tables[0])),
    _question(AGREEMENT, ("reliability", "agreement"), lambda tables, metric, seed: metric_agreement(tables[0])),
    _question(TEMPERATURE, ("temperature-scaling", "ts"),
              lambda tables, metric, seed: temperature_scaling(tables[0], metric)),
    _question(ACCURACY, ("calibration-vs-accuracy", "acc"),
              lambda tables, metric, seed: calibration_vs_accuracy(tables[0], metric)),
    _question(BIN_COUNT, ("bin-count", "binning"), lambda tables, metric, seed: bin_count(tables[0])),
    _question(DESIGN, ("architecture", "operations", "ops"),
              lambda tables, metric, seed: architecture_design(tables[0], metric, seed=seed)),
)


def resolve_questions(tokens) -> list[Question]:
    """Questions by number (1-7) or name, in the order given, each once; none given: all seven."""
    if not tokens:
        return list(QUESTIONS)
    by_key = {}
    for q in QUESTIONS:
        for key in (str(q.number), q.name, *q.aliases):
            by_key[key] = q
    chosen = []
    for token in tokens:
        q = by_key.get(str(token).strip().lower())
        if q is None:
            names = ", ".join(f"{q.number} {q.name}" for q in QUESTIONS)
            raise UserError(f"unknown question {token!r}; expected a number or name: {names}")
        if q not in chosen:
            chosen.append(q)
    return chosen


def run_questions(tables, questions=None, *, metric: str = "ece", seed: int = 0) -> list[AnalysisResult]:
    """Answer the chosen questions (default all) on resolved Tables."""
    return [q.run(tables, metric, seed) for q in resolve_questions(questions)]


# --------------------------------------------------------------------------------------------
# files


def prepare_out(out_dir) -> Path:
    """Create the report folder and check it takes files, before any work is done."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".calnas-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to {str(out)!r}: {exc.strerror or exc}") from None
    return out


def write_report(results: list[AnalysisResult], out_dir, *, tables=(), metric: str | None = None) -> dict[str, Path]:
    """Write ``q<N>-<name>.csv`` (and ``.png`` where there is a figure) per result, any detail
    frames as ``q<N>-<name>-<detail>.csv``, and ``index.html`` showing them all. Returns name -> path."""
    out = prepare_out(out_dir)
    stems = {q.number: q.stem for q in QUESTIONS}
    paths: dict[str, Path] = {}
    sections = []
    for result in results:
        stem = stems[result.number]
        csv = out / f"{stem}.csv"
        result.frame.to_csv(csv, index=not _range_index(result.frame), float_format=FLOAT_FORMAT, lineterminator="\n")
        paths[f"{stem}.csv"] = csv
        png = None
        if result.figure is not None:
            png = out / f"{stem}.png"
            result.figure.savefig(png, dpi=FIGURE_DPI)
            paths[f"{stem}.png"] = png
        details = []
        for name, frame in result.details.items():
            path = out / f"{stem}-{name}.csv"
            frame.to_csv(path, index=not _range_index(frame), float_format=FLOAT_FORMAT, lineterminator="\n")
            paths[path.name] = path
            details.append(path)
        sections.append(_section(result, csv, png, details))
    index = out / "index.html"
    index.write_text(_page(sections, results, tables, metric), encoding="utf-8")
    paths["index.html"] = index
    _remove_earlier_report(out, paths)
    return paths


def _remove_earlier_report(out: Path, written: dict[str, Path]) -> None:
    """An earlier report's answers that this one did not rewrite would sit beside an index that
    does not show them, looking current: remove them (only files named like a report's)."""
    stems = tuple(q.stem for q in QUESTIONS)
    for path in out.iterdir():
        name = path.name
        if name in written or not path.is_file() or not name.endswith((".csv", ".png")):
            continue
        base = name.rsplit(".", 1)[0]
        if any(base == stem or base.startswith(f"{stem}-") for stem in stems):
            path.unlink(missing_ok=True)


def _range_index(frame) -> bool:
    return isinstance(frame.index, pd.RangeIndex)


def _section(result: AnalysisResult, csv: Path, png: Path | None, details: list[Path]) -> str:
    anchor = f"q{result.number}"
    links = [f'<a href="{html.escape(csv.name)}">{html.escape(csv.name)}</a>'] + \
            [f'<a href="{html.escape(p.name)}">{html.escape(p.name)}</a>' for p in details]
    parts = [f'<section id="{anchor}" class="{"answered" if result.answered else "needs"}">',
             f"<h2>{result.number}. {html.escape(result.title)}</h2>",
             f'<p class="summary">{html.escape(result.summary)}</p>']
    if png is not None:
        parts.append(f'<img src="{html.escape(png.name)}" alt="{html.escape(result.title)}">')
    if result.answered:
        parts.append(f'<details><summary>table ({len(result.frame):,} rows; {" ".join(links)})</summary>'
                     f"{result.frame_html()}</details>")
    parts.append("</section>")
    return "\n".join(parts)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
nav ul { columns: 2; }
section { border-top: 1px solid #ccc; padding: 0.5em 0 1.5em; }
section.needs p.summary { color: #8a4b00; font-style: italic; }
p.summary { line-height: 1.45; }
img { max-width: 100%; height: auto; }
table.calnas-frame { border-collapse: collapse; font-size: 12px; margin-top: 0.5em; }
table.calnas-frame td, table.calnas-frame th { padding: 2px 6px; border-bottom: 1px solid #eee; text-align: right; }
"""


def _page(sections: list[str], results: list[AnalysisResult], tables, metric: str | None) -> str:
    from calnas import __version__

    names = ", ".join(html.escape(label(t)) for t in tables) or "given tables"
    nav = "".join(f'<li><a href="#q{r.number}">{r.number}. {html.escape(r.title)}</a></li>' for r in results)
    metric_text = f"; metric {html.escape(metric)}" if metric else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>calnas analysis: {names}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>Calibration study questions</h1>\n<p>Tables: {names}{metric_text}. Written by calnas "
        f"{__version__} (<code>calnas analyze</code>); how each answer is computed: docs/analysis.md.</p>\n"
        f"<nav><ul>{nav}</ul></nav>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )
