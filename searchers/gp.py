"""Optuna's Gaussian-process sampler (Bayesian optimisation).

It needs torch and scipy, so it is the one searcher that loads torch (only when chosen), and its
per-trial cost grows quickly with the number of trials: meant for small budgets.
"""

from __future__ import annotations

import importlib.util
import warnings

from optuna.exceptions import ExperimentalWarning

REQUIRES = ("torch", "scipy")


def available() -> bool:
    import optuna.samplers

    return hasattr(optuna.samplers, "GPSampler") and all(importlib.util.find_spec(m) for m in REQUIRES)


def make(domain, *, seed=None, constraints_func=None):
    from optuna.samplers import GPSampler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        # Table lookups return the same value every time, so no observation noise is modelled.
        return GPSampler(seed=seed, constraints_func=constraints_func, deterministic_objective=True)
