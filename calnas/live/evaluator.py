"""Live search: an :class:`~calnas.evaluators.Evaluator` that trains what the searcher proposes.

``calnas search --live`` and ``calnas.search(live=calnas.LiveConfig(...))`` run the search
engine (:mod:`calnas.api`: storages, resume, workers, claims) with a :class:`LiveEvaluator`,
which :mod:`calnas.live.factory` builds:

* **Candidates**: the whole space (TSS: 15,625 cells, SSS: 32,768 width configurations) with
  params/FLOPs from the shipped meta (:func:`calnas.tables.space_costs`). Architectures that fail
  a constraint on params or FLOPs (TSS: or whose class representative, the network trained for
  them, fails it) are left out of the candidates before the search starts: they can never be
  feasible, so calnas's searchers never propose them (their moves and random draws
  stay among feasible architectures instead of spending proposals on the rejected ones), and an
  Optuna sampler's proposal of one is answered without training (trial mark
  ``calnas_infeasible``, no budget; ``proposals.infeasible_untrained`` in the summary).
* **Evaluation**: the path of ``calnas table build`` and ``calnas evaluate --live``
  (:func:`calnas.live.evaluate.evaluate_prepared`, then :func:`calnas.live.build.table_row`).
  A TSS architecture is evaluated through its isomorphism class's representative (the smallest
  index, as the table build does), so a row depends only on (class, protocol, seed) and answers
  every twin.
* **The table file** (``table_out``): every evaluation is appended, crash-safe, in the build's
  layout with its ``protocol.json``; ``calnas search --benchmark FILE`` searches it. It is read
  back before training, so an architecture whose row is there (an earlier run, a worker killed
  after writing its row) is never trained twice; ``cache`` tables of the same protocol answer
  without training as well.
* A training that fails or diverges (non-finite outputs) is an evaluation with its reason: it
  counts, is never on the front, and the search goes on, unless a worker's first evaluations
  all fail with one kind of error (:data:`calnas.worker_loop.FIRST_FAILURES`): then it stops
  with that error. The devices and the training seed are checked in ``__init__``, before a
  table, protocol or study is written.

Without a table that covers the space under the same protocol, the summary's hypervolume is in
the objectives' own units (:meth:`LiveEvaluator.own_reference`); with one (a ``cache`` that
covers the space, or for the digits TSS protocol the embedded ``digits-tss``) the true front and
the hypervolume ratio are reported.

torch is imported only when something is trained.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from calnas import record as rec
from calnas.errors import UserError
from calnas.evaluators import Candidates, Evaluation, Evaluator, KnownFront, TableEvaluator
from calnas.live.build import protocol_record, table_columns, table_row
from calnas.live.config import LiveConfig
from calnas.live.protocol_file import protocol_identity
from calnas.live.table_file import CacheTable, TableFile, check_layout
from calnas.spaces import TSS, get_space

# A live evaluation takes seconds to hours, not microseconds: beat every 5 s, and take a trial
# for dead after a minute of silence (a loaded machine can stall a process for a few seconds).
HEARTBEAT_S = 5.0
STALE_S = 60.0
TABLE_NOTE = "table_out"  # the study's note (and summary key) naming the table file it appends to
TABLE_NAME = "table.csv"  # the CLI's default table file inside --out
REASON_CHARS = 300


def _embedded_references() -> dict[str, dict]:
    """Embedded calibration tables and the (space, seed, protocol) they were built with
    (calnas/data/README.md): a live search under that protocol is measured against them."""
    from calnas.live.protocol import DIGITS_TSS

    return {"digits-tss": _identity(protocol_record(DIGITS_TSS, TSS, 0))}


def _identity(record: dict) -> dict:
    return protocol_identity(record)  # a record from before a protocol setting existed reads as its default


class LiveEvaluator(Evaluator):
    """Trains and evaluates proposed architectures; see the module docstring."""

    kind = "live"
    heartbeat_interval = HEARTBEAT_S
    stale_after = STALE_S
    missing_mark = rec.INFEASIBLE

    def __init__(self, config: LiveConfig, spec, dedupe: str, *, stream: int = 0, pin_threads: bool = False,
                 table_path: str | None = None, splits=None, prepared: tuple | None = None):
        from calnas.checks import check_seed
        from calnas.live.datasets import resolve_dataset
        from calnas.live.evaluate import make_protocol

        self.config, self.spec, self.dedupe, self.stream = config, spec, dedupe, stream
        self.space = get_space(config.space)
        self.dataset, self._data_root = resolve_dataset(config.dataset, config.data_root)
        self.name = f"live:{self.dataset}"
        self.seed = check_seed(config.seed, "training seed")  # 0..2^32-1, as every other command
        self.training = make_protocol(self.space, self.dataset, protocol=config.protocol, epochs=config.epochs,
                                      channels=config.channels, cells=config.cells, recipe=config.recipe,
                                      optimizer=config.optimizer, lr=config.lr)
        if self.training.dataset != self.dataset:
            raise UserError(f"protocol is for {self.training.dataset} but dataset is {self.dataset}")
        self._record = protocol_record(self.training, self.space, self.seed)
        self.protocol = _identity(self._record)
        self._splits_cache = splits  # given: data already loaded for the same protocol's splits
        if stream == 0:
            self._splits()  # the data's problems are one-line errors before a study or worker starts
        self._pin = pin_threads or stream > 0
        self._device_name = _device_for(config, stream)
        if stream == 0:  # every worker's device, before a table, study or worker exists
            _check_devices(config)
        # ``prepared``: (candidates, costs, prechecked) of another evaluator of the same space, dataset,
        # constraints and dedupe (the recipes of a joint search), which do not depend on the protocol.
        self._candidates, self._costs, self._prechecked = prepared or _candidates(self.space, self.dataset, spec,
                                                                                  dedupe)
        self._caches = []
        self.add_caches(config.cache)
        if stream == 0 and config.table_out is not None:
            TableFile.check(Path(config.table_out).expanduser(), self._record, _columns())  # before the study exists
        self._memory: dict[int, dict] = {}  # rows trained in this process
        self._diagrams: dict[int, dict] = {}  # their reliability-diagram data, as trial attributes
        self.table_path = table_path
        self._table = self._open_table(table_path) if table_path is not None else None
        self._runtime = None
        self._reference: tuple | None = None

    # -- the seam ------------------------------------------------------------------------------
    def candidates(self) -> Candidates:
        return self._candidates

    def evaluate(self, positions: Sequence[int], monitor=None) -> list[Evaluation]:
        return [self._evaluate_one(int(p), monitor) for p in positions]

    @property
    def max_epochs(self) -> int:
        """The protocol's training epochs: the full fidelity of an early-stopping search."""
        return int(self.training.epochs)

    @property
    def covers_space(self) -> bool:
        return self._reference_evaluator() is not None

    def known_front(self) -> KnownFront | None:
        reference = self._reference_evaluator()
        if reference is None:
            return None
        front = reference.known_front()
        mine = self._reference_positions()
        ours = self._candidates
        position_of = np.full(self.space.size, -1, dtype=np.int64)
        position_of[ours.indices] = np.arange(len(ours))
        ref_indices = reference.candidates().indices

        def to_ours(ref_positions):
            positions = position_of[ref_indices[ref_positions]]
            return positions[positions >= 0]  # only infeasible members can lie outside the candidates

        return KnownFront(to_ours(front.positions), front.hypervolume, front.lower, front.upper, front.method,
                          to_ours(front.feasible), front.points[mine])

    def front_metrics(self, positions: Sequence[int]) -> list[dict]:
        reference = self._reference_evaluator()
        mine = self._reference_positions()
        return [e.metrics for e in reference.evaluate([int(mine[p]) for p in positions])]

    def own_reference(self, spec) -> list[float] | None:
        """The worst value each objective can take (calnas.objectives.catalog.reference_range;
        ``hcs`` lies in [0, 1]; params/FLOPs: the largest network of the space), in minimisation
        form; None when an objective has no such value (then the found points' range is used)."""
        from calnas.objectives import catalog

        classes = self._splits().num_classes
        out = []
        for objective in spec.objectives:
            if objective.column is None:
                low, high = 0.0, 1.0
            elif objective.column in self._costs:
                values = self._costs[objective.column]
                low, high = float(np.nanmin(values)), float(np.nanmax(values))
            else:
                bounds = catalog.reference_range(objective.column, classes)
                if bounds is None:
                    return None
                low, high = bounds
            out.append(-low if objective.maximise else high)
        return out

    def notes(self) -> dict:
        out: dict = {"reference_table": self._reference_name()}
        if self._prechecked:
            kept = len(self._candidates)
            out["pre_training_check"] = {"constraints": [c.text for c in self._prechecked], "candidates": kept,
                                         "excluded": self.space.size - kept}
        return out

    def attach(self, study) -> None:
        path, notes = chosen_table(study, self.config)
        if path is None:
            return
        self.use_table(path)
        set_notes(study, notes, **{TABLE_NOTE: path})

    def check_outputs(self, study) -> None:
        path, _ = chosen_table(study, self.config)
        if self.stream == 0 and path is not None and not _same_file(path, self.config.table_out):
            TableFile.check(path, self._record, _columns())  # --table-out was checked on construction

    def use_table(self, path: str) -> None:
        """Append to ``path`` (created, or checked to hold rows of this protocol)."""
        TableFile.prepare(path, self._record, _columns())
        self.table_path = path
        self._table = self._open_table(path)

    def add_caches(self, paths) -> None:
        """More tables of this protocol whose rows answer without training."""
        for path in paths:
            cache = _cache(str(path), self.protocol)
            check_layout(cache.path, cache.layout, self._needed_columns(), self._objectives_text())
            self._caches.append(cache)
        self._reference = None

    def _open_table(self, path) -> TableFile:
        table = TableFile(path, _columns())
        check_layout(path, table.columns, self._needed_columns(), self._objectives_text())
        return table

    def _needed_columns(self) -> list[str]:
        return [c for o in (*self.spec.objectives, *(k.objective for k in self.spec.constraints)) for c in o.inputs]

    def _objectives_text(self) -> str:
        return ", ".join([o.name for o in self.spec.objectives] + [k.text for k in self.spec.constraints])

    def recorded_protocol(self, stored):
        if not isinstance(stored, dict) or not isinstance(stored.get("protocol"), dict):
            return stored
        return _identity(stored)

    def worker_factory(self):
        return functools.partial(_worker_evaluator, self.config, self.spec, self.dedupe, self.table_path)

    # -- one evaluation --------------------------------------------------------------------------
    def _evaluate_one(self, position: int, monitor=None) -> Evaluation:
        candidates = self._candidates
        cost = {name: float(values[position]) for name, values in candidates.cheap.items()}
        # TSS: the class representative (tss_meta's iso, its smallest index), as the table build
        # trains it; SSS has no classes (classes = the index).
        rep = int(candidates.classes[position])
        row = self._stored_row(rep)
        if row is not None:
            if self._table is not None:
                self._table.append(row)  # a cache's row joins this search's table (no-op when there)
            # A row read back from a table keeps no predictions, so no diagram unless trained here.
            return Evaluation({**row_metrics(row), **cost}, cached=True, attrs=self._diagrams.get(rep, {}))
        runtime = self._runtime_ready()
        start = time.perf_counter()
        try:
            with runtime.scope():
                result = runtime.evaluate(self.space.arch(rep), monitor)
        except Exception as exc:  # noqa: BLE001 - a failed training is an evaluation with its reason
            return Evaluation(cost, failure=_reason(exc), seconds=time.perf_counter() - start)
        training = {rec.CURVE: result.record["curve"]} if monitor is not None else {}
        if "stopped_at" in result.record:
            # Not a full-fidelity row: the grown table keeps only completed trainings; the curve
            # stays with the trial (and the result's curves.csv).
            return Evaluation(cost, seconds=time.perf_counter() - start, attrs=training,
                              stopped_at=int(result.record["stopped_at"]))
        row = table_row(result.record, self.space, self.training, self.seed, len(runtime.splits.train_y))
        self._memory[rep] = row
        self._diagrams[rep] = {rec.RELIABILITY: result.record["reliability"]}
        if self._table is not None:
            self._table.append(row)
        return Evaluation({**result.record["metrics"], **cost}, seconds=time.perf_counter() - start,
                          attrs={**self._diagrams[rep], **training})

    def _stored_row(self, rep: int) -> dict | None:
        row = self._memory.get(rep)
        if row is None and self._table is not None:
            row = self._table.refresh().get(rep)
        for cache in self._caches:
            if row is not None:
                break
            row = cache.rows.get(rep)
        return row

    def _splits(self):
        if self._splits_cache is None:
            from calnas.live.evaluate import load_protocol_splits

            self._splits_cache = load_protocol_splits(self.training, data_root=self._data_root, seed=self.seed)
        return self._splits_cache

    def _runtime_ready(self):
        if self._runtime is None:
            from calnas.live.runtime import Runtime

            self._runtime = Runtime(self, self._splits())
        return self._runtime

    # -- the reference table (true front) -----------------------------------------------------------
    def _reference_evaluator(self) -> TableEvaluator | None:
        if self._reference is None:
            self._reference = (None, None)
            table = None
            for cache in self._caches:
                if covers(cache, self.space):
                    from calnas.tables import load_csv

                    table = load_csv(cache.path, dataset=self.dataset)
                    break
            if table is None:
                for name, identity in _embedded_references().items():
                    if identity == self.protocol:
                        from calnas.tables import load_benchmark

                        table = load_benchmark(name)
                        break
            if table is not None and table.covers_space:
                evaluator = TableEvaluator(table, self.spec, self.dedupe)
                positions = np.full(self.space.size, -1, dtype=np.int64)
                ref = evaluator.candidates()
                positions[ref.indices] = np.arange(len(ref))
                mine = positions[self._candidates.indices]
                if (mine >= 0).all():
                    self._reference = (evaluator, mine)
        return self._reference[0]

    def _reference_positions(self) -> np.ndarray:
        self._reference_evaluator()
        return self._reference[1]

    def _reference_name(self) -> str | None:
        evaluator = self._reference_evaluator()
        return None if evaluator is None else evaluator.name


