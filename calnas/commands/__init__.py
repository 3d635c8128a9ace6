"""CLI command modules; each exposes ``register(app)``."""

from __future__ import annotations

import importlib

# Order is the order in `calnas --help`.
_MODULES = ["search", "show", "evaluate", "benchmarks", "metrics", "table", "analyze"]


def register_all(app) -> None:
    for name in _MODULES:
        try:
            module = importlib.import_module(f"calnas.commands.{name}")
        except ModuleNotFoundError as exc:
            # A command module not written yet must not break the others.
            if exc.name == f"calnas.commands.{name}":
                continue
            raise
        module.register(app)
