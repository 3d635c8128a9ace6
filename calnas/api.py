"""calnas's façade: the one place that wires objectives, an evaluator, a searcher and a study.

:func:`search` builds the evaluator a call asks for (a table's, or, only when ``live`` is given,
a live one from :mod:`calnas.live.factory`, imported then) and hands it to :func:`run_search`,
the engine behind every search: it opens (or continues) the study (:mod:`calnas.study`), runs
the workers on it (:mod:`calnas.worker_loop`, :mod:`calnas.workers`) and rebuilds the result
from the study alone (:mod:`calnas.rebuild`). :func:`show` rebuilds a stored search's result.
Inputs are checked here, once (:mod:`calnas.checks`); the modules below trust them.
"""

from __future__ import annotations

from typing import Callable, Sequence

from calnas import record as rec
from calnas.checks import check_int, check_seed, check_workers
from calnas.errors import UserError
from calnas.evaluators import Evaluator, TableEvaluator
from calnas.result import SearchResult

# The defaults of search(); the command line shows and merges the same ones.
DEFAULTS = {"objectives": "acc,ece", "budget": 500, "searcher": "auto", "seed": 0, "workers": 1,
            "early_stopping": "none", "min_epochs": 1, "eta": 2}


def search(
    benchmark=None,
    objectives: str | Sequence[str] = DEFAULTS["objectives"],
    budget: int = DEFAULTS["budget"],
    searcher: str = DEFAULTS["searcher"],
    seed: int = DEFAULTS["seed"],
    constraints: str | Sequence[str] | None = None,
    dedupe: str | None = None,
    *,
    data_dir=None,
    progress: Callable[[int, int], None] | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    workers: int = DEFAULTS["workers"],
    live=None,
    report: Callable[[list, int, int], None] | None = None,
    early_stopping: str = DEFAULTS["early_stopping"],
    min_epochs: int = DEFAULTS["min_epochs"],
    eta: int = DEFAULTS["eta"],
    rung_metric: str | Sequence[str] | None = None,
    budget_epochs: int | None = None,
    simulated_workers: int | None = None,
) -> SearchResult:
    """Search ``benchmark`` (a name, a CSV path, a :class:`~calnas.tables.Table` or a DataFrame in
    the table layout; None = the embedded default) for architectures best on ``objectives``.

    ``live`` (a :class:`calnas.LiveConfig`) trains and evaluates every proposed architecture
    instead of looking it up; ``benchmark`` must then be None (``LiveConfig.cache`` names tables
    whose rows answer without training). ``report(entries, done, budget)`` is called once at the
    start with the evaluations (:class:`calnas.record.Entry`) the study already holds (a resumed
    search; possibly none), then with those found finished since its last call, from any worker.

    ``budget`` distinct architectures are evaluated (see :mod:`calnas.worker_loop` for the
    duplicate rule); ``constraints`` such as ``"acc>=0.9"`` rank feasible architectures first.
    ``dedupe``: "arch" (the default for tables) or "iso" (the default for live TSS searches: one
    training answers a whole isomorphism class).
    ``storage`` (``sqlite:///s.db``, ``journal:///s.log``, ``postgresql://...``; default in
    memory) keeps the study: the same call again continues it to ``budget``, and ``workers``
    processes share it.

    Multi-fidelity (on a curve table, ``calnas table build --curves``; :mod:`calnas.simulation`):
    ``early_stopping`` "asha" or "hyperband" stops trainings at rungs ``min_epochs * eta**k``
    (:mod:`calnas.pruners`), ranking ``rung_metric`` (point columns, default validation accuracy
    and NLL); ``budget_epochs`` caps the training epochs summed over all trials;
    ``simulated_workers`` asynchronous workers share a simulated clock. Any of these replays the
    table as if it were trained (a full-fidelity search too, with ``early_stopping="none"``).
    With ``live``, the same options stop real trainings at their rungs (on the validation split's
    curve points; :mod:`calnas.fidelity`), with ``workers`` processes as in any live search.
    """
    if benchmark is None and live is None:
        benchmark = _default_benchmark()
    if live is not None and (early_stopping != "none" or budget_epochs is not None):
        if simulated_workers is not None:
            raise UserError("simulated workers replay a curve table; a live search trains on --workers processes")
        evaluator, spec = prepare(None, objectives, constraints, dedupe, live=live, workers=workers)
        from calnas.fidelity import Fidelity

        fidelity = Fidelity(early_stopping, min_epochs, eta, rung_metric, budget_epochs).checked(evaluator.max_epochs)
        return run_search(evaluator, spec, budget=budget, searcher=searcher, seed=seed, storage=storage,
                          study_name=study_name, workers=workers, progress=progress, report=report, fidelity=fidelity)
    if early_stopping != "none" or budget_epochs is not None or simulated_workers is not None:
        return simulate_search(benchmark, objectives, budget, searcher, seed, constraints, dedupe, data_dir=data_dir,
                               storage=storage, study_name=study_name, live=live, early_stopping=early_stopping,
                               min_epochs=min_epochs, eta=eta, rung_metric=rung_metric, budget_epochs=budget_epochs,
                               simulated_workers=simulated_workers)
    evaluator, spec = prepare(benchmark, objectives, constraints, dedupe, data_dir=data_dir, live=live,
                              workers=workers)
    result = run_search(evaluator, spec, budget=budget, searcher=searcher, seed=seed, storage=storage,
                        study_name=study_name, workers=workers, progress=progress, report=report)
    return with_noise_ceiling(result, None if live is not None else benchmark, spec)


