"""The Optuna study as the only record of a search.

Every proposal is one trial; what it became is read from the trial itself:

==========================================  ===========================================  ========
trial                                       meaning                                      budget
==========================================  ===========================================  ========
COMPLETE                                    an evaluation: params = the architecture,   1
                                            values = objectives, user attrs ``arch``,
                                            ``index``, ``metrics`` (every column the
                                            evaluator returned); ``calnas_seconds``
                                            (time it took, live), ``calnas_cached``
                                            (answered from a stored table row)
COMPLETE + ``calnas_repeat_of``             a proposal of something already evaluated,   0
                                            answered with the first evaluation's values
FAIL + ``calnas_failure``                   an evaluation that failed (reason kept);     1
                                            never on the front, never retried
FAIL + ``calnas_taken_by``                  proposed while another trial (another        0
                                            worker) was evaluating the same architecture
FAIL + ``calnas_not_in_table``              the evaluator cannot evaluate it             0
FAIL + ``calnas_infeasible``                a live search's proposal that fails a        0
                                            constraint known before training (params,
                                            FLOPs): answered without training
FAIL + ``calnas_over_budget``               claimed after the budget was taken           0
FAIL, none of these                         interrupted (its worker died); the           0
                                            architecture is free again
RUNNING                                     being evaluated (heartbeat in the system     -
                                            attr ``calnas:heartbeat``)
==========================================  ===========================================  ========

Who evaluates an architecture: the *holder* of its dedupe key is the lowest-numbered trial with
that key that is RUNNING, COMPLETE (not a repeat) or a failed evaluation. A worker whose trial is
not the holder does not evaluate. Trial numbers come from the storage, so this needs no lock of
calnas's own; a worker only waits while a lower-numbered trial is still being created (its
parameters not all written yet), which takes milliseconds.

A RUNNING trial whose heartbeat (or, before its first beat, its start) is older than the
evaluator's ``stale_after`` seconds belongs to a dead worker: any worker marks it FAIL, which frees its
architecture for exactly one new evaluation. The heartbeat is calnas's own (a trial system
attribute written every ``heartbeat_interval`` seconds) because Optuna's journal storage has
none; it works the same on every storage.

:class:`StudyRecord` reads a study incrementally: each :meth:`~StudyRecord.update` looks only at
trials it has not seen finished, so a proposal costs the same at trial 10 as at trial 10,000.
"""

from __future__ import annotations

import bisect
import functools
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime
import numpy as np
from optuna.trial import TrialState

from calnas.constraints import trial_constraints
from calnas.optuna_compat import storage_of, study_id_of, trial_id_of

ARCH = "arch"
INDEX = "index"
METRICS = "metrics"
REPEAT_OF = "calnas_repeat_of"
FAILURE = "calnas_failure"
PRUNED_FAILURE = "pruned"  # an early-stopped training's entry: taken, no final values
MAX_DROPPED_WRITES = 10_000  # a bound on _read_trials' retries: each consumes one dropped write
TAKEN_BY = "calnas_taken_by"
NOT_IN_TABLE = "calnas_not_in_table"
INFEASIBLE = "calnas_infeasible"
SECONDS = "calnas_seconds"
CACHED = "calnas_cached"
RELIABILITY = "calnas_reliability"  # a live evaluation's reliability-diagram data ({"pre": ..., "post": ...})
OVER_BUDGET = "calnas_over_budget"
FALLBACK = "calnas_fallback"
STREAM = "calnas_stream"
INTERRUPTED = "calnas_interrupted"
HEARTBEAT = "calnas:heartbeat"
OWNER = "calnas:owner"  # system attr: the machine and process evaluating a trial (see owner_gone)
OWNER_PREFIX = "calnas:worker:"  # study system attrs: the processes that worked on the study
STUDY_ATTR = "calnas"  # study user attr: what was searched (objectives, space, table, ...)
RUN_ATTR = "calnas_run"  # study user attr: the last run's searcher, seed, budget
RUNS_ATTR = "calnas_runs"  # study user attr: every run's settings, workers and evaluations held at its start
EXHAUSTED_ATTR = "calnas_exhausted"  # study user attr: every candidate was evaluated

