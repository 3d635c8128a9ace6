"""calnas: calibration-aware neural architecture search over the NATS-Bench spaces.

Python API::

    import calnas
    table = calnas.load_benchmark("nats-tss-cifar10")     # None = the embedded default
    table.to_frame()
    result = calnas.search(objectives="acc,ece", budget=500, seed=0)
    live = calnas.search(objectives="acc,ece", budget=40, live=calnas.LiveConfig(dataset="digits"))

Imports are lazy so ``import calnas`` stays cheap and never pulls torch.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["load_benchmark", "search", "LiveConfig", "get_space", "UserError", "__version__"]


def __getattr__(name):
    if name == "load_benchmark":
        from calnas.tables import load_benchmark

        return load_benchmark
    if name == "search":
        from calnas.searching import search

        return search
    if name == "LiveConfig":
        from calnas.live.search import LiveConfig

        return LiveConfig
    if name == "get_space":
        from calnas.spaces import get_space

        return get_space
    if name == "UserError":
        from calnas.errors import UserError

        return UserError
    raise AttributeError(f"module 'calnas' has no attribute {name!r}")
