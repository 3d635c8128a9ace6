"""Every use calnas makes of Optuna's private members, in one place.

Optuna's public API has no way to reach a study's storage and ids, to tell a trial without
copying it back, or to write several attributes in one transaction; calnas needs each of those
(the reason stands with each function). An Optuna upgrade that moves one of them touches this
file only: each use falls back to the public API, or says so, when the member is gone.

Checked on Optuna 5.0.0 (the venv's ``pip show optuna``); the fallbacks keep Optuna >= 3.5,
the lowest pyproject.toml allows, working where the private member differs.
"""

from __future__ import annotations


def storage_of(study):
    """The storage object of ``study``. Optuna keeps it as ``Study._storage`` and has no public
    accessor; calnas reads trials and writes attributes through it directly, without the deep
    copies ``Study.get_trials``/``Study.trials`` make (checked on 5.0.0)."""
    return study._storage


def study_id_of(study) -> int:
    """``Study._study_id``: the storage's id of the study, the key under which calnas keeps
    per-study state (records, sampler histories) and calls the storage (checked on 5.0.0)."""
    return study._study_id


def trial_id_of(trial) -> int:
    """``Trial._trial_id`` / ``FrozenTrial._trial_id``: the storage's id of a trial, which every
    storage call about one trial takes; Optuna exposes no public accessor (checked on 5.0.0)."""
    return trial._trial_id


def tell(study, trial, values=None, *, state=None) -> None:
    """``study.tell`` without the deep copy of the finished trial it returns, which calnas never
    reads: with a trial's metrics stored on it that copy was a sixth of a whole table search
    (0.25 ms a trial). Optuna's own ``optimize`` loop calls ``optuna.study._tell._tell_with_warning``
    (checked on 5.0.0); on an Optuna without it, the public method."""
    try:
        from optuna.study._tell import _tell_with_warning
    except ImportError:
        study.tell(trial, values, state=state)
        return
    _tell_with_warning(study, trial, values, state)


def rdb_set_user_attrs(storage, trial_id: int, attrs: dict) -> bool:
    """Several trial user attributes in one RDB transaction (one commit, one fsync for SQLite,
    instead of one per attribute), through the storage's own per-attribute helper
    ``RDBStorage._set_trial_attr_without_commit``, ``optuna.storages._rdb.models`` and
    ``_create_scoped_session`` (checked on 5.0.0). False when ``storage`` is no RDB storage or
    this Optuna lacks those members: the caller writes the attributes one by one."""
    backend = getattr(storage, "_backend", storage)  # a _CachedStorage wraps the RDB storage (Optuna < 4)
    write = getattr(backend, "_set_trial_attr_without_commit", None)
    scoped = getattr(backend, "scoped_session", None)
    if write is None or scoped is None:
        return False
    try:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session
    except ImportError:
        return False
    with _create_scoped_session(scoped, True) as session:
        for key, value in attrs.items():
            write(session, models.TrialUserAttributeModel, trial_id, key, value)
    return True


def journal_set_user_attrs(storage, trial_id: int, attrs: dict) -> bool:
    """Several trial user attributes in one append to a journal file (one lock, one write),
    as the log records Optuna itself writes: ``JournalOperation`` from
    ``optuna.storages.journal._storage`` and ``JournalStorage``'s ``_thread_lock``,
    ``_replay_result``, ``_backend`` and ``_sync_with_backend`` (checked on 5.0.0). False when
    ``storage`` is no journal storage or this Optuna lacks those members."""
    from optuna.storages import JournalStorage

    if not isinstance(storage, JournalStorage):
        return False
    try:
        from optuna.storages.journal._storage import JournalOperation

        lock, replay, backend = storage._thread_lock, storage._replay_result, storage._backend
    except (ImportError, AttributeError):
        return False
    with lock:
        backend.append_logs([{"op_code": JournalOperation.SET_TRIAL_USER_ATTR, "worker_id": replay.worker_id,
                              "trial_id": trial_id, "user_attr": {key: value}} for key, value in attrs.items()])
        storage._sync_with_backend()
    return True


def process_constraints_after_trial(constraints_func, study, trial, state) -> None:
    """An Optuna without ``Trial.set_constraint`` (before 5) stores constraint values through
    ``optuna.samplers._base._process_constraints_after_trial``, which its own samplers call in
    ``after_trial``; calnas's samplers do the same, so those values are where Optuna's samplers
    and ``best_trials`` look (not called on 5.0.0, which has ``set_constraint``)."""
    from optuna.samplers._base import _process_constraints_after_trial

    _process_constraints_after_trial(constraints_func, study, trial, state)
