"""Shared machinery of calnas's own samplers (evolution, local search).

Like Optuna's samplers, they derive everything they know from the study's trials, so a study
resumed from storage or shared by several workers continues where it was. What they derive is
cached per study and brought up to date with only the trials completed since the last call.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, Trial, TrialState

from searchers.domain import Domain

ConstraintsFunc = Callable[[FrozenTrial], Sequence[float]]

# Optuna >= 5 keeps constraint values on the trial (Trial.set_constraint) and its samplers read
# them from there (constraints_func is deprecated); older versions need a constraints_func.
TRIAL_CONSTRAINTS = hasattr(Trial, "set_constraint")
_USER_ATTR = "calnas_constraints"


def store_constraints(trial: Trial, names: Sequence[str], values: Sequence[float]) -> None:
    """Record a trial's constraint values (<= 0 satisfied) where this Optuna's samplers look."""
    if TRIAL_CONSTRAINTS:
        for name, value in zip(names, values):
            trial.set_constraint(name, value)
    else:
        trial.set_user_attr(_USER_ATTR, list(values))


def constraints_func(constrained: bool) -> ConstraintsFunc | None:
    """What to pass as ``constraints_func`` to Optuna's samplers (None on Optuna >= 5)."""
    if not constrained or TRIAL_CONSTRAINTS:
        return None
    return _from_user_attrs


def _from_user_attrs(trial: FrozenTrial) -> list[float]:
    return list(trial.user_attrs.get(_USER_ATTR, []))


def trial_constraints(trial: FrozenTrial) -> list[float]:
    if TRIAL_CONSTRAINTS:
        return list(trial.constraints.values())
    return _from_user_attrs(trial)


@dataclass
class History:
    """Distinct evaluated architectures of a study, in completion order."""

    positions: list[int] = field(default_factory=list)
    values: list[tuple[float, ...]] = field(default_factory=list)  # minimisation form
    violations: list[float] = field(default_factory=list)  # 0 = feasible
    seen: set[int] = field(default_factory=set)  # dedupe keys of every completed trial
    done: set[int] = field(default_factory=set)  # trial numbers already folded in
    classes: set[int] = field(default_factory=set)  # isomorphism classes evaluated

    def __len__(self) -> int:
        return len(self.positions)

    def points(self, start: int = 0) -> np.ndarray:
        return np.asarray(self.values[start:], dtype=float)

    def violation_array(self, start: int = 0) -> np.ndarray:
        """Summed violations; all zeros without constraints, which ranks like no constraint."""
        return np.asarray(self.violations[start:], dtype=float)


class DomainSampler(BaseSampler):
    """A sampler that proposes whole architectures of a :class:`Domain` in one relative sample.

    Subclasses implement :meth:`propose`. Parameters outside the domain's search space (a
    study that suggests something else as well) fall back to random sampling, as Optuna's own
    samplers do.
    """

    def __init__(self, domain: Domain, *, seed: int | None = None, constraints_func: ConstraintsFunc | None = None):
        self._domain = domain
        self._rng = random.Random(seed)
        self._constraints_func = constraints_func
        self._independent = RandomSampler(seed=seed)
        self._histories: dict[int, History] = {}

    # -- Optuna's sampler interface -----------------------------------------------------------
    def infer_relative_search_space(self, study, trial):
        return dict(self._domain.distributions)

    def sample_relative(self, study, trial, search_space):
        if search_space != self._domain.distributions:
            return {}
        pos = self.propose(study, self.history(study))
        return {} if pos is None else self._domain.params(pos)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values):
        if self._constraints_func is not None:
            # Older Optuna: store the values where Optuna's own samplers and best_trials look.
            from optuna.samplers._base import _process_constraints_after_trial

            _process_constraints_after_trial(self._constraints_func, study, trial, state)

    def reseed_rng(self) -> None:
        self._rng = random.Random()
        self._independent.reseed_rng()

    # -- for subclasses -------------------------------------------------------------------------
    def propose(self, study, history: History) -> int | None:
        raise NotImplementedError

    def history(self, study) -> History:
        """Fold the trials completed since the last call into the study's history."""
        history = self._histories.setdefault(study._study_id, History())
        signs = [-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in study.directions]
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if trial.number in history.done:
                continue
            history.done.add(trial.number)
            pos = self._domain.position_of_params(trial.params) if trial.params else None
            if pos is None:
                continue
            key = self._domain.key(pos)
            if key in history.seen:
                continue  # a repeat answered from the driver's cache: no new information
            history.seen.add(key)
            history.classes.add(self._domain.class_of(pos))
            history.positions.append(pos)
            history.values.append(tuple(s * v for s, v in zip(signs, trial.values)))
            history.violations.append(self._violation(trial))
        return history

    def _violation(self, trial: FrozenTrial) -> float:
        values = self._constraints_func(trial) if self._constraints_func is not None else trial_constraints(trial)
        return float(sum(max(0.0, c) for c in values))
