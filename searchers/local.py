"""Pareto local search over one-edge (TSS) / one-layer (SSS) neighbours.

The first ``n_startup`` proposals are random unseen architectures, so that the search starts
from several places rather than one. After that, the archive is the front (feasible first under constraints) of the evaluated architectures that
still have unevaluated neighbours. Each proposal takes an archive member at random and proposes
one of its unevaluated neighbours at random. A member whose neighbours are all evaluated is
*exhausted* and leaves the archive, so the front of the remaining ones moves in: when the true
local front is explored, the search widens to the next-best points instead of stopping. When
every evaluated architecture is exhausted (or nothing was evaluated yet) the proposal is a
random unseen architecture, a restart.

With one objective this is best-first hill climbing with random restarts.
"""

from __future__ import annotations

import numpy as np

from calnas.pareto import front_mask
from searchers._base import DomainSampler, History


N_STARTUP = 25


class LocalSearchSampler(DomainSampler):
    def __init__(self, domain, *, n_startup: int = N_STARTUP, seed=None, constraints_func=None):
        super().__init__(domain, seed=seed, constraints_func=constraints_func)
        self.n_startup = n_startup
        # study id -> history positions whose neighbours are all evaluated (only ever grows).
        self._exhausted: dict[int, set[int]] = {}

    def propose(self, study, history: History) -> int | None:
        rng, domain = self._rng, self._domain
        if len(history) < self.n_startup:
            return domain.random_unseen(rng, history.seen)
        exhausted = self._exhausted.setdefault(study._study_id, set())
        live = np.array([i for i in range(len(history)) if i not in exhausted], dtype=int)
        points = history.points()
        violations = history.violation_array()
        while live.size:
            members = live[front_mask(points[live], violations[live])]
            order = list(members)
            rng.shuffle(order)
            for i in order:
                options = domain.unseen(domain.neighbours(history.positions[i]), history.seen)
                if options:
                    return options[rng.randrange(len(options))]
                exhausted.add(int(i))
            live = live[~np.isin(live, members)]
        return domain.random_unseen(rng, history.seen)
