"""Optuna's quasi-Monte Carlo sampler: a scrambled Sobol sequence over the edges / layers.

Space-filling rather than adaptive: a baseline that covers the space more evenly than random.
"""

from __future__ import annotations

import warnings

from optuna.exceptions import ExperimentalWarning
from optuna.samplers import QMCSampler


def make(domain, *, seed=None, constraints_func=None) -> QMCSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return QMCSampler(qmc_type="sobol", scramble=True, seed=seed, warn_independent_sampling=False)
