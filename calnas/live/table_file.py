"""Crash-safe table files: the CSV code of ``calnas table build`` and of a live search's table.

* A header is written once; each row is one ``write`` followed by flush and fsync. A killed
  writer leaves at most one torn line at the end, which :func:`read_done` (a resume) and
  :meth:`TableFile.prepare` cut; complete rows are never rewritten.
* Files written before training recipes existed have no ``recipe`` column (their rows trained
  with ``ce``): they are read and appended to in their own layout (:func:`file_columns`).
* :class:`TableFile` is a file several processes append to (a live search's workers), one
  ``O_APPEND`` write per row under an exclusive lock; :class:`CacheTable` a finished table of
  the same protocol whose rows answer without training.

The column layout itself (:func:`calnas.live.build.table_columns`) is the caller's.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from calnas.calibrator_columns import CALIBRATOR_COLUMNS
from calnas.errors import UserError
from calnas.live.protocol_file import protocol_identity, protocol_path, read_protocol, write_protocol
from calnas.live.recipes import DEFAULT_RECIPE

# Columns older tables lack, in groups that came together: a table written before training
# recipes has no recipe (its rows trained with recipe ce); one written before the post-hoc
# calibrators none of their columns (calnas.calibrator_columns).
NEWER_GROUPS = (("recipe",), CALIBRATOR_COLUMNS)
NEWER_COLUMNS = tuple(c for group in NEWER_GROUPS for c in group)


def check_layout(path, layout, needed, what: str) -> None:
    """Refuse a table file of an older layout (see :data:`NEWER_GROUPS`) whose rows would answer
    ``what`` (the objectives needing ``needed``) with missing values."""
    missing = [c for c in dict.fromkeys(needed) if c in NEWER_COLUMNS and c not in layout]
    if missing:
        named = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise UserError(f"{path} was written before the columns {what} needs ({named}): its rows cannot answer "
                        "it; rebuild that table with this calnas, or search without it")


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def line(values: list) -> str:
    """One CSV line of ``values`` (floats exactly, None empty)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_format(v) for v in values])
    return buf.getvalue()


def file_columns(path: Path, columns: list[str]) -> list[str]:
    """The layout of an existing table file: ``columns``, or an older layout, ``columns`` less
    whole groups of :data:`NEWER_GROUPS` (no recipe; no calibrator columns; neither), when its
    header is that one (rows are appended in the file's layout). Anything else is left to
    :func:`read_done`'s header check."""
    import itertools

    with open(path, "rb") as fh:
        first = fh.readline()
    try:
        header = next(csv.reader(io.StringIO(first.decode("utf-8"))), [])
    except (UnicodeDecodeError, csv.Error):
        return columns
    for dropped in itertools.product((False, True), repeat=len(NEWER_GROUPS)):
        gone = {c for group, drop in zip(NEWER_GROUPS, dropped) if drop for c in group}
        layout = [c for c in columns if c not in gone]
        if header == layout:
            return layout
    return columns


def read_done(path: Path, columns: list[str], *, by_seed: bool = False) -> set:
    """Indices already in a build file (``by_seed``: (index, seed) pairs, for a curve build); a
    torn last line (no newline) is truncated away, but only once the header shows the file is a
    build with these columns (nothing else is modified)."""
    with open(path, "rb") as fh:
        data = fh.read()
    if not data:
        return set()
    try:
        header = next(csv.reader(io.StringIO(data[:data.find(b"\n")].decode("utf-8"))), [])
    except (UnicodeDecodeError, csv.Error):
        header = None
    if header != columns:
        raise UserError(f"{path} has different columns from this build (not a calnas build of this "
                        "protocol/metric panel?); use a new --out")
    end = data.rfind(b"\n") + 1
    if end < len(data):
        # Only the incomplete tail is cut; every complete line stays byte for byte.
        with open(path, "r+b") as fh:
            fh.truncate(end)
            fh.flush()
            os.fsync(fh.fileno())
        data = data[:end]
    if not data:
        return set()
    try:
        reader = csv.reader(io.StringIO(data.decode("utf-8")))
        next(reader)
        done = set()
        seed_at = columns.index("seed") if by_seed else None
        for row in reader:
            if len(row) != len(columns) or not row[0].isascii() or not row[0].isdigit() or (
                    by_seed and not (row[seed_at].isascii() and row[seed_at].isdigit())):
                raise UserError(f"{path} has a malformed row (index {row[0][:20] if row else '?'}); fix or remove it")
            done.add((int(row[0]), int(row[seed_at])) if by_seed else int(row[0]))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path} has a malformed row ({type(exc).__name__}); fix or remove it") from None
    return done


