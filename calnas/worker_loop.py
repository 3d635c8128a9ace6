"""One worker of a search: propose, claim, evaluate and record until the budget is spent.

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
  evaluated yet, drawn from the seed and the study's history, so the loop always ends
  (:func:`fallback_position`);
* the search stops at the budget or when every architecture (class) is evaluated;
* when a worker's first evaluations all fail with one kind of error (:data:`FIRST_FAILURES` of
  them, or fewer when the run ends sooner) it stops with that error, as a UserError.

Same seed, same inputs: the same trials in the same order. calnas's own searchers derive each
proposal's randomness from the seed and the study's history, so a search stopped (or killed)
and run again records the same evaluations as one that was never interrupted.
"""

from __future__ import annotations

import random
import time

import numpy as np

from calnas import record as rec
from calnas.checks import SEED_RANGE
from calnas.constraints import store_constraints
from calnas.errors import UserError
from calnas.evaluators import Evaluator, objective_values
from calnas.optuna_compat import storage_of, tell, trial_id_of

MAX_REPEATS = 3
# A run whose first evaluations in this process all fail with the same kind of error (a diverging
# learning rate, a device that cannot train) stops with that error instead of spending the
# whole budget on it: after FIRST_FAILURES of them, or at the end of a shorter run.
FIRST_FAILURES = 3
POLL_S = 0.05  # how often a worker waiting for others re-reads the study


def fallback_position(domain, record, worker_seed: int, done: int, streak: int) -> int | None:
    """The random unseen candidate a worker proposes after ``MAX_REPEATS`` proposals in a row
    that cost no budget (None: not due yet, or nothing is left unseen). Its randomness is a
    function of the worker's seed and the study's history, like every proposal's."""
    if streak < MAX_REPEATS:
        return None
    from calnas.searchers._base import proposal_rng

    return domain.random_unseen(proposal_rng(f"fallback:{worker_seed}", done, streak), record.taken_keys())


def stream_seed(seed: int, stream: int) -> int:
    """Worker ``stream``'s seed: the search seed itself for the first worker, distinct others."""
    if stream == 0:
        return seed
    return random.Random(f"calnas-worker:{seed}:{stream}").randrange(SEED_RANGE)


def worker_record(study, evaluator: Evaluator, spec, domain=None):
    """This process's record of ``study`` in the evaluator's candidates, set to tell calnas's
    evaluations from trials it did not write by the objective values their metrics give."""
    from calnas.searchers.domain import Domain

    if domain is None:
        candidates = evaluator.candidates()
        domain = Domain(candidates.space, candidates.archs, candidates.indices, candidates.keys, candidates.classes)
    record = rec.record_for(study, domain, stale_after=evaluator.stale_after)
    record.values_of = lambda metrics: objective_values(spec, metrics)[0]
    return record


