"""Where a search's Optuna study lives: ``--storage URL``.

Spellings (one each; docs/search.md has the table):

* ``None`` or ``"memory"``: in memory (fastest; nothing survives the process);
* ``sqlite:///relative.db`` / ``sqlite:////absolute.db``: SQLite through Optuna's ``RDBStorage``;
* ``journal:///relative.log`` / ``journal:////absolute.log``, or any path ending in ``.log``: an
  Optuna journal file (``JournalStorage`` + ``JournalFileBackend``), the sturdiest choice for
  several processes on one machine (appends under a file lock, no database server);
* ``postgresql://user:password@host:port/db`` (or ``...?host=/socket/dir``): PostgreSQL through
  ``RDBStorage`` and psycopg 3 (``pip install 'calnas[postgres]'``); several machines pointed at
  one server share a study.

Every failure to open a storage is a :class:`~calnas.errors.UserError` naming the URL.
"""

from __future__ import annotations

import functools
import os
import weakref
from contextlib import contextmanager
from pathlib import Path

from calnas.errors import UserError

MEMORY = "memory"
JOURNAL_PREFIX = "journal:///"
# SQLite serialises writers; several workers on one file wait for the lock instead of failing.
SQLITE_TIMEOUT_S = 60


def is_persistent(url: str | None) -> bool:
    """Whether the study outlives the process (and can be shared by worker processes): not
    "memory", nor an in-memory SQLite database in any spelling."""
    if url is None or str(url).strip().lower() == MEMORY:
        return False
    text = str(url).strip()
    return not (text.lower().startswith("sqlite:") and _sqlite_file(text) is None)


def holds_nothing(url: str | None) -> bool:
    """Whether ``url`` is sure to hold no study yet, without opening it: in memory, or an SQLite
    or journal file that is missing or empty (opening it is what creates it). A database server
    is not known to be empty until it is opened."""
    if not is_persistent(url):
        return True
    text = str(url).strip()
    path = _journal_path(text)
    if path is None and text.lower().startswith("sqlite:"):
        path = _sqlite_file(text)
    if path is None:
        return False
    try:
        return not path.exists() or (path.is_file() and path.stat().st_size == 0)
    except OSError:
        return False  # opening it will say what is wrong


def _journal_path(url: str) -> Path | None:
    if url.startswith(JOURNAL_PREFIX):
        return Path(url[len(JOURNAL_PREFIX):])
    if "://" not in url and url.endswith(".log"):
        return Path(url)
    return None


def open_storage(url: str | None, *, read_only: bool = False, defer_writes: bool = False):
    """An Optuna storage for ``url`` (None/"memory": in memory). ``read_only`` (``calnas show``):
    only a storage that exists and already is an Optuna storage is opened, so that reading never
    creates a file or adds Optuna's tables to a database. ``defer_writes``: an SQLite file is
    switched to write-ahead logging (which rewrites its header) only at :func:`ready_to_write`,
    so that a study refused after reading it leaves the file byte for byte as it was."""
    import optuna

    if not is_persistent(url):
        if read_only:
            raise UserError("an in-memory storage holds no earlier search; give the storage a search wrote")
        return optuna.storages.InMemoryStorage()
    url = str(url).strip()
    try:
        return _open_persistent(url, read_only, defer_writes)
    except OSError as exc:
        if full_disk(exc) is not None:
            raise  # write_errors says it in its own words, with what to do
        # The path itself cannot be used (too long, a loop of links, no permission): say so.
        raise UserError(f"storage {url[:80]!r}{'...' if len(url) > 80 else ''}: "
                        f"{exc.strerror or exc}") from None


def _open_persistent(url: str, read_only: bool, defer_writes: bool):
    journal = _journal_path(url)
    if journal is not None:
        if read_only and (not journal.is_file() or journal.stat().st_size == 0):
            raise UserError(f"storage {url!r}: {str(journal)!r} is not a journal a search wrote (missing or empty)")
        return _journal(journal, url, read_only)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        _check_sqlite_file(url, read_only)
        storage = _rdb(url, {"connect_args": {"timeout": SQLITE_TIMEOUT_S}})
        if _sqlite_file(url) is not None and not read_only:
            if defer_writes:
                _UNTUNED.add(storage)
            else:
                _fast_sqlite(storage.engine)
        return storage
    if scheme.startswith("postgresql") or scheme == "postgres":
        if read_only:
            _check_postgres_has_optuna(_postgres_url(url))
        return _rdb(_postgres_url(url), {"pool_pre_ping": True})
    raise UserError(f"storage {url!r} is not one calnas knows; expected memory, sqlite:///FILE.db, "
                    "journal:///FILE.log (or a path ending in .log) or postgresql://USER@HOST/DB")


