"""A search's result, rebuilt from its study alone: the trials and front frames, the
hypervolumes, the summary. ``calnas show`` and a resumed search report exactly what an
uninterrupted one would, since each reads only what the study holds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from calnas import pareto, record as rec
from calnas.constraints import total_violation
from calnas.errors import UserError
from calnas.evaluators import objective_values, reference_point
from calnas.result import SearchResult
from calnas.simulation import simulation_columns
from calnas.study import missing_mark, stored_description


def load_result(study, record=None) -> SearchResult:
    """Everything a search reports, rebuilt from the study's trials and attributes (``record``:
    this process's record of the study, when a search just ran; read afresh otherwise)."""
    from calnas import objectives as objectives_module
    from calnas.searchers.domain import Domain
    from calnas.spaces import get_space

    attrs = study.user_attrs  # a deep copy on every access: the true front can be thousands of members
    stored = stored_description(study)
    if stored is None:
        raise UserError(f"study {study.study_name!r} was not made by calnas")
    run = attrs.get(rec.RUN_ATTR, {})
    spec = objectives_module.spec_from_description(stored["objectives"], stored["constraints"])
    space = get_space(stored["space"])
    if record is None:
        record = rec.StudyRecord(study, Domain.whole_space(space, stored["dedupe"]))
        record.values_of = lambda metrics: objective_values(spec, metrics)[0]
    record.update()
    entries = record.ordered()
    front_info = stored.get("front")
    k = len(spec.objectives)
    ok = [e for e in entries if e.values is not None]
    values = np.asarray([e.values for e in ok], dtype=float).reshape(-1, k)
    points = pareto.as_minimisation(values, spec.directions)
    violation = np.asarray([total_violation(e.constraints) for e in ok], dtype=float) if spec.constraints else None
    in_front, feasible_front = pareto.front_positions(points, violation)
    reference = reference_point(k)

    own = stored.get("reference") if front_info is None else None
    if front_info is not None:
        lower, upper = np.asarray(front_info["lower"]), np.asarray(front_info["upper"])
    elif own is not None:
        # No true front to scale by (a live search): the hypervolume in the objectives' own units,
        # bounded by the evaluator's fixed reference point, so it grows with every improvement and
        # compares across runs (docs/search.md). Scaling by 0..1 leaves the points as they are.
        lower, upper, reference = np.zeros(k), np.ones(k), np.asarray(own, dtype=float)
    else:
        lower = points.min(axis=0) if len(ok) else np.zeros(k)
        upper = points.max(axis=0) if len(ok) else np.ones(k)
    scaled = pareto.normalise(points[feasible_front], lower, upper)
    hv = pareto.hypervolume(scaled, reference)

    trials = _frame(spec, entries, leading={"trial": np.arange(len(entries))}, space=space)
    trials["hypervolume"] = _anytime(spec, entries, lower, upper, reference)
    simulated = simulation_columns(study, entries, spec, lower, upper, reference)
    if simulated is not None:
        for name, column in simulated[0].items():
            trials[name] = column
    front = _frame(spec, [ok[i] for i in in_front], leading={"rank": np.arange(1, len(in_front) + 1)}, space=space)
    true_hv, ratio, found, true_points, points_found = float("nan"), None, 0, 0, 0
    if front_info is not None:
        members = front_info["members"]
        true_frame = _frame(spec, [_member_entry(m, spec) for m in members],
                            leading={"rank": np.arange(1, len(members) + 1)})
        true_hv = front_info["hypervolume"]
        ratio = hv / true_hv if true_hv > 0 else None
        if ratio is not None:
            ratio = _checked_ratio(ratio, study.study_name)
        found_keys = {e.key for e in entries}
        found = sum(1 for m in members if m["key"] in found_keys)
        true_points = front_info["points"]
        true_set = {tuple(_member_point(m, spec)) for m in members if _member_feasible(m, spec)}
        points_found = len(true_set & {tuple(p) for p in points[feasible_front].tolist()})
    else:
        true_frame = front.iloc[0:0].copy()

    budget = int(run.get("budget", len(entries)))
    exhausted = bool(attrs.get(rec.EXHAUSTED_ATTR)) and len(entries) < budget
    counts = record.counts
    proposals = {"asked": counts.asked, "repeats": counts.repeats, "not_in_table": counts.not_in_table,
                 "random_fallbacks": counts.fallbacks}
    if counts.taken or counts.over_budget or counts.interrupted:
        proposals.update(taken=counts.taken, over_budget=counts.over_budget, interrupted=counts.interrupted)
    info = {
        "benchmark": stored["benchmark"],
        "space": stored["space"],
        "dataset": stored["dataset"],
        "covers_space": bool(front_info and front_info.get("covers_space")),
        "searcher": run.get("searcher"),
        "searcher_requested": run.get("searcher_requested"),
        "seed": run.get("seed"),
        "budget": budget,
        "dedupe": stored["dedupe"],
        "objectives": stored["objectives"],
        "constraints": stored["constraints"],
        "proposals": proposals,
        "normalisation": {o.name: {"best": _natural(lower[i], o), "worst": _natural(upper[i], o)}
                          for i, o in enumerate(spec.objectives)},
        "reference_point": reference.tolist(),
        "hypervolume_method": "exact",
        "evaluator": stored["evaluator"],
    }
    if counts.foreign:
        info["foreign_trials"] = counts.foreign
    runs = rec.runs_of(attrs)
    if runs:
        info["runs"] = runs
    if len(runs) > 1:
        last = runs[-1]
        info["resumed"] = {"runs": len(runs), "held": last.get("held"),
                           "changed": [k for k in ("searcher", "seed")
                                       if any(r.get(k) != last.get(k) for r in runs[:-1])]}
    failures = sum(1 for e in entries if e.failure is not None)
    if failures:
        info["failed_evaluations"] = failures
    if missing_mark(stored) == rec.INFEASIBLE:  # proposals outside the candidates are answered untrained
        proposals["infeasible_untrained"] = counts.infeasible
    if own is not None:
        info["normalisation"] = None
        info["reference_point"] = {o.name: _natural(reference[i], o) for i, o in enumerate(spec.objectives)}
    timed = [e for e in entries if e.seconds is not None]
    if timed or any(e.cached for e in entries):
        seconds = float(sum(e.seconds for e in timed))
        info["evaluation_time"] = {"trained": len(timed), "cached": sum(1 for e in entries if e.cached),
                                   "seconds": seconds, "seconds_per_training": seconds / len(timed) if timed else None}
    if simulated is not None:
        info["epochs_trained"] = simulated[1]["epochs_trained"]
        info["simulation"] = simulated[1]
    info.update(stored.get("notes") or {})
    return SearchResult(trials, front, true_frame, hv, true_hv, ratio, found, len(entries), exhausted, info, study,
                        true_points, points_found, _curves(study, entries) if simulated is not None else None)


