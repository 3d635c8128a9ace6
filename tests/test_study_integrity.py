"""A study's integrity across runs (issue 24): what a search finds in a storage it did not write,
what a resume records, concurrent starts, and a full disk. The CLI runs in-process
(`calnas.cli.main`, as in test_hardening) so that each case stays fast."""

from __future__ import annotations

import contextlib
import hashlib
import json

import optuna
import pytest

from tests.test_hardening import cli, refused

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _search(capsys, tmp_path, url, *extra, out="o", budget=10):
    return cli(capsys, "search", "--budget", budget, "--storage", url, "--out", tmp_path / out, "--json", *extra)


def _summary(tmp_path, out="o") -> dict:
    return json.loads((tmp_path / out / "summary.json").read_text())


# -- class 2: a plain-Optuna study is checked before calnas writes anything to it -------------------

@pytest.mark.parametrize("directions", [["maximize"], ["maximize", "minimize", "minimize"],
                                        ["minimize", "minimize"]])
def test_a_study_with_other_directions_is_refused_before_anything_is_written(capsys, tmp_path, directions):
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    optuna.create_study(storage=url, study_name="p", directions=directions)
    before = _sha(db)
    for _ in range(2):  # a rerun must be refused the same way, not "resume" a half-stamped study
        refused(capsys, "search", "--budget", 5, "--storage", url, "--study-name", "p", "--objective", "acc,ece",
                "--out", tmp_path / "o", match="direction")
    assert optuna.load_study(study_name="p", storage=url).user_attrs == {}
    assert _sha(db) == before


def test_a_journal_study_that_is_refused_gets_no_line_appended(capsys, tmp_path):
    # Optuna's create_study(load_if_exists=True) appends a "create study" line to a journal before
    # it finds the name taken; an existing study is loaded instead, so a refusal writes nothing.
    from calnas.storage import open_storage

    log = tmp_path / "s.log"
    url = f"journal:///{log}"
    optuna.create_study(storage=open_storage(url), study_name="p", directions=["maximize"])
    before = _sha(log)
    refused(capsys, "search", "--budget", 5, "--storage", url, "--study-name", "p", "--out", tmp_path / "o",
            match="direction")
    assert _sha(log) == before


@pytest.mark.parametrize("attr", ["a string", 3, ["objectives"], True])
def test_a_calnas_attribute_that_is_not_a_mapping_is_refused_in_one_line(capsys, tmp_path, attr):
    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(storage=url, study_name="p", directions=["maximize", "minimize"]).set_user_attr("calnas", attr)
    before = _sha(tmp_path / "s.db")
    refused(capsys, "search", "--budget", 5, "--storage", url, "--study-name", "p", "--out", tmp_path / "o",
            match="'calnas'")
    refused(capsys, "show", "--storage", url, "--study-name", "p", "--out", tmp_path / "o2", match="'calnas'")
    assert _sha(tmp_path / "s.db") == before


