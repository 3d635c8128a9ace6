"""Pareto local search over one-edge (TSS) / one-layer (SSS) neighbours.

The first ``n_startup`` proposals are random unseen architectures, so that the search starts
from several places rather than one. After that, the archive is the front (feasible first under
constraints) of the evaluated architectures that still have unevaluated neighbours. Each
proposal picks a *distinct objective vector* of the archive at random (members with identical
values count once: on the digits table, for example, hundreds of architectures share the
chance-level row, and expanding each of them would drown the rest of the front), then a member
with that vector, and one of its unevaluated neighbours at random. A member whose neighbours are
all evaluated is *exhausted* and leaves the archive, so the front of the remaining ones moves
in: when the true local front is explored, the search widens to the next-best points instead
of stopping. When every evaluated architecture is exhausted (or nothing was evaluated yet) the
proposal is a random unseen architecture, a restart.

Isomorphism (TSS): architectures of one isomorphism class compute the same function, so the
search never proposes an architecture whose class has been evaluated (it would cost budget and
tell nothing new), whatever ``--dedupe`` says about counting. Random draws are uniform over
architectures (not classes) and neighbours are drawn among a member's own one-edge neighbours,
so large classes keep the weight they have in the space; on the digits table that prior matters
(see benchmarks/README.md: drawing one neighbour per class, or classes uniformly, loses). On SSS
every architecture is its own class.

With one objective this is best-first hill climbing with random restarts.
"""

from __future__ import annotations

import numpy as np

from calnas.optuna_compat import study_id_of
from calnas.pareto import front_mask
from calnas.searchers._base import DomainSampler, History


N_STARTUP = 25


# Layers of the live members kept as the pool the front is taken from (see _Archive).
POOL_LAYERS = 16


class _Archive:
    """History members whose neighbours are not all evaluated (*live*), and their front.

    Taking the front of thousands of live members at every proposal would make a proposal cost
    grow with the history, so the front is taken from a *pool*: the first ``POOL_LAYERS``
    non-dominated layers of the live members, plus every member evaluated since. Every live
    member outside the pool is dominated by one in the pool's last layer (the *guard*), so the
    pool's front is the live members' front until a guard member leaves; only then is the pool
    built again from all live members.
    """

    def __init__(self):
        self.size = 0  # history members folded in
        self.exhausted: set[int] = set()  # neighbours all evaluated (only ever grows)
        self.live = np.zeros(0, dtype=bool)  # not yet out of the archive, per history member
        self.front: list[int] | None = None  # None: take it again from the pool
        self.pool: set[int] | None = None  # None: build it again from the live members
        self.guard: set[int] = set()
        self.pool_built = 64
        self.infeasible = False

    def fold(self, points: np.ndarray, violations: np.ndarray) -> None:
        if len(points) > len(self.live):
            grown = np.zeros(max(64, 2 * len(points)), dtype=bool)
            grown[: len(self.live)] = self.live
            self.live = grown
        self.live[self.size:len(points)] = True
        for i in range(self.size, len(points)):
            if self.pool is not None:
                self.pool.add(i)
            if violations[i] > 0:
                self.infeasible = True  # feasibility-first ranking: take the front from the pool
            if self.infeasible or self.front is None:
                self.front = None
                continue
            front = np.asarray(self.front, dtype=int)
            fp, p = points[front], points[i]
            if np.any(np.all(fp <= p, axis=1) & np.any(fp < p, axis=1)):
                continue
            beaten = np.all(p <= fp, axis=1) & np.any(p < fp, axis=1)
            self.front = [*front[~beaten].tolist(), i]
        self.size = len(points)

    def leave(self, i: int) -> None:
        self.live[i] = False
        self.front = None
        if self.pool is not None:
            self.pool.discard(i)
            if i in self.guard:
                self.pool = None

    def members(self, points: np.ndarray, violations: np.ndarray, blocked: set[int]) -> list[int]:
        """The front of the live members (without ``blocked`` ones), in history order."""
        if blocked:
            live = self.live[: self.size].copy()
            live[list(blocked)] = False
            live = np.flatnonzero(live)
            return sorted(live[front_mask(points[live], violations[live])].tolist()) if live.size else []
        if self.front is None:
            if self.pool is None or len(self.pool) > 2 * self.pool_built:
                self._build_pool(points, violations)  # again once new members have doubled it
            pool = np.fromiter(sorted(self.pool), dtype=int, count=len(self.pool))
            self.front = pool[front_mask(points[pool], violations[pool])].tolist() if pool.size else []
        return sorted(self.front)

    def _build_pool(self, points: np.ndarray, violations: np.ndarray) -> None:
        rest = np.flatnonzero(self.live[: self.size])
        pool: list[int] = []
        layer: list[int] = []
        for _ in range(POOL_LAYERS):
            if not rest.size:
                break
            mask = front_mask(points[rest], violations[rest])
            layer = rest[mask].tolist()
            pool += layer
            rest = rest[~mask]
        self.pool = set(pool)
        self.pool_built = max(len(pool), 64)
        self.guard = set(layer) if rest.size else set()  # nothing outside the pool: no guard needed


