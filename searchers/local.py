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

from calnas.pareto import front_mask
from calnas.searchers._base import DomainSampler, History


N_STARTUP = 25


class LocalSearchSampler(DomainSampler):
    def __init__(self, domain, *, n_startup: int = N_STARTUP, iso: bool = True, group_vectors: bool = True,
                 seed=None, constraints_func=None):
        super().__init__(domain, seed=seed, constraints_func=constraints_func)
        self.n_startup = n_startup
        self.iso = iso  # skip isomorphic twins of evaluated architectures
        self.group_vectors = group_vectors  # archive members with identical values count once
        # study id -> history positions whose neighbours are all evaluated (only ever grows).
        self._exhausted: dict[int, set[int]] = {}

    def _unseen(self, history: History, positions) -> list[int]:
        if self.iso:
            classes = self._domain.classes
            return [p for p in positions if not history.class_taken(int(classes[p]))]
        return self._domain.unseen(positions, history.taken_keys())

    def _random(self, history: History) -> int | None:
        if self.iso:
            return self._domain.random_unseen_class(self._rng, history.taken_classes())
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
        sees the archive the uninterrupted one saw.
        """
        exhausted = self._exhausted.setdefault(study._study_id, set())
        live = np.array([i for i in range(len(history)) if i not in exhausted], dtype=int)
        points, violations = history.points(), history.violation_array()
        while live.size:
            members = live[front_mask(points[live], violations[live])]
            options = {int(i): self._options(study, history, int(i)) for i in members}
            done = [i for i, found in options.items() if not found]
            if not done:
                return [int(i) for i in members], options
            live = live[~np.isin(live, done)]
        return [], {}

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
            self._exhausted.setdefault(study._study_id, set()).add(int(i))
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