class RowWriter:
    """Appends rows one line at a time, durably (one process: the build's parent)."""

    def __init__(self, path: Path, columns: list[str]):
        self.columns = columns
        self._fh = open(path, "a", encoding="utf-8", newline="")
        if self._fh.tell() == 0:
            self._write(line(columns))

    def _write(self, text: str) -> None:
        self._fh.write(text)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def append(self, row: dict) -> None:
        self._write(line([row.get(c) for c in self.columns]))

    def close(self) -> None:
        self._fh.close()


# Columns holding text; every other column of a table file holds a number (or nothing).
TEXT_COLUMNS = ("config", "arch", "recipe")


def space_size(record) -> int | None:
    """The number of architectures of the space a table's protocol record names (None: unknown)."""
    from calnas.spaces import get_space

    name = record.get("space") if isinstance(record, dict) else None
    try:
        return get_space(name).size if isinstance(name, str) else None
    except UserError:
        return None


def parse_lines(data: bytes, columns: list[str], *, header: bool, path, size: int | None = None) -> dict[int, dict]:
    """Complete lines of a table file, by index (a row written before recipes gains ``ce``).
    The one reader of a table's rows, so every file that answers a search (its own table, a
    cache) is held to the same rules: UTF-8 CSV, the layout's header, an index of ASCII digits and
    a number (or nothing) in every column but :data:`TEXT_COLUMNS`, and, with ``size`` (the
    space's), an index below it; anything else is a UserError."""
    try:
        reader = csv.reader(io.StringIO(data.decode("utf-8")))
        first = next(reader, None) if header else None
        if header and first is not None and first != columns:
            raise UserError(f"{path} has different columns from a calnas table of this metric panel; "
                            "choose another table file")
        rows = {}
        older = "recipe" not in columns  # a table written before recipes: its rows trained with ce
        numeric = [c for c in columns if c not in TEXT_COLUMNS and c != "index"]
        for values in reader:
            index = values[0][:20] if values else "?"
            if len(values) != len(columns) or not (values[0].isascii() and values[0].isdigit()):
                raise UserError(f"{path} has a malformed row (index {index!r}); fix or remove it")
            if size is not None and int(values[0]) >= size:
                raise UserError(f"{path} has a row for index {index}, outside the space's 0..{size - 1}; "
                                "fix or remove it")
            row = dict(zip(columns, values))
            for column in numeric:
                if not _number(row[column]):
                    raise UserError(f"{path} has a malformed row (index {index!r}): {column} holds "
                                    f"{row[column][:20]!r}, not a number; fix or remove it")
            if older:
                row["recipe"] = DEFAULT_RECIPE
            rows[int(row["index"])] = row
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; expected a CSV table calnas built") from None
    except csv.Error as exc:
        raise UserError(f"{path} is not a readable CSV table ({exc}); expected a table calnas built") from None
    return rows


def _number(text: str) -> bool:
    if text == "":
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


_os_write = os.write  # the one write of a row (a test fills the disk here)


