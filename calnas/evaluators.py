"""The seam between a search and where its numbers come from.

An :class:`Evaluator` tells the search engine

* the *candidates*: the architectures it can evaluate (a table's rows, or the whole space for
  live training), the dedupe key and isomorphism class of each, and cheap columns known before
  evaluation (params, FLOPs);
* ``evaluate(positions)``: one :class:`Evaluation` per candidate position, with every metric
  column it produced, or a failure and its reason;
* ``known_front()``: the true Pareto front when it is known (a table that holds every candidate),
  None otherwise.

Searchers never see an evaluator: they see the space (through a
:class:`~calnas.searchers.domain.Domain` built from the candidates) and the study.
"""

from __future__ import annotations

import functools
import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from calnas import pareto, record as rec
from calnas.checks import DEDUPE_MODES, check_dedupe
from calnas.columns import COST_COLUMNS
from calnas.errors import UserError
from calnas.pareto import display_order

__all__ = ["DEDUPE_MODES", "COST_COLUMNS", "Candidates", "Evaluation", "KnownFront", "Evaluator", "TableEvaluator",
           "objective_values", "display_order", "reference_point", "known_front"]


@dataclass
class Candidates:
    """What a search may propose, addressed by position."""

    space: object
    archs: list[str]
    indices: np.ndarray
    keys: np.ndarray  # dedupe key: the index (--dedupe arch) or the isomorphism class (iso)
    classes: np.ndarray  # isomorphism class (TSS); the index where there is none (SSS)
    cheap: dict[str, np.ndarray] = field(default_factory=dict)  # known before evaluation

    def __len__(self) -> int:
        return len(self.archs)


@dataclass(frozen=True)
class Evaluation:
    """One architecture's numbers, or why there are none."""

    metrics: dict[str, float]
    failure: str | None = None
    seconds: float | None = None  # time this evaluation took (live training); None for a lookup
    cached: bool = False  # answered from a stored result (a table of the same protocol), not computed
    # Further user attributes stored with the trial (a live evaluation's reliability-diagram data).
    attrs: dict = field(default_factory=dict)
    # Early stopping: the epoch an early-stopping monitor stopped the training at (no metrics then).
    stopped_at: int | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True)
class KnownFront:
    """The true front for one set of objectives/constraints, in candidate positions."""

    positions: np.ndarray  # sorted for display
    hypervolume: float
    lower: np.ndarray  # per-objective best over the candidates (minimisation form)
    upper: np.ndarray  # per-objective worst
    method: str  # "exact" | "monte-carlo"
    feasible: np.ndarray  # the feasible members of positions
    points: np.ndarray  # minimisation-form objective vectors of every candidate