# Tables every Optuna RDB storage has; a database with other tables and not these is someone
# else's, and Optuna would add its schema to it.
OPTUNA_TABLES = {"studies", "trials", "version_info"}


def _sqlite_tables(path: Path) -> set[str] | None:
    """The table names of an SQLite file, read without writing (None: not an SQLite database)."""
    import sqlite3

    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            connection.close()
    except sqlite3.DatabaseError:
        return None


def _sqlite_file(url: str) -> Path | None:
    """The file of an ``sqlite:`` URL; None for an in-memory database in any spelling
    (``sqlite://``, ``sqlite:///``, ``sqlite:///:memory:``, ``...?mode=memory``, ``file::memory:``)."""
    if not url.lower().startswith("sqlite:///"):
        return None
    name, _, query = url[len("sqlite:///"):].partition("?")
    if name in ("", ":memory:") or name.startswith("file::memory:") or "mode=memory" in query.lower():
        return None
    return Path(name)


def _check_sqlite_file(url: str, read_only: bool) -> None:
    path = _sqlite_file(url)
    if path is None:
        if read_only:
            raise UserError(f"storage {url!r} is in memory and holds no study to show; give the file a search wrote")
        return
    if not path.is_file():
        if read_only:
            raise UserError(f"storage {url!r}: {str(path)!r} does not exist")
        return
    if path.stat().st_size == 0:
        if read_only:
            raise UserError(f"storage {url!r}: {str(path)!r} is empty, not a storage a search wrote")
        return
    tables = _sqlite_tables(path)
    if tables is None:
        raise UserError(f"storage {url!r}: {str(path)!r} is not an SQLite database")
    if not OPTUNA_TABLES <= tables and (tables or read_only):
        shown = ", ".join(sorted(tables)[:5]) or "no tables"
        raise UserError(f"storage {url!r}: {str(path)!r} is not an Optuna storage (it holds {shown}); "
                        "give calnas a file of its own")


def _check_postgres_has_optuna(url: str) -> None:
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url)
        try:
            tables = set(sqlalchemy.inspect(engine).get_table_names())
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - driver errors: unreachable server, bad URL
        raise UserError(f"cannot open storage {_redact(url)!r} ({_first_line(exc)})") from None
    if not OPTUNA_TABLES <= tables:
        raise UserError(f"storage {_redact(url)!r} holds no Optuna storage (no study was written there)")


def _journal(path: Path, url: str, read_only: bool = False):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if path.exists() and not path.is_file():
        raise UserError(f"storage {url!r}: {str(path)!r} is not a regular file")
    if not path.parent.is_dir():
        raise UserError(f"storage {url!r}: folder {str(path.parent)!r} does not exist")
    try:
        if read_only:  # Optuna's reader skips a torn last line; nothing is written
            return JournalStorage(JournalFileBackend(str(path)))
        backend = _line_journal_class()(str(path), url)
        backup = backend.repair()
        storage = JournalStorage(backend)
    except (OSError, ValueError) as exc:
        reason = full_disk(exc)
        if reason is not None:
            raise no_space_to_create(url, reason) from None
        raise UserError(f"cannot open journal storage {url!r} ({_first_line(exc)})") from None
    if backup is not None:
        REPAIRED[storage] = backup
    return storage


# Journal storages whose torn last line was cut off on opening -> the backup of the whole file.
REPAIRED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_os_write = os.write  # every journal append goes through this (tests inject a full disk here)


