"""What every analysis shares: the result object, input resolution, units, rank correlations and
figure helpers.

Matplotlib is used through ``Figure`` and the Agg canvas only: no pyplot, no backend switch, no
global state, so importing calnas inside a notebook or a server changes nothing around it.
"""

from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from calnas.errors import UserError
from calnas.spaces import TSS
from calnas.tables import Table, load_benchmark, table_from_frame
from calnas.objectives.catalog import MAXIMISE, canonical_column, direction

# Rows of .frame shown in notebooks and on the report page; the CSV always has all of them.
HTML_MAX_ROWS = 20
FIGURE_DPI = 110
MIN_PAIRS = 3  # a rank correlation of fewer points says nothing


@dataclass(repr=False)
class AnalysisResult:
    """The answer to one question: a frame, a figure and a one-paragraph summary in numbers.

    ``answered`` is False when the input cannot answer the question (one table where two are
    needed, no robustness columns, ...); ``summary`` then says in one line what is needed, the
    frame holds that line and there is no figure.
    """

    number: int
    name: str
    title: str
    summary: str
    frame: pd.DataFrame
    figure: object | None = None  # matplotlib.figure.Figure
    details: dict[str, pd.DataFrame] = field(default_factory=dict)
    answered: bool = True

    def __repr__(self) -> str:
        text = self.summary if len(self.summary) <= 100 else self.summary[:97] + "..."
        extra = f"{len(self.frame)} rows" + (", figure" if self.figure is not None else "")
        return f"<{self.number}. {self.name}: {text} ({extra})>"

    def png(self) -> bytes | None:
        """The figure as PNG bytes (None without a figure)."""
        if self.figure is None:
            return None
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=FIGURE_DPI)
        return buffer.getvalue()

    def frame_html(self) -> str:
        return self.frame.to_html(max_rows=HTML_MAX_ROWS, float_format=lambda v: f"{v:.4g}", border=0,
                                  classes="calnas-frame", index=not isinstance(self.frame.index, pd.RangeIndex))

    def _repr_html_(self) -> str:
        parts = [f"<h3>{self.number}. {html.escape(self.title)}</h3>", f"<p>{html.escape(self.summary)}</p>"]
        png = self.png()
        if png is not None:
            encoded = base64.b64encode(png).decode("ascii")
            parts.append(f'<img alt="{html.escape(self.title)}" src="data:image/png;base64,{encoded}">')
        if self.answered:
            parts.append(self.frame_html())
        return '<div class="calnas-analysis">' + "".join(parts) + "</div>"


def unanswered(number: int, name: str, title: str, message: str) -> AnalysisResult:
    return AnalysisResult(number, name, title, message, pd.DataFrame({"message": [message]}), answered=False)


# --------------------------------------------------------------------------------------------
# inputs


def as_table(source, *, data_dir=None) -> Table:
    """A Table from a Table, a benchmark name or path (None: the embedded default), or a frame in
    the table layout (an ``arch`` and/or ``config``/``index`` column, or such an index)."""
    if isinstance(source, Table):
        return source
    if isinstance(source, pd.DataFrame):
        frame = source
        if not {"arch", "config", "index"} & set(frame.columns) and frame.index.name in ("index", "config"):
            frame = frame.reset_index()
        return table_from_frame(frame, name="frame")
    if source is None or isinstance(source, (str, os.PathLike)):
        return load_benchmark(source, data_dir_path=data_dir)
    raise UserError(f"expected a Table, a benchmark name or path, or a DataFrame; got {type(source).__name__}")


def as_tables(sources, *, data_dir=None) -> list[Table]:
    """One or several table-likes: a list/tuple means several, anything else one."""
    if isinstance(sources, (list, tuple)):
        return [as_table(s, data_dir=data_dir) for s in sources]
    return [as_table(sources, data_dir=data_dir)]


def resolve_metric(name: str, tables=()) -> str:
    """A column name: exact (as in any of the tables) or a short name (``ece`` -> pre_ECE_15)."""
    if not isinstance(name, str) or not name.strip():
        raise UserError(f"a metric must be a column name or a short name such as ece, got {name!r}")
    name = name.strip()
    if any(name in t.frame.columns for t in tables):
        return name
    column = canonical_column(name.lower())
    if column is None:
        raise UserError(f"unknown metric {name!r}; expected a table column such as pre_ECE_15 or a short name "
                        "such as ece, post_ece, ece_em_50, nll, acc")
    return column


def better_high(column: str) -> bool:
    return direction(column) == MAXIMISE


def missing_column(table: Table, column: str) -> str | None:
    if column in table.frame.columns and pd.to_numeric(table.frame[column], errors="coerce").notna().sum() >= MIN_PAIRS:
        return None
    return f"{table.name} has no values for {column}"


