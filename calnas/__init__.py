"""calnas: calibration-aware neural architecture search over the NATS-Bench spaces.

Python API::

    import calnas
    table = calnas.load_benchmark("nats-tss-cifar10")     # None = the embedded default
    table.to_frame()
    result = calnas.search(objectives="acc,ece", budget=500, seed=0)
    live = calnas.search(objectives="acc,ece", budget=40, live=calnas.LiveConfig(dataset="digits"))
    again = calnas.show("sqlite:///s.db")                 # a stored search, from its storage alone

Imports are lazy so ``import calnas`` stays cheap and never pulls torch.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["load_benchmark", "search", "run_search", "show", "SearchResult", "LiveConfig", "get_space", "UserError",
           "__version__"]

# name -> the module that defines it, imported on first use.
_LAZY = {
    "load_benchmark": "calnas.tables",
    "search": "calnas.api",
    "run_search": "calnas.api",
    "show": "calnas.api",
    "SearchResult": "calnas.result",
    "LiveConfig": "calnas.live.config",
    "get_space": "calnas.spaces",
    "UserError": "calnas.errors",
}


def __getattr__(name):
    import importlib

    module = _LAZY.get(name)
    if module is not None:
        return getattr(importlib.import_module(module), name)
    if name == "searching":  # scripts reached the engine's first home as calnas.searching after calnas.search
        return importlib.import_module("calnas.searching")
    raise AttributeError(f"module 'calnas' has no attribute {name!r}")
