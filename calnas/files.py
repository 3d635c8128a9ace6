"""Checks on the files and folders a user names, made before any work is done.

Inputs: a file calnas reads must be a regular file (not a directory, a device such as /dev/zero
or a pipe, which could be read forever) of at most :data:`MAX_BYTES` for its kind, counted
uncompressed for ``.gz`` and ``.zip`` files. Outputs: a result folder must be a folder (or
creatable) that calnas may write and that no other calnas run is writing (:func:`claim_folder`);
a figure must be named with an extension of :data:`FIGURE_FORMATS` in a writable folder.

These limits are documented in docs/inputs.md; they are far above any real input.
"""

from __future__ import annotations

import gzip
import os
import stat
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

from calnas.errors import UserError

GIB = 1024**3
MAX_BYTES = {
    "table": 2 * GIB,        # 32,768 rows (SSS) x 250 columns of text is about 0.1 GiB
    "predictions": 8 * GIB,  # logits + probs of 50,000 images x 1,000 classes in float64: 0.8 GiB
    "config": 1024**2,       # a YAML of options
    "protocol": 1024**2,     # a build's protocol.json
    "dataset": 4 * GIB,      # a live .npz dataset, read whole into memory as float32 (4 bytes a uint8 pixel)
}
FIGURE_FORMATS = (".png", ".pdf", ".svg")
LOCK_NAME = ".calnas.lock"


def _size_text(n: int) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB else f"{n / 1024**2:.1f} MiB" if n >= 1024**2 else f"{n} bytes"


def _uncompressed_size(path: Path, size: int, limit: int) -> int:
    """What reading the file will produce (counted up to just past ``limit``): a gzip file's
    decompressed bytes, a zip's members, else the file's size. A gzip file is decompressed to count
    rather than trusting its trailer, which holds the size modulo 4 GiB and only for the last of
    several members: a 5 GiB table must not pass as 1 GiB."""
    name = path.name.lower()
    try:
        if name.endswith(".gz") and size >= 18:
            with open(path, "rb") as fh:
                if fh.read(2) == b"\x1f\x8b":
                    fh.seek(0)
                    return max(size, _gzip_size(fh, limit))
        if name.endswith((".zip", ".npz")) and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                return max(size, sum(info.file_size for info in zf.infolist()))
    except (OSError, zipfile.BadZipFile, gzip.BadGzipFile, zlib.error):
        pass  # unreadable: the reader says so in its own words
    return size


def _gzip_size(fh, limit: int) -> int:
    """Decompressed bytes of every gzip member of ``fh``, stopping once past ``limit``."""
    total = 0
    inflater = zlib.decompressobj(wbits=31)
    while total <= limit:
        block = fh.read(1 << 20)
        if not block:
            break
        while block and total <= limit:
            # bounded output per call: a small block of a bomb never expands all at once
            total += len(inflater.decompress(block, 1 << 24))
            block = inflater.unconsumed_tail
            if inflater.eof:  # the next member (concatenated gzip files read as one)
                rest = inflater.unused_data + block
                inflater = zlib.decompressobj(wbits=31)
                block = rest
                if not rest:
                    break
    return total


def check_input(path, what: str, kind: str) -> Path:
    """``path`` as a Path when it names a regular file of at most ``MAX_BYTES[kind]``; else a
    UserError naming ``what`` (e.g. "table file", "config file")."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UserError(f"{what} {str(path)!r} does not exist") from None
    except OSError as exc:
        raise UserError(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise UserError(f"{what} {str(path)!r} is a directory; expected a file")
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{what} {str(path)!r} is not a regular file (a device or a pipe?); expected a file")
    limit = MAX_BYTES[kind]
    size = info.st_size if info.st_size > limit else _uncompressed_size(path, info.st_size, limit)
    if size > limit:
        raise UserError(f"{what} {str(path)!r} holds {_size_text(size)}; calnas reads at most "
                        f"{_size_text(limit)} for a {kind} file")
    return path


def check_npz_member(path, archive: zipfile.ZipFile, key: str, expected: str) -> None:
    """An .npz member's header declares its shape, and numpy allocates that much before reading:
    a member that is not an array, or holds fewer bytes than it declares (a damaged or forged
    file), is refused before anything is allocated (``expected`` completes the message)."""
    import numpy as np

    name = key + ".npy"
    if name not in archive.namelist():
        raise UserError(f"{path}: {key} is not a numpy array; expected {expected}")
    info = archive.getinfo(name)
    try:
        with archive.open(info) as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_2_0 if version >= (2, 0) else np.lib.format.read_array_header_1_0
            shape, _, dtype = read(fh)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise UserError(f"{path}: {key} is not a readable numpy array ({str(exc)[:120]}); expected {expected}") from None
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if declared > info.file_size:
        raise UserError(f"{path}: array {key} declares shape {shape} ({declared} bytes) but holds "
                        f"{info.file_size} bytes (a damaged file?); expected {expected}")


def _writable_dir(folder: Path) -> bool:
    """Whether a file can be created in ``folder``, tried for real: permission bits do not say
    (root passes them all, yet /proc and /sys refuse new files)."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".calnas-probe-"):
            return True
    except OSError:
        return False