class LocalSearchSampler(DomainSampler):
    def __init__(self, domain, *, n_startup: int = N_STARTUP, iso: bool = True, group_vectors: bool = True,
                 seed=None, constraints_func=None):
        super().__init__(domain, seed=seed, constraints_func=constraints_func)
        self.n_startup = n_startup
        self.iso = iso  # skip isomorphic twins of evaluated architectures
        self.group_vectors = group_vectors  # archive members with identical values count once
        self._archives: dict[int, _Archive] = {}  # study id -> the archive's state

    def _unseen(self, history: History, positions) -> list[int]:
        if self.iso:
            classes = self._domain.classes
            return [p for p in positions if not history.class_taken(int(classes[p]))]
        return self._domain.unseen(positions, history.taken_keys())

    def _random(self, history: History) -> int | None:
        if self.iso:
            pos = self._domain.random_unseen_class(self._rng, history.taken_classes())
            if pos is not None:
                return pos
        # Every class evaluated (or twins not skipped): any architecture not evaluated yet, so
        # the search goes on proposing new architectures up to the budget.
        return self._domain.random_unseen(self._rng, history.taken_keys())

    def propose(self, study, history: History) -> int | None:
        rng = self._rng
        if len(history) < self.n_startup:
            return self._random(history)
        members, options = self._archive(study, history)
        if not members:
            return self._random(history)
        groups = self._groups(members, history.points())
        group = groups[rng.randrange(len(groups))]
        member = group[rng.randrange(len(group))]
        return options[member][rng.randrange(len(options[member]))]

    def _archive(self, study, history: History) -> tuple[list[int], dict[int, list[int]]]:
        """The front (feasible first) of the evaluated architectures that still have unevaluated
        neighbours, and those neighbours per member.

        Members found exhausted leave and the front is taken again, so the archive is a function
        of the history alone (whatever earlier proposals happened to look at): a resumed search
        sees the archive the uninterrupted one saw. The front is kept up to date as members
        arrive and taken again from all live members only when one of it leaves, so a proposal
        does not cost more as the history grows.
        """
        state = self._archives.setdefault(study_id_of(study), _Archive())
        points, violations = history.points(), history.violation_array()
        state.fold(points, violations)
        blocked: set[int] = set()  # members whose free neighbours other workers are evaluating
        while True:
            members = state.members(points, violations, blocked)
            if not members:
                return [], {}
            options = {i: self._options(study, history, i) for i in members}
            done = [i for i, found in options.items() if not found]
            if not done:
                return members, options
            for i in done:
                if i in state.exhausted:
                    state.leave(i)
                else:
                    blocked.add(i)

    def _options(self, study, history: History, i: int) -> list[int]:
        """Unevaluated neighbours of history member ``i`` that no other worker is evaluating.
        None left unevaluated marks it exhausted for good; neighbours that are only being
        evaluated elsewhere keep it for later (that evaluation may yet be interrupted)."""
        neighbours = self._domain.neighbours(history.positions[i])
        if self.iso:
            classes = self._domain.classes
            free = [p for p in neighbours if int(classes[p]) not in history.classes]
        else:
            free = self._domain.unseen(neighbours, history.seen)
        if not free:
            self._archives.setdefault(study_id_of(study), _Archive()).exhausted.add(int(i))
        if history.running_keys:
            free = self._unseen(history, free)
        return free

    def _groups(self, members: np.ndarray, points: np.ndarray) -> list[list[int]]:
        """Archive members grouped by identical objective vectors (first-seen order)."""
        if not self.group_vectors:
            return [[int(i)] for i in members]
        groups: dict[tuple, list[int]] = {}
        for i in members:
            groups.setdefault(tuple(points[i].tolist()), []).append(int(i))
        return list(groups.values())
