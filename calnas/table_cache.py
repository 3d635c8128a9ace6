"""Parsed tables kept on disk, keyed by the file's content, so a table is parsed once.

Loading a published calibration CSV means reading it and checking/canonicalising every
architecture; the result (the table's frame) is stored under the cache folder as a pickle named
by the SHA-256 of the file's bytes (plus the dataset it was read for and a format version). An
edited file has other bytes, hence another key: a stale entry is never read, only left behind.

Location: ``$CALNAS_CACHE_DIR/tables``, else ``$XDG_CACHE_HOME/calnas/tables``, else
``~/.cache/calnas/tables``. Everything there is safe to delete at any time (the next load parses
again); ``CALNAS_CACHE_DIR=off`` turns the cache off. Entries are written atomically (a temporary
file renamed into place), so concurrent processes never read a half-written one, and a folder
that cannot be written only means no caching. The pickles are read only from this folder, which
only the user's own calnas processes write.

The folder is bounded: after each store, entries are removed oldest first (by when they were
last written or read) until the ``*.pkl`` files there total at most :data:`MAX_BYTES` (1 GiB;
``$CALNAS_CACHE_MAX_BYTES`` overrides it, 0 keeps nothing), and an entry that alone would exceed
the bound is not written at all: its pickling stops once it passes the bound, so a huge table
costs no huge temporary file either.

Within one process, a path whose size and modification time are unchanged is not even hashed
again (:func:`remember`). The tables shipped inside the package are cached the same way (a table
shipped in parts is one entry, keyed by all its parts).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

from calnas.errors import UserError

CACHE_ENV = "CALNAS_CACHE_DIR"
# The most the folder's entries may total; a 1.5 GB table pickles to about 1.3 GB.
MAX_BYTES = 1 << 30
MAX_BYTES_ENV = "CALNAS_CACHE_MAX_BYTES"
STALE_PARTIAL_S = 3600  # a partial entry older than this was left by a killed writer
FORMAT = 1  # bump when what a parsed table holds changes
_MEMORY_ENTRIES = 8
_memory: OrderedDict = OrderedDict()


def cache_dir() -> Path | None:
    """The folder of parsed tables (None: caching is off)."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen is not None and chosen.strip().lower() in ("", "off", "0", "none"):
        return None
    if chosen:
        base = Path(chosen).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "calnas"
    return base / "tables"


def max_bytes() -> int:
    """The bound on the folder's entries: ``$CALNAS_CACHE_MAX_BYTES`` (whole bytes), else
    :data:`MAX_BYTES`."""
    chosen = os.environ.get(MAX_BYTES_ENV)
    if chosen is None or not chosen.strip():
        return MAX_BYTES
    text = chosen.strip().replace("_", "")
    if not (text.isascii() and text.isdigit()):
        raise UserError(f"{MAX_BYTES_ENV}={chosen[:40]!r} is not a whole number of bytes (0 keeps no table cache)")
    return int(text)


def content_key(paths, dataset: str | None) -> str:
    """SHA-256 of the bytes of ``paths`` (one file, or the parts of one table in order), the
    dataset and the cache format."""
    from calnas import __version__

    digest = hashlib.sha256()
    for path in _as_list(paths):
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"|")
    digest.update(f"|{dataset}|{FORMAT}|{__version__}".encode())
    return digest.hexdigest()


def _as_list(paths) -> list[Path]:
    return [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]


def load(key: str):
    """The stored value for ``key``, or None (absent, unreadable or from another format)."""
    folder = cache_dir()
    if folder is None:
        return None
    entry = folder / f"{key}.pkl"
    try:
        with open(entry, "rb") as fh:
            value = pickle.load(fh)
    except Exception:  # noqa: BLE001 - a broken entry only means parsing again
        return None
    try:
        os.utime(entry)  # read now: the last entry to be evicted
    except OSError:
        pass
    return value


class _TooLarge(Exception):
    """An entry's pickle passed the cache's bound while being written."""


class _Capped:
    """A binary file that refuses (:class:`_TooLarge`) a write taking it past ``limit`` bytes."""

    def __init__(self, fh, limit: int):
        self._fh, self._left = fh, limit

    def write(self, data) -> int:
        self._left -= memoryview(data).nbytes
        if self._left < 0:
            raise _TooLarge
        return self._fh.write(data)


def store(key: str, value) -> None:
    folder = cache_dir()
    if folder is None:
        return
    limit = max_bytes()
    if limit <= 0:
        return
    temporary = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".partial-", suffix=".pkl", delete=False) as fh:
            temporary = fh.name
            pickle.dump(value, _Capped(fh, limit), protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, folder / f"{key}.pkl")
        temporary = None
    except (OSError, _TooLarge):  # a read-only or full disk, or an entry over the bound: not cached
        pass
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
    evict(folder, limit)


def evict(folder: Path, limit: int) -> None:
    """Remove entries, oldest (least recently written or read) first, until those left total at
    most ``limit`` bytes. Another process may remove or replace entries meanwhile; what it took
    is simply gone."""
    entries = []
    now = time.time()
    for entry in folder.glob("*.pkl"):
        try:
            stat = entry.stat()
        except OSError:
            continue
        if entry.name.startswith(".partial-"):
            # Another process's entry being written, unless untouched for an hour: then a writer
            # that was killed mid-way left it, and nothing will ever finish or remove it.
            if now - stat.st_mtime > STALE_PARTIAL_S:
                entry.unlink(missing_ok=True)
            continue
        entries.append((stat.st_mtime_ns, stat.st_size, entry))
    total = sum(size for _, size, _ in entries)
    for _, size, entry in sorted(entries, key=lambda e: (e[0], e[2].name)):
        if total <= limit:
            break
        try:
            entry.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            continue  # a folder we cannot change: nothing more to do there
        total -= size


def remember(paths, dataset: str | None, parse):
    """``parse()``'s result for the file at ``paths`` (or the parts of one table, in order):
    from this process's memory when every file's (size, mtime) is unchanged, else from the disk
    cache by content, else parsed and stored."""
    files = _as_list(paths)
    stats = [f.stat() for f in files]
    memory_key = (tuple((str(f.resolve()), st.st_size, st.st_mtime_ns) for f, st in zip(files, stats)), dataset)
    if memory_key in _memory:
        _memory.move_to_end(memory_key)
        return _memory[memory_key]
    if cache_dir() is not None:
        max_bytes()  # a bad $CALNAS_CACHE_MAX_BYTES is refused before the parsing, not after it
    key = content_key(files, dataset) if cache_dir() is not None else None
    value = load(key) if key is not None else None
    if value is None:
        value = parse()
        if key is not None:
            store(key, value)
    _memory[memory_key] = value
    while len(_memory) > _MEMORY_ENTRIES:
        _memory.popitem(last=False)
    return value