_FREE_MARKS = (TAKEN_BY, NOT_IN_TABLE, INFEASIBLE, OVER_BUDGET)
# A multi-fidelity trial's training (simulated, calnas.simulation, or live with early stopping):
# the epoch it reached, why it stopped (pruned / completed / budget / cached), the training
# seconds it was charged, when it ended (the simulated clock; live: wall-clock seconds since the
# epoch) and, live, its learning curve (the points at the rungs and the geometric epochs).
EPOCHS_REACHED, STOPPED, TRAIN_SECONDS, ENDED, CURVE = ("calnas:epochs", "calnas:stopped", "calnas:train_seconds",
                                                        "calnas:sim_end", "calnas:curve")


@dataclass
class Entry:
    """One finished evaluation (or failed evaluation) of the study."""

    number: int
    position: int
    key: int
    values: tuple[float, ...] | None  # objectives in the user's directions; None when failed
    metrics: dict
    constraints: tuple[float, ...]  # violation amounts as stored on the trial (<= 0 satisfied)
    failure: str | None = None
    arch: str = ""
    index: int = -1
    seconds: float | None = None  # evaluation time (live); None for lookups
    cached: bool = False


@dataclass
class Counts:
    asked: int = 0  # every finished proposal except interrupted ones
    repeats: int = 0
    taken: int = 0
    not_in_table: int = 0
    infeasible: int = 0
    over_budget: int = 0
    interrupted: int = 0
    fallbacks: int = 0
    foreign: int = 0  # finished trials calnas did not write (added by plain Optuna, or edited)


@dataclass
class _Pending:
    number: int
    trial_id: int


