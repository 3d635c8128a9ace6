"""The search engine: objectives + evaluator + searcher, inside one Optuna study.

``search(...)`` opens (or continues) a study in a storage, runs one or more workers on it and
rebuilds the result from the study alone (:func:`load_result`), so ``calnas show`` and a resumed
search report exactly what an uninterrupted one would.

Each worker loops: read the study (:class:`~calnas.record.StudyRecord`, incrementally), ask the
sampler for an architecture, *claim* it (the lowest-numbered live trial of a dedupe key holds
it; see :mod:`calnas.record`), evaluate it through the :class:`~calnas.evaluators.Evaluator`
and tell the study. The budget counts distinct architectures (``dedupe="arch"``) or isomorphism
classes (``dedupe="iso"``) evaluated. The duplicate rule:

* a proposal already evaluated (or an isomorphic twin of one, with ``dedupe="iso"``) is answered
  with the values first recorded for it and costs no budget;
* a proposal the evaluator cannot evaluate (not in the table) fails and costs no budget;
* a proposal another worker is evaluating right now fails and costs no budget;
* after ``MAX_REPEATS`` such proposals in a row, the next trial is a random architecture not
  evaluated yet, drawn from the seed and the study's history, so the loop always ends;
* the search stops at the budget or when every architecture (class) is evaluated.

Same seed, same inputs: the same trials in the same order. calnas's own searchers derive each
proposal's randomness from the seed and the study's history, so a search stopped (or killed)
and run again records the same evaluations as one that was never interrupted.
"""

from __future__ import annotations

import json
import random
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from calnas import pareto, record as rec
from calnas.errors import UserError
from calnas.evaluators import (DEDUPE_MODES, Evaluator, TableEvaluator, display_order, objective_values,
                               reference_point)

MAX_REPEATS = 3
FLOAT_FORMAT = "%.12g"  # fixed, so that the same run writes the same bytes
SEED_RANGE = 2**32  # numpy's RandomState, which Optuna's samplers use, takes seeds below this
DEFAULT_STUDY = "calnas"
POLL_S = 0.05  # how often a worker waiting for others re-reads the study
SCHEMA = 1  # version of what calnas stores in a study
EXHAUSTED_ATTR = "calnas_exhausted"  # study user attr: every candidate was evaluated
# The figures SearchResult.save writes (by key of its returned paths); one it does not draw is removed.
FIGURE_FILES = {"plot": "pareto.png", "hypervolume_plot": "hypervolume.png", "reliability_plot": "reliability.png"}


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
        from calnas.plots import pareto_figure

        figure = pareto_figure(self)
        if path is not None:
            figure.savefig(path, dpi=110)
        return figure

    def save(self, out_dir: str | Path, *, plot: bool = True) -> dict[str, Path]:
        """Write front.csv, trials.csv, summary.json (and pareto.png, hypervolume.png and, for a
        live search, reliability.png: the front members' reliability diagrams); returns the paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"front": out / "front.csv", "trials": out / "trials.csv", "summary": out / "summary.json"}
        self.front.to_csv(paths["front"], index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
        self.trials.to_csv(paths["trials"], index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
        paths["summary"].write_text(json.dumps(_jsonable(self.summary()), indent=2) + "\n")
        if plot:  # drawn with Pillow (calnas.raster), after the results are written
            from calnas.plots import hypervolume_spec, pareto_spec
            from calnas.raster import render

            paths["plot"] = render(pareto_spec(self), out / FIGURE_FILES["plot"])
            paths["hypervolume_plot"] = render(hypervolume_spec(self), out / FIGURE_FILES["hypervolume_plot"])
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
        for each member a live search trained (a member answered from a table has none)."""
        if self.info.get("evaluator") != "live" or self.front.empty:
            return {}
        from calnas.metrics import ReliabilityDiagram

        keys = self._front_keys()
        wanted = set(keys)
        found: dict[int, dict] = {}
        for trial in self.study.get_trials(deepcopy=False):
            data = trial.user_attrs.get(rec.RELIABILITY)
            index = trial.user_attrs.get(rec.INDEX)
            if data and index in wanted and index not in found:
                found[int(index)] = {stage: ReliabilityDiagram.from_dict(d) for stage, d in data.items()}
        return {key: found[key] for key in keys if key in found}

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


# --------------------------------------------------------------------------------------------
# the public entry point