def chosen_table(study, config: LiveConfig) -> tuple[str | None, dict]:
    """(the table file a live search appends to, the study's notes): the configured file, else
    the one the stored study already uses, else the default; None when there is none. ``study``
    None: a study not created yet."""
    description = dict((study.user_attrs.get(rec.STUDY_ATTR) if study is not None else None) or {})
    notes = dict(description.get("notes") or {})
    chosen = config.table_out or notes.get(TABLE_NOTE) or config.table_default
    return (None if chosen is None else str(Path(chosen).expanduser().resolve())), notes


def _same_file(path, other) -> bool:
    return other is not None and Path(path) == Path(other).expanduser().resolve()


def set_notes(study, notes: dict, **changes) -> None:
    """Store ``changes`` in the study's notes (one write, only when something changed)."""
    if all(notes.get(key) == value for key, value in changes.items()):
        return
    description = dict(study.user_attrs.get(rec.STUDY_ATTR) or {})
    study.set_user_attr(rec.STUDY_ATTR, {**description, "notes": {**notes, **changes}})


def _worker_evaluator(config, spec, dedupe, table_path, *, stream: int) -> LiveEvaluator:
    return LiveEvaluator(config, spec, dedupe, stream=stream, pin_threads=True, table_path=table_path)


def _device_for(config: LiveConfig, stream: int) -> str:
    if not config.devices:
        return config.device
    if str(config.device).lower() == "cpu":
        raise UserError("devices name GPUs; they need device cuda or auto, not cpu")
    chosen = config.devices[stream % len(config.devices)]
    return chosen if chosen.startswith("cuda") else f"cuda:{chosen}"