class TableFile:
    """A table file several processes append to: the build's layout, one ``O_APPEND`` write per
    row under an exclusive lock (so two workers never write the same class twice), synced."""

    def __init__(self, path: str | os.PathLike, columns: list[str]):
        self.path = Path(path)
        self.columns = file_columns(self.path, columns)  # rows go on in the file's layout
        self.rows: dict[int, dict] = {}
        self._offset = 0
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    @staticmethod
    def check(path: str | os.PathLike, record: dict, columns: list[str]) -> list[str] | None:
        """Read-only: the layout of an existing table file of this protocol whose every complete
        row is sound, None when there is none yet (then it can be created); anything else is a
        UserError. A live search runs it on ``--table-out`` before a study exists."""
        from calnas.files import check_input, check_output_file

        path = Path(path)
        if not path.exists():
            check_output_file(path, "table file", new_folders=True)  # its folder can be created and written
            return None
        check_input(path, "table file", "table")  # a folder, a device or a pipe is no table file
        if path.stat().st_size == 0:
            return None
        meta_path = protocol_path(path)
        if not meta_path.is_file():
            raise UserError(f"table file {path} has no {meta_path.name}; only a calnas table of the same protocol "
                            "can be added to, choose another table file")
        if protocol_identity(read_protocol(meta_path)) != protocol_identity(record):
            raise UserError(f"table file {path} holds rows of another protocol or seed ({meta_path}); "
                            "choose another table file")
        layout = file_columns(path, columns)
        data = path.read_bytes()
        # Every complete row is checked before anything is trained, and before prepare's read_done
        # cuts an incomplete last line (a killed write): a file refused here stays as it was.
        parse_lines(data[:data.rfind(b"\n") + 1], layout, header=True, path=path, size=space_size(record))
        return layout

    @staticmethod
    def prepare(path: str | os.PathLike, record: dict, columns: list[str]) -> None:
        """Create the file (header) and its protocol.json, or check an existing one (:meth:`check`)
        and cut a torn last line. In the searching process only, before any worker starts."""
        path = Path(path)
        layout = TableFile.check(path, record, columns)
        if layout is not None:
            read_done(path, layout)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(line(columns))
            fh.flush()
            os.fsync(fh.fileno())
        write_protocol(path, record)

    def refresh(self) -> dict[int, dict]:
        """Every complete row, reading only what was appended since the last call."""
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1
        if end:
            self.rows.update(parse_lines(data[:end], self.columns, header=self._offset == 0, path=self.path))
            self._offset += end
        return self.rows

    def append(self, row: dict) -> bool:
        """Write ``row`` unless its index is there already; True when written."""
        text = line([row.get(c) for c in self.columns]).encode("utf-8")
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            if int(row["index"]) in self.refresh():
                return False
            written = 0
            while written < len(text):  # one write in practice; a short write only on a full disk
                written += _os_write(self._fd, text[written:])
            os.fsync(self._fd)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self.refresh()
        return True

    def __del__(self):
        with contextlib.suppress(Exception):
            os.close(self._fd)


@dataclass
class CacheTable:
    """A table of the same protocol (``identity``) whose rows answer without training."""

    path: str
    identity: dict
    columns: list
    rows: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        path = Path(self.path)
        meta_path = protocol_path(path)
        from calnas.files import check_input

        check_input(path, "cache table", "table")  # missing, a folder, a device: each in its own words
        if not meta_path.is_file():
            raise UserError(f"cache table {path} has no {meta_path.name}; only a table whose protocol is known "
                            "can answer without training")
        record = read_protocol(meta_path)
        if protocol_identity(record) != self.identity:
            raise UserError(f"cache table {path} was built with another protocol or seed ({meta_path}); "
                            "its rows cannot stand for this search's training")
        with open(path, "rb") as fh:
            data = fh.read()
        data = data[:data.rfind(b"\n") + 1]
        self.layout = file_columns(path, self.columns)
        self.rows = parse_lines(data, self.layout, header=True, path=path, size=space_size(record))
