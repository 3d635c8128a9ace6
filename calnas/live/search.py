"""Live search: an :class:`~calnas.evaluators.Evaluator` that trains what the searcher proposes.

``calnas search --live`` and ``calnas.search(live=calnas.LiveConfig(...))`` run the search
engine (:mod:`calnas.searching`: storages, resume, workers, claims) with a
:class:`LiveEvaluator`:

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
  counts, is never on the front, and the search goes on.

Without a table that covers the space under the same protocol, the summary's hypervolume is in
the objectives' own units (:meth:`LiveEvaluator.own_reference`); with one (a ``cache`` that
covers the space, or for the digits TSS protocol the embedded ``digits-tss``) the true front and
the hypervolume ratio are reported.

torch is imported only when something is trained.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import functools
import io
import json
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Sequence

import numpy as np

from calnas import record as rec
from calnas.calibrator_columns import CALIBRATOR_COLUMNS
from calnas.errors import UserError
from calnas.evaluators import DEDUPE_MODES, Candidates, Evaluation, Evaluator, KnownFront, TableEvaluator
from calnas.live.build import (_line, file_columns, protocol_identity, protocol_record, read_done, table_columns,
                               table_row)
from calnas.live.recipes import DEFAULT_RECIPE
from calnas.spaces import TSS, get_space

# A live evaluation takes seconds to hours, not microseconds: beat every 5 s, and take a trial
# for dead after a minute of silence (a loaded machine can stall a process for a few seconds).
HEARTBEAT_S = 5.0
STALE_S = 60.0
TABLE_NOTE = "table_out"  # the study's note (and summary key) naming the table file it appends to
TABLE_NAME = "table.csv"  # the CLI's default table file inside --out
REASON_CHARS = 300


@dataclass(frozen=True)
class LiveConfig:
    """What a live search trains and where its rows go; the fields are the CLI's training options.

    ``seed`` is the training seed (data split, initialisation, batch order), not the search's.
    ``devices`` gives each worker its own GPU (worker i takes ``devices[i % len(devices)]``).
    ``table_out``: the table file to append to; when None, a resumed study's own table, else
    ``table_default`` (the CLI passes ``OUT/table.csv``), else no file. ``cache``: tables of the
    same protocol whose rows answer without training. ``protocol``: a whole
    :class:`~calnas.live.protocol.Protocol` instead of the dataset's default (``epochs``,
    ``channels``, ``cells``, ``recipe``, ``optimizer``, ``lr`` still override it). ``recipe``:
    ``NAME[:PARAM]`` (:data:`calnas.live.recipes.RECIPES`; None: the protocol's, ``ce`` by
    default); ``optimizer``: sgd | adam. ``recipes``: search over architecture x recipe instead
    (``NAME`` stands for its small grid, ``NAME:PARAM`` for itself; :mod:`calnas.live.joint`).
    """

    dataset: str = "digits"
    space: str = "tss"
    data_root: str | None = None
    epochs: int | None = None
    channels: int | None = None
    cells: int | None = None
    seed: int = 0
    device: str = "auto"
    devices: tuple[str, ...] | None = None
    table_out: str | None = None
    cache: tuple[str, ...] = ()
    protocol: object | None = None
    table_default: str | None = None
    recipe: str | None = None
    optimizer: str | None = None
    lr: float | None = None
    recipes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        # Frozen for hashing and pickling to workers; inputs are normalised once here.
        def put(name, value):
            object.__setattr__(self, name, value)

        for name in ("data_root", "table_out", "table_default"):
            value = getattr(self, name)
            if value is not None:
                put(name, str(value))
        cache = self.cache
        if cache is None:
            cache = ()
        elif isinstance(cache, (str, os.PathLike)):
            cache = (cache,)
        put("cache", tuple(str(c) for c in cache))
        recipes = self.recipes
        if isinstance(recipes, str):
            recipes = recipes.split(",")
        if recipes is not None:
            # given but empty stays empty (not None), so the joint search refuses it in one line
            put("recipes", tuple(str(r).strip() for r in recipes if str(r).strip()))
        devices = self.devices
        if isinstance(devices, str):
            devices = [d for d in devices.split(",") if d.strip()]
        if devices is not None:
            put("devices", tuple(str(d).strip() for d in devices) or None)

    def replace(self, **changes) -> "LiveConfig":
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return LiveConfig(**values)


@dataclass
class _Columns:
    """What objective parsing reads of a table: a name and (empty) columns of the live record."""

    name: str
    frame: object


def live_columns(name: str):
    """A table-like view of the live record's columns (the metric panel, params, flops), so
    ``calnas.objectives.parse`` resolves names exactly as for a table."""
    import pandas as pd

    from calnas.evaluators import COST_COLUMNS
    from calnas.metrics import PANEL_COLUMNS

    return _Columns(name, pd.DataFrame({c: pd.Series(dtype=float)
                                        for c in (*PANEL_COLUMNS, *CALIBRATOR_COLUMNS, *COST_COLUMNS)}))


def live_evaluator(config, objectives, constraints, dedupe: str | None, *, workers: int = 1):
    """(evaluator, spec) for a live search; every input is checked here, in the calling process."""
    from calnas import objectives as objectives_module

    if not isinstance(config, LiveConfig):
        raise UserError(f"live must be a calnas.LiveConfig (e.g. calnas.LiveConfig(dataset='digits')), got {config!r}")
    space = get_space(config.space)
    dedupe = dedupe or ("iso" if space is TSS else "arch")
    if dedupe not in DEDUPE_MODES:
        raise UserError(f"unknown dedupe mode {dedupe!r}; expected one of {', '.join(DEDUPE_MODES)}")
    spec = objectives_module.parse(objectives, live_columns("live training"), constraints)
    if config.recipes is not None:
        from calnas.live.joint import JointLiveEvaluator

        return JointLiveEvaluator(config, spec, dedupe, pin_threads=workers > 1), spec
    return LiveEvaluator(config, spec, dedupe, pin_threads=workers > 1), spec


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
        from calnas.live.datasets import resolve_dataset
        from calnas.live.evaluate import make_protocol
        from calnas.searching import check_int

        self.config, self.spec, self.dedupe, self.stream = config, spec, dedupe, stream
        self.space = get_space(config.space)
        self.dataset, self._data_root = resolve_dataset(config.dataset, config.data_root)
        self.name = f"live:{self.dataset}"
        self.seed = check_int("training seed", config.seed, minimum=0)
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
        # ``prepared``: (candidates, costs, prechecked) of another evaluator of the same space, dataset,
        # constraints and dedupe (the recipes of a joint search), which do not depend on the protocol.
        self._candidates, self._costs, self._prechecked = prepared or _candidates(self.space, self.dataset, spec,
                                                                                  dedupe)
        self._caches = [_CacheTable(path, self.protocol) for path in config.cache]
        self._memory: dict[int, dict] = {}  # rows trained in this process
        self._diagrams: dict[int, dict] = {}  # their reliability-diagram data, as trial attributes
        self.table_path = table_path
        self._table = TableFile(table_path) if table_path is not None else None
        self._runtime = None
        self._reference: tuple | None = None

    # -- the seam ------------------------------------------------------------------------------
    def candidates(self) -> Candidates:
        return self._candidates

    def evaluate(self, positions: Sequence[int]) -> list[Evaluation]:
        return [self._evaluate_one(int(p)) for p in positions]

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

    def use_table(self, path: str) -> None:
        """Append to ``path`` (created, or checked to hold rows of this protocol)."""
        TableFile.prepare(path, self._record)
        self.table_path = path
        self._table = TableFile(path)

    def add_caches(self, paths) -> None:
        """More tables of this protocol whose rows answer without training."""
        self._caches.extend(_CacheTable(str(path), self.protocol) for path in paths)
        self._reference = None

    def worker_factory(self, *, benchmark=None, data_dir=None):
        return functools.partial(_worker_evaluator, self.config, self.spec, self.dedupe, self.table_path)

    # -- one evaluation --------------------------------------------------------------------------
    def _evaluate_one(self, position: int) -> Evaluation:
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
                result = runtime.evaluate(self.space.arch(rep))
        except Exception as exc:  # noqa: BLE001 - a failed training is an evaluation with its reason
            return Evaluation(cost, failure=_reason(exc), seconds=time.perf_counter() - start)
        row = table_row(result.record, self.space, self.training, self.seed, len(runtime.splits.train_y))
        self._memory[rep] = row
        self._diagrams[rep] = {rec.RELIABILITY: result.record["reliability"]}
        if self._table is not None:
            self._table.append(row)
        return Evaluation({**result.record["metrics"], **cost}, seconds=time.perf_counter() - start,
                          attrs=self._diagrams[rep])

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

    def _runtime_ready(self) -> "_Runtime":
        if self._runtime is None:
            self._runtime = _Runtime(self, self._splits())
        return self._runtime

    # -- the reference table (true front) -----------------------------------------------------------
    def _reference_evaluator(self) -> TableEvaluator | None:
        if self._reference is None:
            self._reference = (None, None)
            table = None
            for cache in self._caches:
                if cache.covers(self.space):
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
    the one the stored study already uses, else the default; None when there is none."""
    description = dict(study.user_attrs.get(rec.STUDY_ATTR) or {})
    notes = dict(description.get("notes") or {})
    chosen = config.table_out or notes.get(TABLE_NOTE) or config.table_default
    return (None if chosen is None else str(Path(chosen).expanduser().resolve())), notes


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
    from calnas.metrics import PANEL_COLUMNS

    out = {}
    # A row of a table written before the calibrator columns has none of them: NaN, as a missing value.
    for column in (*PANEL_COLUMNS, *CALIBRATOR_COLUMNS):
        value = row.get(column)
        out[column] = float("nan") if value is None or value == "" else float(value)
    return out