def _check_devices(config: LiveConfig) -> None:
    from calnas.live.evaluate import check_device

    for stream in range(len(config.devices or ()) or 1):
        check_device(_device_for(config, stream))


def _candidates(space, dataset: str, spec, dedupe: str):
    """The whole space less the architectures that fail a constraint known before training."""
    from calnas.searchers.domain import Domain
    from calnas.tables import space_costs

    whole = Domain.whole_space(space, dedupe)
    costs = space_costs(space, dataset)
    keep = np.ones(space.size, dtype=bool)
    prechecked = [c for c in spec.constraints if c.objective.column is not None and c.objective.column in costs]
    # A TSS architecture is trained as its class's representative, whose params/FLOPs can differ
    # from its twins' (an op on an edge that reaches no output still has weights): what is
    # trained must satisfy the constraint as well as what was proposed.
    trained_costs = {name: values[whole.classes] for name, values in costs.items()}
    for constraint in prechecked:
        keep &= constraint.satisfied(constraint.objective.values(costs))
        keep &= constraint.satisfied(constraint.objective.values(trained_costs))
    if not keep.any():
        ranges = ", ".join(f"{c.objective.column} {np.nanmin(costs[c.objective.column]):.4g}-"
                           f"{np.nanmax(costs[c.objective.column]):.4g}" for c in prechecked)
        raise UserError(f"no architecture of {space.name} satisfies {', '.join(c.text for c in prechecked)} "
                        f"(the space spans {ranges})")
    kept = np.flatnonzero(keep)
    archs = whole.archs
    candidates = Candidates(space, [archs[i] for i in kept], whole.indices[kept], whole.keys[kept], whole.classes[kept],
                            {name: values[kept] for name, values in costs.items()})
    return candidates, costs, prechecked


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:REASON_CHARS]


def row_metrics(row: dict) -> dict[str, float]:
    """The metric panel of a table row (read from a file as strings, or just built)."""
    from calnas.calibrator_columns import CALIBRATOR_COLUMNS
    from calnas.metrics import PANEL_COLUMNS

    out = {}
    # A row of a table written before the calibrator columns has none of them: NaN, as a missing value.
    for column in (*PANEL_COLUMNS, *CALIBRATOR_COLUMNS):
        value = row.get(column)
        out[column] = float("nan") if value is None or value == "" else float(value)
    return out



def _columns() -> list[str]:
    from calnas.metrics import PANEL_COLUMNS

    return table_columns(PANEL_COLUMNS)


def _cache(path: str, identity: dict) -> CacheTable:
    return CacheTable(path, identity, _columns())


def covers(cache: CacheTable, space) -> bool:
    """Whether a cache table has a row for every architecture (TSS: every isomorphism class)."""
    if space is TSS:
        from calnas.live.build import build_order

        return set(build_order(TSS)) <= set(cache.rows)
    return set(range(space.size)) <= set(cache.rows)  # counted by index: a stray row covers nothing
