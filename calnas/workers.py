"""Worker processes that share one stored study (``--workers N``).

The calling process is worker 0; ``start_workers`` spawns the others. Each rebuilds the
evaluator from picklable inputs, opens the same storage and runs
:func:`calnas.searching.run_worker` with its own stream (seed). They coordinate only through the
storage (see :mod:`calnas.record`); a worker that dies leaves a RUNNING trial that the others
fail as stale and evaluate again.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass

from calnas.errors import UserError


@dataclass
class _Helper:
    process: multiprocessing.Process
    errors: object  # a queue: one line per UserError


def start_workers(count: int, *, benchmark, spec, evaluator, data_dir, storage, study_name, run) -> list[_Helper]:
    import logging

    context = multiprocessing.get_context("spawn")  # no fork: torch/BLAS state must not be copied
    optuna_level = logging.getLogger("optuna").getEffectiveLevel()
    payload = {"benchmark": benchmark, "spec": spec, "dedupe": getattr(evaluator, "dedupe", "arch"),
               "data_dir": data_dir, "storage": storage, "study_name": study_name, "run": run,
               "optuna_level": optuna_level, "evaluator": evaluator.kind}
    helpers = []
    for stream in range(1, count + 1):
        errors = context.Queue()
        process = context.Process(target=_main, args=(payload, stream, errors), name=f"calnas-worker-{stream}",
                                  daemon=False)
        process.start()
        helpers.append(_Helper(process, errors))
    return helpers


def join_workers(helpers: list[_Helper]) -> None:
    """Wait for every helper; a UserError in one is raised here, a crash is named."""
    problems = []
    for number, helper in enumerate(helpers, start=1):
        try:
            helper.process.join()
        except KeyboardInterrupt:
            for other in helpers:
                other.process.terminate()
            raise
        if not helper.errors.empty():
            problems.append(helper.errors.get())
        elif helper.process.exitcode not in (0, None):
            problems.append(f"worker {number} exited with code {helper.process.exitcode}")
    if problems:
        raise UserError("; ".join(dict.fromkeys(problems)))


def _main(payload: dict, stream: int, errors) -> None:
    import optuna

    # This process is calnas's own: it takes the parent's Optuna log level, nothing more.
    optuna.logging.set_verbosity(payload["optuna_level"])
    try:
        _work(payload, stream)
    except UserError as exc:
        errors.put(str(exc))
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _work(payload: dict, stream: int) -> None:
    from calnas.evaluators import TableEvaluator
    from calnas.searching import open_study, resolve_table, run_worker

    run = payload["run"]
    table = resolve_table(payload["benchmark"], payload["data_dir"])
    spec = payload["spec"]
    evaluator = TableEvaluator(table, spec, payload["dedupe"])
    study = open_study(payload["storage"], payload["study_name"], spec, evaluator)
    run_worker(study, evaluator, spec, run["searcher"], run["seed"], run["budget"], stream=stream, persistent=True)