def run_worker(study, evaluator: Evaluator, spec, searcher_name: str, seed: int, budget: int, *, stream: int = 0,
               progress=None, persistent: bool = False, report=None, record=None, fidelity=None):
    """Propose, claim, evaluate and record until the study holds ``budget`` evaluations;
    returns the study record. ``report`` as in :func:`calnas.api.search`; ``record``: the
    :func:`worker_record` the caller has read the study with already.
    ``fidelity`` (:class:`calnas.fidelity.Fidelity`): early stopping of the evaluator's trainings
    at their rungs, and ``budget_epochs``, after which no new training starts."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    from calnas import searchers
    from calnas.constraints import constraints_func

    candidates = evaluator.candidates()
    if record is None:
        record = worker_record(study, evaluator, spec)
    domain = record.domain
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
            tell(study, trial, state=TrialState.FAIL)
        else:
            if constrained:
                store_constraints(trial, constraint_names, constraints)
            tell(study, trial, values)
        record.told(trial.number, trial_id_of(trial), TrialState.FAIL if values is None else TrialState.COMPLETE,
                    trial.params, {mark: value, **enqueued_marks(trial)}, values, constraints or ())

    failures: list = []  # this process's evaluations' failure reasons (None: one that succeeded), the first few
    pruner = None
    if fidelity is not None and fidelity.early_stopping != "none":
        pruner = fidelity.pruner(evaluator.max_epochs)
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
                study.set_user_attr(rec.EXHAUSTED_ATTR, True)
            _stop_on_first_failures(failures, final=True)
            return record
        if fidelity is not None and fidelity.budget_epochs is not None and epochs_spent(study) >= fidelity.budget_epochs:
            if persistent:
                _settle(record, evaluator.heartbeat_interval)
            return record  # the compute budget is spent: no new training starts
        held = done + len(record.running_holders())
        if held >= budget or held >= n_keys:
            time.sleep(POLL_S)  # the rest is being evaluated elsewhere; one of those may yet die
            record.update()
            record.fail_stale()
            continue
        if streak >= MAX_REPEATS:
            fallback = fallback_position(domain, record, worker_seed, done, streak)
            if fallback is not None:
                study.enqueue_trial(domain.params(fallback), user_attrs={rec.FALLBACK: True})
            streak = 0
        if persistent and record.foreign:
            record.update()  # other workers are active: propose from the freshest view
        record.reuse = True
        try:
            trial = study.ask(distributions)
        except UpdateFinishedTrialError:
            # Another worker took the trial being asked for dead (this process silent past
            # stale_after while it suggested the parameters, e.g. on an overloaded machine) and
            # failed it: nothing was evaluated, so read the study again and ask anew.
            record.update()
            continue
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
            evaluation = _evaluate(study, trial, evaluator, spec, position, candidates, persistent, stream,
                                   constraint_names if constrained else None, record, pruner, fidelity)
            if len(failures) < FIRST_FAILURES:
                failures.append(evaluation.failure)
                _stop_on_first_failures(failures)
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


def _stop_on_first_failures(failures: list, *, final: bool = False) -> None:
    """Raise a UserError when ``failures`` (this process's first evaluations) all failed with one
    kind of error: :data:`FIRST_FAILURES` of them, or with ``final`` (the run is over) any."""
    if not failures or (len(failures) < FIRST_FAILURES and not final) or None in failures:
        return
    kinds = {reason.partition(": ")[0] for reason in failures}
    if len(kinds) == 1:
        kind, _, text = failures[0].partition(": ")
        reason = text if kind == "UserError" else failures[0]  # a UserError's text says it all
        count = "the only evaluation" if len(failures) == 1 else f"the first {len(failures)} evaluations all"
        raise UserError(f"stopped: {count} failed: {reason}")


def enqueued_marks(trial) -> dict:
    """The marks a trial was enqueued with (a random fallback's, by whichever worker enqueued it),
    for the record of a trial this process tells itself: its counters then read what a record
    read afresh from the storage reads (``calnas show``)."""
    return {rec.FALLBACK: True} if trial.user_attrs.get(rec.FALLBACK) else {}


def epochs_spent(study) -> int:
    """Training epochs the study's finished trials record (an early-stopping search's compute)."""
    return sum(int(t.user_attrs.get(rec.EPOCHS_REACHED) or 0) for t in study.get_trials(deepcopy=False))


def _evaluate(study, trial, evaluator, spec, position, candidates, persistent, stream, constraint_names,
              record, pruner=None, fidelity=None):
    from optuna.trial import TrialState

    from calnas.fidelity import RungMonitor
    from calnas.storage import set_user_attrs

    monitor = RungMonitor(pruner, trial, fidelity.rung_metric) if pruner is not None else None
    # Only an early-stopping search passes a monitor: an evaluator written before monitors keeps working.
    kwargs = {} if monitor is None else {"monitor": monitor}
    if persistent and evaluator.needs_heartbeat:
        with rec.Heartbeat(storage_of(study), trial_id_of(trial), evaluator.heartbeat_interval):
            (evaluation,) = evaluator.evaluate([position], **kwargs)
    else:
        (evaluation,) = evaluator.evaluate([position], **kwargs)
    attrs = {rec.ARCH: candidates.archs[position], rec.INDEX: int(candidates.indices[position]),
             rec.METRICS: evaluation.metrics}
    if fidelity is not None:
        attrs.update(_training_attrs(evaluation, evaluator.max_epochs))
    if stream:
        attrs[rec.STREAM] = stream
    if evaluation.seconds is not None:
        attrs[rec.SECONDS] = evaluation.seconds
    if evaluation.cached:
        attrs[rec.CACHED] = True
    attrs.update(evaluation.attrs)
    if not evaluation.ok:
        attrs[rec.FAILURE] = evaluation.failure
    set_user_attrs(storage_of(study), trial_id_of(trial), attrs)
    if evaluation.stopped_at is not None:  # pruned at a rung: final, like a completed one
        tell(study, trial, state=TrialState.PRUNED)
        record.told(trial.number, trial_id_of(trial), TrialState.PRUNED, trial.params, {**attrs, **enqueued_marks(trial)})
        return evaluation
    if not evaluation.ok:
        tell(study, trial, state=TrialState.FAIL)
        record.told(trial.number, trial_id_of(trial), TrialState.FAIL, trial.params, {**attrs, **enqueued_marks(trial)})
        return evaluation
    values, raw = objective_values(spec, evaluation.metrics)
    violations = ()
    if constraint_names is not None:
        violations = [float(c.violation(np.asarray([r]))[0]) for c, r in zip(spec.constraints, raw)]
        store_constraints(trial, constraint_names, violations)
    tell(study, trial, values)
    record.told(trial.number, trial_id_of(trial), TrialState.COMPLETE, trial.params, {**attrs, **enqueued_marks(trial)},
                values, violations)
    return evaluation


def _training_attrs(evaluation, max_epochs: int) -> dict:
    """What an early-stopping search records of a training: the epoch reached, why it stopped,
    the CPU seconds it cost (its curve's last point) and when it ended (wall clock)."""
    curve = evaluation.attrs.get(rec.CURVE) or []
    if evaluation.stopped_at is not None:
        stopped, epochs = "pruned", evaluation.stopped_at
    elif evaluation.cached or not evaluation.ok:
        stopped, epochs = ("cached" if evaluation.cached else "failed"), int(curve[-1]["epoch"]) if curve else 0
    else:
        stopped, epochs = "completed", int(max_epochs)
    seconds = float(curve[-1].get("cpu_seconds", 0.0)) if curve else 0.0
    return {rec.EPOCHS_REACHED: int(epochs), rec.STOPPED: stopped, rec.TRAIN_SECONDS: seconds,
            rec.ENDED: time.time()}


def _abandon(study, trial) -> None:
    """An evaluation interrupted in this process (Ctrl-C, an error): mark it so its
    architecture is free for whoever resumes."""
    from optuna.trial import TrialState

    storage, trial_id = storage_of(study), trial_id_of(trial)
    try:
        if storage.get_trial(trial_id).state == TrialState.RUNNING:
            storage.set_trial_user_attr(trial_id, rec.INTERRUPTED, True)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
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

