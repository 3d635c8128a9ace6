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
from searchers._base import DomainSampler, History


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
            return [p for p in positions if int(classes[p]) not in history.classes]
        return self._domain.unseen(positions, history.seen)

    def _random(self, history: History) -> int | None:
        if self.iso:
            return self._domain.random_unseen_class(self._rng, history.classes)
        return self._domain.random_unseen(self._rng, history.seen)

    def propose(self, study, history: History) -> int | None:
        rng, domain = self._rng, self._domain
        if len(history) < self.n_startup:
            return self._random(history)
        points = history.points()
        for members in self._front_layers(study, history):
            groups = self._groups(members, points)
            rng.shuffle(groups)
            for group in groups:
                rng.shuffle(group)
                for i in group:
                    options = self._options(study, history, i)
                    if options:
                        return options[rng.randrange(len(options))]
        return self._random(history)

    def _front_layers(self, study, history: History):
        """The archive's front (feasible first), then, once the caller has found every member
        exhausted, the front of what is left, and so on."""
        exhausted = self._exhausted.setdefault(study._study_id, set())
        live = np.array([i for i in range(len(history)) if i not in exhausted], dtype=int)
        points, violations = history.points(), history.violation_array()
        while live.size:
            members = live[front_mask(points[live], violations[live])]
            yield members
            live = live[~np.isin(live, members)]

    def _options(self, study, history: History, i: int) -> list[int]:
        """Unevaluated neighbours of history member ``i``; none left marks it exhausted."""
        options = self._unseen(history, self._domain.neighbours(history.positions[i]))
        if not options:
            self._exhausted.setdefault(study._study_id, set()).add(int(i))
        return options

    def _groups(self, members: np.ndarray, points: np.ndarray) -> list[list[int]]:
        """Archive members grouped by identical objective vectors (first-seen order)."""
        if not self.group_vectors:
            return [[int(i)] for i in members]
        groups: dict[tuple, list[int]] = {}
        for i in members:
            groups.setdefault(tuple(points[i].tolist()), []).append(int(i))
        return list(groups.values())
