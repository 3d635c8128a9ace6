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
from calnas.checks import check_int, check_seed
from calnas.errors import UserError
from calnas.evaluators import Evaluator, TableEvaluator
from calnas.result import SearchResult

# The defaults of search(); the command line shows and merges the same ones.
DEFAULTS = {"objectives": "acc,ece", "budget": 500, "searcher": "auto", "seed": 0, "workers": 1}


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
    """
    evaluator, spec = prepare(benchmark, objectives, constraints, dedupe, data_dir=data_dir, live=live,
                              workers=workers)
    return run_search(evaluator, spec, budget=budget, searcher=searcher, seed=seed, storage=storage,
                      study_name=study_name, workers=workers, progress=progress, report=report)


def prepare(benchmark=None, objectives=DEFAULTS["objectives"], constraints=None, dedupe=None, *, data_dir=None,
            live=None, workers=DEFAULTS["workers"]) -> tuple[Evaluator, object]:
    """(evaluator, objective spec) of a search, every input checked: what :func:`search` runs."""
    from calnas import objectives as objectives_module

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
               report=None, benchmark=None, data_dir=None) -> SearchResult:
    """The engine behind :func:`search` for any evaluator. (``benchmark`` and ``data_dir`` are
    accepted for scripts written when they told workers how to load a table; an evaluator
    carries that itself now, :meth:`~calnas.evaluators.Evaluator.worker_factory`.)"""
    from calnas import searchers
    from calnas.rebuild import load_result
    from calnas.storage import is_persistent
    from calnas.study import open_study
    from calnas.worker_loop import run_worker

    budget = check_int("budget", budget, minimum=1)
    seed = check_seed(seed)
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

        helpers = start_workers(workers - 1, factory=evaluator.worker_factory(), spec=spec, storage=storage,
                                study_name=study.study_name, run=run)
    try:
        record = run_worker(study, evaluator, spec, searcher_name, seed, budget, stream=0, progress=progress,
                            persistent=persistent, report=report)
    finally:
        if helpers:
            from calnas.workers import join_workers

            join_workers(helpers)
    return load_result(study, record)


def show(storage: str, study_name: str | None = None) -> SearchResult:
    """The result of a stored search, from the storage alone (no table needed)."""
    from calnas.rebuild import load_result
    from calnas.study import load_stored_study

    return load_result(load_stored_study(storage, study_name))
