"""A search's Optuna study: what it searches (its identity), and refusing to continue another.

A study is created with a description of the search (evaluator kind, benchmark, space, dataset,
dedupe, objectives, constraints, the evaluator's protocol) and, when the evaluator knows it,
the true front; a later search continues the study only when its description is the same.
"""

from __future__ import annotations

import warnings

from calnas import record as rec
from calnas.errors import UserError
from calnas.evaluators import Evaluator
from calnas.plain import jsonable

DEFAULT_STUDY = "calnas"
SCHEMA = 1  # version of what calnas stores in a study
_IDENTITY = ("evaluator", "benchmark", "space", "dataset", "dedupe", "objectives", "constraints", "protocol")
# Studies stored before the description named the evaluator's missing mark: the kinds whose
# out-of-candidates proposals were marked otherwise than NOT_IN_TABLE.
_MISSING_MARK_BEFORE = {"live": rec.INFEASIBLE}


def description(spec, evaluator: Evaluator) -> dict:
    """What a study searches; a study continues only with the same description."""
    return {
        "schema": SCHEMA,
        "evaluator": evaluator.kind,
        "benchmark": evaluator.name,
        "space": evaluator.space.name,
        "dataset": evaluator.dataset,
        "dedupe": evaluator.dedupe,
        "objectives": [o.describe() for o in spec.objectives],
        "constraints": [c.describe() for c in spec.constraints],
        "protocol": evaluator.protocol,
    }


def missing_mark(stored: dict) -> str:
    """The mark the study's evaluator gives a proposal outside its candidates."""
    return stored.get("missing_mark") or _MISSING_MARK_BEFORE.get(stored.get("evaluator"), rec.NOT_IN_TABLE)


def open_study(storage_url, study_name, spec, evaluator: Evaluator, *, refuse=None):
    """Create the study, or load it and check it searches the same thing. ``refuse(study,
    stored)`` (``stored``: the study's description, None for a study calnas has not written
    to) may raise a :class:`UserError` of the caller's own; it runs after these checks and
    before anything is written, so a study it refuses is left as it was."""
    from optuna.exceptions import ExperimentalWarning

    from calnas.storage import holds_nothing, open_storage, ready_to_write

    name = DEFAULT_STUDY if study_name is None else str(study_name)
    if not name.strip():
        raise UserError("study_name must not be empty")
    # The files the evaluator will write are checked before the storage is made or written: a
    # run refused for one of them leaves no storage file and no study behind.
    new = holds_nothing(storage_url)
    if new:
        evaluator.check_outputs(None)
    storage = open_storage(storage_url, defer_writes=True)
    described = description(spec, evaluator)
    study, created = _load_or_create(storage, name, spec.directions, storage_url,
                                     before_create=None if new else lambda: evaluator.check_outputs(None))
    if not created:
        evaluator.check_outputs(study)
    # Read only so far for an existing study: everything that could refuse it is checked before
    # calnas writes its first attribute to it.
    stored = stored_description(study, storage_url)
    if stored is None:
        if study.get_trials(deepcopy=False):
            raise UserError(f"study {name!r} in {storage_url} was not made by calnas; choose another study_name")
    else:
        # The stored protocol as this version records it (the evaluator knows what its protocol's
        # settings were before they existed), so an older study continues under its defaults.
        now = {**stored, "protocol": evaluator.recorded_protocol(stored.get("protocol"))}
        check_same_search(now, described, name, storage_url)
    _check_directions(study, spec, name, storage_url)
    if refuse is not None:
        refuse(study, stored)
    ready_to_write(storage)
    if stored is None:
        front = front_record(evaluator, spec)
        reference = evaluator.own_reference(spec) if front is None else None
        study.set_user_attr(rec.STUDY_ATTR, {**described, "front": front, "reference": reference,
                                             "notes": evaluator.notes(), "missing_mark": evaluator.missing_mark})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            study.set_metric_names([o.name for o in spec.objectives])
    return study


def _load_or_create(storage, name: str, directions, url, before_create=None):
    """(the study ``name`` in ``storage``, whether this call created it): loaded when it exists
    (reading only), else created after ``before_create()``. ``create_study(load_if_exists=True)``
    is not used for an existing study because a journal storage appends a "create study" line
    before it finds the name taken, so a study refused afterwards would no longer be the file it
    was."""
    import optuna

    try:
        try:
            storage.get_study_id_from_name(name)
        except KeyError:
            if before_create is not None:
                before_create()
            # Another process may create it meanwhile: load_if_exists takes that one.
            return optuna.create_study(storage=storage, study_name=name, directions=directions,
                                       load_if_exists=True), True
        return optuna.load_study(study_name=name, storage=storage), False
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - storage errors (locked file, lost connection) are the user's to fix
        from calnas.storage import full_disk, no_space_to_create

        reason = full_disk(exc)
        if reason is not None:  # the study's first line or row was not written: nothing to resume
            raise no_space_to_create(url, reason, study=name) from None
        raise UserError(f"cannot open study {name!r} in {url} ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160] if str(exc) else ''})") from None