def test_a_calnas_mapping_without_its_fields_is_refused_by_show(capsys, tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(storage=url, study_name="p", directions=["maximize", "minimize"]).set_user_attr(
        "calnas", {"schema": 1})
    refused(capsys, "show", "--storage", url, "--study-name", "p", "--out", tmp_path / "o", match="'calnas'")


# -- class 3: trials calnas did not write never count ---------------------------------------------

def _add_foreign_trials(url, values_list, *, attrs=None):
    study = optuna.load_study(study_name="calnas", storage=url)
    engine = study.trials[0]
    for values in values_list:
        study.add_trial(optuna.trial.create_trial(params=engine.params, distributions=engine.distributions,
                                                  values=values, user_attrs=attrs or {}))


@pytest.mark.parametrize("attrs", [{}, {"arch": "x"}, {"metrics": "not a mapping"}])
def test_complete_trials_added_by_plain_optuna_are_not_counted(capsys, tmp_path, attrs):
    url = f"sqlite:///{tmp_path / 's.db'}"
    code, _, err = _search(capsys, tmp_path, url)
    assert code == 0, err
    clean = _summary(tmp_path)
    # The best possible values: counted, they would lift the front above the true one.
    _add_foreign_trials(url, [[1.0, 0.0], [0.99, 0.001]], attrs=attrs)
    code, out, err = cli(capsys, "show", "--storage", url, "--out", tmp_path / "shown", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["evaluations"] == clean["evaluations"] == 10
    assert shown["hypervolume"] == pytest.approx(clean["hypervolume"])
    assert shown["hypervolume_ratio"] <= 1
    assert shown["foreign_trials"] == 2
    # A resume does not take them for evaluations either: it evaluates up to the budget itself.
    code, _, err = _search(capsys, tmp_path, url, out="o2", budget=12)
    assert code == 0, err
    resumed = _summary(tmp_path, "o2")
    assert resumed["evaluations"] == 12 and resumed["hypervolume_ratio"] <= 1


def test_trials_whose_values_their_metrics_do_not_give_are_not_counted(capsys, tmp_path):
    # calnas's attributes copied from an engine trial, values edited: the values alone would put
    # the trial above the true front.
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert _search(capsys, tmp_path, url)[0] == 0
    engine = optuna.load_study(study_name="calnas", storage=url).trials[0]
    _add_foreign_trials(url, [[1.0, 0.0]], attrs=dict(engine.user_attrs))
    code, out, err = cli(capsys, "show", "--storage", url, "--out", tmp_path / "shown", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["evaluations"] == 10 and shown["foreign_trials"] == 1 and shown["hypervolume_ratio"] <= 1


def test_a_ratio_above_one_is_refused_not_printed(capsys, tmp_path):
    # A stored true front smaller than what the study found (the study's record edited): the
    # ratio would exceed 1, which no search can reach, so nothing is reported from it.
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert _search(capsys, tmp_path, url)[0] == 0
    study = optuna.load_study(study_name="calnas", storage=url)
    stored = study.user_attrs["calnas"]
    stored["front"]["hypervolume"] = _summary(tmp_path)["hypervolume"] / 2
    study.set_user_attr("calnas", stored)
    refused(capsys, "show", "--storage", url, "--out", tmp_path / "shown", match="above 1")
    assert not (tmp_path / "shown").exists()


# -- class 1: show never opens an in-memory storage, and leaves nothing behind ----------------------

@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://", "sqlite:///", "SQLITE:///:memory:",
                                 "sqlite:///:memory:?cache=shared", "sqlite:///file::memory:?cache=shared",
                                 "sqlite:///file:x?mode=memory&uri=true", "memory", " Memory "])
def test_show_refuses_every_spelling_of_an_in_memory_storage(capsys, tmp_path, url):
    line = refused(capsys, "show", "--storage", url, cwd=tmp_path)
    assert "memory" in line
    # Nothing created: no database file by any name, no default result folder.
    assert list(tmp_path.iterdir()) == []


# -- class 4: a resume records every run's settings and says what it did ---------------------------

def test_a_resume_records_every_runs_settings_and_says_so(capsys, tmp_path):
    url = f"journal:///{tmp_path / 's.log'}"
    assert _search(capsys, tmp_path, url, "--seed", "0", "--searcher", "random", budget=6)[0] == 0
    code, out, err = cli(capsys, "search", "--budget", 9, "--storage", url, "--out", tmp_path / "o2",
                         "--seed", "5", "--searcher", "local")
    assert code == 0, err
    assert "run 2 of this study, which held 6 evaluations at its start" in out
    assert "another searcher and seed" in out
    runs = _summary(tmp_path, "o2")["runs"]
    assert [(r["searcher"], r["seed"], r["budget"], r["held"]) for r in runs] == [("random", 0, 6, 0),
                                                                                   ("local", 5, 9, 6)]
    # A smaller budget reports the evaluations held, and says that it does.
    code, out, err = cli(capsys, "search", "--budget", 4, "--storage", url, "--out", tmp_path / "o3",
                         "--seed", "5", "--searcher", "local")
    assert code == 0, err
    assert "held 9 evaluations at its start, more than its budget of 4: nothing new evaluated, all 9 reported" in out
    summary = _summary(tmp_path, "o3")
    assert summary["evaluations"] == 9 and len(summary["runs"]) == 3
    # show reports the same record of runs, from the storage alone.
    code, out, err = cli(capsys, "show", "--storage", url, "--out", tmp_path / "shown", "--json")
    assert code == 0, err
    assert json.loads(out)["runs"] == summary["runs"]


# -- class 5: searches started together on one fresh SQLite file all get in ----------------------

_OPEN_AT = """
import sys, time
import optuna
from calnas.storage import open_storage
optuna.logging.set_verbosity(optuna.logging.ERROR)
start, tries = float(sys.argv[2]), int(sys.argv[3])
for attempt in range(tries):
    time.sleep(max(0.0, start + attempt / 2 - time.time()))  # every process creates the schema at one moment
    storage = open_storage(sys.argv[1].format(attempt))
    optuna.create_study(storage=storage, study_name="calnas", directions=["maximize", "minimize"],
                        load_if_exists=True)
"""


@pytest.mark.slow  # about 6 s: spawned processes / a resume that waits out a stale trial
def test_processes_creating_one_sqlite_storage_together_all_get_in(tmp_path):
    import subprocess
    import sys
    import time

    tries = 3  # the race was lost in 2 of 3 tries without the lock
    url = f"sqlite:///{tmp_path}/s{{}}.db"
    start = time.time() + 2.5  # past every process's imports
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN_AT, url, str(start), str(tries)], stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    for attempt in range(tries):
        assert len(optuna.get_all_study_summaries(url.format(attempt))) == 1


