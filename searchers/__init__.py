"""Search strategies for calnas, each an Optuna sampler (see :mod:`searchers.registry`)."""

from calnas.searchers.registry import AUTO, SEARCHERS, make, names, resolve

__all__ = ["AUTO", "SEARCHERS", "make", "names", "resolve"]