# What every stored description holds; a study's `calnas` attribute without them was not
# written by calnas (or was edited), and nothing can be rebuilt from it.
_REQUIRED = ("evaluator", "benchmark", "space", "dedupe", "objectives", "constraints")


def stored_description(study, url=None) -> dict | None:
    """The study's ``calnas`` attribute (None: a study calnas has not written to), checked to be
    the mapping calnas writes; anything else is a study calnas cannot continue or show."""
    stored = study.user_attrs.get(rec.STUDY_ATTR)
    if stored is None:
        return None
    where = f"study {study.study_name!r}" + (f" in {url}" if url is not None else "")
    if not isinstance(stored, dict):
        raise UserError(f"{where} has a 'calnas' attribute that is a {type(stored).__name__}, not the mapping "
                        "calnas writes; it was not made by calnas: choose another study_name")
    missing = [key for key in _REQUIRED if key not in stored]
    if missing or not isinstance(stored.get("objectives"), list) or not isinstance(stored.get("constraints"), list):
        shown = ", ".join(missing) if missing else "objectives/constraints as lists"
        raise UserError(f"{where} has a 'calnas' attribute without {shown}; it was not made by calnas "
                        "(or was edited): choose another study_name")
    return stored


def _check_directions(study, spec, name: str, url) -> None:
    """A study optimises in the directions it was created with; one whose directions are not the
    objectives' (another count, or another sense) cannot hold this search."""
    have = [d.name.lower() for d in study.directions]
    want = [str(d).lower() for d in spec.directions]
    if have != want:
        names = ",".join(o.name for o in spec.objectives)
        raise UserError(f"study {name!r} in {url} has {len(have)} direction(s) ({','.join(have)}); objectives "
                        f"{names} need {','.join(want)}: choose another study_name")


def check_same_search(stored: dict, described: dict, name: str, url) -> None:
    for key in _IDENTITY:
        was, now = jsonable(stored.get(key)), jsonable(described.get(key))
        if was != now:
            if isinstance(was, dict) and isinstance(now, dict):
                # A protocol is a dozen settings: name the ones that differ, not both records.
                raise UserError(f"study {name!r} in {url} searches another {key} "
                                f"({'; '.join(_differences(was, now))}); use another study_name for a different search")

            def show(d):
                if key == "objectives":
                    return ",".join(o["name"] for o in d.get(key) or [])
                if key == "constraints":
                    return ",".join(c["constraint"] for c in d.get(key) or []) or "none"
                return d.get(key)

            raise UserError(f"study {name!r} in {url} searches {key} {show(stored)!r}, not {show(described)!r}; "
                            "use another study_name for a different search")


def _differences(was: dict, now: dict, prefix: str = "", limit: int = 4) -> list[str]:
    """``key: stored -> now`` for each differing leaf of two records (at most ``limit``)."""
    out = []
    for key in dict.fromkeys([*was, *now]):
        a, b = was.get(key), now.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(_differences(a, b, f"{prefix}{key}.", limit))
        else:
            out.append(f"{prefix}{key}: {str(a)[:40]} stored, {str(b)[:40]} now")
    return out[:limit] + ([f"{len(out) - limit} more"] if len(out) > limit else [])


def front_record(evaluator: Evaluator, spec) -> dict | None:
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


def load_stored_study(storage: str, study_name: str | None = None):
    """A study a search wrote, by storage URL and name (the default name when None)."""
    import optuna

    from calnas.storage import is_persistent, open_storage

    if not is_persistent(storage):
        raise UserError(f"storage {str(storage).strip()!r} is in memory and holds no study to show; give the storage "
                        "a search wrote (sqlite:///FILE.db, journal:///FILE.log, postgresql://...)")
    opened = open_storage(storage, read_only=True)
    name = DEFAULT_STUDY if study_name is None else str(study_name)
    try:
        return optuna.load_study(study_name=name, storage=opened)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(opened)]
        listed = ", ".join(names) if names else "none"
        raise UserError(f"no study {name!r} in {storage} (studies there: {listed})") from None