# --------------------------------------------------------------------------------------------
# training, in whichever process runs the evaluator


class _Runtime:
    """Device, data and thread settings of one process's trainings."""

    def __init__(self, evaluator: LiveEvaluator, splits):
        import torch

        from calnas.live.evaluate import resolve_device

        self.evaluator, self.splits = evaluator, splits
        self.device = resolve_device(evaluator._device_name)
        training = evaluator.training
        # Processes, not threads, parallelise tiny networks (docs/live.md, Throughput): a worker
        # trains on one thread unless the protocol fixes the count.
        self.threads = training.threads or (1 if evaluator._pin else None)
        self.own_process = evaluator.stream > 0
        if self.own_process and self.device.type == "cpu":
            torch.set_num_threads(self.threads or 1)  # a spawned worker's process is calnas's own

    def evaluate(self, arch: str):
        from calnas.live.evaluate import evaluate_prepared

        ev = self.evaluator
        return evaluate_prepared(arch, ev.space, ev.training, self.splits, device=self.device, seed=ev.seed)

    @contextlib.contextmanager
    def scope(self):
        """In the caller's own process, put back what training changes globally (the torch thread
        count, torch's and numpy's global random state) once it is done."""
        if self.own_process:
            yield
            return
        import torch

        threads = torch.get_num_threads()
        numpy_state = np.random.get_state()
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                if self.threads and self.device.type == "cpu":
                    torch.set_num_threads(self.threads)
                yield
        finally:
            torch.set_num_threads(threads)
            np.random.set_state(numpy_state)