def _curves(study, entries) -> pd.DataFrame | None:
    """The learning curves live early-stopping trainings recorded with their trials (see
    SearchResult.curves), or None when no trial holds one (a simulated search: the table has them)."""
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    rows = []
    for position, entry in enumerate(entries):
        trial = by_number.get(entry.number)
        curve = trial.user_attrs.get(rec.CURVE) if trial is not None else None
        if not isinstance(curve, list):
            continue
        for point in curve:
            if isinstance(point, dict):
                rows.append({"trial": position, "index": entry.index, "arch": entry.arch,
                             "stopped": trial.user_attrs.get(rec.STOPPED), **point})
    return pd.DataFrame(rows) if rows else None


# Hypervolumes of the same points summed in another order differ in the last bits.
RATIO_SLACK = 1e-9


def _checked_ratio(ratio: float, name: str) -> float:
    """The found front's share of the true front's hypervolume, which cannot exceed 1: the found
    points are among the candidates the true front was computed from. Above 1, the study holds
    values or a true front calnas did not compute, and nothing it reports could be trusted."""
    if ratio > 1 + RATIO_SLACK:
        raise UserError(f"study {name!r}: its front's hypervolume is {ratio:.4f} of the stored true front's, "
                        "above 1, which no search reaches; its trials or its true front were not written by "
                        "calnas (or were edited): search again into a new study")
    return min(ratio, 1.0)


