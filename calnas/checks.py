"""Checks of what users pass in, shared by every module that takes it: one rule, one message.

Each check runs once, where a value enters calnas (the façade, a command, a live config), and
what it returns is trusted from there on. This module sits below everything: it imports only
numpy and :mod:`calnas.errors`.
"""

from __future__ import annotations

import re

import numpy as np

from calnas.errors import UserError

SEED_RANGE = 2**32  # numpy's RandomState, which Optuna's samplers and live training use, takes seeds below this
DEDUPE_MODES = ("arch", "iso")
# Processes one machine runs for a search or a table build (each a Python process with torch,
# about 0.3 GiB): far above any machine's cores, far below what would exhaust its memory.
MAX_WORKERS = 256


def check_int(name: str, value, *, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int within [minimum, maximum]; a string of digits is accepted (YAML, CLI)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        text = str(value).strip()
        # ASCII digits with at most one sign ('--5' and '6²' are not integers), and few enough that
        # int() takes them (it refuses over 4,300 digits).
        if not re.fullmatch(r"[+-]?[0-9]{1,100}", text):
            raise UserError(f"{name} must be an integer, got {text[:40]!r}")
        value = int(text)
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise UserError(f"{name} must be at least {minimum}{upper}, got {value}")
    return value


def check_seed(value, name: str = "seed") -> int:
    """A seed numpy, torch and Optuna all take."""
    return check_int(name, value, minimum=0, maximum=SEED_RANGE - 1)


def check_workers(value, name: str = "workers") -> int:
    """A worker count one machine can hold (:data:`MAX_WORKERS`)."""
    return check_int(name, value, minimum=1, maximum=MAX_WORKERS)


def check_dedupe(dedupe) -> str:
    if dedupe not in DEDUPE_MODES:
        raise UserError(f"unknown dedupe mode {dedupe!r}; expected one of {', '.join(DEDUPE_MODES)}")
    return dedupe