# -- class 6: a full disk is one line, and the study stays resumable --------------------------------

def _full_disk_after(monkeypatch, budget_bytes: int):
    """os.write of journal appends, failing like a full disk once ``budget_bytes`` are written
    (the write that crosses the limit is written in part first, as a real disk does)."""
    import errno
    import os

    import calnas.storage

    left = {"bytes": budget_bytes}

    def write(fd, data):
        if left["bytes"] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = min(len(data), left["bytes"])
        left["bytes"] -= n
        return os.write(fd, bytes(data[:n]))

    monkeypatch.setattr(calnas.storage, "_os_write", write)


def _journal_evaluations(url):
    from calnas.storage import open_storage

    study = optuna.load_study(study_name="calnas", storage=open_storage(url, read_only=True))
    return [t for t in study.get_trials(states=[optuna.trial.TrialState.COMPLETE]) if "metrics" in t.user_attrs]


def test_a_full_disk_while_writing_a_journal_is_one_line_and_the_study_resumes(capsys, tmp_path, monkeypatch):
    log = tmp_path / "s.log"
    url = f"journal:///{log}"
    assert _search(capsys, tmp_path, url, budget=4)[0] == 0
    with monkeypatch.context() as patch:
        _full_disk_after(patch, 3_000)  # a few more trials, then the disk is full midway through a line
        refused(capsys, "search", "--budget", 10, "--storage", url, "--out", tmp_path / "o2",
                match="No space left on device")
    assert log.read_bytes().endswith(b"\n")  # no torn line for the next append
    held = len(_journal_evaluations(url))
    assert 4 <= held < 10
    # Space freed: the same command completes with exactly the budget, nothing lost or twice.
    code, _, err = _search(capsys, tmp_path, url, out="o3", budget=10)
    assert code == 0, err
    evaluated = _journal_evaluations(url)
    assert len(evaluated) == _summary(tmp_path, "o3")["evaluations"] == 10
    assert len({t.user_attrs["arch"] for t in evaluated}) == 10


