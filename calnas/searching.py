"""The search driver: objectives + table + searcher -> trials, Pareto front, hypervolume.

``search(...)`` runs one Optuna study with ask/tell. Every architecture the sampler proposes is
looked up in precomputed numpy arrays of the objective columns (no pandas per trial).

The budget counts distinct architectures (``dedupe="arch"``) or isomorphism classes
(``dedupe="iso"``) evaluated. The duplicate rule:

* a proposal already evaluated (or an isomorphic twin of one, with ``dedupe="iso"``) is answered
  from the cache with the values first recorded for it and costs no budget;
* a proposal the table lacks fails (Optuna's FAIL state) and costs no budget;
* after ``MAX_REPEATS`` such proposals in a row, the next trial is a random architecture not
  evaluated yet, drawn from a generator seeded by the search seed, so the loop always ends;
* the search stops at the budget or when every architecture (class) of the table is evaluated.

Same seed, same inputs: the same trials in the same order (samplers are seeded; nothing depends
on time or hash order).
"""

from __future__ import annotations

import json
import random
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from calnas import pareto
from calnas.errors import UserError

MAX_REPEATS = 3
DEDUPE_MODES = ("arch", "iso")
FLOAT_FORMAT = "%.12g"  # fixed, so that the same run writes the same bytes
SEED_RANGE = 2**32  # numpy's RandomState, which Optuna's samplers use, takes seeds below this


@dataclass(frozen=True)
class _Front:
    """The table's own front for one set of objectives/constraints (cached per table)."""

    positions: np.ndarray  # positions (in the prepared arrays) of the front, sorted for display
    hypervolume: float
    lower: np.ndarray  # per-objective minimum over the table (minimisation form)
    upper: np.ndarray
    method: str  # "exact" | "monte-carlo"


@dataclass
class _Prepared:
    """A table's objective and constraint columns as numpy arrays, rows with any NaN dropped."""

    space: object
    archs: list[str]
    indices: np.ndarray
    keys: np.ndarray
    classes: np.ndarray  # isomorphism class per row (TSS); the index where unknown (SSS)
    values: np.ndarray  # (n, k) in the user's directions
    points: np.ndarray  # (n, k) minimisation form
    constraint_violations: np.ndarray | None  # (n, m) amounts, 0 = satisfied
    violation: np.ndarray | None  # (n,) summed
    columns: dict[str, np.ndarray]  # output column name -> values, in output order
    front: _Front


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
        figure = _pareto_figure(self)
        if path is not None:
            figure.savefig(path, dpi=110)
        return figure

    def save(self, out_dir: str | Path, *, plot: bool = True) -> dict[str, Path]:
        """Write front.csv, trials.csv, summary.json (and pareto.png); returns the paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"front": out / "front.csv", "trials": out / "trials.csv", "summary": out / "summary.json"}
        self.front.to_csv(paths["front"], index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
        self.trials.to_csv(paths["trials"], index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
        paths["summary"].write_text(json.dumps(_jsonable(self.summary()), indent=2) + "\n")
        if plot:
            paths["plot"] = out / "pareto.png"
            self.plot(paths["plot"])
        return paths


def search(
    benchmark=None,
    objectives: str | Sequence[str] = "acc,ece",
    budget: int = 500,
    searcher: str = "auto",
    seed: int = 0,
    constraints: str | Sequence[str] | None = None,
    dedupe: str = "arch",
    *,
    data_dir=None,
    progress: Callable[[int, int], None] | None = None,
) -> SearchResult:
    """Search ``benchmark`` (a name, a CSV path, a :class:`~calnas.tables.Table`; None = the
    embedded default) for architectures that are best on ``objectives``.

    ``budget`` distinct architectures are evaluated (see the module docstring for the duplicate
    rule); ``constraints`` such as ``"acc>=0.9"`` rank feasible architectures first.
    """
    import objectives as objectives_module
    import searchers
    from calnas.tables import Table, load_benchmark

    budget = _check_int("budget", budget, minimum=1)
    seed = _check_int("seed", seed, minimum=0, maximum=SEED_RANGE - 1)
    if dedupe not in DEDUPE_MODES:
        raise UserError(f"unknown dedupe mode {dedupe!r}; expected one of {', '.join(DEDUPE_MODES)}")
    searcher_name = searchers.resolve(searcher)
    table = benchmark if isinstance(benchmark, Table) else load_benchmark(benchmark, data_dir_path=data_dir)
    spec = objectives_module.parse(objectives, table, constraints)
    prepared = _prepare(table, spec, dedupe)
    if len(prepared.archs) == 0:
        raise UserError(f"{table.name} has no row with every value the objectives and constraints need")

    run = _run_study(prepared, spec, searcher_name, seed, budget, progress)
    return _result(table, spec, prepared, run, searcher, searcher_name, seed, budget, dedupe)


def _check_int(name: str, value, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        try:
            value = int(str(value))
        except ValueError:
            raise UserError(f"{name} must be an integer, got {value!r}") from None
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise UserError(f"{name} must be at least {minimum}{upper}, got {value}")
    return value


# --------------------------------------------------------------------------------------------
# preparation: numpy arrays, dedupe keys, the table's true front


def _prepare(table, spec, dedupe: str) -> _Prepared:
    frame = table.frame
    values = np.column_stack([o.values(frame) for o in spec.objectives])
    constraint_raw = [c.objective.values(frame) for c in spec.constraints]
    usable = np.all(np.isfinite(values), axis=1)
    for raw in constraint_raw:
        usable &= np.isfinite(raw)
    keep = np.flatnonzero(usable)

    archs = frame["arch"].to_numpy()[keep].tolist()
    indices = frame.index.to_numpy()[keep]
    keys = _dedupe_keys(table, dedupe)[keep]
    classes = _dedupe_keys(table, "iso")[keep] if _has_iso(table) else indices
    values = values[keep]
    points = pareto.as_minimisation(values, spec.directions)
    violations = total = None
    if spec.constraints:
        violations = np.column_stack([c.violation(raw[keep]) for c, raw in zip(spec.constraints, constraint_raw)])
        total = violations.sum(axis=1)

    columns: dict[str, np.ndarray] = {}
    for i, obj in enumerate(spec.objectives):
        columns.setdefault(obj.name, values[:, i])
        if obj.column and obj.column != obj.name:
            columns.setdefault(obj.column, values[:, i])
    for c, raw in zip(spec.constraints, constraint_raw):
        columns.setdefault(c.objective.name, raw[keep])
        if c.objective.column and c.objective.column != c.objective.name:
            columns.setdefault(c.objective.column, raw[keep])

    front = _true_front(table, spec, points, total)
    return _Prepared(table.space, archs, indices, keys, classes, values, points, violations, total, columns, front)


def _has_iso(table) -> bool:
    """Whether the table's space has isomorphism classes (TSS; SSS has none)."""
    return ("iso" in table.frame.columns and table.frame["iso"].notna().all()) or table.space.name == "tss"