@functools.lru_cache(maxsize=1)
def _line_journal_class():
    """:class:`_LineJournal`, defined on first use: Optuna is imported only by what needs it."""
    from optuna.storages.journal import JournalFileBackend

    class _LineJournal(JournalFileBackend):
        """Optuna's journal file, with every append starting on a line boundary.

        Optuna appends with buffered writes: a write that fails midway (a full disk) leaves a torn
        last line, and the next append after it makes a line no reader can parse, which makes the
        whole journal unreadable. Here an append is written with ``os.write`` under the journal's
        lock and, when any part of it fails, the file is cut back to where it ended before, so the
        journal is as it was and resumable once there is room; a torn tail left by anything else (a
        process killed midway, an older calnas) is cut off, after a backup of the whole file, before
        anything is appended to it (:meth:`repair`)."""

        def __init__(self, file_path: str, url: str):
            super().__init__(file_path)
            self._url = url

        def repair(self) -> str | None:
            """Cut a torn last line off the journal (under its lock), keeping the whole file as
            ``FILE.torn-N.bak`` first; the backup's path, or None when the journal ends on a line."""
            from optuna.storages.journal._file import get_lock_file

            with get_lock_file(self._lock):
                return self._repair_locked()

        def _repair_locked(self) -> str | None:
            import shutil

            path = Path(self._file_path)
            data_end = path.stat().st_size
            if data_end == 0:
                return None
            with open(path, "rb") as fh:
                fh.seek(data_end - 1)
                if fh.read(1) == b"\n":
                    return None
                fh.seek(0)
                keep = fh.read().rfind(b"\n") + 1
            n = 1
            while Path(f"{path}.torn-{n}.bak").exists():
                n += 1
            backup = f"{path}.torn-{n}.bak"
            try:
                shutil.copyfile(path, backup)
            except OSError as exc:
                Path(backup).unlink(missing_ok=True)
                raise UserError(f"storage {self._url!r}: the journal's last line is torn (a write that failed midway) and "
                                f"no backup could be made before cutting it off ({exc.strerror or exc}); free space "
                                "and run again") from None
            os.truncate(path, keep)
            return backup

        def append_logs(self, logs) -> None:
            import json

            from optuna.storages.journal._file import get_lock_file

            data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode("utf-8")
            with get_lock_file(self._lock):
                self._repair_locked()
                fd = os.open(self._file_path, os.O_WRONLY | os.O_APPEND)
                try:
                    start = os.fstat(fd).st_size
                    try:
                        view = memoryview(data)
                        while view:
                            view = view[_os_write(fd, view):]
                        os.fsync(fd)
                    except OSError:
                        os.ftruncate(fd, start)  # the journal as it was: no torn line for the next append
                        raise
                finally:
                    os.close(fd)

    return _LineJournal


def _postgres_url(url: str) -> str:
    """``postgresql://`` through psycopg 3 (SQLAlchemy's default driver is psycopg2)."""
    scheme, rest = url.split("://", 1)
    if "+" in scheme:
        return url
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise UserError("a postgresql:// storage needs psycopg 3: pip install 'calnas[postgres]'") from None
    return f"postgresql+psycopg://{rest}"


def _rdb(url: str, engine_kwargs: dict):
    import optuna

    path = _sqlite_file(url)
    if path is not None:
        if not path.parent.is_dir():
            raise UserError(f"storage {url!r}: folder {str(path.parent)!r} does not exist")
        if path.exists() and not path.is_file():
            raise UserError(f"storage {url!r}: {str(path)!r} is not a regular file")
    try:
        with _creation_lock(path) as locked:
            # Only a file no one else can be making (under the lock) and that holds nothing yet is
            # this process's to remove when making it fails.
            fresh = locked and (not path.exists() or path.stat().st_size == 0)
            was_empty = fresh and path.exists()
            try:
                storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
            except BaseException:
                if fresh:
                    _discard_half_made(path, was_empty)
                raise
    except UserError:
        raise
    except Exception as exc:  # SQLAlchemy / driver errors: unreachable server, bad file, bad URL
        reason = full_disk(exc)
        if reason is not None:
            raise no_space_to_create(url, reason) from None
        raise UserError(f"cannot open storage {_redact(url)!r} ({_first_line(exc)})") from None
    return storage