def search(
    benchmark=None,
    objectives: str | Sequence[str] = "acc,ece",
    budget: int = 500,
    searcher: str = "auto",
    seed: int = 0,
    constraints: str | Sequence[str] | None = None,
    dedupe: str | None = None,
    *,
    data_dir=None,
    progress: Callable[[int, int], None] | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    workers: int = 1,
    live=None,
    report: Callable[[list, int, int], None] | None = None,
) -> SearchResult:
    """Search ``benchmark`` (a name, a CSV path, a :class:`~calnas.tables.Table` or a DataFrame in
    the table layout; None = the embedded default) for architectures best on ``objectives``.

    ``live`` (a :class:`calnas.LiveConfig`) trains and evaluates every proposed architecture
    instead of looking it up; ``benchmark`` must then be None (``LiveConfig.cache`` names tables
    whose rows answer without training). ``report(entries, done, budget)`` is called once at the
    start with the evaluations (:class:`calnas.record.Entry`) the study already holds (a resumed
    search; possibly none), then with those found finished since its last call, from any worker.

    ``budget`` distinct architectures are evaluated (see the module docstring for the duplicate
    rule); ``constraints`` such as ``"acc>=0.9"`` rank feasible architectures first. ``dedupe``:
    "arch" (the default for tables) or "iso" (the default for live TSS searches: one training
    answers a whole isomorphism class).
    ``storage`` (``sqlite:///s.db``, ``journal:///s.log``, ``postgresql://...``; default in
    memory) keeps the study: the same call again continues it to ``budget``, and ``workers``
    processes share it.
    """
    from calnas import objectives as objectives_module

    if live is not None:
        from calnas.live.search import live_evaluator

        if benchmark is not None:
            raise UserError("benchmark and live exclude each other; name tables that answer without training "
                            "in LiveConfig(cache=...)")
        evaluator, spec = live_evaluator(live, objectives, constraints, dedupe, workers=workers)
    else:
        table = resolve_table(benchmark, data_dir)
        spec = objectives_module.parse(objectives, table, constraints)
        evaluator = TableEvaluator(table, spec, _check_dedupe(dedupe or "arch"))
    return run_search(evaluator, spec, budget=budget, searcher=searcher, seed=seed, storage=storage,
                      study_name=study_name, workers=workers, progress=progress, benchmark=benchmark,
                      data_dir=data_dir, report=report)


def resolve_table(benchmark, data_dir=None):
    from calnas.tables import Table, load_benchmark, table_from_frame

    if isinstance(benchmark, Table):
        return benchmark
    if isinstance(benchmark, pd.DataFrame):
        return table_from_frame(benchmark, name="dataframe")
    return load_benchmark(benchmark, data_dir_path=data_dir)


def run_search(evaluator: Evaluator, spec, *, budget, searcher, seed, storage, study_name, workers, progress,
               benchmark=None, data_dir=None, report=None) -> SearchResult:
    """The engine behind :func:`search` for any evaluator."""
    from calnas import searchers
    from calnas.storage import is_persistent

    budget = check_int("budget", budget, minimum=1)
    seed = check_int("seed", seed, minimum=0, maximum=SEED_RANGE - 1)
    workers = check_int("workers", workers, minimum=1)
    persistent = is_persistent(storage)
    if workers > 1 and not persistent:
        raise UserError(f"workers={workers} needs a persistent storage (sqlite:///FILE.db, journal:///FILE.log or "
                        "postgresql://...) that the worker processes share; an in-memory study lives in one process")
    searcher_name = searchers.resolve(searcher)
    study = open_study(storage, study_name, spec, evaluator)
    run = {"searcher": searcher_name, "searcher_requested": str(searcher).lower(), "seed": seed, "budget": budget}
    study.set_user_attr(rec.RUN_ATTR, run)
    evaluator.attach(study)
    helpers = []
    if workers > 1:
        from calnas.workers import start_workers

        helpers = start_workers(workers - 1, factory=evaluator.worker_factory(benchmark=benchmark, data_dir=data_dir),
                                spec=spec, storage=storage, study_name=study.study_name, run=run)
    try:
        record = run_worker(study, evaluator, spec, searcher_name, seed, budget, stream=0, progress=progress,
                            persistent=persistent, report=report)
    finally:
        if helpers:
            from calnas.workers import join_workers

            join_workers(helpers)
    return load_result(study, record)