def _anytime(spec, entries: list, lower, upper, reference) -> np.ndarray:
    """The found front's hypervolume after each evaluation, scaled like the summary's."""
    k = len(spec.objectives)
    values = np.asarray([e.values if e.values is not None else [np.nan] * k for e in entries], dtype=float)
    points = pareto.normalise(pareto.as_minimisation(values.reshape(-1, k), spec.directions), lower, upper)
    violation = (np.asarray([total_violation(e.constraints) for e in entries], dtype=float)
                 if spec.constraints else None)
    return pareto.anytime_hypervolume(points, violation, reference)


def _member_entry(member: dict, spec) -> rec.Entry:
    values, raw = objective_values(spec, member["metrics"])
    violations = tuple(float(c.violation(np.asarray([r]))[0]) for c, r in zip(spec.constraints, raw))
    return rec.Entry(-1, -1, member["key"], tuple(values), member["metrics"], violations,
                     arch=member["arch"], index=member["index"])


def _member_point(member: dict, spec) -> list[float]:
    values, _ = objective_values(spec, member["metrics"])
    return pareto.as_minimisation(np.asarray([values]), spec.directions)[0].tolist()


def _member_feasible(member: dict, spec) -> bool:
    _, raw = objective_values(spec, member["metrics"])
    return all(bool(c.satisfied(np.asarray([r]))[0]) for c, r in zip(spec.constraints, raw))


def _natural(value: float, objective) -> float:
    """A minimisation-form bound back in the objective's own direction."""
    return float(-value if objective.maximise else value)


def output_columns(spec) -> list[tuple[str, str, object]]:
    """(column name, source, what) for the result frames: an objective's value (``value``, i),
    or a metric column (``metric``, column), or a computed constraint value (``constraint``, j)."""
    out: dict[str, tuple[str, str, object]] = {}
    for i, obj in enumerate(spec.objectives):
        out.setdefault(obj.name, (obj.name, "value", i))
        if obj.column and obj.column != obj.name:
            out.setdefault(obj.column, (obj.column, "metric", obj.column))
    for j, con in enumerate(spec.constraints):
        out.setdefault(con.objective.name, (con.objective.name, "constraint", j))
        if con.objective.column and con.objective.column != con.objective.name:
            out.setdefault(con.objective.column, (con.objective.column, "metric", con.objective.column))
    return list(out.values())


def _frame(spec, entries: list, *, leading: dict, space=None) -> pd.DataFrame:
    data = {"arch": [e.arch for e in entries], "index": np.asarray([e.index for e in entries], dtype=np.int64)}
    if hasattr(space, "recipes"):
        # A joint architecture x recipe search: the architecture (string and index of its own
        # space, as every other table and command spells it) and the recipe it was trained with.
        pairs = [space.split(i) for i in data["index"]]
        data = {"arch": [space.base.arch(i) for i, _ in pairs],
                "index": np.asarray([i for i, _ in pairs], dtype=np.int64), "recipe": [r for _, r in pairs]}
    data.update(leading)
    nan = float("nan")
    raw_cache: dict[int, list[float]] = {}

    def raw(e, j):
        if id(e) not in raw_cache:
            raw_cache[id(e)] = objective_values(spec, e.metrics)[1] if e.values is not None else [nan] * len(spec.constraints)
        return raw_cache[id(e)][j]

    for name, source, what in output_columns(spec):
        if source == "value":
            column = [e.values[what] if e.values is not None else nan for e in entries]
        elif source == "metric":
            column = [float(e.metrics.get(what, nan)) for e in entries]
        else:
            column = [raw(e, what) for e in entries]
        data[name] = np.asarray(column, dtype=float)
    for obj in spec.objectives:  # text beside a value: best_post_ece's chosen calibrator
        data.update(obj.annotations(e.metrics for e in entries))
    if spec.constraints:
        data["feasible"] = np.asarray([e.values is not None and total_violation(e.constraints) <= 0
                                       for e in entries], dtype=bool)
    if any(e.failure is not None for e in entries):
        data["failure"] = [e.failure or "" for e in entries]
    return pd.DataFrame(data)