class Evaluator:
    """Interface; see the module docstring."""

    kind = "abstract"
    name: str = ""
    dataset: str | None = None
    covers_space: bool = False
    # What a study's budget counts: distinct architectures ("arch") or isomorphism classes ("iso").
    dedupe: str = "arch"
    # Seconds between heartbeats of a running evaluation, and the silence after which another
    # worker takes it for dead: a table lookup takes microseconds, a live training minutes.
    heartbeat_interval: float = 1.0
    stale_after: float = 4.0
    # Whether a running evaluation needs a heartbeat thread at all: a table lookup is over long
    # before stale_after, and its trial's start time is sign of life enough.
    needs_heartbeat: bool = True
    # How a proposal outside the candidates is marked (it costs no budget; see calnas.record).
    missing_mark: str = rec.NOT_IN_TABLE
    # What produced the numbers, beyond the benchmark's name (a live training protocol); part of
    # a study's identity, so a study never continues under another protocol.
    protocol: dict | None = None

    def candidates(self) -> Candidates:
        raise NotImplementedError

    def evaluate(self, positions: Sequence[int], monitor=None) -> list[Evaluation]:
        """``monitor``: an early-stopping search's :class:`calnas.fidelity.RungMonitor`, which an
        evaluator that trains consults at its rungs; a lookup has no epochs and ignores it."""
        raise NotImplementedError

    # The full fidelity of an evaluator that trains (its protocol's epochs); None for a lookup.
    max_epochs: int | None = None

    def known_front(self) -> KnownFront | None:
        return None

    def front_metrics(self, positions: Sequence[int]) -> list[dict]:
        """Metrics of ``known_front()`` members, stored with the study (a live evaluator reads
        them from its reference table instead of training them)."""
        return [e.metrics for e in self.evaluate(positions)]

    def own_reference(self, spec) -> list[float] | None:
        """Without a known front: the hypervolume reference point in the objectives' own units
        (minimisation form); None to scale by the points found."""
        return None

    def notes(self) -> dict:
        """Facts about this evaluator that the summary reports (stored with the study)."""
        return {}

    def attach(self, study) -> None:
        """Called once in the searching process with the opened study, before any worker starts."""

    def check_outputs(self, study) -> None:
        """Refuse (UserError) a file :meth:`attach` would write and cannot, before the storage
        is written at all: ``study`` is the existing study (read, not written), None for one
        about to be created (its storage may not exist yet). A refused run creates nothing."""

    def recorded_protocol(self, stored):
        """A protocol a study stored (``protocol`` of an earlier run's evaluator of this kind) as
        this version records it, so a study made before a protocol setting existed continues
        under its default; the engine compares it with :attr:`protocol`."""
        return stored

    def worker_factory(self) -> Callable[..., "Evaluator"]:
        """A picklable callable ``factory(stream=N)`` that rebuilds this evaluator in a spawned
        worker process."""
        raise NotImplementedError


def objective_values(spec, metrics: Mapping[str, float]) -> tuple[list[float], list[float]]:
    """(objective values in the user's directions, raw constraint values) of one metrics row."""
    return [o.value_of(metrics) for o in spec.objectives], [c.objective.value_of(metrics) for c in spec.constraints]


def reference_point(k: int) -> np.ndarray:
    return np.full(k, pareto.REFERENCE)


# --------------------------------------------------------------------------------------------
# tables


class TableEvaluator(Evaluator):
    """Look architectures up in a table, vectorised: the candidates are the rows that hold every
    value the objectives and constraints need."""

    kind = "table"
    needs_heartbeat = False

    def __init__(self, table, spec, dedupe: str = "arch", *, source=None, data_dir=None):
        """``source`` (a benchmark name or path) and ``data_dir``: how a worker process loads the
        same table (cheaper to send than the table itself); None sends the table."""
        self.table, self.spec, self.dedupe = table, spec, check_dedupe(dedupe)
        self._source, self._data_dir = source, data_dir
        self.name, self.dataset, self.space = table.name, table.dataset, table.space
        self.covers_space = table.covers_space
        frame = table.frame
        values = np.column_stack([o.values(frame) for o in spec.objectives])
        raw = [c.objective.values(frame) for c in spec.constraints]
        usable = np.all(np.isfinite(values), axis=1)
        for column in raw:
            usable &= np.isfinite(column)
        keep = np.flatnonzero(usable)
        if keep.size == 0:
            raise UserError(f"{table.name} has no row with every value the objectives and constraints need")
        self._keep = keep
        self.values = values[keep]
        self.points = pareto.as_minimisation(self.values, spec.directions)
        self.violation = None
        if spec.constraints:
            self.violation = np.column_stack([c.violation(r[keep]) for c, r in zip(spec.constraints, raw)]).sum(axis=1)
        needed = list(dict.fromkeys([c for o in spec.objectives for c in o.inputs]
                                    + [c for k in spec.constraints for c in k.objective.inputs]
                                    + [c for c in COST_COLUMNS if c in frame.columns]))
        # Python lists: a row's dict is built per evaluation without numpy scalars.
        self._metric_lists = {c: frame[c].to_numpy(dtype=float)[keep].tolist() for c in needed}
        self._candidates: Candidates | None = None

    def candidates(self) -> Candidates:
        if self._candidates is None:
            table, keep = self.table, self._keep
            frame = table.frame
            iso = _iso_classes(table)
            costs = [c for c in COST_COLUMNS if c in self._metric_lists and self._uses(c)]
            if costs:
                # Twins compute the same function but may cost differently: when a cost is an
                # objective or constraint, a twin with other costs is another candidate, or one
                # expensive (or infeasible) twin would lock its cheap twins out of the front.
                import pandas as pd

                iso = pd.MultiIndex.from_arrays([iso, *(frame[c].to_numpy() for c in costs)]).factorize()[0]
                iso = iso.astype(np.int64)
            keys = frame.index.to_numpy() if self.dedupe == "arch" else iso
            cheap = {c: frame[c].to_numpy(dtype=float)[keep] for c in COST_COLUMNS if c in frame.columns}
            self._candidates = Candidates(table.space, frame["arch"].to_numpy()[keep].tolist(),
                                          frame.index.to_numpy()[keep], np.asarray(keys)[keep],
                                          np.asarray(iso)[keep], cheap)
        return self._candidates

    def _uses(self, column: str) -> bool:
        spec = self.spec
        return any(column in o.inputs for o in spec.objectives) or \
            any(column in c.objective.inputs for c in spec.constraints)

    def evaluate(self, positions: Sequence[int], monitor=None) -> list[Evaluation]:
        lists = self._metric_lists
        return [Evaluation({c: values[p] for c, values in lists.items()}) for p in positions]

    def known_front(self) -> KnownFront:
        return known_front(self.points, self.violation)

    def worker_factory(self):
        source = self._source if self._source is not None else self.table
        return functools.partial(_table_evaluator, source, self._data_dir, self.spec, self.dedupe)