class StudyRecord:
    """Incremental view of a study's trials, in the positions and dedupe keys of a
    :class:`~calnas.searchers.domain.Domain`."""

    def __init__(self, study, domain, *, stale_after: float = 4.0):
        self.study, self.domain = study, domain
        self.stale_after = stale_after
        # Set by workers that register their process (live searches, see owner_gone): a trial
        # with no owner yet is dead once every registered process of this machine is.
        self.owners = False
        self._storage, self._study_id = storage_of(study), study_id_of(study)
        self._n_params = len(domain.distributions)
        self._position_of, self._key_of = domain.position_of_params, domain.key
        self.entries: list[Entry] = []  # in the order they were found finished
        self.holders: dict[int, int] = {}  # key -> number of the finished holder (evaluated or failed)
        self._holder_numbers: list[int] = []  # the same numbers, sorted
        self._done_mask = domain.mask((), of="keys")  # the same keys, as a mask indexed by key
        self.by_number: dict[int, Entry] = {}
        self.counts = Counts()
        self._next = 0  # first trial number never looked at
        self._pending: dict[int, int] = {}  # unfinished trial number -> trial id
        self.running: dict[int, int] = {}  # unfinished number with complete params -> key
        self._running_positions: dict[int, int] = {}
        self.unparametrised: set[int] = set()  # unfinished numbers whose params are incomplete
        self._trials: list = []
        self.mine: set[int] = set()  # trial numbers this process is working on
        # Set by the search driver while its own view is current (it has just read the study
        # and folds in what it tells itself): a sampler's update() inside ask then costs nothing.
        self.reuse = False
        self._told: set[int] = set()  # finished here, not read back yet
        self.foreign = 0  # observations of other processes' trials (0: this process is alone)
        # Set by whoever knows the objectives: metrics -> the objective values calnas would
        # tell for them. A trial read back whose values differ was not told by calnas.
        self.values_of = None

    # -- reading ----------------------------------------------------------------------------------
    def _read_trials(self):
        """Every trial of the study. A journal storage replays this process's own writes to a
        trial another worker has meanwhile failed as stale (its owner silent past stale_after on an
        overloaded machine) by raising UpdateFinishedTrialError once per such write, having
        consumed it; reading again goes on past it, so the writes are simply dropped."""
        from optuna.exceptions import UpdateFinishedTrialError

        for _ in range(MAX_DROPPED_WRITES):
            try:
                return self._storage.get_all_trials(self._study_id, deepcopy=False)
            except UpdateFinishedTrialError:
                continue
        return self._storage.get_all_trials(self._study_id, deepcopy=False)

    def update(self) -> "StudyRecord":
        if self.reuse:
            return self
        trials = self._read_trials()
        self._trials = trials
        for number in sorted(self._pending):
            self._look(trials[number])
        for number in range(self._next, len(trials)):
            self._look(trials[number])
        self._next = len(trials)
        return self

    def trial(self, number: int):
        return self._trials[number]

    def _look(self, trial) -> None:
        number = trial.number
        if number in self._told:
            self._told.discard(number)  # folded in by told() already
            return
        state = trial.state
        if number not in self.mine:
            self.foreign += 1
        if not state.is_finished():
            self._pending[number] = trial_id_of(trial)
            if state == TrialState.RUNNING and len(trial.params) >= self._n_params:
                position = self._position_of(trial.params)
                self.unparametrised.discard(number)
                if position is None:
                    self.running.pop(number, None)
                else:
                    self.running[number] = self._key_of(position)
                    self._running_positions[number] = position
            elif state == TrialState.RUNNING:
                self.unparametrised.add(number)
            return
        self._pending.pop(number, None)
        self.running.pop(number, None)
        self._running_positions.pop(number, None)
        self.unparametrised.discard(number)
        self._finish(trial)

    def told(self, number: int, trial_id: int, state: TrialState, params: dict, user_attrs: dict,
             values=None, constraints=()) -> None:
        """Fold in a trial this process has just finished, without reading the storage."""
        if number >= self._next:
            self._told.add(number)
        self._pending.pop(number, None)
        self.running.pop(number, None)
        self._running_positions.pop(number, None)
        self.unparametrised.discard(number)
        self._finish(_Told(number, trial_id, state, params, user_attrs, values, tuple(constraints)))

    def _finish(self, trial) -> None:
        attrs, counts = trial.user_attrs, self.counts
        if trial.state == TrialState.FAIL and not any(k in attrs for k in (FAILURE, REPEAT_OF, *_FREE_MARKS)):
            counts.interrupted += 1
            return
        counts.asked += 1
        counts.fallbacks += FALLBACK in attrs
        if REPEAT_OF in attrs:
            counts.repeats += 1
            return
        for mark in _FREE_MARKS:
            if mark in attrs:
                setattr(counts, _COUNTER[mark], getattr(counts, _COUNTER[mark]) + 1)
                return
        if trial.state not in (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED):
            return
        position = self._position_of(trial.params)
        if position is None:
            return
        if not isinstance(trial, _Told) and not self._written_by_calnas(trial):
            # Not an evaluation of calnas's: never counted, never on the front, never a holder
            # (the architecture stays free for an evaluation of calnas's own).
            counts.asked -= 1
            counts.fallbacks -= FALLBACK in attrs
            counts.foreign += 1
            return
        key = self._key_of(position)
        # A pruned training (early stopping) took its architecture and has no final values: like
        # a failed evaluation, it is taken and teaches the searcher nothing.
        failure = attrs.get(FAILURE) or (PRUNED_FAILURE if trial.state == TrialState.PRUNED else None)
        values = None if failure is not None else tuple(trial.values)
        constraints = tuple(_constraint_values(trial))
        domain = self.domain
        entry = Entry(trial.number, position, key, values, dict(attrs.get(METRICS) or {}), constraints, failure,
                      attrs.get(ARCH, domain.archs[position]), int(attrs.get(INDEX, domain.indices[position])),
                      attrs.get(SECONDS), bool(attrs.get(CACHED, False)))
        self.entries.append(entry)
        self.by_number[trial.number] = entry
        # Two finished holders of one key can only come from a storage written without calnas's
        # claim rule; the lower number stays the holder.
        previous = self.holders.get(key)
        if previous is None or trial.number < previous:
            if previous is not None:
                self._holder_numbers.remove(previous)
            self.holders[key] = trial.number
            bisect.insort(self._holder_numbers, trial.number)
            if key < len(self._done_mask):
                self._done_mask[key] = True

    def _written_by_calnas(self, trial) -> bool:
        """Whether a finished trial read from the storage is an evaluation calnas recorded: a
        COMPLETE or failed one carries its metrics (a mapping) and,
        when :attr:`values_of` is set, the values those metrics give; a pruned one (an early
        stop, simulated or live) says where it stopped."""
        attrs = trial.user_attrs
        if trial.state == TrialState.PRUNED:
            return STOPPED in attrs
        if not isinstance(attrs.get(METRICS), dict):
            return False
        if trial.state != TrialState.COMPLETE or attrs.get(FAILURE) is not None:
            return True
        if self.values_of is None:
            return True
        try:
            expected = np.asarray(self.values_of(attrs[METRICS]), dtype=float)
        except Exception:  # noqa: BLE001 - metrics that do not give the objectives at all
            return False
        stored = np.asarray(trial.values if trial.values is not None else (), dtype=float)
        return expected.shape == stored.shape and bool(np.allclose(expected, stored, rtol=1e-9, atol=1e-12))

    # -- questions the driver and the samplers ask -----------------------------------------------
    @property
    def n_done(self) -> int:
        """Distinct architectures (keys) evaluated, failed evaluations included."""
        return len(self.holders)

    def running_holders(self, exclude: int | None = None) -> dict[int, int]:
        """key -> lowest running trial number, for keys nobody has finished."""
        out: dict[int, int] = {}
        for number, key in self.running.items():
            if number == exclude or key in self.holders:
                continue
            if key not in out or number < out[key]:
                out[key] = number
        return out

    def taken_keys(self) -> np.ndarray:
        """Evaluated or running keys, as a mask indexed by key."""
        mask = self._done_mask.copy()
        running = [k for k in self.running_holders() if k < len(mask)]
        mask[running] = True
        return mask

    def holder_before(self, number: int, key: int) -> int | None:
        """The holder of ``key`` among trials numbered below ``number`` (None: ``number`` holds it)."""
        best = self.holders.get(key)
        if best is not None and best > number:
            best = None
        for other, other_key in self.running.items():
            if other_key == key and other < number and (best is None or other < best):
                best = other
        return best

    def holders_below(self, number: int) -> int:
        """How many distinct keys are held by trials numbered below ``number``."""
        finished = bisect.bisect_left(self._holder_numbers, number)
        holders = self.holders
        running = {k for n, k in self.running.items()
                   if n < number and not (k in holders and holders[k] < number)}
        return finished + len(running)

    def position_of_number(self, number: int) -> int | None:
        """Candidate position of a running or evaluated trial."""
        if number in self._running_positions:
            return self._running_positions[number]
        entry = self.by_number.get(number)
        return None if entry is None else entry.position

    def creating_below(self, number: int) -> list[int]:
        """Lower-numbered trials still being created (their params not all written)."""
        return [n for n in self.unparametrised if n < number]

    def ordered(self) -> list[Entry]:
        """Evaluations in trial-number order (the evaluation order of the results)."""
        return sorted(self.entries, key=lambda e: e.number)

    # -- dead workers -------------------------------------------------------------------------------
    def fail_stale(self, now: float | None = None) -> int:
        """Mark FAIL every unfinished trial of another process whose heartbeat is too old."""
        if not self._pending:
            return 0
        now = time.time() if now is None else now
        failed = 0
        for number, trial_id in list(self._pending.items()):
            if number in self.mine:
                continue
            trial = self._trials[number] if number < len(self._trials) else None
            if trial is None or trial.state != TrialState.RUNNING:
                continue
            if now - last_sign_of_life(trial) <= self.stale_after and not self._dead(trial):
                continue
            try:
                self._storage.set_trial_user_attr(trial_id, INTERRUPTED, True)
                if self._storage.set_trial_state_values(trial_id, TrialState.FAIL):
                    failed += 1
            except Exception:  # noqa: BLE001 - finished meanwhile (its worker was alive after all)
                continue
        if failed:
            self.update()
        return failed

    def register_owner(self) -> None:
        """Record this process among the study's workers (a study system attribute)."""
        self.owners = True
        self._storage.set_study_system_attr(self._study_id, OWNER_PREFIX + owner_tag(), time.time())

    def _dead(self, trial) -> bool:
        if owner_gone(trial):
            return True
        if not self.owners or OWNER in trial.system_attrs:
            return False
        # No owner yet: the trial is being created (Optuna's ask writes its parameters one by
        # one while the sampler works). Its creator registered before creating it; when every
        # other registered process is known dead, so is the trial.
        me = owner_tag()
        others = [key[len(OWNER_PREFIX):] for key in self._storage.get_study_system_attrs(self._study_id)
                  if key.startswith(OWNER_PREFIX) and key[len(OWNER_PREFIX):] != me]
        return bool(others) and all(tag_gone(tag) for tag in others)

    def oldest_silence(self, now: float | None = None) -> float | None:
        """Seconds since the quietest unfinished trial of another process last showed life."""
        now = time.time() if now is None else now
        ages = [now - last_sign_of_life(self._trials[n]) for n in self._pending
                if n not in self.mine and n < len(self._trials) and self._trials[n].state == TrialState.RUNNING]
        return max(ages) if ages else None


