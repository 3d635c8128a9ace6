"""Regularized evolution (Real et al., 2019), made multi-objective.

* The population is the ``population_size`` most recently evaluated distinct architectures:
  the oldest member leaves as a new one arrives (age-based removal, the "regularization").
* Until the population is full, new architectures are drawn at random.
* Each proposal runs a tournament: ``sample_size`` members drawn at random; the winner has the
  best non-dominated rank within the population (feasible first under constraints), ties
  broken by the larger crowding distance (diversity), then by age.
* The child is a one-edge (TSS) / one-layer (SSS) mutation of the winner that has not been
  evaluated; after ``mutation_tries`` failed attempts it is a random unseen architecture.
* "Evaluated" covers isomorphic twins (TSS): a child or random draw whose isomorphism class has
  been evaluated is skipped, since it computes the same function.

With one objective the rank is the plain ordering and this is the original algorithm.
"""

from __future__ import annotations

from calnas.pareto import selection_keys
from calnas.searchers._base import DomainSampler, History

POPULATION_SIZE = 50
SAMPLE_SIZE = 10
MUTATION_TRIES = 30


class RegularizedEvolutionSampler(DomainSampler):
    def __init__(self, domain, *, population_size: int = POPULATION_SIZE, sample_size: int = SAMPLE_SIZE,
                 mutation_tries: int = MUTATION_TRIES, seed=None, constraints_func=None):
        super().__init__(domain, seed=seed, constraints_func=constraints_func)
        if population_size < 2 or not 1 <= sample_size <= population_size:
            raise ValueError("need population_size >= 2 and 1 <= sample_size <= population_size")
        self.population_size = population_size
        self.sample_size = sample_size
        self.mutation_tries = mutation_tries

    def propose(self, study, history: History) -> int | None:
        rng, domain = self._rng, self._domain
        if len(history) < self.population_size:
            return domain.random_unseen_class(rng, history.taken_classes())
        start = len(history) - self.population_size
        ranks, crowding = selection_keys(history.points(start), history.violation_array(start))
        contenders = rng.sample(range(self.population_size), self.sample_size)
        # Later positions are younger; among equals the older member wins, as in aging evolution.
        winner = min(contenders, key=lambda i: (ranks[i], -crowding[i], i))
        parent = history.positions[start + winner]
        for _ in range(self.mutation_tries):
            child = domain.mutate(parent, rng)
            if child is not None and not history.class_taken(domain.class_of(child)):
                return child
        return domain.random_unseen_class(rng, history.taken_classes())