def _dedupe_keys(table, dedupe: str) -> np.ndarray:
    frame = table.frame
    if dedupe == "arch":
        return frame.index.to_numpy()
    if "iso" in frame.columns and frame["iso"].notna().all():
        return frame["iso"].to_numpy(dtype=np.int64)
    codes, _ = pd.factorize(pd.Series([table.space.iso_key(a) for a in frame["arch"]]))
    return codes.astype(np.int64)


# id(table) -> (weak reference, {objective/constraint signature: front}). Tables are unhashable
# dataclasses, hence the id; the weak reference drops the entry when the table goes away.
_FRONTS: dict[int, tuple[weakref.ref, dict]] = {}


def _fronts_of(table) -> dict:
    key = id(table)
    entry = _FRONTS.get(key)
    if entry is None or entry[0]() is not table:
        entry = (weakref.ref(table, lambda _ref, key=key: _FRONTS.pop(key, None)), {})
        _FRONTS[key] = entry
    return entry[1]


def _true_front(table, spec, points: np.ndarray, violation: np.ndarray | None) -> _Front:
    signature = (
        tuple((o.column, o.options, o.direction) for o in spec.objectives),
        tuple((c.objective.column, c.objective.options, c.op, c.bound) for c in spec.constraints),
    )
    per_table = _fronts_of(table)
    if signature not in per_table:
        lower, upper = points.min(axis=0), points.max(axis=0)
        mask = pareto.front_mask(points, violation)
        positions = np.flatnonzero(mask)
        positions = positions[_display_order(points[positions])]
        feasible = positions if violation is None else positions[violation[positions] <= 0]
        scaled = pareto.normalise(points[feasible], lower, upper)
        reference = _reference(points.shape[1])
        hv = pareto.hypervolume(scaled, reference)
        per_table[signature] = _Front(positions, hv, lower, upper, pareto.hypervolume_method(scaled, reference))
    return per_table[signature]


