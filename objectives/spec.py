"""The objective and constraint language, parsed once against a table.

Objectives: ``--objective acc,ece`` -- comma-separated tokens, case-insensitive, each
``[max:|min:]NAME[:key=value...]``:

* ``NAME`` is a table column (any numeric one) or a schema name or alias (``ece``, ``post_nll``,
  ``ece_em_50``, ``auroc``, ``params`` ... see :mod:`objectives.catalog`);
* ``hcs`` is computed (``hcs:beta=2``, ``hcs:ece=post_ece_15``), and so is ``best_post_ece``
  (each architecture's test ECE_15 after the calibrator its validation split prefers,
  :mod:`objectives.best_post`);
* ``max:`` / ``min:`` overrides the direction calnas knows for the name.

Constraints: ``--constraint "acc>=0.9"`` -- ``NAME OP VALUE`` with OP one of ``>=``, ``<=``,
``>``, ``<`` and NAME anything an objective token may be; several may be joined by commas.

Errors a user can make raise :class:`~calnas.errors.UserError` with one line that names the
token and what was expected (closest valid names for an unknown one; which table has a column
the chosen table lacks).
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from calnas.errors import UserError
from calnas.objectives import best_post, catalog, hcs as hcs_module

_DIRECTION_WORDS = {"max": catalog.MAXIMISE, "maximize": catalog.MAXIMISE, "maximise": catalog.MAXIMISE,
                    "min": catalog.MINIMISE, "minimize": catalog.MINIMISE, "minimise": catalog.MINIMISE}
_OPERATORS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_CONSTRAINT_RE = re.compile(r"^(?P<name>.+?)\s*(?P<op>>=|<=|>|<)\s*(?P<value>[^<>]+)$")
# Names that hold fractions in [0, 1]; a bound outside that range is almost surely a percentage.
_FRACTIONS = {"acc", "hcs"}


@dataclass(frozen=True)
class Objective:
    """One objective: what to read from the table, how to compute it, which way is better."""

    name: str  # the token as written (lower-case, without max:/min:): the output column name
    direction: str  # "maximize" | "minimize"
    column: str | None  # the table column when the objective is one; None when computed
    inputs: tuple[str, ...]  # table columns it needs
    options: tuple[tuple[str, object], ...] = ()

    @property
    def maximise(self) -> bool:
        return self.direction == catalog.MAXIMISE

    @property
    def label(self) -> str:
        """Name plus the column it resolved to, when they differ (``ece (pre_ECE_15)``)."""
        if self.column and self.column != self.name:
            return f"{self.name} ({self.column})"
        return self.name

    def values(self, frame) -> np.ndarray:
        """One float per row of ``frame`` (a pandas frame, or a mapping of arrays, holding ``inputs``)."""
        if self.column is not None:
            return np.asarray(frame[self.column], dtype=float)
        if self.name == best_post.NAME:
            return best_post.values(frame)
        opts = dict(self.options)
        return hcs_module.hcs(np.asarray(frame["acc"], dtype=float), np.asarray(frame[opts["ece"]], dtype=float),
                              beta=float(opts["beta"]))

    def value_of(self, metrics) -> float:
        """The value for one evaluated architecture's metrics (a mapping of column -> float)."""
        if self.column is not None:
            return float(metrics[self.column])
        return float(self.values({k: np.asarray([metrics[k]], dtype=float) for k in self.inputs})[0])

    def annotations(self, metrics_rows) -> dict[str, list[str]]:
        """Text columns the result frames show next to the objective's values, one entry per
        metrics row: ``best_post_ece``'s chosen calibrator; nothing for the other objectives."""
        if self.column is not None or self.name != best_post.NAME:
            return {}
        rows = list(metrics_rows)
        frame = {c: np.asarray([float(m.get(c, math.nan)) for m in rows], dtype=float) for c in self.inputs}
        return {best_post.ANNOTATION: best_post.chosen_names(frame)}

    def describe(self) -> dict:
        out = {"name": self.name, "direction": self.direction, "column": self.column}
        if self.options:
            out["options"] = dict(self.options)
        return out


@dataclass(frozen=True)
class Constraint:
    """``objective OP bound``; violation is how far a value misses it (0 when satisfied)."""

    text: str
    objective: Objective
    op: str
    bound: float

    def satisfied(self, values) -> np.ndarray:
        return _OPERATORS[self.op](np.asarray(values, dtype=float), self.bound)

    def violation(self, values) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        gap = np.abs(values - self.bound)
        # A strict bound met with equality is violated by "nothing"; count it as a hair so it
        # still ranks behind feasible points.
        return np.where(self.satisfied(values), 0.0, np.maximum(gap, 1e-12))

    def describe(self) -> dict:
        out = {"constraint": self.text, "name": self.objective.name, "column": self.objective.column,
               "op": self.op, "bound": self.bound}
        if self.objective.options:
            out["options"] = dict(self.objective.options)
        return out


@dataclass
class Spec:
    """Objectives and constraints resolved against one table."""

    objectives: list[Objective]
    constraints: list[Constraint] = field(default_factory=list)

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.objectives]


