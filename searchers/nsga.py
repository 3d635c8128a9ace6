"""Optuna's genetic samplers: NSGA-II (crowding distance) and NSGA-III (reference points).

Both use Optuna's default uniform crossover and mutation on the categorical edges / layers.
Generations are built from completed trials, so the driver's cached repeats count as population
members; the driver replaces a run of repeats with a random unseen architecture (see
``calnas.search``), which acts as extra mutation.
"""

from __future__ import annotations

import warnings

from optuna.exceptions import ExperimentalWarning
from optuna.samplers import NSGAIIISampler, NSGAIISampler

POPULATION_SIZE = 50


def make_nsga2(domain, *, seed=None, constraints_func=None) -> NSGAIISampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return NSGAIISampler(population_size=POPULATION_SIZE, seed=seed, constraints_func=constraints_func)


def make_nsga3(domain, *, seed=None, constraints_func=None) -> NSGAIIISampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return NSGAIIISampler(population_size=POPULATION_SIZE, seed=seed, constraints_func=constraints_func)