def unit_keys(table: Table) -> np.ndarray:
    """One key per distinct evaluated network: the isomorphism class for TSS, the index for SSS.

    Tables built one row per class (``evaluated_index``) copy the class's values to every member,
    and isomorphic cells compute the same function, so counting each member would weight a
    network by its class size; see docs/analysis.md.
    """
    frame = table.frame
    if table.space is TSS and "iso" in frame.columns and frame["iso"].notna().all():
        return frame["iso"].to_numpy(dtype=np.int64)
    return frame.index.to_numpy(dtype=np.int64)


def distinct(table: Table, columns) -> pd.DataFrame:
    """The numeric columns, one row per unit (the class mean: the value itself when rows are copies),
    indexed by unit key."""
    columns = list(dict.fromkeys(columns))
    frame = table.frame[columns].apply(pd.to_numeric, errors="coerce")
    keys = unit_keys(table)
    if len(np.unique(keys)) == len(keys):
        out = frame.set_axis(keys)
    else:
        out = frame.groupby(keys, sort=True).mean()
    out.index.name = "unit"
    return out


def label(table: Table) -> str:
    """A short display name: the file name for tables loaded from a path."""
    return Path(table.name).name if ("/" in table.name or "\\" in table.name) else table.name


def unit_word(table: Table) -> str:
    return "isomorphism classes" if table.space is TSS else "architectures"


# --------------------------------------------------------------------------------------------
# rank correlations


def _varies(x: np.ndarray) -> bool:
    return len(x) >= MIN_PAIRS and np.nanmax(x) > np.nanmin(x)


def rank_correlations(x, y) -> dict[str, float]:
    """Spearman rho and Kendall tau-b (with p-values) over the pairs where both are finite.

    NaN where fewer than three pairs remain or either side is constant (scipy would warn).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    out = {"n": int(ok.sum()), "spearman": np.nan, "spearman_p": np.nan, "kendall": np.nan, "kendall_p": np.nan}
    if _varies(x) and _varies(y):
        rho = stats.spearmanr(x, y)
        tau = stats.kendalltau(x, y)
        out.update(spearman=float(rho.statistic), spearman_p=float(rho.pvalue),
                   kendall=float(tau.statistic), kendall_p=float(tau.pvalue))
    return out


def rank_matrix(frame: pd.DataFrame, method: str = "kendall") -> pd.DataFrame:
    """Rank-correlation matrix of the columns, over the rows where all are finite: exactly
    symmetric, unit diagonal. Constant columns are dropped first (their correlation is undefined)."""
    if method not in ("kendall", "spearman"):
        raise UserError(f"unknown rank correlation {method!r}; expected kendall or spearman")
    frame = frame.replace([np.inf, -np.inf], np.nan).dropna()
    frame = frame.loc[:, [c for c in frame.columns if _varies(frame[c].to_numpy())]]
    values = frame.to_numpy(dtype=np.float64)
    k = values.shape[1]
    if method == "spearman":
        ranks = np.apply_along_axis(stats.rankdata, 0, values)
        matrix = np.corrcoef(ranks, rowvar=False) if k else np.empty((0, 0))
    else:
        matrix = np.eye(k)
        for i in range(k):
            for j in range(i + 1, k):
                matrix[i, j] = stats.kendalltau(values[:, i], values[:, j]).statistic
    matrix = np.atleast_2d(matrix)
    upper = np.triu(matrix, 1)
    matrix = upper + upper.T + np.eye(k)
    return pd.DataFrame(matrix, index=frame.columns, columns=frame.columns)


def top_units(values: pd.Series, k: int, high: bool) -> pd.Index:
    """The k best units (ties broken by unit key, so the set is deterministic)."""
    ordered = values.dropna()
    ordered = ordered.sort_index(kind="stable").sort_values(ascending=not high, kind="stable")
    return ordered.index[:k]


# --------------------------------------------------------------------------------------------
# figures


def new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def heatmap(figure, ax, matrix: pd.DataFrame, *, vmin=-1.0, vmax=1.0, cmap="RdBu_r", fmt="{:.2f}",
            label: str | None = "", annotate: bool = True, fontsize: float = 7, texts=None) -> None:
    """``matrix`` as an image with its labels; cells annotated with ``fmt`` (or the strings in
    ``texts``, same shape); a colour bar unless ``label`` is None."""
    values = matrix.to_numpy(dtype=np.float64)
    image = ax.imshow(values, vmin=vmin, vmax=vmax, cmap=cmap, aspect="auto")
    ax.set_xticks(range(values.shape[1]), [str(c) for c in matrix.columns], rotation=60, ha="right",
                  fontsize=fontsize)
    ax.set_yticks(range(values.shape[0]), [str(i) for i in matrix.index], fontsize=fontsize)
    if annotate:
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                red, green, blue, _ = image.cmap(image.norm(v))
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
                ax.text(j, i, fmt.format(v) if texts is None else texts[i][j], ha="center", va="center",
                        fontsize=fontsize - 1, color="white" if dark else "black")
    if label is not None:
        figure.colorbar(image, ax=ax, label=label, shrink=0.8)


def fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"