@dataclass
class _Told:
    """What ``_finish`` reads of a trial, for one this process finished itself."""

    number: int
    _trial_id: int
    state: TrialState
    params: dict
    user_attrs: dict
    values: object
    constraints: tuple


_COUNTER = {TAKEN_BY: "taken", NOT_IN_TABLE: "not_in_table", INFEASIBLE: "infeasible", OVER_BUDGET: "over_budget"}


def owner_tag() -> str:
    """This process as ``machine:pid``; the machine is the host name plus, on Linux, the boot id,
    so processes of two machines (or of one machine before and after a reboot) never share one."""
    import os

    return f"{_machine()}:{os.getpid()}"


@functools.lru_cache(maxsize=1)
def _machine() -> str:
    import socket

    machine = socket.gethostname()
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            machine += "/" + fh.read().strip()
    except OSError:
        pass
    return machine


def owner_gone(trial) -> bool:
    """True when the process evaluating ``trial`` is known to be dead: it ran on this machine and
    its pid no longer exists. A live evaluation's staleness takes a minute to show (its heartbeat
    is slow); a search resumed on the machine where the killed one ran need not wait for it.
    Anything uncertain (another machine, no owner recorded, a pid in use again) leaves the
    decision to the heartbeat."""
    tag = trial.system_attrs.get(OWNER)
    return bool(tag) and tag_gone(str(tag))


