"""The names scripts imported from live search's first home, where they live now.

Live search is split by job: :mod:`calnas.live.config` (LiveConfig), :mod:`calnas.live.factory`
(the evaluator a search asks for), :mod:`calnas.live.evaluator` (LiveEvaluator),
:mod:`calnas.live.runtime` (training in a worker's process), :mod:`calnas.live.table_file`
(the crash-safe table files it appends to and reads back).
"""

from __future__ import annotations

from calnas.live.config import LiveConfig, live_columns
from calnas.live.evaluator import (HEARTBEAT_S, REASON_CHARS, STALE_S, TABLE_NAME, TABLE_NOTE, LiveEvaluator,
                                   chosen_table, row_metrics, set_notes)
from calnas.live.factory import live_evaluator, live_spec
from calnas.live.table_file import CacheTable, TableFile

__all__ = ["CacheTable", "HEARTBEAT_S", "LiveConfig", "LiveEvaluator", "REASON_CHARS", "STALE_S", "TABLE_NAME",
           "TABLE_NOTE", "TableFile", "chosen_table", "live_columns", "live_evaluator", "live_spec", "row_metrics",
           "set_notes"]
