"""Syne Tune's multi-objective regularized evolution (MOREA) over a whole-space table (Syne Tune 0.16).

In Syne Tune 0.16 the single-fidelity multi-objective searchers are
``MultiObjectiveRegularizedEvolution`` (MOREA), multi-objective random search and ``EHVI``
(BoTorch, which needs torch and botorch: not installed in the benchmark environment, so left
out). MOREA runs through the scheduler's ask/tell interface, ``SingleFidelityScheduler.suggest``
and ``on_trial_complete``, with no backend: an evaluation is a table lookup.

Settings (chosen before any run on these tasks, not tuned on them):

* configuration space: ``choice(TSS_OPS)`` per TSS edge, ``ordinal(SSS_CHANNELS)`` per SSS layer
  (what the spaces are); all objectives passed in minimisation form with ``do_minimize=True``;
* population 20 (Syne Tune's default is 100), the same rule as the pymoo peers (pymoo_peers.py):
  about sqrt(300), the largest budget, so that most of the budget goes to evolution rather than to
  the random initial population;
* sample size 5: the default selection pressure of Syne Tune (10 of 100) would be a tournament
  of 2 at this population, close to random parents; 5 (a quarter) is the pressure of Real et al.'s
  NAS runs (25 of 100);
* seeding: ``random_seed=seed``, and numpy's global generator is seeded too, because 0.16's
  ``sample_random_config`` draws the initial population with the global generator.

MOREA mutates one hyperparameter of a parent without checking what was evaluated, so it can
suggest an architecture again; every suggestion is returned (search_quality.py reports both
countings).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from benchmarks.peers.common import TableTask, asked_until

ASK_LIMIT = 50


def run(name: str, task: TableTask, budget: int, seed: int, population: int) -> list[int]:
    if name != "morea":
        raise SystemExit(f"unknown Syne Tune peer {name!r}: expected morea")
    from syne_tune.backend.trial_status import Trial
    from syne_tune.config_space import choice, ordinal
    from syne_tune.optimizer.schedulers.multiobjective import MultiObjectiveRegularizedEvolution
    from syne_tune.optimizer.schedulers.single_fidelity_scheduler import SingleFidelityScheduler

    ordinal_space = task.space.name == "sss"
    config_space = {name_: (ordinal(list(options)) if ordinal_space else choice(list(options)))
                    for name_, options in zip(task.param_names, task.choices)}
    metrics = [f"objective_{j}" for j in range(len(task.names))]
    np.random.seed(seed)
    searcher = MultiObjectiveRegularizedEvolution(config_space, population_size=population,
                                                  sample_size=min(5, population), random_seed=seed)
    scheduler = SingleFidelityScheduler(config_space, metrics=metrics, do_minimize=True, searcher=searcher,
                                        random_seed=seed)
    rows: list[int] = []
    seen: set[int] = set()
    trial_id = 0
    while len(seen) < budget and len(rows) < budget * ASK_LIMIT:
        suggestion = scheduler.suggest()
        if suggestion is None:
            break
        config = suggestion.config
        row = task.row_of_params({k: config[k] for k in task.param_names})
        rows.append(row)
        if row >= 0:
            seen.add(row)
        values = task.answer(np.asarray([row]))[0]
        trial = Trial(trial_id=trial_id, config=config, creation_time=datetime.now())
        scheduler.on_trial_complete(trial, dict(zip(metrics, values.tolist())))
        trial_id += 1
    return asked_until(rows, task.index, budget)