def spec_from_description(objectives: Sequence[dict], constraints: Sequence[dict] = ()) -> Spec:
    """The inverse of ``describe()``: a spec as a stored study recorded it, without a table."""
    resolved = [_objective_from_description(d) for d in objectives]
    by_name = {o.name: o for o in resolved}
    cons = []
    for d in constraints:
        objective = by_name.get(d["name"]) or _objective_from_description(
            {"name": d["name"], "direction": catalog.MINIMISE, "column": d["column"], "options": d.get("options")})
        cons.append(Constraint(d["constraint"], objective, d["op"], float(d["bound"])))
    return Spec(resolved, cons)


def _objective_from_description(d: dict) -> Objective:
    options = tuple(sorted((d.get("options") or {}).items()))
    if d["column"] is not None:
        return Objective(d["name"], d["direction"], d["column"], (d["column"],), options)
    if d["name"] == best_post.NAME:
        return Objective(d["name"], d["direction"], None, best_post.INPUTS)
    opts = dict(options)
    return Objective(d["name"], d["direction"], None, ("acc", opts["ece"]), options)


def split_tokens(spec: str | Iterable[str] | None) -> list[str]:
    """Comma-separated tokens from a string or several strings (a repeated CLI option)."""
    if spec is None:
        return []
    parts = [spec] if isinstance(spec, str) else list(spec)
    tokens = []
    for part in parts:
        if not isinstance(part, str):
            raise UserError(f"objectives must be strings like 'acc,ece', got {part!r}")
        tokens += [t.strip() for t in part.split(",")]
    return [t for t in tokens if t]


def parse(objectives, table, constraints=None) -> Spec:
    """Resolve an objective spec (and constraints) against ``table``."""
    tokens = split_tokens(objectives)
    if not tokens:
        raise UserError("no objective given; expected names like 'acc,ece'")
    resolved = [resolve_token(t, table) for t in tokens]
    _reject_twins(resolved)
    return Spec(resolved, parse_constraints(constraints, table, resolved))


def _reject_twins(objectives: Sequence[Objective]) -> None:
    meanings: dict[tuple, str] = {}
    for obj in objectives:
        key = (obj.column,) if obj.column else (obj.name.split(":")[0], obj.options)
        if key not in meanings:
            meanings[key] = obj.name
        elif meanings[key] == obj.name:
            raise UserError(f"objective {obj.name} is given twice; each objective must be different")
        else:
            raise UserError(f"objectives {meanings[key]} and {obj.name} both mean {obj.column or obj.name}; "
                            "each objective must be different")


def resolve_token(token: str, table, *, role: str = "objective") -> Objective:
    text = token.strip().lower()
    parts = [p.strip() for p in text.split(":")]
    direction = None
    if parts and parts[0] in _DIRECTION_WORDS:
        direction = _DIRECTION_WORDS[parts.pop(0)]
    if not parts or not parts[0]:
        raise UserError(f"{role} {token!r} has no name; expected e.g. 'acc', 'max:hcs' or 'min:ece'")
    name, option_parts = parts[0], parts[1:]
    display = ":".join(parts)
    if name == hcs_module.NAME:
        return _resolve_hcs(display, option_parts, direction, table, role)
    if name == best_post.NAME:
        return _resolve_best_post(display, option_parts, direction, table, role)
    if option_parts:
        raise UserError(f"{role} {token!r}: only hcs takes options (hcs:beta=2); "
                        f"write {name} without ':{':'.join(option_parts)}'")
    column = _resolve_column(name, table, role)
    chosen = direction or catalog.direction(column)
    if chosen is None and role == "constraint":
        chosen = catalog.MINIMISE  # a bound needs no direction; this one is never optimised
    if chosen is None:
        raise UserError(f"calnas does not know whether {column} is better high or low; "
                        f"write max:{name} or min:{name}")
    return Objective(display, chosen, column, (column,))


def _resolve_hcs(display, option_parts, direction, table, role) -> Objective:
    options = dict(hcs_module.DEFAULTS)
    for part in option_parts:
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in options:
            raise UserError(f"hcs option {part!r} is not one of beta=NUMBER, ece=COLUMN (e.g. hcs:beta=2)")
        if key == "beta":
            try:
                beta = float(value)
            except ValueError:
                raise UserError(f"hcs option beta={value!r} is not a number; expected e.g. hcs:beta=2") from None
            if not (beta > 0 and math.isfinite(beta)):
                raise UserError(f"hcs option beta={value} must be a positive number")
            options["beta"] = beta
        else:
            ece = catalog.canonical_column(value) or value
            if not catalog.unit_calibration_error(ece):
                raise UserError(f"hcs option ece={value!r} is not a calibration error in [0, 1] (ECE, MCE, "
                                "classwise CE, KSCE, KDECE or MMCE, e.g. post_ece_15); NLL and Brier are on other scales")
            options["ece"] = ece
    for needed in ("acc", options["ece"]):
        column = _table_column(needed, table)
        if column is None:
            fam = catalog.family(needed) or "calibration"
            raise UserError(f"{display} needs {needed}, which is not in {table.name}; {catalog.WHERE[fam]}")
        if needed != "acc":
            options["ece"] = column
            values = np.asarray(table.frame[column], dtype=float)
            outside = values[(values < 0.0) | (values > 1.0)]  # NaN (missing) compares False
            if outside.size:
                raise UserError(f"{display} needs {column} in [0, 1] (HCS lies in [0, 1]), but {table.name} "
                                f"holds {outside[0]:g}")
    return Objective(display, direction or catalog.MAXIMISE, None, ("acc", options["ece"]),
                     tuple(sorted(options.items())))


