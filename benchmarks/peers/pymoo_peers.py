"""pymoo's NSGA-II, SMS-EMOA and AGE-MOEA over a whole-space table (pymoo 0.6; AGE-MOEA needs numba).

Settings (one rule for every peer, chosen before any run on these tasks, not tuned on them):

* encoding and operators: pymoo's documented recipe for integer variables ("Discrete Variable
  Problem" in pymoo's guide): ``IntegerRandomSampling``, ``SBX(prob=1.0, eta=3.0, vtype=float,
  repair=RoundingRepair())``, ``PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair())``,
  ``eliminate_duplicates=True``; bounds 0..4 per TSS edge, 0..7 per SSS layer (ordinal). The
  rest is each algorithm's pymoo default (binary tournament selection; SMS-EMOA's normalised
  hypervolume-contribution survival; AGE-MOEA's adaptive geometry estimation).
* population: 20 for all three, instead of pymoo's default 100: with budgets of 50 to 300
  evaluations, 100 would leave the smallest budgets inside the random initial population and the
  largest with two generations. 20 is about sqrt(300), the largest budget of the measurement
  (15 generations there, 2.5 at 50). It cannot follow each budget (sqrt(budget)), because
  budgets are prefixes of one run, as for every other searcher (search_quality.py).
* SMS-EMOA steady state, one offspring per step ((mu + 1), as Beume et al. define it), not
  pymoo's default of a whole population of offspring per generation: with a few hundred
  evaluations, a generational SMS-EMOA would be an NSGA-II with another tie-break.

Every evaluation pymoo asks for is counted and returned; pymoo removes duplicates within a
batch and against the current population, not against everything evaluated before, so an
architecture can be asked for again (search_quality.py reports both countings).
"""

from __future__ import annotations

import numpy as np

from benchmarks.peers.common import TableTask, asked_until

ASK_LIMIT = 50  # at most budget * ASK_LIMIT evaluations asked (a run that stops finding new ones)


def algorithm(name: str, population: int):
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling

    operators = dict(sampling=IntegerRandomSampling(),
                     crossover=SBX(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                     mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                     eliminate_duplicates=True)
    if name == "nsga2":
        from pymoo.algorithms.moo.nsga2 import NSGA2

        return NSGA2(pop_size=population, **operators)
    if name == "smsemoa":
        from pymoo.algorithms.moo.sms import SMSEMOA

        return SMSEMOA(pop_size=population, n_offsprings=1, **operators)
    if name == "agemoea":
        from pymoo.algorithms.moo.age import AGEMOEA

        return AGEMOEA(pop_size=population, **operators)
    raise SystemExit(f"unknown pymoo peer {name!r}: expected nsga2, smsemoa or agemoea")


def run(name: str, task: TableTask, budget: int, seed: int, population: int) -> list[int]:
    from pymoo.core.problem import Problem
    from pymoo.core.termination import NoTermination

    rows: list[int] = []

    class TableProblem(Problem):
        def __init__(self):
            sizes = np.asarray(task.sizes)
            super().__init__(n_var=len(sizes), n_obj=len(task.names), xl=np.zeros(len(sizes)), xu=sizes - 1.0,
                             vtype=int)

        def _evaluate(self, x, out, *args, **kwargs):
            found = task.rows_of_genes(np.rint(x).astype(np.int64))
            rows.extend(found.tolist())
            out["F"] = task.answer(found)

    problem = TableProblem()
    method = algorithm(name, population)
    method.setup(problem, termination=NoTermination(), seed=seed, verbose=False)
    seen: set[int] = set()
    stalls = 0
    while len(seen) < budget and len(rows) < budget * ASK_LIMIT and stalls < 100:
        before = len(rows)
        offspring = method.ask()
        if len(offspring):
            method.evaluator.eval(problem, offspring)
        method.tell(infills=offspring)
        seen.update(r for r in rows[before:] if r >= 0)
        stalls = stalls + 1 if len(rows) == before else 0
    return asked_until(rows, task.index, budget)
