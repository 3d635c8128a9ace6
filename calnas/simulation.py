"""Search on a curve table as if it were trained: asynchronous workers on a simulated clock.

A live search pays for training; a curve table (:mod:`calnas.curve_table`) records what each
training would have cost to each epoch (``cpu_seconds``) and what it would have shown there.
:func:`simulate` replays it: ``workers`` simulated workers each take a proposal from the searcher
when they fall free, "train" it rung by rung (a lookup at that epoch, charged the table's
measured seconds from the previous rung), and, with early stopping, ask the pruner
(:class:`calnas.pruners.MultiObjectiveSuccessiveHalving`) at every rung whether to go on. Events
are processed in simulated time (ties: the lower worker), so a proposal sees exactly the results
finished before it was made, as on a real cluster (Syne Tune's simulator backend works the same
way), and the run is deterministic for a seed. Full-fidelity searches (``early_stopping="none"``)
are simulated the same way, so the two compare at equal compute.

Values are the table's seed means (the final-epoch view every search reads; a rung's vector is
the seed mean at that epoch), so a simulated search and a table search see the same numbers.

Every trial records ``calnas:epochs`` (the epoch its training reached), ``calnas:stopped``
(``pruned`` or ``completed``), ``calnas:train_seconds`` (what it was charged) and
``calnas:sim_end`` (the simulated time it ended); the study records the totals.
"""

from __future__ import annotations

import heapq

import numpy as np

from calnas import record as rec
from calnas.fidelity import DEFAULT_RUNG_METRIC, EARLY_STOPPING, Fidelity  # noqa: F401 - public names here too
from calnas.optuna_compat import tell, trial_id_of

EPOCHS_ATTR, STOPPED_ATTR, SECONDS_ATTR, END_ATTR = rec.EPOCHS_REACHED, rec.STOPPED, rec.TRAIN_SECONDS, rec.ENDED
TOTALS_ATTR = "calnas_simulation"


def simulate(study, evaluator, curves, spec, *, searcher: str, seed: int, budget: int, fidelity: Fidelity):
    """Run the simulated search into ``study`` (see the module docstring); returns the record."""
    from optuna.trial import TrialState

    from calnas import searchers
    from calnas.constraints import constraints_func, store_constraints
    from calnas.evaluators import objective_values
    from calnas.searchers.domain import Domain
    from calnas.worker_loop import fallback_position

    candidates = evaluator.candidates()
    domain = Domain(candidates.space, candidates.archs, candidates.indices, candidates.keys, candidates.classes)
    record = rec.record_for(study, domain)
    study.sampler = searchers.make(searcher, domain, seed=seed, constraints_func=constraints_func(bool(spec.constraints)))
    constraint_names = [c.text for c in spec.constraints]
    pruner = fidelity.pruner(curves.last_epoch, curves.epochs) if fidelity.early_stopping != "none" else None
    last = curves.last_epoch
    seconds = {e: curves.column_at("cpu_seconds", e) for e in curves.epochs}
    rung_values = {} if pruner is None else {e: np.column_stack([curves.column_at(m, e) for m in fidelity.rung_metric])
                                             for e in pruner.all_rungs()}
    row_of = {int(i): r for r, i in enumerate(seconds[last].index)}
    totals = study.user_attrs.get(TOTALS_ATTR) or {"epochs_trained": 0, "train_seconds": 0.0, "clock": 0.0}
    streak = 0

    def cost(index: int, epoch: int) -> float:
        return float(seconds[epoch].iloc[row_of[index]])

    def finish(trial, mark, value=True):
        trial.set_user_attr(mark, value)
        tell(study, trial, state=TrialState.FAIL)
        record.told(trial.number, trial_id_of(trial), TrialState.FAIL, trial.params, {mark: value})

    def start():
        """A new trial with a fresh architecture (the worker loop's duplicate rule), or None."""
        nonlocal streak
        record.update()
        while record.n_done + len(record.running_holders()) < min(budget, domain.n_keys):
            fallback = fallback_position(domain, record, seed, record.n_done, streak)
            if fallback is not None:
                study.enqueue_trial(domain.params(fallback), user_attrs={rec.FALLBACK: True})
                streak = 0
            trial = study.ask(domain.distributions)
            position = domain.position_of_params(trial.params)
            if position is None:
                finish(trial, rec.NOT_IN_TABLE)
                streak += 1
                continue
            holder = record.holder_before(trial.number, domain.key(position))
            if holder is not None:
                finish(trial, rec.REPEAT_OF, holder)
                streak += 1
                continue
            streak = 0
            record.update()
            return trial, position, curves.held_index(int(candidates.indices[position]))
        return None

    def schedule(heap, clock, worker, job, rungs, k):
        trial, position, index = job
        previous = rungs[k - 1] if k else 0
        step = cost(index, rungs[k]) - (cost(index, previous) if previous else 0.0)
        heapq.heappush(heap, (clock + step, worker, job, rungs, k, step, rungs[k] - previous))

    heap = []
    clock = float(totals["clock"])
    for worker in range(fidelity.workers):
        job = start()
        if job is None:
            break
        rungs = (*pruner.rungs(job[0].number), last) if pruner is not None else (last,)
        schedule(heap, clock, worker, job, rungs, 0)
    while heap:
        clock, worker, job, rungs, k, step, epochs = heapq.heappop(heap)
        trial, position, index = job
        totals["epochs_trained"] += epochs
        totals["train_seconds"] += step
        epoch = rungs[k]
        over = fidelity.budget_epochs is not None and totals["epochs_trained"] >= fidelity.budget_epochs
        if epoch < last and not pruner.report(trial, epoch, list(rung_values[epoch][row_of[index]])):
            if over:  # the compute budget ends this training where it stands: nothing to show for it
                _close(study, record, trial, position, epoch, "budget", clock, cost(index, epoch),
                       state=TrialState.PRUNED)
                continue
            schedule(heap, clock, worker, job, rungs, k + 1)
            continue
        if epoch < last:
            _close(study, record, trial, position, epoch, "pruned", clock, cost(index, epoch), state=TrialState.PRUNED)
        else:
            (evaluation,) = evaluator.evaluate([position])
            values, raw = objective_values(spec, evaluation.metrics)
            trial.set_user_attr(rec.ARCH, candidates.archs[position])
            trial.set_user_attr(rec.INDEX, int(candidates.indices[position]))
            trial.set_user_attr(rec.METRICS, evaluation.metrics)
            violations = ()
            if spec.constraints:
                violations = [float(c.violation(np.asarray([r]))[0]) for c, r in zip(spec.constraints, raw)]
                store_constraints(trial, constraint_names, violations)
            _close(study, record, trial, position, epoch, "completed", clock, cost(index, epoch), values=values,
                   violations=violations)
        if over:
            continue
        job = start()
        if job is not None:
            rungs = (*pruner.rungs(job[0].number), last) if pruner is not None else (last,)
            schedule(heap, clock, worker, job, rungs, 0)
    totals["clock"] = clock
    study.set_user_attr(TOTALS_ATTR, totals)
    return record