def check_int(name: str, value, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        text = str(value).strip()
        # ASCII digits with at most one sign ('--5' and '6²' are not integers), and few enough that
        # int() takes them (it refuses over 4,300 digits).
        if not re.fullmatch(r"[+-]?[0-9]{1,100}", text):
            raise UserError(f"{name} must be an integer, got {text[:40]!r}")
        value = int(text)
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise UserError(f"{name} must be at least {minimum}{upper}, got {value}")
    return value


def _check_dedupe(dedupe: str) -> str:
    if dedupe not in DEDUPE_MODES:
        raise UserError(f"unknown dedupe mode {dedupe!r}; expected one of {', '.join(DEDUPE_MODES)}")
    return dedupe


# --------------------------------------------------------------------------------------------
# the study: what is stored in it, and refusing to continue a different search


def _description(spec, evaluator: Evaluator) -> dict:
    """What a study searches; a study continues only with the same description."""
    return {
        "schema": SCHEMA,
        "evaluator": evaluator.kind,
        "benchmark": evaluator.name,
        "space": evaluator.space.name,
        "dataset": evaluator.dataset,
        "dedupe": getattr(evaluator, "dedupe", "arch"),
        "objectives": [o.describe() for o in spec.objectives],
        "constraints": [c.describe() for c in spec.constraints],
        "protocol": evaluator.protocol,
    }


_IDENTITY = ("evaluator", "benchmark", "space", "dataset", "dedupe", "objectives", "constraints", "protocol")


def open_study(storage_url, study_name, spec, evaluator: Evaluator):
    """Create the study, or load it and check it searches the same thing."""
    import optuna
    from optuna.exceptions import ExperimentalWarning

    from calnas.storage import open_storage

    storage = open_storage(storage_url)
    name = DEFAULT_STUDY if study_name is None else str(study_name)
    if not name.strip():
        raise UserError("study_name must not be empty")
    described = _description(spec, evaluator)
    try:
        study = optuna.create_study(storage=storage, study_name=name, directions=spec.directions, load_if_exists=True)
    except Exception as exc:  # noqa: BLE001 - storage errors (locked file, lost connection) are the user's to fix
        raise UserError(f"cannot open study {name!r} in {storage_url} ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160] if str(exc) else ''})") from None
    stored = study.user_attrs.get(rec.STUDY_ATTR)
    if stored is None:
        if study.get_trials(deepcopy=False):
            raise UserError(f"study {name!r} in {storage_url} was not made by calnas; choose another study_name")
        front = _front_record(evaluator, spec)
        reference = evaluator.own_reference(spec) if front is None else None
        study.set_user_attr(rec.STUDY_ATTR, {**described, "front": front, "reference": reference,
                                             "notes": evaluator.notes()})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            study.set_metric_names([o.name for o in spec.objectives])
    else:
        _check_same_search(_as_recorded_now(stored), described, name, storage_url)
    return study


def _as_recorded_now(stored: dict) -> dict:
    """A stored description with its live training protocol read as this version records it, so
    a study made before a protocol setting existed (training recipes) continues under its defaults."""
    protocol = stored.get("protocol")
    if not isinstance(protocol, dict) or not isinstance(protocol.get("protocol"), dict):
        return stored
    from calnas.live.build import protocol_identity

    return {**stored, "protocol": protocol_identity(protocol)}


def _check_same_search(stored: dict, described: dict, name: str, url) -> None:
    for key in _IDENTITY:
        if _jsonable(stored.get(key)) != _jsonable(described.get(key)):
            def show(d):
                if key == "objectives":
                    return ",".join(o["name"] for o in d.get(key) or [])
                if key == "constraints":
                    return ",".join(c["constraint"] for c in d.get(key) or []) or "none"
                return d.get(key)

            raise UserError(f"study {name!r} in {url} searches {key} {show(stored)!r}, not {show(described)!r}; "
                            "use another study_name for a different search")


def _front_record(evaluator: Evaluator, spec) -> dict | None:
    """The known true front, stored with the study so results rebuild from the storage alone."""
    front = evaluator.known_front()
    if front is None:
        return None
    candidates = evaluator.candidates()
    metrics = evaluator.front_metrics(front.positions.tolist())
    members = [{"arch": candidates.archs[p], "index": int(candidates.indices[p]), "key": int(candidates.keys[p]),
                "metrics": m} for p, m in zip(front.positions.tolist(), metrics)]
    feasible_points = {tuple(v) for v in front.points[front.feasible].tolist()}
    return {"hypervolume": front.hypervolume, "lower": front.lower.tolist(), "upper": front.upper.tolist(),
            "method": front.method, "covers_space": bool(evaluator.covers_space), "members": members,
            "points": len(feasible_points)}


# --------------------------------------------------------------------------------------------
# one worker


def stream_seed(seed: int, stream: int) -> int:
    """Worker ``stream``'s seed: the search seed itself for the first worker, distinct others."""
    if stream == 0:
        return seed
    return random.Random(f"calnas-worker:{seed}:{stream}").randrange(SEED_RANGE)


def run_worker(study, evaluator: Evaluator, spec, searcher_name: str, seed: int, budget: int, *, stream: int = 0,
               progress=None, persistent: bool = False, report=None):
    """Propose, claim, evaluate and record until the study holds ``budget`` evaluations;
    returns the study record. ``report`` as in :func:`search`."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    from calnas import searchers
    from calnas.searchers._base import constraints_func, proposal_rng, store_constraints
    from calnas.searchers.domain import Domain

    candidates = evaluator.candidates()
    domain = Domain(candidates.space, candidates.archs, candidates.indices, candidates.keys, candidates.classes)
    record = rec.record_for(study, domain, stale_after=evaluator.stale_after)
    constrained = bool(spec.constraints)
    worker_seed = stream_seed(seed, stream)
    study.sampler = searchers.make(searcher_name, domain, seed=worker_seed,
                                   constraints_func=constraints_func(constrained))
    constraint_names = [c.text for c in spec.constraints]
    distributions = domain.distributions
    n_keys = domain.n_keys
    streak = 0
    if persistent:
        if evaluator.needs_heartbeat:
            record.register_owner()
        _settle(record, evaluator.heartbeat_interval)

    def tell_free(trial, mark, value=True, *, values=None, constraints=None):
        trial.set_user_attr(mark, value)
        if values is None:
            _tell(study, trial, state=TrialState.FAIL)
        else:
            if constrained:
                store_constraints(trial, constraint_names, constraints)
            _tell(study, trial, values)
        record.told(trial.number, trial._trial_id, TrialState.FAIL if values is None else TrialState.COMPLETE,
                    trial.params, {mark: value}, values, constraints or ())

    record.update()
    checked = time.monotonic()
    reported = None  # report first with what the study already holds (a resumed search), then as it grows
    while True:
        if persistent and time.monotonic() - checked > evaluator.heartbeat_interval:
            record.update()
            record.fail_stale()
            checked = time.monotonic()
        done = record.n_done
        if report is not None and (reported is None or len(record.entries) > reported):
            report(record.entries[reported or 0:], done, budget)
            reported = len(record.entries)
        if done >= budget or done >= n_keys:
            if persistent:  # others' interrupted evaluations are redone before stopping
                _settle(record, evaluator.heartbeat_interval)
                if record.n_done < min(budget, n_keys):
                    continue
            if done >= n_keys and done < budget:
                study.set_user_attr(EXHAUSTED_ATTR, True)
            return record
        held = done + len(record.running_holders())
        if held >= budget or held >= n_keys:
            time.sleep(POLL_S)  # the rest is being evaluated elsewhere; one of those may yet die
            record.update()
            record.fail_stale()
            continue
        if streak >= MAX_REPEATS:
            fallback = domain.random_unseen(proposal_rng(f"fallback:{worker_seed}", done, streak), record.taken_keys())
            if fallback is not None:
                study.enqueue_trial(domain.params(fallback), user_attrs={rec.FALLBACK: True})
            streak = 0
        if persistent and record.foreign:
            record.update()  # other workers are active: propose from the freshest view
        record.reuse = True
        try:
            trial = study.ask(distributions)
        finally:
            record.reuse = False
        record.mine.add(trial.number)
        try:
            position = domain.position_of_params(trial.params)
            if position is None:
                tell_free(trial, evaluator.missing_mark)
                streak += 1
                continue
            key = domain.key(position)
            if persistent:
                _wait_for_creations(record, trial.number)
            holder = record.holder_before(trial.number, key)
            if holder is not None:
                entry = record.by_number.get(holder)
                if entry is None:
                    tell_free(trial, rec.TAKEN_BY, holder)
                elif entry.values is None:
                    tell_free(trial, rec.REPEAT_OF, holder)
                else:
                    tell_free(trial, rec.REPEAT_OF, holder, values=list(entry.values), constraints=entry.constraints)
                streak += 1
                continue
            if record.holders_below(trial.number) >= budget:
                tell_free(trial, rec.OVER_BUDGET)
                continue
            streak = 0
            _evaluate(study, trial, evaluator, spec, position, candidates, persistent, stream,
                      constraint_names if constrained else None, record)
            if progress is not None:
                progress(record.n_done, budget)
        except UpdateFinishedTrialError:
            # Another worker took this one for dead (silent past the evaluator's stale_after, e.g.
            # on an overloaded machine) and failed it as interrupted, which freed its
            # architecture for one new evaluation: drop this result and go on.
            record.update()
            continue
        except BaseException:
            _abandon(study, trial)
            raise
        finally:
            record.mine.discard(trial.number)


def _evaluate(study, trial, evaluator, spec, position, candidates, persistent, stream, constraint_names,
              record) -> None:
    from optuna.trial import TrialState

    from calnas.searchers._base import store_constraints
    from calnas.storage import set_user_attrs

    if persistent and evaluator.needs_heartbeat:
        with rec.Heartbeat(study._storage, trial._trial_id, evaluator.heartbeat_interval):
            (evaluation,) = evaluator.evaluate([position])
    else:
        (evaluation,) = evaluator.evaluate([position])
    attrs = {rec.ARCH: candidates.archs[position], rec.INDEX: int(candidates.indices[position]),
             rec.METRICS: evaluation.metrics}
    if stream:
        attrs[rec.STREAM] = stream
    if evaluation.seconds is not None:
        attrs[rec.SECONDS] = evaluation.seconds
    if evaluation.cached:
        attrs[rec.CACHED] = True
    attrs.update(evaluation.attrs)
    if not evaluation.ok:
        attrs[rec.FAILURE] = evaluation.failure
    set_user_attrs(study._storage, trial._trial_id, attrs)
    if not evaluation.ok:
        _tell(study, trial, state=TrialState.FAIL)
        record.told(trial.number, trial._trial_id, TrialState.FAIL, trial.params, attrs)
        return
    values, raw = objective_values(spec, evaluation.metrics)
    violations = ()
    if constraint_names is not None:
        violations = [float(c.violation(np.asarray([r]))[0]) for c, r in zip(spec.constraints, raw)]
        store_constraints(trial, constraint_names, violations)
    _tell(study, trial, values)
    record.told(trial.number, trial._trial_id, TrialState.COMPLETE, trial.params, attrs, values, violations)


def _tell(study, trial, values=None, *, state=None) -> None:
    """`study.tell` without the deep copy of the finished trial it returns, which calnas never
    reads: with a trial's metrics stored on it that copy was a sixth of a whole table search
    (0.25 ms a trial). Optuna's own `optimize` loop calls the same function; on an Optuna
    without it, the public method."""
    try:
        from optuna.study._tell import _tell_with_warning
    except ImportError:
        study.tell(trial, values, state=state)
        return
    _tell_with_warning(study, trial, values, state)


def _abandon(study, trial) -> None:
    """An evaluation interrupted in this process (Ctrl-C, an error): mark it so its
    architecture is free for whoever resumes."""
    from optuna.trial import TrialState

    try:
        if study._storage.get_trial(trial._trial_id).state == TrialState.RUNNING:
            study._storage.set_trial_user_attr(trial._trial_id, rec.INTERRUPTED, True)
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    except Exception:  # noqa: BLE001 - the storage itself may be what failed; staleness covers it
        pass


def _settle(record, interval: float) -> None:
    """On (re)start, wait until every running trial either shows life or is failed as stale, so
    a search resumed right after a kill redoes the killed evaluation before anything new."""
    started = time.time()
    while True:
        record.update()
        record.fail_stale()
        silence = record.oldest_silence()
        if silence is None or silence < time.time() - started:
            return  # nothing running, or all of it beat since we started: alive
        time.sleep(min(interval / 2, 0.5))


def _wait_for_creations(record, number: int) -> None:
    """Lower-numbered trials still being created may claim the same architecture first."""
    while True:
        record.update()
        if not record.creating_below(number):
            return
        record.fail_stale()
        time.sleep(0.002)


# --------------------------------------------------------------------------------------------
# results: from the study alone


def load_result(study, record=None) -> SearchResult:
    """Everything a search reports, rebuilt from the study's trials and attributes (``record``:
    this process's record of the study, when a search just ran; read afresh otherwise)."""
    from calnas import objectives as objectives_module
    from calnas.searchers.domain import Domain
    from calnas.spaces import get_space

    attrs = study.user_attrs  # a deep copy on every access: the true front can be thousands of members
    stored = attrs.get(rec.STUDY_ATTR)
    if stored is None:
        raise UserError(f"study {study.study_name!r} was not made by calnas")
    run = attrs.get(rec.RUN_ATTR, {})
    spec = objectives_module.spec_from_description(stored["objectives"], stored["constraints"])
    space = get_space(stored["space"])
    if record is None:
        record = rec.StudyRecord(study, Domain.whole_space(space, stored["dedupe"]))
    record.update()
    entries = record.ordered()
    front_info = stored.get("front")
    k = len(spec.objectives)
    ok = [e for e in entries if e.values is not None]
    values = np.asarray([e.values for e in ok], dtype=float).reshape(-1, k)
    points = pareto.as_minimisation(values, spec.directions)
    violation = (np.asarray([sum(max(0.0, c) for c in e.constraints) for e in ok], dtype=float)
                 if spec.constraints else None)
    in_front = np.flatnonzero(pareto.front_mask(points, violation)) if len(ok) else np.zeros(0, dtype=int)
    in_front = in_front[display_order(points[in_front])]
    feasible_front = in_front if violation is None else in_front[violation[in_front] <= 0]
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
    front = _frame(spec, [ok[i] for i in in_front], leading={"rank": np.arange(1, len(in_front) + 1)}, space=space)
    true_hv, ratio, found, true_points, points_found = float("nan"), None, 0, 0, 0
    if front_info is not None:
        members = front_info["members"]
        true_frame = _frame(spec, [_member_entry(m, spec) for m in members],
                            leading={"rank": np.arange(1, len(members) + 1)})
        true_hv = front_info["hypervolume"]
        ratio = hv / true_hv if true_hv > 0 else None
        found_keys = {e.key for e in entries}
        found = sum(1 for m in members if m["key"] in found_keys)
        true_points = front_info["points"]
        true_set = {tuple(_member_point(m, spec)) for m in members if _member_feasible(m, spec)}
        points_found = len(true_set & {tuple(p) for p in points[feasible_front].tolist()})
    else:
        true_frame = front.iloc[0:0].copy()

    budget = int(run.get("budget", len(entries)))
    exhausted = bool(attrs.get(EXHAUSTED_ATTR)) and len(entries) < budget
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
    failures = sum(1 for e in entries if e.failure is not None)
    if failures:
        info["failed_evaluations"] = failures
    if stored["evaluator"] == "live":
        proposals["infeasible_untrained"] = counts.infeasible
    if own is not None:
        info["normalisation"] = None
        info["reference_point"] = {o.name: _natural(reference[i], o) for i, o in enumerate(spec.objectives)}
    timed = [e for e in entries if e.seconds is not None]
    if timed or any(e.cached for e in entries):
        seconds = float(sum(e.seconds for e in timed))
        info["evaluation_time"] = {"trained": len(timed), "cached": sum(1 for e in entries if e.cached),
                                   "seconds": seconds, "seconds_per_training": seconds / len(timed) if timed else None}
    info.update(stored.get("notes") or {})
    return SearchResult(trials, front, true_frame, hv, true_hv, ratio, found, len(entries), exhausted, info, study,
                        true_points, points_found)




def _anytime(spec, entries: list, lower, upper, reference) -> np.ndarray:
    """The found front's hypervolume after each evaluation, scaled like the summary's."""
    k = len(spec.objectives)
    values = np.asarray([e.values if e.values is not None else [np.nan] * k for e in entries], dtype=float)
    points = pareto.normalise(pareto.as_minimisation(values.reshape(-1, k), spec.directions), lower, upper)
    violation = (np.asarray([sum(max(0.0, c) for c in e.constraints) for e in entries], dtype=float)
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
        data["feasible"] = np.asarray([e.values is not None and sum(max(0.0, c) for c in e.constraints) <= 0
                                       for e in entries], dtype=bool)
    if any(e.failure is not None for e in entries):
        data["failure"] = [e.failure or "" for e in entries]
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


def show(storage: str, study_name: str | None = None) -> SearchResult:
    """The result of a stored search, from the storage alone (no table needed)."""
    from calnas.storage import is_persistent, open_storage

    import optuna

    if not is_persistent(storage):
        raise UserError("show needs the storage a search wrote (sqlite:///FILE.db, journal:///FILE.log, postgresql://...)")
    opened = open_storage(storage)
    name = DEFAULT_STUDY if study_name is None else str(study_name)
    try:
        study = optuna.load_study(study_name=name, storage=opened)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(opened)]
        listed = ", ".join(names) if names else "none"
        raise UserError(f"no study {name!r} in {storage} (studies there: {listed})") from None
    return load_result(study)

