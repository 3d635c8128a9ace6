"""Random search: Optuna's RandomSampler, each edge / layer drawn uniformly.

Repeats are handled by the search driver like every searcher's (answered from its cache without
spending budget).
"""

from __future__ import annotations

from optuna.samplers import RandomSampler


def make(domain, *, seed=None, constraints_func=None) -> RandomSampler:
    return RandomSampler(seed=seed)
