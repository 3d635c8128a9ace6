"""``--searcher NAME`` -> an Optuna sampler.

Each entry is a factory ``make(domain, *, seed, constraints_func)``; the driver passes the
domain (the table's architectures), the seed and, under constraints, a function that reads each
trial's constraint values (Optuna's convention: <= 0 is satisfied).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

from calnas.errors import UserError

# What `auto` means: the searcher benchmarks/search_quality.py found best on the embedded digits
# calibration table and the real NATS-Bench tables (benchmarks/README.md has the numbers).
AUTO = "guided"


@dataclass(frozen=True)
class SearcherInfo:
    name: str
    summary: str
    factory: Callable[[], Callable]  # returns make(domain, *, seed, constraints_func)
    available: Callable[[], bool] = lambda: True


def _module(name: str, attr: str = "make"):
    """Factory loader: ``searchers.<name>.<attr>``, imported only when the searcher is used."""
    def load():
        import importlib

        return getattr(importlib.import_module(f"calnas.searchers.{name}"), attr)

    return load


def _gp_available() -> bool:
    from calnas.searchers import gp

    return gp.available()


SEARCHERS: dict[str, SearcherInfo] = {
    info.name: info
    for info in (
        SearcherInfo("evolution", "regularized evolution, non-dominated tournament, one-edge mutation",
                    _module("evolution", "RegularizedEvolutionSampler")),
        SearcherInfo("local", "Pareto local search over one-edge neighbours after 25 random starts, skipping isomorphic twins",
                    _module("local", "LocalSearchSampler")),
        SearcherInfo("guided", "Pareto local search, neighbours picked by a Gaussian-process surrogate for the first 250 evaluations",
                    _module("guided", "GuidedLocalSampler")),
        SearcherInfo("random", "uniform random architectures (Optuna RandomSampler)", _module("random_search")),
        SearcherInfo("tpe", "Optuna multivariate TPE (slower per trial)", _module("tpe")),
        SearcherInfo("nsga2", "Optuna NSGA-II", _module("nsga", "make_nsga2")),
        SearcherInfo("nsga3", "Optuna NSGA-III", _module("nsga", "make_nsga3")),
        SearcherInfo("qmc", "Optuna quasi-Monte Carlo (scrambled Sobol)", _module("qmc")),
        SearcherInfo("gp", "Optuna Gaussian process (needs torch; small budgets)", _module("gp"), _gp_available),
    )
}


def names() -> list[str]:
    return ["auto", *SEARCHERS]


def resolve(name: str) -> str:
    """Canonical searcher name (``auto`` -> the current default); one-line error when unknown."""
    key = str(name).strip().lower()
    if key == "auto":
        return AUTO
    if key not in SEARCHERS:
        close = difflib.get_close_matches(key, names(), n=2, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"unknown searcher {name!r}{hint}; expected one of {', '.join(names())}")
    if not SEARCHERS[key].available():
        raise UserError(f"searcher {key!r} is not available here: the installed Optuna lacks it or "
                        "its dependencies (torch, scipy) are missing")
    return key


def make(name: str, domain, *, seed: int | None, constraints_func=None):
    """The sampler for a searcher name, seeded."""
    factory = SEARCHERS[resolve(name)].factory()
    return factory(domain, seed=seed, constraints_func=constraints_func)