def tag_gone(tag: str) -> bool:
    """True when the process ``tag`` (:func:`owner_tag`) ran on this machine and no longer exists."""
    import os

    machine, _, pid = tag.rpartition(":")
    if machine != _machine() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists but is not ours to signal
        return False
    return False


def last_sign_of_life(trial) -> float:
    beat = trial.system_attrs.get(HEARTBEAT)
    if beat is not None:
        return float(beat)
    start = trial.datetime_start
    return start.timestamp() if isinstance(start, datetime) else time.time()


def _constraint_values(trial) -> list[float]:
    if isinstance(trial, _Told):
        return list(trial.constraints)
    return trial_constraints(trial)


# (storage object, study id) -> the record of that study in this process, shared by the search
# driver and calnas's samplers so the study is read once per proposal.
_RECORDS: "weakref.WeakKeyDictionary[object, dict[int, StudyRecord]]" = weakref.WeakKeyDictionary()


def record_for(study, domain, **options) -> StudyRecord:
    """This process's record of ``study`` (created on first use, e.g. by a sampler used in a
    plain Optuna study)."""
    study_id = study_id_of(study)
    per_storage = _RECORDS.setdefault(storage_of(study), {})
    record = per_storage.get(study_id)
    if record is None or record.domain is not domain:
        record = per_storage[study_id] = StudyRecord(study, domain, **options)
    return record


@dataclass
class Heartbeat:
    """Writes the trial's heartbeat every ``interval`` seconds while its evaluation runs."""

    storage: object
    trial_id: int
    interval: float
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self):
        self.storage.set_trial_system_attr(self.trial_id, OWNER, owner_tag())
        self._thread = threading.Thread(target=self._run, name="calnas-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.storage.set_trial_system_attr(self.trial_id, HEARTBEAT, time.time())
            except Exception:  # noqa: BLE001 - the trial was finished (or failed as stale) meanwhile
                return

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return False


def runs_of(attrs: dict) -> list[dict]:
    """Every run's settings recorded in a study's user attributes, oldest first. A study from
    before the list was kept has its last run's settings only (``held`` unknown: None)."""
    runs = attrs.get(RUNS_ATTR)
    if isinstance(runs, list) and all(isinstance(r, dict) for r in runs):
        return list(runs)
    last = attrs.get(RUN_ATTR)
    return [{**last, "held": None}] if isinstance(last, dict) else []
