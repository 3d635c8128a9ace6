"""The names scripts imported from the engine's first home, where they live now.

The engine is split by job: :mod:`calnas.api` (the façade: search, run_search, show),
:mod:`calnas.study` (what a study searches), :mod:`calnas.worker_loop` (one worker),
:mod:`calnas.rebuild` (results from the study alone), :mod:`calnas.result` (SearchResult).
"""

from __future__ import annotations

from calnas.api import DEFAULTS, prepare, run_search, search, show
from calnas.checks import DEDUPE_MODES, SEED_RANGE, check_int
from calnas.rebuild import load_result, output_columns
from calnas.record import EXHAUSTED_ATTR
from calnas.result import FIGURE_FILES, FLOAT_FORMAT, SearchResult
from calnas.study import DEFAULT_STUDY, SCHEMA, open_study
from calnas.tables import resolve_table
from calnas.worker_loop import MAX_REPEATS, POLL_S, run_worker, stream_seed

__all__ = ["DEFAULTS", "DEDUPE_MODES", "DEFAULT_STUDY", "EXHAUSTED_ATTR", "FIGURE_FILES", "FLOAT_FORMAT", "MAX_REPEATS",
           "POLL_S", "SCHEMA", "SEED_RANGE", "SearchResult", "check_int", "load_result", "open_study",
           "output_columns", "prepare", "resolve_table", "run_search", "run_worker", "search", "show", "stream_seed"]
