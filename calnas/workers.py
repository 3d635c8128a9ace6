"""Worker processes that share one stored study (``--workers N``).

The calling process is worker 0; ``start_workers`` spawns the others. Each rebuilds the
evaluator with the picklable factory the evaluator gave (``Evaluator.worker_factory``: a table
by name, or a live evaluator's configuration), opens the same storage and runs
:func:`calnas.worker_loop.run_worker` with its own stream (seed). They coordinate only through the
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


def start_workers(count: int, *, factory, spec, storage, study_name, run) -> list[_Helper]:
    """Spawn ``count`` workers (streams 1..count); ``factory(stream=N)`` builds each one's evaluator."""
    import logging

    context = multiprocessing.get_context("spawn")  # no fork: torch/BLAS state must not be copied
    optuna_level = logging.getLogger("optuna").getEffectiveLevel()
    payload = {"factory": factory, "spec": spec, "storage": storage, "study_name": study_name, "run": run,
               "optuna_level": optuna_level}
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

    _die_with_parent()
    # This process is calnas's own: it takes the parent's Optuna log level, nothing more.
    optuna.logging.set_verbosity(payload["optuna_level"])
    try:
        _work(payload, stream)
    except UserError as exc:
        errors.put(str(exc))
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _die_with_parent() -> None:
    """Stop when the search the user started dies (killed, even with SIGKILL): a worker left
    running would go on training after the user stopped the search. Its running trial is then
    failed as stale (its process is gone) and redone by whoever resumes."""
    import os
    import threading
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="calnas-parent-watch", daemon=True).start()


def _work(payload: dict, stream: int) -> None:
    from calnas.fidelity import Fidelity
    from calnas.storage import write_errors
    from calnas.study import open_study
    from calnas.worker_loop import run_worker

    run = payload["run"]
    spec = payload["spec"]
    evaluator = payload["factory"](stream=stream)
    # A full disk or a failing database in a helper is the same one line as in the search itself
    # (join_workers raises it there), not a traceback and "worker N exited with code 1".
    with write_errors(payload["storage"]):
        study = open_study(payload["storage"], payload["study_name"], spec, evaluator)
        run_worker(study, evaluator, spec, run["searcher"], run["seed"], run["budget"], stream=stream,
                   persistent=True, fidelity=Fidelity.from_record(run.get("fidelity")))
