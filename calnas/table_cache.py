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

Within one process, a path whose size and modification time are unchanged is not even hashed
again (:func:`remember`). The tables shipped inside the package are cached the same way (a table
shipped in parts is one entry, keyed by all its parts).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections import OrderedDict
from pathlib import Path

CACHE_ENV = "CALNAS_CACHE_DIR"
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
    try:
        with open(folder / f"{key}.pkl", "rb") as fh:
            return pickle.load(fh)
    except Exception:  # noqa: BLE001 - a broken entry only means parsing again
        return None


def store(key: str, value) -> None:
    folder = cache_dir()
    if folder is None:
        return
    temporary = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".partial-", suffix=".pkl", delete=False) as fh:
            temporary = fh.name
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, folder / f"{key}.pkl")
    except OSError:  # a read-only or full disk: no caching, the table itself is fine
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


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