def _reference(k: int) -> np.ndarray:
    return np.full(k, pareto.REFERENCE)


def _display_order(points: np.ndarray) -> np.ndarray:
    """Best first on the first objective, then the next ones (stable, so ties keep row order)."""
    return np.lexsort(points.T[::-1])


# --------------------------------------------------------------------------------------------
# the study


@dataclass
class _Run:
    order: list[int]  # positions in evaluation order
    asked: int
    repeats: int
    missing: int
    fallbacks: int
    exhausted: bool
    study: object


def _run_study(prepared: _Prepared, spec, searcher_name: str, seed: int, budget: int, progress) -> _Run:
    import optuna
    from optuna.trial import TrialState

    import searchers
    from searchers._base import constraints_func, store_constraints
    from searchers.domain import Domain

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    domain = Domain(prepared.space, prepared.archs, prepared.indices, prepared.keys, prepared.classes)
    constrained = prepared.violation is not None
    sampler = searchers.make(searcher_name, domain, seed=seed, constraints_func=constraints_func(constrained))
    constraint_names = [c.text for c in spec.constraints]
    study = optuna.create_study(directions=spec.directions, sampler=sampler)

    distributions = domain.distributions
    values = prepared.values.tolist()  # Python floats: what Optuna stores, without per-trial casts
    violations = prepared.constraint_violations.tolist() if constrained else None
    fallback_rng = random.Random(f"calnas-fallback:{seed}")
    first: dict[int, int] = {}  # dedupe key -> position evaluated for it
    order: list[int] = []
    asked = repeats = missing = fallbacks = streak = 0
    n_keys = domain.n_keys
    while len(order) < budget and len(first) < n_keys:
        if streak >= MAX_REPEATS:
            pos = domain.random_unseen(fallback_rng, first.keys())
            study.enqueue_trial(domain.params(pos), user_attrs={"calnas_fallback": True})
            fallbacks += 1
            streak = 0
        trial = study.ask(distributions)
        asked += 1
        pos = domain.position_of_params(trial.params)
        if pos is None:
            missing += 1
            streak += 1
            study.tell(trial, state=TrialState.FAIL)
            continue
        key = int(prepared.keys[pos])
        answer = first.get(key)
        if answer is None:
            first[key] = answer = pos
            order.append(pos)
            streak = 0
            if progress is not None:
                progress(len(order), budget)
        else:
            repeats += 1
            streak += 1
            trial.set_user_attr("calnas_repeat_of", int(prepared.indices[answer]))
        if constrained:
            store_constraints(trial, constraint_names, violations[answer])
        study.tell(trial, values[answer])
    return _Run(order, asked, repeats, missing, fallbacks, len(first) >= n_keys and len(order) < budget, study)


# --------------------------------------------------------------------------------------------
# results


def _result(table, spec, prepared: _Prepared, run: _Run, requested: str, searcher_name: str, seed: int,
            budget: int, dedupe: str) -> SearchResult:
    order = np.asarray(run.order, dtype=np.int64)
    points = prepared.points[order]
    violation = None if prepared.violation is None else prepared.violation[order]
    in_front = np.flatnonzero(pareto.front_mask(points, violation))
    in_front = in_front[_display_order(points[in_front])]
    feasible_front = in_front if violation is None else in_front[violation[in_front] <= 0]
    front = prepared.front
    reference = _reference(points.shape[1])
    scaled = pareto.normalise(points[feasible_front], front.lower, front.upper)
    hv = pareto.hypervolume(scaled, reference)
    methods = {front.method, pareto.hypervolume_method(scaled, reference)}
    ratio = hv / front.hypervolume if front.hypervolume > 0 else None
    found_keys = set(prepared.keys[order].tolist())
    found = sum(1 for p in front.positions if int(prepared.keys[p]) in found_keys)
    true_feasible = front.positions if prepared.violation is None else \
        front.positions[prepared.violation[front.positions] <= 0]
    true_points = {tuple(v) for v in prepared.points[true_feasible].tolist()}
    points_found = len(true_points & {tuple(v) for v in points[feasible_front].tolist()})

    trials = _frame(prepared, order, leading={"trial": np.arange(len(order))})
    front_frame = _frame(prepared, order[in_front], leading={"rank": np.arange(1, len(in_front) + 1)})
    true_frame = _frame(prepared, front.positions, leading={"rank": np.arange(1, len(front.positions) + 1)})

    objectives = [o.describe() for o in spec.objectives]
    info = {
        "benchmark": table.name,
        "space": table.space.name,
        "dataset": table.dataset,
        "covers_space": table.covers_space,
        "searcher": searcher_name,
        "searcher_requested": str(requested).lower(),
        "seed": seed,
        "budget": budget,
        "dedupe": dedupe,
        "objectives": objectives,
        "constraints": [c.describe() for c in spec.constraints],
        "proposals": {"asked": run.asked, "repeats": run.repeats, "not_in_table": run.missing,
                      "random_fallbacks": run.fallbacks},
        "normalisation": {o.name: {"best": _natural(front.lower[i], o), "worst": _natural(front.upper[i], o)}
                          for i, o in enumerate(spec.objectives)},
        "reference_point": reference.tolist(),
        "hypervolume_method": "exact" if methods == {"exact"} else
        f"monte-carlo ({pareto.MC_SAMPLES} samples, seed 0)",
    }
    return SearchResult(trials, front_frame, true_frame, hv, front.hypervolume, ratio, found, len(order),
                        run.exhausted, info, run.study, len(true_points), points_found)