def _resolve_best_post(display, option_parts, direction, table, role) -> Objective:
    if option_parts:
        raise UserError(f"{role} {display!r}: best_post_ece takes no options; write best_post_ece")
    missing = [c for c in best_post.INPUTS if _table_column(c, table) is None]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise UserError(f"{display} needs {', '.join(missing)}, which {verb} not in {table.name}; "
                        f"{catalog.WHERE['calibrators']}")
    return Objective(display, direction or catalog.MINIMISE, None, best_post.INPUTS)


def _table_column(name: str, table) -> str | None:
    """The table's column for a name or alias, matched case-insensitively."""
    columns = {c.lower(): c for c in table.frame.columns}
    if name.lower() in columns:
        return columns[name.lower()]
    canonical = catalog.canonical_column(name)
    if canonical is not None and canonical.lower() in columns:
        return columns[canonical.lower()]
    return None


def _resolve_column(name: str, table, role: str) -> str:
    column = _table_column(name, table)
    if column is not None:
        if column in ("arch", "iso", "evaluated_index") or not _is_numeric(table.frame[column]):
            raise UserError(f"{role} {name!r}: column {column} of {table.name} is not a metric; "
                            f"expected a numeric column such as acc")
        return column
    canonical = catalog.canonical_column(name)
    fam = catalog.family(canonical or name)
    if canonical is not None or fam is not None:
        missing = canonical or name
        raise UserError(f"{missing} is not in {table.name}; {catalog.WHERE[fam or 'calibration']}")
    raise UserError(_unknown_message(name, table, role))


def _is_numeric(series) -> bool:
    return series.dtype.kind in "fiub"


def _unknown_message(name: str, table, role: str) -> str:
    table_columns = [c for c in table.frame.columns
                     if c not in ("arch", "iso", "evaluated_index") and _is_numeric(table.frame[c])]
    vocabulary = list(dict.fromkeys(table_columns + catalog.short_names() + catalog.schema_columns()))
    by_lower = {v.lower(): v for v in reversed(vocabulary)}
    close = difflib.get_close_matches(name, list(by_lower), n=4, cutoff=0.6)
    if close:
        return f"unknown {role} {name!r}; closest valid names: {', '.join(by_lower[c] for c in close)}"
    # A calibration table has a hundred and more columns: name a few, not all (one short line).
    shown = ", ".join(table_columns[:5]) + (", ..." if len(table_columns) > 5 else "")
    return (f"unknown {role} {name!r}; expected a schema name such as ece, nll, brier, auroc, or hcs, or one of "
            f"the {len(table_columns)} numeric columns of {table.name} ({shown}; see docs/search.md)")


def parse_constraints(constraints, table, objectives: Sequence[Objective] = ()) -> list[Constraint]:
    """``["acc>=0.9", "params<=1"]`` (or one comma-joined string) -> constraints."""
    out = []
    for text in split_tokens(constraints):
        out.append(parse_constraint(text, table, objectives))
    return out


def parse_constraint(text: str, table, objectives: Sequence[Objective] = ()) -> Constraint:
    expected = "expected NAME OP VALUE with OP one of >=, <=, >, < (e.g. acc>=0.9)"
    match = _CONSTRAINT_RE.match(text.strip())
    # `acc=>0.9`, `acc=0.9`, `acc<>0.9`: a stray '=' or a second comparison sign means a typo.
    if not match or match.group("name").rstrip().endswith("=") or any(c in match.group("name") for c in "<>!"):
        raise UserError(f"bad constraint {text!r}: {expected}")
    name, op, raw = match.group("name").strip(), match.group("op"), match.group("value").strip()
    try:
        bound = float(raw)
    except ValueError:
        raise UserError(f"bad constraint {text!r}: {raw!r} is not a number; {expected}") from None
    if not math.isfinite(bound):
        raise UserError(f"bad constraint {text!r}: the bound must be a finite number")
    objective = next((o for o in objectives if o.name == name.lower()), None)
    if objective is None:
        objective = resolve_token(name, table, role="constraint")
    base = objective.name.split(":")[0]
    if base in _FRACTIONS and not 0.0 <= bound <= 1.0:
        # Only a bound that reads as a percentage (90 for 0.9) gets a suggestion.
        hint = f" (did you mean {bound / 100:g}?)" if 1.0 < bound <= 100.0 else ""
        raise UserError(f"bad constraint {text!r}: {base} is a fraction in [0, 1]{hint}")
    return Constraint(text.strip(), objective, op, bound)
