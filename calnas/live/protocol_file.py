"""The protocol side file of a table calnas builds (``TABLE.protocol.json``), and what in it
decides whether two tables' rows are interchangeable.

``calnas table build`` and a live search write it next to every table file; a resume, an
append, a ``cache`` table and a joint search's cache assignment all read it here.
"""

from __future__ import annotations

import json
from pathlib import Path

from calnas.errors import UserError

SUFFIX = ".protocol.json"
# What makes two tables' rows interchangeable: the same space, seed and training protocol
# (a protocol record's other keys, the calnas version and build order, do not change a row).
PROTOCOL_KEYS = ("space", "seed", "protocol", "curves")  # a build without curves records none


def protocol_path(table_path) -> Path:
    """The side file of ``table_path``: ``OUT.csv`` -> ``OUT.csv.protocol.json``."""
    path = Path(table_path)
    return path.with_name(path.name + SUFFIX)


def write_protocol(table_path, record: dict) -> Path:
    path = protocol_path(table_path)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def read_protocol(meta_path, advice: str = "") -> dict:
    """A protocol record read safely: a file too large, not UTF-8, not JSON or not an object is a
    one-line UserError naming it (``advice`` completes the message)."""
    from calnas.files import check_input

    meta_path = Path(meta_path)
    check_input(meta_path, "protocol file", "protocol")
    try:
        record = json.loads(meta_path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        record = None
    if not isinstance(record, dict):
        raise UserError(f"{meta_path} is not a calnas protocol record (JSON object){advice}")
    return record


def protocol_identity(record: dict) -> dict:
    """The parts of a protocol record (:func:`calnas.live.build.protocol_record`) that decide
    whether two tables' rows are interchangeable (:data:`PROTOCOL_KEYS`), with a protocol
    recorded before a setting existed read as this version records it (absent settings take
    their defaults: no recipe means ``ce``; :func:`calnas.live.protocol.normalise_settings`)."""
    from calnas.live.protocol import normalise_settings

    out = {k: record.get(k) for k in PROTOCOL_KEYS}
    if isinstance(out["protocol"], dict):
        out["protocol"] = normalise_settings(out["protocol"])
    return out
