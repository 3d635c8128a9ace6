"""Shared machinery of calnas's own samplers (evolution, local search).

Like Optuna's samplers, they derive everything they know from the study's trials, so a study
resumed from storage or shared by several workers continues where it was. What they derive is
cached per study and brought up to date with only the trials completed since the last call.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
import numpy as np
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import StudyDirection

from calnas.constraints import ConstraintsFunc, total_violation
from calnas.optuna_compat import process_constraints_after_trial, study_id_of
from calnas.searchers.domain import Domain

@dataclass
class History:
    """Distinct evaluated architectures of a study, in the order the study record found them.

    ``seen``/``classes`` hold every evaluated key / isomorphism class (failed evaluations too);
    ``running_keys``/``running_classes`` those that other workers are evaluating right now, which
    a proposal must treat as taken as well.
    """

    positions: list[int] = field(default_factory=list)
    values: list[tuple[float, ...]] = field(default_factory=list)  # minimisation form
    violations: list[float] = field(default_factory=list)  # 0 = feasible
    seen: set[int] = field(default_factory=set)
    classes: set[int] = field(default_factory=set)
    running_keys: set[int] = field(default_factory=set)
    running_classes: set[int] = field(default_factory=set)
    folded: int = 0  # record entries folded in so far
    # Growing copies of values/violations as arrays (capacity doubles), so that reading them
    # costs nothing per proposal however long the history is.
    _points: np.ndarray | None = None
    _violation: np.ndarray | None = None
    # ``classes`` as a mask indexed by class, kept with it: random draws test membership with
    # it instead of building an array from the set at every proposal.
    class_mask: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.positions)

    def append(self, position: int, values: tuple[float, ...], violation: float) -> None:
        n = len(self.positions)
        if self._points is None or n == len(self._points):
            capacity = max(64, 2 * n)
            points = np.empty((capacity, len(values)))
            violations = np.empty(capacity)
            if self._points is not None:
                points[:n], violations[:n] = self._points[:n], self._violation[:n]
            self._points, self._violation = points, violations
        self._points[n] = values
        self._violation[n] = violation
        self.positions.append(position)
        self.values.append(values)
        self.violations.append(violation)

    def points(self, start: int = 0) -> np.ndarray:
        if self._points is None:
            return np.zeros((0, 0))
        return self._points[start:len(self.positions)]

    def violation_array(self, start: int = 0) -> np.ndarray:
        """Summed violations; all zeros without constraints, which ranks like no constraint."""
        if self._violation is None:
            return np.zeros(0)
        return self._violation[start:len(self.positions)]

    def taken_keys(self) -> set[int]:
        return self.seen | self.running_keys if self.running_keys else self.seen

    def taken_classes(self):
        """Evaluated or running classes, as a mask indexed by class (a set without the mask)."""
        if self.class_mask is None:
            return self.classes | self.running_classes if self.running_classes else self.classes
        if not self.running_classes:
            return self.class_mask
        mask = self.class_mask.copy()
        mask[list(self.running_classes)] = True
        return mask

    def class_taken(self, cls: int) -> bool:
        return cls in self.classes or cls in self.running_classes


def proposal_rng(seed, n_done: int, attempt: int) -> random.Random:
    """The randomness of one proposal: a function of the seed and the study's history alone, so a
    search resumed from its storage proposes what the uninterrupted search would have."""
    return random.Random(f"calnas:{seed}:{n_done}:{attempt}")


class DomainSampler(BaseSampler):
    """A sampler that proposes whole architectures of a :class:`Domain` in one relative sample.

    Subclasses implement :meth:`propose` and draw from ``self._rng``, which is re-derived for
    every proposal from the seed, the number of evaluations in the study and how many proposals
    were already made at that number (:func:`proposal_rng`). Parameters outside the domain's
    search space (a study that suggests something else as well) fall back to random sampling,
    as Optuna's own samplers do.
    """

    def __init__(self, domain: Domain, *, seed: int | None = None, constraints_func: ConstraintsFunc | None = None):
        self._domain = domain
        self._seed = seed
        self._rng = random.Random(seed)
        self._constraints_func = constraints_func
        self._independent = RandomSampler(seed=seed)
        self._histories: dict[int, History] = {}
        self._attempt = (-1, 0)  # (evaluations, proposals made at that count)

    # -- Optuna's sampler interface -----------------------------------------------------------
    def infer_relative_search_space(self, study, trial):
        return dict(self._domain.distributions)

    def sample_relative(self, study, trial, search_space):
        if search_space != self._domain.distributions:
            return {}
        history = self.history(study)
        n_done = len(history.seen)
        attempt = self._attempt[1] + 1 if self._attempt[0] == n_done else 0
        self._attempt = (n_done, attempt)
        self._rng = proposal_rng(self._seed, n_done, attempt)
        pos = self.propose(study, history)
        return {} if pos is None else self._domain.params(pos)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values):
        if self._constraints_func is not None:
            # Older Optuna: store the values where Optuna's own samplers and best_trials look.
            process_constraints_after_trial(self._constraints_func, study, trial, state)

    def reseed_rng(self) -> None:
        self._independent.reseed_rng()

    # -- for subclasses -------------------------------------------------------------------------
    def propose(self, study, history: History) -> int | None:
        raise NotImplementedError

    def history(self, study) -> History:
        """Fold the evaluations the study record found since the last call into the history."""
        from calnas.record import record_for

        record = record_for(study, self._domain).update()
        domain = self._domain
        study_id = study_id_of(study)
        history = self._histories.get(study_id)
        if history is None:
            history = self._histories[study_id] = History(class_mask=domain.mask((), of="classes"))
        signs = [-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in study.directions]
        for entry in record.entries[history.folded:]:
            history.seen.add(entry.key)
            cls = domain.class_of(entry.position)
            history.classes.add(cls)
            history.class_mask[cls] = True
            if entry.values is None:
                continue  # a failed evaluation: taken, but nothing to learn from
            history.append(entry.position, tuple(s * v for s, v in zip(signs, entry.values)),
                           total_violation(entry.constraints))
        history.folded = len(record.entries)
        running = record.running_holders()
        history.running_keys = set(running)
        history.running_classes = {domain.class_of(n) for n in _positions(record, running.values())}
        return history


def _positions(record, numbers) -> list[int]:
    out = []
    for number in numbers:
        pos = record.position_of_number(number)
        if pos is not None:
            out.append(pos)
    return out
