"""Constraint values on Optuna trials: where they are stored, read back, and summed.

A constraint's value is its violation amount (<= 0: satisfied). Optuna >= 5 keeps constraint
values on the trial (``Trial.set_constraint``) and its samplers read them from there
(``constraints_func`` is deprecated); older versions need a ``constraints_func`` and calnas
keeps the values in a user attribute. The study record (:mod:`calnas.record`), the worker loop
and calnas's samplers (:mod:`calnas.searchers._base`) all go through this module.
"""

from __future__ import annotations

from typing import Callable, Sequence

from optuna.trial import FrozenTrial, Trial

ConstraintsFunc = Callable[[FrozenTrial], Sequence[float]]

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


def total_violation(constraints: Sequence[float]) -> float:
    """How far one evaluation is from feasible: its violation amounts summed (0: feasible)."""
    return float(sum(max(0.0, c) for c in constraints))
