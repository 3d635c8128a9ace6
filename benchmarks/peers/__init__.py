"""Peer searchers for ``benchmarks/search_quality.py``: other libraries' multi-objective
searchers run over a whole-space table, each evaluation a table lookup.

Benchmark-only: pymoo and Syne Tune are never calnas runtime dependencies. They live in the
benchmark virtualenv (``.venv-bench``, see benchmarks/README.md, "Peers from other libraries"),
so run the script with ``.venv-bench/bin/python`` when a peer is asked for.

Every adapter returns the architecture indices in the order its library asked for them, every
request included (repeats of an architecture already evaluated too); the script scores the
distinct ones exactly as it scores calnas's own runs.
"""

from __future__ import annotations

import importlib.util

# searcher name -> (module in this package, the library it needs, the pip name)
PEERS = {
    "pymoo-nsga2": ("pymoo_peers", "pymoo", "pymoo"),
    "pymoo-smsemoa": ("pymoo_peers", "pymoo", "pymoo"),
    "pymoo-agemoea": ("pymoo_peers", "numba", "pymoo numba"),
    "syne-morea": ("syne_tune_peers", "syne_tune", "syne-tune"),
}


def missing(name: str) -> str | None:
    """None when peer ``name`` can run here, else a one-line reason."""
    module, library, pip_name = PEERS[name]
    needed = ["pymoo", library] if module == "pymoo_peers" else [library]
    absent = [lib for lib in dict.fromkeys(needed) if importlib.util.find_spec(lib) is None]
    if not absent:
        return None
    return (f"{name} needs {' and '.join(absent)} (benchmark-only peers, not calnas dependencies): "
            f"run with .venv-bench/bin/python (or pip install {pip_name} into a benchmark environment)")


def run_peer(name: str, table, objectives: str, budget: int, seed: int, population: int) -> list[int]:
    """Architecture indices that peer ``name`` asked for, in order, until ``budget`` distinct ones."""
    reason = missing(name)
    if reason is not None:
        raise SystemExit(reason)
    from benchmarks.peers.common import TableTask

    task = TableTask.of(table, objectives)
    if PEERS[name][0] == "pymoo_peers":
        from benchmarks.peers import pymoo_peers

        return pymoo_peers.run(name.removeprefix("pymoo-"), task, budget, seed, population)
    from benchmarks.peers import syne_tune_peers

    return syne_tune_peers.run(name.removeprefix("syne-"), task, budget, seed, population)
