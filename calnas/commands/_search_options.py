"""`calnas search`'s options: their defaults (those of :func:`calnas.api.search`, for the
library's parameters), a YAML config file's keys, and how the two merge with the command line."""

from __future__ import annotations

from pathlib import Path

from calnas.api import DEFAULTS as LIBRARY
from calnas.commands import _training
from calnas.errors import UserError

# dedupe None: arch for a table, iso for a live TSS search (the library decides).
DEFAULTS = {"objective": [LIBRARY["objectives"]], "constraint": [], "budget": LIBRARY["budget"],
            "searcher": LIBRARY["searcher"], "seed": LIBRARY["seed"], "benchmark": None, "data-dir": None,
            "dedupe": None, "out": None, "json": False, "no-plot": False, "storage": None, "study-name": None,
            "workers": LIBRARY["workers"]}
# Live search: --live and the training options (shared with evaluate --live and table build).
LIVE_DEFAULTS = {**_training.DEFAULTS, "space": "tss", "train-seed": 0, "device": "auto", "devices": None,
                 "table-out": None, "cache": [], "recipes": None}
DEFAULTS.update({"live": False, **LIVE_DEFAULTS})
# Multi-fidelity (calnas.simulation): None leaves the library's default; any of them set makes
# the search a simulated one on a curve table.
FIDELITY_KEYS = ("early-stopping", "min-epochs", "eta", "rung-metric", "budget-epochs", "simulated-workers")
DEFAULTS.update({"early-stopping": LIBRARY["early_stopping"], "min-epochs": None, "eta": None, "rung-metric": None,
                 "budget-epochs": None, "simulated-workers": None})
_INT_KEYS = ("budget", "seed", "workers", "epochs", "channels", "cells", "train-seed", "min-epochs", "eta",
             "budget-epochs", "simulated-workers")
_NUMBER_KEYS = ("lr",)
_BOOL_KEYS = ("json", "no-plot", "live")
_STR_KEYS = ("searcher", "benchmark", "data-dir", "dedupe", "out", "storage", "study-name", "dataset", "data-root",
             "space", "device", "devices", "table-out", "recipe", "optimizer", "recipes", "early-stopping",
             "rung-metric")
# Library parameter names -> the flags that set them, for error messages.
FLAGS = {"budget": "--budget", "seed": "--seed", "workers": "--workers", "study_name": "--study-name",
         "storage": "--storage", "dedupe": "--dedupe", "objectives": "--objective", "constraints": "--constraint",
         "data_dir": "--data-dir", "min_epochs": "--min-epochs", "eta": "--eta", "budget_epochs": "--budget-epochs",
         "simulated workers": "--simulated-workers", "budget epochs": "--budget-epochs"}
# Config keys that name the same option.
_CONFIG_ALIASES = {"objectives": "objective", "constraints": "constraint"}


def _merge(given: dict, config: dict) -> dict:
    options = dict(DEFAULTS)
    options.update({k: v for k, v in config.items() if v is not None})
    options.update({k: v for k, v in given.items() if v is not None})
    return options


def _read_config(path: Path) -> dict:
    import yaml

    from calnas.files import check_input

    check_input(path, "config file", "config")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"config file {str(path)!r} is not UTF-8 text; expected YAML like 'budget: 500'") from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:  # ValueError: e.g. a date like 2024-13-01
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise UserError(f"cannot read {str(path)!r} as YAML ({first})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config {str(path)!r} must be a mapping of option names to values, e.g. 'budget: 500'")
    config = {}
    for raw_key, value in data.items():
        key = _CONFIG_ALIASES.get(str(raw_key).replace("_", "-"), str(raw_key).replace("_", "-"))
        if key not in DEFAULTS:
            raise UserError(f"config {str(path)!r}: unknown key {raw_key!r}; expected one of {', '.join(DEFAULTS)}")
        if "\x00" in str(value):  # no file name or option may hold a NUL character
            raise UserError(f"config {str(path)!r}: {raw_key} holds a NUL character")
        if key in ("objective", "constraint", "cache"):
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise UserError(f"config {str(path)!r}: {raw_key} must be a string or a list of strings")
        elif key in _INT_KEYS and (isinstance(value, bool) or not isinstance(value, int)):
            raise UserError(f"config {str(path)!r}: {raw_key} must be an integer, got {value!r}")
        elif key in _NUMBER_KEYS and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise UserError(f"config {str(path)!r}: {raw_key} must be a number, got {value!r}")
        elif key in _BOOL_KEYS and not isinstance(value, bool):
            raise UserError(f"config {str(path)!r}: {raw_key} must be true or false")
        elif key == "devices" and isinstance(value, list):
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise UserError(f"config {str(path)!r}: devices must be GPU numbers like [0, 1] or '0,1'")
            value = ",".join(str(v) for v in value)
        elif key in _STR_KEYS and value is not None and not isinstance(value, str):
            raise UserError(f"config {str(path)!r}: {raw_key} must be a string, got {value!r} (quote it in YAML)")
        config[key] = value
    return config