def prepare(benchmark=None, objectives=DEFAULTS["objectives"], constraints=None, dedupe=None, *, data_dir=None,
            live=None, workers=DEFAULTS["workers"]) -> tuple[Evaluator, object]:
    """(evaluator, objective spec) of a search, every input checked: what :func:`search` runs."""
    from calnas import objectives as objectives_module

    workers = check_workers(workers)  # before a live evaluator loads data

    if live is not None:
        if benchmark is not None:
            raise UserError("benchmark and live exclude each other; name tables that answer without training "
                            "in LiveConfig(cache=...)")
        from calnas.live.factory import live_evaluator

        return live_evaluator(live, objectives, constraints, dedupe, workers=workers)
    from calnas.tables import resolve_table

    table = resolve_table(benchmark, data_dir)
    spec = objectives_module.parse(objectives, table, constraints)
    return TableEvaluator(table, spec, dedupe or "arch", source=benchmark, data_dir=data_dir), spec


def run_search(evaluator: Evaluator, spec, *, budget, searcher, seed, storage, study_name, workers, progress,
               report=None, benchmark=None, data_dir=None, fidelity=None) -> SearchResult:
    """The engine behind :func:`search` for any evaluator. (``benchmark`` and ``data_dir`` are
    accepted for scripts written when they told workers how to load a table; an evaluator
    carries that itself now, :meth:`~calnas.evaluators.Evaluator.worker_factory`.)
    ``fidelity`` (:class:`calnas.fidelity.Fidelity`, checked): early stopping of an evaluator
    that trains (its ``max_epochs``), its settings stored with the run for every worker."""
    from calnas import searchers
    from calnas.storage import is_persistent, write_errors

    budget = check_int("budget", budget, minimum=1)
    seed = check_seed(seed)
    workers = check_workers(workers)
    persistent = is_persistent(storage)
    if workers > 1 and not persistent:
        raise UserError(f"workers={workers} needs a persistent storage (sqlite:///FILE.db, journal:///FILE.log or "
                        "postgresql://...) that the worker processes share; an in-memory study lives in one process")
    searcher_name = searchers.resolve(searcher)
    with write_errors(storage):
        return _run(evaluator, spec, budget, searcher, searcher_name, seed, storage, study_name, workers, persistent,
                    progress, report, fidelity)


def _run(evaluator, spec, budget, searcher, searcher_name, seed, storage, study_name, workers, persistent, progress,
         report, fidelity=None) -> SearchResult:
    from calnas import storage as storage_module
    from calnas.optuna_compat import storage_of
    from calnas.rebuild import load_result
    from calnas.study import open_study
    from calnas.worker_loop import run_worker, worker_record

    study = open_study(storage, study_name, spec, evaluator)
    run = _run_settings(searcher, searcher_name, seed, budget,
                        None if fidelity is None else fidelity.record(evaluator.max_epochs))
    _check_same_rule(study, run)
    evaluator.attach(study)
    record = worker_record(study, evaluator, spec)
    record.update()
    _record_run(study, run, workers, record.n_done)
    helpers = []
    if workers > 1:
        from calnas.workers import start_workers

        helpers = start_workers(workers - 1, factory=evaluator.worker_factory(), spec=spec, storage=storage,
                                study_name=study.study_name, run=run)
    try:
        record = run_worker(study, evaluator, spec, searcher_name, seed, budget, stream=0, progress=progress,
                            persistent=persistent, report=report, record=record, fidelity=fidelity)
    finally:
        if helpers:
            from calnas.workers import join_workers

            join_workers(helpers)
    result = load_result(study, record)
    backup = storage_module.REPAIRED.get(storage_of(study))
    if backup is not None:
        result.info["journal_repaired"] = backup
    return result


def show(storage: str, study_name: str | None = None) -> SearchResult:
    """The result of a stored search, from the storage alone (no table needed)."""
    from calnas.rebuild import load_result
    from calnas.study import load_stored_study

    return load_result(load_stored_study(storage, study_name))


def _run_settings(searcher, searcher_name: str, seed: int, budget: int, fidelity: dict | None = None) -> dict:
    """What a study records of one run (``calnas.record.RUN_ATTR``)."""
    run = {"searcher": searcher_name, "searcher_requested": str(searcher).lower(), "seed": seed, "budget": budget}
    if fidelity is not None:
        run["fidelity"] = fidelity
    return run