def check_output_folder(path, what: str = "--out") -> Path:
    """Create the result folder ``path`` when missing; refuse an existing non-folder (a file,
    /dev/null) and a folder calnas cannot write."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(f"{what} {str(out)!r} exists and is not a folder; expected a folder for the result files")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{what} {str(out)!r} cannot be created: {exc.strerror or exc}") from None
    if not _writable_dir(out):
        raise UserError(f"{what} {str(out)!r} is not writable")
    return out


def check_figure_path(path, what: str = "--plot") -> Path:
    """A figure file calnas can write: an extension of :data:`FIGURE_FORMATS` (the figure's
    format), and what :func:`check_output_file` asks."""
    target = Path(path)
    if target.suffix.lower() not in FIGURE_FORMATS:
        raise UserError(f"{what} {str(target)!r} must end in {', '.join(FIGURE_FORMATS)} (the figure's format)")
    return check_output_file(target, what, new_folders=True)


def check_output_file(path, what: str, *, new_folders: bool = False) -> Path:
    """A file calnas can write: not a folder or a device, in an existing writable folder (an
    existing file is replaced); with ``new_folders`` (the writer creates missing folders) in a
    folder that can be created."""
    target = Path(path)
    if target.exists():
        if not target.is_file():
            raise UserError(f"{what} {str(target)!r} exists and is not a regular file")
        try:
            open(target, "ab").close()  # opened for appending and closed: the content is untouched
        except OSError as exc:
            raise UserError(f"{what} {str(target)!r} is not writable: {exc.strerror or exc}") from None
        return target
    folder = target.parent
    while new_folders and not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the folder that the missing ones would be created in
    if not folder.is_dir():
        missing = "is not a folder" if folder.exists() else "does not exist"
        raise UserError(f"{what} {str(target)!r}: {str(folder)!r} {missing}")
    if not _writable_dir(folder):
        raise UserError(f"{what} {str(target)!r}: folder {str(folder)!r} is not writable")
    return target


def lock_file(lock: Path, *, blocking: bool) -> int:
    """An exclusive ``flock`` on the file ``lock`` (created when missing): its descriptor. A
    holder removes the file when done, so a lock taken on a file just removed is dropped and
    taken on the new one (the inode check). ``blocking=False``: BlockingIOError when held."""
    import fcntl

    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextmanager
def claim_folder(folder, what: str = "--out", *, new: bool = False):
    """Hold the result folder ``folder`` (checked, created when missing) while this process
    writes there: a second calnas run naming the same folder is refused instead of silently
    replacing the first one's files. A folder this claim created is removed again when the work
    fails before writing anything into it.

    ``new=True`` creates the folder exclusively and lets FileExistsError through, so that a
    caller picking a fresh name can take the next one.

    The claim is an exclusive ``flock`` on ``folder/.calnas.lock``: the operating system drops it
    when the process ends, so a killed run never leaves the folder claimed. The lock file is
    removed when the claim ends.
    """

    folder = Path(folder)
    if new:
        check_output_folder(folder.parent, "result folder")
        folder.mkdir()
        created = True
    else:
        created = not folder.exists()
        check_output_folder(folder, what)
    lock = folder / LOCK_NAME
    try:
        fd = lock_file(lock, blocking=False)
    except BlockingIOError:
        raise UserError(f"{what} {str(folder)!r} is in use by another calnas run; "
                        "wait for it to finish or choose another folder") from None
    except OSError as exc:
        raise UserError(f"{what} {str(folder)!r} is not writable: {exc.strerror or exc}") from None
    failed = True
    try:
        yield folder
        failed = False
    finally:
        try:
            os.unlink(lock)
        finally:
            os.close(fd)
        if failed and created and not any(folder.iterdir()):
            folder.rmdir()