def _table_evaluator(benchmark, data_dir, spec, dedupe, *, stream: int = 0) -> TableEvaluator:
    from calnas.tables import resolve_table

    return TableEvaluator(resolve_table(benchmark, data_dir), spec, dedupe)


def _iso_classes(table) -> np.ndarray:
    """Isomorphism class per row (TSS: the ``iso`` column or computed; SSS: the index)."""
    frame = table.frame
    if "iso" in frame.columns and frame["iso"].notna().all():
        return frame["iso"].to_numpy(dtype=np.int64)
    if table.space.name != "tss":
        return frame.index.to_numpy()
    import pandas as pd

    codes, _ = pd.factorize(pd.Series([table.space.iso_key(a) for a in frame["arch"]]))
    return codes.astype(np.int64)


# Fronts by content: the same objective columns give the same front whichever Table object (or
# edited copy of one) they came from, and an edited frame gives a new key, never a stale front.
_FRONTS: OrderedDict[bytes, KnownFront] = OrderedDict()
_FRONTS_KEPT = 16


def known_front(points: np.ndarray, violation: np.ndarray | None) -> KnownFront:
    digest = hashlib.blake2b(np.ascontiguousarray(points).tobytes(), digest_size=16)
    digest.update(str(points.shape).encode())
    if violation is not None:
        digest.update(np.ascontiguousarray(violation).tobytes())
    key = digest.digest()
    front = _FRONTS.get(key)
    if front is None:
        front = _FRONTS[key] = _compute_front(points, violation)
        while len(_FRONTS) > _FRONTS_KEPT:
            _FRONTS.popitem(last=False)
    else:
        _FRONTS.move_to_end(key)
    return front


def _compute_front(points: np.ndarray, violation: np.ndarray | None) -> KnownFront:
    lower, upper = points.min(axis=0), points.max(axis=0)
    positions, feasible = pareto.front_positions(points, violation)
    scaled = pareto.normalise(points[feasible], lower, upper)
    reference = reference_point(points.shape[1])
    return KnownFront(positions, pareto.hypervolume(scaled, reference), lower, upper,
                      pareto.hypervolume_method(scaled, reference), feasible, points)