def test_a_torn_journal_tail_is_cut_off_after_a_backup_and_the_search_resumes(capsys, tmp_path):
    log = tmp_path / "s.log"
    url = f"journal:///{log}"
    assert _search(capsys, tmp_path, url, budget=5)[0] == 0
    whole = log.read_bytes()
    torn = whole + b'{"op_code":5,"worker_id":"x","trial_id":'  # a write that stopped midway
    log.write_bytes(torn)
    code, out, err = cli(capsys, "search", "--budget", 8, "--storage", url, "--out", tmp_path / "o2")
    assert code == 0, err
    assert "torn last line" in out
    backups = list(tmp_path.glob("s.log.torn-*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes() == torn
    assert log.read_bytes().startswith(whole) and log.read_bytes().endswith(b"\n")
    # The journal reads back whole: a later search and show see every evaluation.
    assert len(_journal_evaluations(url)) == 8
    code, out, err = cli(capsys, "show", "--storage", url, "--out", tmp_path / "shown", "--json")
    assert code == 0 and json.loads(out)["evaluations"] == 8, err


def test_a_full_disk_while_writing_the_result_files_is_one_line(capsys, tmp_path, monkeypatch):
    import errno

    import pandas as pd

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    refused(capsys, "search", "--budget", 5, "--out", tmp_path / "o", match="No space left on device")


@pytest.mark.slow  # about 6 s: spawned processes / a resume that waits out a stale trial
def test_a_full_sqlite_database_is_one_line_and_the_study_resumes(capsys, tmp_path, monkeypatch):
    import calnas.storage

    url = f"sqlite:///{tmp_path / 's.db'}"
    assert _search(capsys, tmp_path, url, budget=4)[0] == 0
    tune = calnas.storage._fast_sqlite

    def capped(engine):
        # SQLite's own "database or disk is full", from a page limit just above the file's size.
        from sqlalchemy import event

        tune(engine)

        def cap(connection, _record):
            pages = connection.execute("PRAGMA page_count").fetchone()[0]
            connection.execute(f"PRAGMA max_page_count = {pages + 2}")

        event.listen(engine, "connect", cap)

    with monkeypatch.context() as patch:
        patch.setattr(calnas.storage, "_fast_sqlite", capped)
        refused(capsys, "search", "--budget", 60, "--storage", url, "--out", tmp_path / "o2",
                match="database or disk is full")
    code, _, err = _search(capsys, tmp_path, url, out="o3", budget=12)
    assert code == 0, err
    assert _summary(tmp_path, "o3")["evaluations"] == 12


@contextlib.contextmanager
def _sqlite_page_cap(pages: int):
    """Every SQLite connection opened meanwhile may grow its file to ``pages`` pages: SQLite's own
    "database or disk is full" (SQLITE_FULL, what it reports for ENOSPC too), at whichever write
    crosses the cap. Optuna's schema takes 28 pages, so a small cap stops its creation midway."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def cap(connection, _record):
        connection.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(Engine, "connect", cap)
    try:
        yield
    finally:
        event.remove(Engine, "connect", cap)


@pytest.mark.parametrize("pages", [2, 6, 12])
def test_a_full_disk_while_creating_an_sqlite_storage_is_one_line_and_leaves_no_half_made_file(capsys, tmp_path,
                                                                                                 pages):
    # SQLite commits each CREATE TABLE by itself: before, a file holding some of Optuna's tables
    # was left, and every retry was refused as "not an Optuna storage".
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    with _sqlite_page_cap(pages):
        line = refused(capsys, "search", "--budget", 6, "--storage", url, "--out", tmp_path / "o",
                       match="database or disk is full")
    assert line.startswith(f"error: cannot create storage {url!r}") and "free space" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no s.db, journal, lock or result folder
    code, _, err = _search(capsys, tmp_path, url, out="o2", budget=6)
    assert code == 0, err
    assert _summary(tmp_path, "o2")["evaluations"] == 6


def test_a_full_disk_after_the_sqlite_schema_is_one_line_and_the_study_resumes(capsys, tmp_path):
    # The schema fits (28 pages), the study's first attributes (its description) do not.
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    with _sqlite_page_cap(28):
        line = refused(capsys, "search", "--budget", 6, "--storage", url, "--out", tmp_path / "o",
                       match="database or disk is full")
    assert str(db) in line and "free space" in line, line
    code, _, err = _search(capsys, tmp_path, url, out="o2", budget=6)
    assert code == 0, err
    assert _summary(tmp_path, "o2")["evaluations"] == 6


def test_an_empty_sqlite_file_stays_the_users_when_a_full_disk_stops_its_schema(capsys, tmp_path):
    db = tmp_path / "s.db"
    db.touch(mode=0o640)
    url = f"sqlite:///{db}"
    with _sqlite_page_cap(6):
        refused(capsys, "search", "--budget", 4, "--storage", url, "--out", tmp_path / "o",
                match="database or disk is full")
    assert db.is_file() and db.stat().st_size == 0 and db.stat().st_mode & 0o777 == 0o640
    assert _search(capsys, tmp_path, url, out="o2", budget=4)[0] == 0


@pytest.mark.parametrize("where", ["the file", "the first line"])
def test_a_full_disk_while_creating_a_journal_is_one_line_and_a_retry_completes(capsys, tmp_path, monkeypatch,
                                                                               where):
    import errno
    import os

    import optuna.storages.journal._file as journal_file

    log = tmp_path / "s.log"
    url = f"journal:///{log}"
    with monkeypatch.context() as patch:
        if where == "the file":  # Optuna creates the journal with open(path, "ab"): no room for it
            def no_room(path, *args, **kwargs):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

            patch.setattr(journal_file, "open", no_room, raising=False)
        else:
            _full_disk_after(patch, 0)  # the "create study" line does not fit
        line = refused(capsys, "search", "--budget", 6, "--storage", url, "--out", tmp_path / "o",
                       match="No space left on device")
    assert line.startswith("error: cannot create ") and url in line and "free space" in line, line
    assert not log.exists() or log.read_bytes() == b""  # cut back: nothing for a reader to trip on
    code, _, err = _search(capsys, tmp_path, url, out="o2", budget=6)
    assert code == 0, err
    assert len(_journal_evaluations(url)) == _summary(tmp_path, "o2")["evaluations"] == 6


def _postgres_database(server_url: str, name: str) -> str:
    """A new, empty database on the test server (its URL): a trigger in it touches no other test."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def _postgres_disk_full_after(url: str, more_rows: int) -> None:
    """From now on the server refuses, once ``more_rows`` more objective values are stored, every
    write of one the way PostgreSQL refuses a write on a full disk: SQLSTATE 53100 (disk_full),
    the storage manager's message and hint, and the transaction rolled back on the server.

    Why a trigger: a real full disk needs the data folder on a small file system of its own (a
    loop mount, root, outside a test's reach). From the client the two cannot be told apart: the
    same server error travels through the same psycopg exception (errors.DiskFull, an
    OperationalError), SQLAlchemy and Optuna code, at a trial's own write (Optuna's tell)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        held = connection.execute("SELECT count(*) FROM trial_values").fetchone()[0]
        connection.execute(f"""
            CREATE FUNCTION calnas_test_disk_full() RETURNS trigger AS $$
            BEGIN
                IF (SELECT count(*) FROM trial_values) >= {held + more_rows} THEN
                    RAISE EXCEPTION USING ERRCODE = 'disk_full',
                        MESSAGE = 'could not extend file "base/16384/16450": No space left on device',
                        HINT = 'Check free disk space.';
                END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql""")
        connection.execute("CREATE TRIGGER calnas_test_disk_full BEFORE INSERT ON trial_values "
                           "FOR EACH ROW EXECUTE FUNCTION calnas_test_disk_full()")


def _postgres_space_freed(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP TRIGGER calnas_test_disk_full ON trial_values")


@pytest.mark.slow  # about 8 s a case: a PostgreSQL server, and a resume that waits out the stale trial
@pytest.mark.parametrize("workers", [1, 2])
def test_a_full_disk_on_the_postgresql_server_is_one_line_and_the_study_resumes(capfd, tmp_path, postgres_url,
                                                                                 workers):
    # capfd, not capsys: a helper process writes to the file descriptors, and it must say nothing
    # beyond the one line either (before, its traceback and "worker 1 exited with code 1").
    capsys = capfd
    url = _postgres_database(postgres_url, f"disk_full_{workers}")
    assert _search(capsys, tmp_path, url, budget=4)[0] == 0
    _postgres_disk_full_after(url, 10)  # a few more trials, then the server has no room
    line = refused(capsys, "search", "--budget", 12, "--storage", url, "--out", tmp_path / "o2",
                   "--workers", workers, match="No space left on device")
    assert "disk is full" in line and url in line and "resume" in line, line
    held = len(stored_trials(url))
    assert 4 <= held < 12
    _postgres_space_freed(url)
    code, _, err = _search(capsys, tmp_path, url, out="o3", budget=12)
    assert code == 0, err
    evaluated = stored_trials(url)
    assert len(evaluated) == _summary(tmp_path, "o3")["evaluations"] == 12
    assert len({t.user_attrs["arch"] for t in evaluated}) == 12


@pytest.mark.slow  # a PostgreSQL server, and a resume that waits out the stale trial
def test_a_postgresql_server_that_goes_away_mid_search_is_one_line_and_the_study_resumes(capsys, tmp_path,
                                                                                          postgres_url):
    # Any OperationalError of the database during a trial write (here the server ends the
    # connection: SQLSTATE 57P01 admin_shutdown) is the storage's state, not a bug.
    import psycopg

    url = _postgres_database(postgres_url, "goes_away")
    assert _search(capsys, tmp_path, url, budget=4)[0] == 0
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("""
            CREATE FUNCTION calnas_test_goes_away() RETURNS trigger AS $$
            BEGIN
                PERFORM pg_terminate_backend(pg_backend_pid());
                RETURN NEW;
            END $$ LANGUAGE plpgsql""")
        connection.execute("CREATE TRIGGER calnas_test_goes_away BEFORE INSERT ON trial_values "
                           "FOR EACH ROW EXECUTE FUNCTION calnas_test_goes_away()")
    line = refused(capsys, "search", "--budget", 8, "--storage", url, "--out", tmp_path / "o2",
                   match="cannot write to storage")
    assert "terminating connection" in line and "resume" in line, line
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP TRIGGER calnas_test_goes_away ON trial_values")
    code, _, err = _search(capsys, tmp_path, url, out="o3", budget=8)
    assert code == 0, err
    assert len(stored_trials(url)) == _summary(tmp_path, "o3")["evaluations"] == 8


def stored_trials(url):
    """The evaluations calnas stored in the study (finished, with their metrics)."""
    study = optuna.load_study(study_name="calnas", storage=url.replace("postgresql://", "postgresql+psycopg://"))
    return [t for t in study.get_trials(states=[optuna.trial.TrialState.COMPLETE]) if "metrics" in t.user_attrs]
