"""Pareto local search whose next neighbour a Gaussian-process surrogate picks (``auto``).

Same moves as :mod:`searchers.local` (the first ``n_startup`` proposals random, then one-edge /
one-layer neighbours of the current front, isomorphic twins of evaluated architectures skipped,
exhausted members leaving the archive), but on a guided step, instead of a random neighbour of
a random front member, the proposal is the unevaluated neighbour of *any* front member whose
optimistic prediction (surrogate mean minus ``beta`` standard deviations, in the objectives
normalised by the range seen so far) would add the most hypervolume to the front found so far.
The surrogate (:mod:`searchers.surrogate`) learns from every evaluated architecture. A step is
guided with probability ``1 - mix`` while fewer than ``until`` architectures are evaluated,
otherwise it is a plain local-search move.

Why a local pool rather than the whole space: the surrogate is only trustworthy near what has
been evaluated (one edge away is the closest there is), and the pool stays small enough for a
proposal to cost milliseconds.

Under constraints the surrogate also predicts the summed violation: until something feasible
is found the proposal is the neighbour with the lowest optimistic violation, afterwards the
hypervolume gain is weighted by the predicted probability of being feasible.
"""

from __future__ import annotations

import numpy as np

from calnas.optuna_compat import study_id_of
from calnas.pareto import REFERENCE, best_improvements, front_mask, normalise
from calnas.searchers._base import History
from calnas.searchers.local import LocalSearchSampler
from calnas.searchers.surrogate import ArchitectureGP

N_STARTUP = 15
BETA = 2.0
# Half the proposals are plain local-search moves (a random neighbour of a random front
# vector), and after UNTIL evaluations all of them are: the surrogate's picks win early, but
# alone they crowd round a few front members and fall behind plain local search by 500
# evaluations (benchmarks/README.md has the numbers).
MIX = 0.5
UNTIL = 250


class GuidedLocalSampler(LocalSearchSampler):
    def __init__(self, domain, *, n_startup: int = N_STARTUP, beta: float = BETA, mix: float = MIX,
                 until: int | None = UNTIL, seed=None, constraints_func=None):
        super().__init__(domain, n_startup=n_startup, seed=seed, constraints_func=constraints_func)
        self.beta = beta
        self.mix = mix  # probability that a proposal is a plain local-search move
        self.until = until  # evaluations after which every proposal is (None: never)
        self._models: dict[int, ArchitectureGP] = {}

    def propose(self, study, history: History) -> int | None:
        if len(history) < self.n_startup:
            return self._random(history)
        if (self.until is not None and len(history) >= self.until) or self._rng.random() < self.mix:
            return super().propose(study, history)
        pool = self._pool(study, history)
        if not pool:
            return self._random(history)
        candidates = np.asarray(pool, dtype=np.int64)
        scores = self._scores(study, history, candidates)
        best = np.flatnonzero(scores >= scores.max() - 1e-12)
        return int(candidates[best[self._rng.randrange(best.size)]])

    def _pool(self, study, history: History) -> list[int]:
        """Unevaluated neighbours of every member of the archive (see ``_archive``)."""
        members, options = self._archive(study, history)
        pool: dict[int, None] = {}
        for i in members:
            pool.update(dict.fromkeys(options[i]))
        return sorted(pool)

    def _scores(self, study, history: History, candidates: np.ndarray) -> np.ndarray:
        points, violations = history.points(), history.violation_array()
        lower, upper = points.min(axis=0), points.max(axis=0)
        scaled = normalise(points, lower, upper)
        constrained = bool(np.any(violations > 0))
        targets = np.column_stack([scaled, violations]) if constrained else scaled
        model = self._models.setdefault(study_id_of(study),
                                         ArchitectureGP(self._domain.code, self._domain.max_distance()))
        mean, sd = model.fit(history.positions, targets).predict(candidates)
        k = scaled.shape[1]
        optimistic = mean[:, :k] - self.beta * sd[:, :k]
        feasible = violations <= 0
        if constrained and not feasible.any():
            return -(mean[:, k] - self.beta * sd[:, k])
        front = scaled[front_mask(scaled, violations)]  # the feasible front once anything is feasible
        weights = None
        if constrained:
            from scipy.special import ndtr  # only under constraints: scipy.special costs 0.2 s to import

            weights = ndtr(-mean[:, k] / np.maximum(sd[:, k], 1e-12))
        # Only the best score is used: candidates that cannot reach it are left unscored (-inf).
        return best_improvements(front, optimistic, np.full(k, REFERENCE), weights)