def _discard_half_made(path: Path, was_empty: bool) -> None:
    """Undo an SQLite file whose schema could not be made (a full disk midway). SQLite commits
    each CREATE TABLE on its own, so the file would hold some of Optuna's tables and be refused
    as someone else's database by every later run. Its rollback journal and write-ahead log go
    too: SQLite would replay a leftover one into the next file of that name."""
    for leftover in (Path(f"{path}-journal"), Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    if was_empty:
        os.truncate(path, 0)  # the user's empty file stays theirs
    else:
        path.unlink(missing_ok=True)


def no_space_to_create(url, reason: str, study: str | None = None) -> UserError:
    """The one line for a storage (or a study in it) that a full disk kept from being created."""
    what = f"study {study!r} in storage" if study is not None else "storage"
    return UserError(f"cannot create {what} {_redact(str(url))!r}: {reason}; nothing half-made was left: free space "
                     "and run the same command again")


CREATION_LOCK_SUFFIX = ".calnas-open.lock"


@contextmanager
def _creation_lock(path: Path | None):
    """Hold an exclusive ``flock`` on ``FILE.calnas-open.lock`` beside an SQLite file while
    Optuna opens it. Opening a new file creates Optuna's tables and stamps the schema version,
    neither atomic: two processes doing it at once fail with "table ... already exists" or
    "UNIQUE constraint failed: alembic_version". Under the lock the second finds the schema
    made. The lock file is removed again (the next holder notices and locks a fresh one), so
    nothing is left beside the database; a folder that refuses it gets no lock (SQLite itself
    will say what is wrong). It yields whether the lock is held."""
    if path is None:
        yield False
        return
    from calnas.files import lock_file

    lock = Path(str(path) + CREATION_LOCK_SUFFIX)
    try:
        fd = lock_file(lock, blocking=True)
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        try:
            os.unlink(lock)
        except OSError:
            pass
        os.close(fd)


# SQLite storages opened with defer_writes whose file is not switched to WAL yet.
_UNTUNED: "weakref.WeakSet" = weakref.WeakSet()


def ready_to_write(storage) -> None:
    """The storage is about to be written: an SQLite file opened with ``defer_writes`` gets its
    write-ahead log now (nothing to do for any other storage)."""
    if storage in _UNTUNED:
        _UNTUNED.discard(storage)
        _fast_sqlite(storage.engine)


def _fast_sqlite(engine) -> None:
    """Write-ahead log with synchronous=NORMAL on every connection of this engine (only this one:
    no global listener). SQLite's default (rollback journal, synchronous=FULL) syncs the file
    several times per transaction, and a trial is a dozen transactions; in WAL mode a commit is one
    append to the log, synced at checkpoints. A committed trial survives the process being killed
    (the log is in the file system); only a power cut can lose the last commits. WAL needs a
    local file system (shared memory), which a SQLite study needs anyway for several workers."""
    from sqlalchemy import event

    def pragmas(connection, _record):
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # connections opened while Optuna created its tables reconnect with the pragmas


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


def set_user_attrs(storage, trial_id: int, attrs: dict) -> None:
    """Several user attributes of one trial in one write.

    On an RDB storage each ``set_trial_user_attr`` is a transaction of its own (a commit, an
    fsync for SQLite), on a journal file an append under the file lock; calnas writes three per
    evaluation, so it writes them in one transaction (RDB) or one append of three log records
    (journal), through :mod:`calnas.optuna_compat`. Any other storage, or an Optuna without
    those internals, gets the public per-attribute calls.
    """
    from calnas import optuna_compat

    if optuna_compat.journal_set_user_attrs(storage, trial_id, attrs):
        return
    if optuna_compat.rdb_set_user_attrs(storage, trial_id, attrs):
        return
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)


# PostgreSQL's SQLSTATE for a write its server had no space for (disk_full, class 53).
PG_DISK_FULL = "53100"


def _chain(exc: BaseException | None):
    """``exc`` and what it was raised from (Optuna wraps SQLAlchemy's error, which wraps the driver's)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__ or getattr(exc, "orig", None)


def full_disk(exc: BaseException) -> str | None:
    """The reason, when ``exc`` (or what it was raised from) is a full disk or quota: an OSError
    ENOSPC/EDQUOT, SQLite's "database or disk is full", or PostgreSQL's disk_full (SQLSTATE
    53100, e.g. "could not extend file ...: No space left on device"); None for anything else."""
    import errno

    for link in _chain(exc):
        if isinstance(link, OSError) and link.errno in (errno.ENOSPC, errno.EDQUOT):
            return os.strerror(link.errno)
        if "database or disk is full" in str(link):
            return "database or disk is full"
        if PG_DISK_FULL in (getattr(link, "sqlstate", None), getattr(link, "pgcode", None)):
            said = str(link).strip().splitlines()
            return "the database server's disk is full" + (f" ({said[0][:120]})" if said else "")
    return None


def storage_failure(exc: BaseException) -> str | None:
    """The driver's first line, when ``exc`` (or what it was raised from) is an OperationalError
    of the storage's database: the server went away, a connection broke, a file is locked or read
    only. Those are the storage's state, not a bug, and a trial write that fails on one is rolled
    back, so the study is as it was before it."""
    import sqlite3

    try:
        from sqlalchemy.exc import OperationalError
    except ImportError:  # no RDB storage without SQLAlchemy
        OperationalError = sqlite3.OperationalError  # noqa: N806
    for link in _chain(exc):
        if isinstance(link, (OperationalError, sqlite3.OperationalError)):
            orig = getattr(link, "orig", None)
            return _first_line(orig if orig is not None else link)
    return None


@contextmanager
def write_errors(url):
    """A full disk, or a database that fails (an OperationalError: a lost connection, a locked
    file), while a search writes its study (at ``url``; an in-memory one is named "memory") is
    one line: the study is left as it was (a journal is cut back to its last complete line, a
    database rolls the write back), resumable once there is room."""
    url = url if is_persistent(url) else MEMORY
    try:
        yield
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - only a full disk or a failing database is turned into a message
        reason = full_disk(exc)
        if reason is not None:
            raise UserError(f"cannot write to storage {_redact(str(url))!r}: {reason}; the study is kept: free "
                            "space and run the same command again to resume") from None
        failure = storage_failure(exc)
        if failure is None:
            raise
        raise UserError(f"cannot write to storage {_redact(str(url))!r} ({failure}); the study is kept: run the "
                        "same command again to resume once the storage works again") from None