def _close(study, record, trial, position, epoch, stopped, clock, seconds, *, values=None, violations=(),
           state=None):
    from optuna.trial import TrialState

    attrs = {EPOCHS_ATTR: int(epoch), STOPPED_ATTR: stopped, END_ATTR: float(clock), SECONDS_ATTR: float(seconds)}
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    if values is None:
        tell(study, trial, state=state)
        record.told(trial.number, trial_id_of(trial), state, trial.params, attrs)
    else:
        tell(study, trial, values)
        record.told(trial.number, trial_id_of(trial), TrialState.COMPLETE, trial.params, attrs, values, violations)


def simulation_columns(study, entries, spec, lower, upper, reference) -> tuple[dict, dict] | None:
    """(trials.csv columns, summary block) of a simulated search or a live early-stopping one
    (``sim_end`` is then wall-clock seconds since the study's first trial started, and the block
    has ``wall_clock`` for ``simulated_clock``), None for any other study.

    Columns per trial (in the trials' order): ``epochs`` (the epoch its training reached),
    ``stopped`` (pruned / completed / budget), ``train_seconds`` (what it was charged),
    ``sim_end`` (the simulated time it ended), ``train_seconds_total`` (all trials' charges up to
    then) and ``hypervolume_at_end`` (the front of the trials completed by then, scaled like the
    summary's), so hypervolume reads against simulated wall clock and against training seconds."""
    from calnas import pareto
    from calnas.constraints import total_violation

    totals = study.user_attrs.get(TOTALS_ATTR)
    fidelity = (study.user_attrs.get(rec.RUN_ATTR) or {}).get("fidelity")
    if totals is None and not fidelity:
        return None
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    attrs = [trials[e.number].user_attrs if e.number in trials else {} for e in entries]
    end = np.asarray([a.get(END_ATTR, np.nan) for a in attrs], dtype=float)
    live = totals is None  # a live early-stopping search: trials record real time and seconds
    if live:
        starts = [t.datetime_start.timestamp() for t in trials.values() if t.datetime_start is not None]
        end = end - (min(starts) if starts else 0.0)  # seconds since the study's first trial started
        totals = {"epochs_trained": int(sum(int(a.get(EPOCHS_ATTR) or 0) for a in attrs)),
                  "train_seconds": float(sum(float(a.get(SECONDS_ATTR) or 0.0) for a in attrs)),
                  "clock": float(np.nanmax(end)) if np.isfinite(end).any() else 0.0}
    charged = np.asarray([a.get(SECONDS_ATTR, 0.0) for a in attrs], dtype=float)
    order = np.argsort(end, kind="stable")
    k = len(spec.objectives)
    values = np.asarray([e.values if e.values is not None else [np.nan] * k for e in entries], dtype=float).reshape(-1, k)
    points = pareto.normalise(pareto.as_minimisation(values, spec.directions), lower, upper)
    violation = (np.asarray([total_violation(e.constraints) for e in entries], dtype=float)
                 if spec.constraints else None)
    anytime = pareto.anytime_hypervolume(points[order], None if violation is None else violation[order], reference)
    hv_at_end, total_at_end = np.empty(len(entries)), np.empty(len(entries))
    hv_at_end[order], total_at_end[order] = anytime, np.cumsum(charged[order])
    stopped = [a.get(STOPPED_ATTR, "") for a in attrs]
    columns = {"epochs": [a.get(EPOCHS_ATTR) for a in attrs], "stopped": stopped, "train_seconds": charged,
               "sim_end": end, "train_seconds_total": total_at_end, "hypervolume_at_end": hv_at_end}
    reached = [a.get(EPOCHS_ATTR) for a in attrs if a.get(EPOCHS_ATTR) is not None]
    summary = {"epochs_trained": int(totals["epochs_trained"]), "train_seconds": float(totals["train_seconds"]),
               ("wall_clock" if live else "simulated_clock"): float(totals["clock"]),
               "rung_histogram": {str(e): reached.count(e) for e in sorted(set(reached))},
               "stopped": {s: stopped.count(s) for s in sorted(set(stopped)) if s}}
    summary.update(fidelity or {})
    return columns, summary
