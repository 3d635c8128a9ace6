"""What a search found: :class:`SearchResult`, its files and figures.

Rebuilt from the study alone by :func:`calnas.rebuild.load_result`, so a finished, resumed or
shown search reads the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from calnas import record as rec
from calnas.plain import jsonable

FLOAT_FORMAT = "%.12g"  # fixed, so that the same run writes the same bytes
# The files SearchResult.save writes (by key of its returned paths); a figure it does not draw is removed.
TABLE_FILES = {"front": "front.csv", "trials": "trials.csv", "summary": "summary.json"}
CURVES_FILE = "curves.csv"
FIGURE_FILES = {"plot": "pareto.png", "hypervolume_plot": "hypervolume.png", "reliability_plot": "reliability.png",
                "rung_plot": "rungs.png"}


def check_result_files(out_dir: str | Path) -> None:
    """Refuse, before a search, a result folder where a file :meth:`SearchResult.save` writes or
    removes is something else of that name (a folder, a pipe, a device): the save would fail only
    after the whole search. An existing regular file is replaced, as every result file is."""
    from calnas.errors import UserError

    out = Path(out_dir)
    for name in (*TABLE_FILES.values(), CURVES_FILE, *FIGURE_FILES.values()):
        path = out / name
        if path.exists() and not path.is_file():
            raise UserError(f"--out {str(out)!r} holds a {name} that is not a regular file (a folder?); the "
                            f"search writes its {name} there: move it or choose another --out")


@dataclass
class SearchResult:
    """What a search found. ``trials`` and ``front`` are DataFrames; files via :meth:`save`."""

    trials: pd.DataFrame
    front: pd.DataFrame
    true_front: pd.DataFrame
    hypervolume: float
    true_hypervolume: float
    hypervolume_ratio: float | None
    true_front_found: int
    evaluations: int
    exhausted: bool
    info: dict
    study: object = field(repr=False)
    # Distinct objective vectors of the (feasible) true front, and how many of them the found
    # front reaches. Unlike true_front_found (architectures), this does not count a point again
    # for every isomorphic twin or identical row, so it reads the same on every table.
    true_front_points: int = 0
    true_front_points_found: int = 0
    # A live early-stopping search's learning curves: one row per evaluation (``trial`` as in
    # trials.csv) and recorded epoch, the point columns (calnas.curve_layout); None otherwise.
    curves: pd.DataFrame | None = None

    def summary(self) -> dict:
        """Everything about the run as plain JSON-able values (what summary.json holds)."""
        return {
            **self.info,
            "evaluations": self.evaluations,
            "exhausted": self.exhausted,
            "front_size": len(self.front),
            "hypervolume": self.hypervolume,
            "true_front_size": len(self.true_front),
            "true_hypervolume": self.true_hypervolume,
            "hypervolume_ratio": self.hypervolume_ratio,
            "true_front_found": self.true_front_found,
            "true_front_points": self.true_front_points,
            "true_front_points_found": self.true_front_points_found,
        }

    def plot(self, path: str | Path | None = None):
        """A matplotlib Figure: all trials, the found front and the table's true front."""
        from calnas.plots import pareto_figure

        figure = pareto_figure(self)
        if path is not None:
            figure.savefig(path, dpi=110)
        return figure

    def save(self, out_dir: str | Path, *, plot: bool = True) -> dict[str, Path]:
        """Write front.csv, trials.csv, summary.json (and pareto.png, hypervolume.png and, for a
        live search, reliability.png: the front members' reliability diagrams); returns the paths.
        A full disk is one UserError (the search itself is kept in its storage, if it has one)."""
        from calnas.errors import UserError
        from calnas.storage import full_disk

        try:
            return self._save(Path(out_dir), plot=plot)
        except OSError as exc:
            reason = full_disk(exc)
            if reason is None:
                raise
            raise UserError(f"cannot write the result files in {str(out_dir)!r}: {reason}; free space and run "
                            "`calnas show` on the storage (or the search again) to write them") from None

    def _save(self, out_dir: Path, *, plot: bool) -> dict[str, Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {key: out / name for key, name in TABLE_FILES.items()}
        self.front.to_csv(paths["front"], index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
        self.trials.to_csv(paths["trials"], index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
        curves = out / CURVES_FILE
        if self.curves is not None and len(self.curves):
            paths["curves"] = curves
            self.curves.to_csv(curves, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
        else:
            curves.unlink(missing_ok=True)  # an earlier search's curves would look like this one's
        paths["summary"].write_text(json.dumps(jsonable(self.summary()), indent=2) + "\n")
        if plot:  # drawn with Pillow (calnas.raster), after the results are written
            from calnas.plots import hypervolume_spec, pareto_spec, rung_spec
            from calnas.raster import render

            paths["plot"] = render(pareto_spec(self), out / FIGURE_FILES["plot"])
            paths["hypervolume_plot"] = render(hypervolume_spec(self), out / FIGURE_FILES["hypervolume_plot"])
            rungs = rung_spec(self)  # an early-stopping search: how far each trial trained
            if rungs is not None:
                paths["rung_plot"] = render(rungs, out / FIGURE_FILES["rung_plot"])
            reliability = out / FIGURE_FILES["reliability_plot"]
            if self.plot_reliability(reliability) is not None:  # a live search's trained front members
                paths["reliability_plot"] = reliability
        for key, name in FIGURE_FILES.items():
            if key not in paths:  # an earlier run's figure would stand beside results it does not show
                (out / name).unlink(missing_ok=True)
        return paths

    def plot_hypervolume(self, path: str | Path | None = None):
        """A matplotlib Figure: the found front's hypervolume after each evaluation, and the true
        front's as a line when it is known."""
        from calnas.plots import hypervolume_figure

        figure = hypervolume_figure(self)
        if path is not None:
            figure.savefig(path, dpi=110)
        return figure

    def reliability_diagrams(self) -> dict[int, dict]:
        """Front members' reliability diagrams, by index: ``{"pre": ReliabilityDiagram, "post": ...}``
        for each member whose evaluation stored one (a live training; a member answered from a
        table has none, so a table search has none at all)."""
        if self.front.empty:
            return {}
        keys = self._front_keys()
        wanted = set(keys)
        found: dict[int, dict] = {}
        for trial in self.study.get_trials(deepcopy=False):
            data = trial.user_attrs.get(rec.RELIABILITY)
            index = trial.user_attrs.get(rec.INDEX)
            if data and index in wanted and index not in found:
                found[int(index)] = data
        if not found:
            return {}
        from calnas.metrics import ReliabilityDiagram

        return {key: {stage: ReliabilityDiagram.from_dict(d) for stage, d in found[key].items()}
                for key in keys if key in found}

    def _front_keys(self) -> list[int]:
        """The study's index of each front member (a joint search's (architecture, recipe) index)."""
        if "recipe" not in self.front:
            return [int(i) for i in self.front["index"]]
        from calnas.spaces import get_space

        space = get_space(self.info["space"])
        return [space.join(int(i), r) for i, r in zip(self.front["index"], self.front["recipe"])]

    def plot_reliability(self, path: str | Path | None = None):
        """A matplotlib Figure: the reliability diagrams (before and after temperature scaling) of
        the front members a live search trained, in front order; None when there are none."""
        from calnas.plots import RELIABILITY_MEMBERS, reliability_figure

        diagrams = self.reliability_diagrams()
        if not diagrams:
            return None
        shown = list(diagrams.items())
        more = f" (first {RELIABILITY_MEMBERS} of {len(shown)})" if len(shown) > RELIABILITY_MEMBERS else ""
        rows = dict(zip(self._front_keys(), self.front.to_dict("records")))
        names = [o["name"] for o in self.info["objectives"]]

        def label(key):
            row = rows[key]
            recipe = f" {row['recipe']}" if "recipe" in row else ""
            return f"#{row['index']}{recipe} " + ", ".join(f"{n} {row[n]:.3g}" for n in names)

        figure = reliability_figure([(label(key), d) for key, d in shown],
                                    title=f"front members on {self.info['benchmark']}: test-split reliability{more}")
        if path is not None:
            figure.savefig(path, dpi=100)
        return figure

    def __repr__(self) -> str:
        ratio = "" if self.hypervolume_ratio is None else f", hypervolume ratio {self.hypervolume_ratio:.4f}"
        names = ",".join(o["name"] for o in self.info["objectives"])
        return (f"<SearchResult {self.info['searcher']} on {self.info['benchmark']} ({names}): "
                f"{self.evaluations} evaluations, front of {len(self.front)}{ratio}>")

    def _repr_html_(self) -> str:
        """For notebooks: the summary line, the front as a table and the Pareto plot."""
        import base64
        import html
        import io

        buffer = io.BytesIO()
        self.plot().savefig(buffer, format="png", dpi=80)
        image = base64.b64encode(buffer.getvalue()).decode("ascii")
        return (f"<p>{html.escape(repr(self))}</p>{self.front.to_html(index=False, max_rows=30)}"
                f'<img src="data:image/png;base64,{image}"/>')