# The settings that decide which trainings stop: a study's trials were decided under them, so a
# resume under others would rank rungs it never recorded (--budget-epochs is a budget: it may change).
_RULE_KEYS = ("early_stopping", "min_epochs", "eta", "rung_metric", "max_epochs")


def _check_same_rule(study, run: dict) -> None:
    """Refuse to continue a study under another early-stopping rule than its earlier runs'."""
    def rule(fidelity):
        return {k: (fidelity or {}).get(k, "none" if k == "early_stopping" else None) for k in _RULE_KEYS}

    earlier = [r for r in rec.runs_of(study.user_attrs) if isinstance(r, dict)]
    if not earlier or not study.trials:
        return
    before, now = rule(earlier[-1].get("fidelity")), rule(run.get("fidelity"))
    if before != now:
        changed = ", ".join(f"{k} {before[k]!r} -> {now[k]!r}" for k in _RULE_KEYS if before[k] != now[k])
        raise UserError(f"study {study.study_name!r} was searched with another early-stopping rule ({changed}); "
                        "resume it with the same --early-stopping/--min-epochs/--eta/--rung-metric, or use a new "
                        "--study-name")


def _record_run(study, run: dict, workers: int, held: int) -> None:
    """Every run's settings and what the study held when it started: a resume with another
    searcher, seed or a smaller budget is reported as such, not as one run of the last settings."""
    study.set_user_attr(rec.RUNS_ATTR, rec.runs_of(study.user_attrs) + [{**run, "workers": workers, "held": held}])
    study.set_user_attr(rec.RUN_ATTR, run)


def _default_benchmark() -> str:
    """The embedded default's name, so that a search without a benchmark also finds the default's
    curves (its noise ceiling, early-stopping simulation) when the default is a curve table."""
    from calnas.tables import default_benchmark

    return default_benchmark()


def simulate_search(benchmark=None, objectives=DEFAULTS["objectives"], budget=DEFAULTS["budget"],
                    searcher=DEFAULTS["searcher"], seed=DEFAULTS["seed"], constraints=None, dedupe=None, *,
                    data_dir=None, storage=None, study_name=None, live=None,
                    early_stopping=DEFAULTS["early_stopping"], min_epochs=DEFAULTS["min_epochs"],
                    eta=DEFAULTS["eta"], rung_metric=None, budget_epochs=None, simulated_workers=None) -> SearchResult:
    """A search replayed on a curve table's curves and measured training seconds (see :func:`search`)."""
    from calnas import searchers
    from calnas.curve_table import load_curves
    from calnas.rebuild import load_result
    from calnas.fidelity import Fidelity
    from calnas.simulation import TOTALS_ATTR, simulate
    from calnas.storage import write_errors
    from calnas.study import open_study

    if live is not None:
        raise UserError("simulated workers replay a curve table; a live search trains on --workers processes")
    budget = check_int("budget", budget, minimum=1)
    seed = check_seed(seed)
    curves = load_curves(_default_benchmark() if benchmark is None else benchmark, data_dir)
    fidelity = Fidelity(early_stopping, min_epochs, eta, rung_metric, budget_epochs,
                        1 if simulated_workers is None else simulated_workers).checked(curves.last_epoch, curves.epochs)
    evaluator, spec = prepare(benchmark, objectives, constraints, dedupe, data_dir=data_dir)
    searcher_name = searchers.resolve(searcher)

    def fresh_only(study, _stored):
        if study.user_attrs.get(TOTALS_ATTR) is not None or study.get_trials(deepcopy=False):
            raise UserError(f"study {study.study_name!r} already holds trials; a simulated search does not resume "
                            "(it takes seconds): use a new --study-name or storage")

    with write_errors(storage):
        study = open_study(storage, study_name, spec, evaluator, refuse=fresh_only)
        fidelity_record = {**fidelity.record(curves.last_epoch, curves.epochs), "simulated_workers": fidelity.workers}
        run = _run_settings(searcher, searcher_name, seed, budget, fidelity_record)
        _record_run(study, run, 1, 0)  # one process; a study that held anything was refused above
        evaluator.attach(study)
        record = simulate(study, evaluator, curves, spec, searcher=searcher_name, seed=seed, budget=budget,
                          fidelity=fidelity)
    return with_noise_ceiling(load_result(study, record), curves, spec)


def with_noise_ceiling(result: SearchResult, benchmark, spec) -> SearchResult:
    """``result`` with ``info["noise_ceiling"]`` when ``benchmark`` holds several training seeds
    (a curve table): the hypervolume ratio one seed's true front reaches on another seed's
    values (:mod:`calnas.noise_ceiling`), the scale on which a ratio's differences are real."""
    from calnas.curve_table import CurveTable
    from calnas.noise_ceiling import cached_noise_ceiling, noise_ceiling

    if isinstance(benchmark, CurveTable):  # already parsed (a simulated search)
        ceiling = noise_ceiling(benchmark, spec)
    else:
        ceiling = cached_noise_ceiling(benchmark, spec)
    if ceiling is not None:
        result.info["noise_ceiling"] = ceiling
    return result
