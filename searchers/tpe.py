"""Optuna's TPE (tree-structured Parzen estimator), multivariate over the edges / layers.

Multivariate TPE models the categorical choices jointly, which suits a cell whose edges interact.
Multi-objective studies use Optuna's MOTPE splitting, constraints its feasibility-aware variant.
TPE's per-trial cost grows with the number of trials (seconds for a budget of 500).
"""

from __future__ import annotations

import warnings

from optuna.exceptions import ExperimentalWarning
from optuna.samplers import TPESampler


def make(domain, *, seed=None, constraints_func=None) -> TPESampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return TPESampler(seed=seed, multivariate=True, constraints_func=constraints_func)