# --------------------------------------------------------------------------------------------
# table files


def _parse_lines(data: bytes, columns: list[str], *, header: bool, path) -> dict[int, dict]:
    reader = csv.reader(io.StringIO(data.decode("utf-8")))
    if header:
        first = next(reader, None)
        if first is not None and first != columns:
            raise UserError(f"{path} has different columns from a calnas table of this metric panel; "
                            "choose another table file")
    rows = {}
    older = "recipe" not in columns  # a table written before recipes: its rows trained with ce
    for values in reader:
        if len(values) != len(columns):
            raise UserError(f"{path} has a malformed row (index {values[0] if values else '?'}); fix or remove it")
        row = dict(zip(columns, values))
        if older:
            row["recipe"] = DEFAULT_RECIPE
        rows[int(row["index"])] = row
    return rows


def _columns() -> list[str]:
    from calnas.metrics import PANEL_COLUMNS

    return table_columns(PANEL_COLUMNS)


class TableFile:
    """A table file several processes append to: the build's layout, one ``O_APPEND`` write per
    row under an exclusive lock (so two workers never write the same class twice), synced."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.columns = file_columns(self.path, _columns())  # rows go on in the file's layout
        self.rows: dict[int, dict] = {}
        self._offset = 0
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    @staticmethod
    def prepare(path: str | os.PathLike, record: dict) -> None:
        """Create the file (header) and its protocol.json, or check an existing one's protocol and
        cut a torn last line. In the searching process only, before any worker starts."""
        path = Path(path)
        meta_path = path.with_name(path.name + ".protocol.json")
        columns = _columns()
        if path.is_dir():
            raise UserError(f"table file {str(path)!r} is a directory; expected a CSV file path")
        if path.exists() and path.stat().st_size > 0:
            if not meta_path.is_file():
                raise UserError(f"table file {path} has no {meta_path.name}; only a calnas table of the same protocol "
                                "can be added to, choose another table file")
            old = json.loads(meta_path.read_text())
            if _identity(old) != _identity(record):
                raise UserError(f"table file {path} holds rows of another protocol or seed ({meta_path}); "
                                "choose another table file")
            read_done(path, file_columns(path, columns))  # cuts an incomplete last line (a killed write), checks the header
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(_line(columns))
            fh.flush()
            os.fsync(fh.fileno())
        meta_path.write_text(json.dumps(record, indent=2) + "\n")

    def refresh(self) -> dict[int, dict]:
        """Every complete row, reading only what was appended since the last call."""
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1
        if end:
            self.rows.update(_parse_lines(data[:end], self.columns, header=self._offset == 0, path=self.path))
            self._offset += end
        return self.rows

    def append(self, row: dict) -> bool:
        """Write ``row`` unless its index is there already; True when written."""
        line = _line([row.get(c) for c in self.columns]).encode("utf-8")
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            if int(row["index"]) in self.refresh():
                return False
            written = 0
            while written < len(line):  # one write in practice; a short write only on a full disk
                written += os.write(self._fd, line[written:])
            os.fsync(self._fd)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self.refresh()
        return True

    def __del__(self):
        with contextlib.suppress(Exception):
            os.close(self._fd)


@dataclass
class _CacheTable:
    """A table of the same protocol whose rows answer without training."""

    path: str
    identity: dict
    rows: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        path = Path(self.path)
        meta_path = path.with_name(path.name + ".protocol.json")
        if not path.is_file():
            raise UserError(f"cache table {str(path)!r} does not exist; expected a table calnas built "
                            "(calnas table build or search --live)")
        if not meta_path.is_file():
            raise UserError(f"cache table {path} has no {meta_path.name}; only a table whose protocol is known "
                            "can answer without training")
        if _identity(json.loads(meta_path.read_text())) != self.identity:
            raise UserError(f"cache table {path} was built with another protocol or seed ({meta_path}); "
                            "its rows cannot stand for this search's training")
        with open(path, "rb") as fh:
            data = fh.read()
        data = data[:data.rfind(b"\n") + 1]
        self.rows = _parse_lines(data, file_columns(path, _columns()), header=True, path=path)

    def covers(self, space) -> bool:
        """Whether it has a row for every architecture (TSS: every isomorphism class)."""
        if space is TSS:
            from calnas.live.build import build_order

            return set(build_order(TSS)) <= set(self.rows)
        return len(self.rows) >= space.size