def _natural(value: float, objective) -> float:
    """A minimisation-form bound back in the objective's own direction."""
    return float(-value if objective.maximise else value)


def _frame(prepared: _Prepared, positions: np.ndarray, *, leading: dict) -> pd.DataFrame:
    data = {"arch": [prepared.archs[p] for p in positions], "index": prepared.indices[positions]}
    data.update(leading)
    for name, column in prepared.columns.items():
        data[name] = column[positions]
    if prepared.violation is not None:
        data["feasible"] = prepared.violation[positions] <= 0
    return pd.DataFrame(data)


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------------------------
# plot


def _pareto_figure(result: SearchResult):
    # The object-oriented API with the Agg canvas: no pyplot, no GUI backend, no global state.
    from itertools import combinations

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    objectives = result.info["objectives"]
    names = [o["name"] for o in objectives]
    if len(names) == 1:
        pairs = [(None, 0)]
    else:
        pairs = list(combinations(range(len(names)), 2))[:6]
    cols = min(len(pairs), 3)
    rows = -(-len(pairs) // cols)
    figure = Figure(figsize=(5.2 * cols, 4.4 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    trials, front, true_front = result.trials, result.front, result.true_front
    for n, (x, y) in enumerate(pairs):
        ax = figure.add_subplot(rows, cols, n + 1)
        xs = (lambda f: f["trial"]) if x is None else (lambda f, x=x: f[names[x]])
        if x is None:
            front_x = front.merge(trials[["index", "trial"]], on="index")["trial"]
            true_x = None
        else:
            front_x, true_x = front[names[x]], true_front[names[x]]
        feasible = trials["feasible"] if "feasible" in trials else np.ones(len(trials), dtype=bool)
        ax.scatter(xs(trials)[feasible], trials[names[y]][feasible], s=9, color="0.65", label="trials", zorder=1)
        if not np.all(feasible):
            ax.scatter(xs(trials)[~feasible], trials[names[y]][~feasible], s=9, color="0.85", marker="x",
                       label="infeasible trials", zorder=1)
        if true_x is not None:
            ax.scatter(true_x, true_front[names[y]], s=42, facecolors="none", edgecolors="black",
                       linewidths=0.9, label="true front", zorder=2)
        ax.scatter(front_x, front[names[y]], s=16, color="tab:orange", label="found front", zorder=3)
        ax.set_xlabel("evaluation" if x is None else _axis_label(objectives[x]))
        ax.set_ylabel(_axis_label(objectives[y]))
        ax.grid(alpha=0.3)
        if n == 0:
            ax.legend(fontsize=8, loc="best")
    ratio = result.hypervolume_ratio
    ratio_text = f", hypervolume ratio {ratio:.3f}" if ratio is not None else ""
    figure.suptitle(f"{result.info['searcher']} on {result.info['benchmark']}: "
                    f"{result.evaluations} evaluations{ratio_text}", fontsize=10)
    return figure


def _axis_label(objective: dict) -> str:
    arrow = "higher is better" if objective["direction"] == "maximize" else "lower is better"
    name = objective["name"]
    if objective.get("column") and objective["column"] != name:
        name = f"{name} ({objective['column']})"
    return f"{name}, {arrow}"
