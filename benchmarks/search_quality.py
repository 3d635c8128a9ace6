"""Search quality: how close each searcher gets to the true Pareto front, and how fast.

Tasks are tables that cover a whole space, so the true front is known by enumeration: the
embedded digits calibration table (acc, ece) and (acc, post_ece_15, params), the real
NATS-Bench tables CIFAR-10 (acc, params) and CIFAR-100 (acc, flops), and the size-space digits
table digits-sss (acc, ece) and (acc, post_ece_15, flops) by default.

For every task, searcher and seed, one search of the largest budget runs through
``calnas.search``; smaller budgets are its prefixes. That is exact, not an approximation:
samplers do not know the budget, so a run with budget 50 evaluates the first 50 architectures
of a run with budget 500 (the script checks this once per searcher).

Reported per task, searcher and budget, over the seeds:

* hypervolume ratio to the true front (normalised space, reference 1.1; docs/search.md):
  median and interquartile range;
* the same ratio with the reference at the table's worst corner ("corner ref"): per objective
  the worst value over the whole table, which is 1.0 in the normalised space (each objective is
  scaled by the table's own min and max). Reference points past the worst corner weigh the
  extreme members of a front more, the worst corner weighs none of them more, so it favours no
  searcher; a point that is the table's worst in some objective adds nothing there;
* true-front points found: distinct objective vectors of the true front that the found front
  reaches (median). On the digits table isomorphic twins have identical rows, so the 357
  true-front *architectures* of (acc, ece) are only 19 distinct points (26 isomorphism classes);
  counting architectures would reward evaluating twins;
* evaluations to reach a ratio of 0.95, 0.98 and 0.99 (median over the seeds, a seed that does not
  reach it within the largest budget counting as never, so the median is "-" when fewer than
  half do; how many seeds do in brackets).

How the budget is counted. ``calnas.search`` counts *distinct architectures*: a repeat proposal
is answered from the cache at no cost. calnas's own searchers never repeat (nor propose an
isomorphic twin of an evaluated architecture); Optuna's samplers do, so under that counting they
get their repeats free. A user running Optuna directly would set ``n_trials = budget`` and pay
for every trial, so for every Optuna sampler the script also reports ``NAME@trials``: the same
runs, with the ratio read after ``budget`` *trials* (repeats and failed proposals included).
The plain rows are the comparison most favourable to the peers.

Peers from other libraries (``benchmarks/peers/``, benchmark-only, in ``.venv-bench``):
``pymoo-nsga2``, ``pymoo-smsemoa``, ``pymoo-agemoea`` (pymoo, AGE-MOEA needs numba) and
``syne-morea`` (Syne Tune's multi-objective regularized evolution); ``--searchers peers`` names
all four. Each runs through its library's ask/tell loop over the table (an evaluation is a
lookup of the same objective values ``calnas.search`` reads) until it has asked for the largest
budget of distinct architectures; the distinct ones, in order, are scored by the same code as
calnas's runs. Their settings and why are in the adapters' docstrings (one rule for all:
library defaults, the library's documented integer-variable operators, population
``--peer-population``, default 20). They too can ask for an architecture again, so they get a
``NAME@trials`` row like Optuna's (every evaluation the library asked for counted). On TSS an
isomorphic twin is another architecture for the budget (calnas's table counting,
``dedupe="arch"``); its row holds the same values, so a peer that evaluates twins pays for them.

Files in ``--out`` (default ``runs/search-quality``): ``runs.csv`` (one row per run and budget),
``summary.csv``, ``summary.md`` and ``anytime.png`` (median gap ``1 - ratio`` against evaluations, IQR band,
log-log).

Usage::

    python benchmarks/search_quality.py --quick      # 5 seeds, budgets 50,100,200, no gp: ~1 min
    python benchmarks/search_quality.py --gp-budget 50 --gp-seeds 3   # 20 seeds, budgets 50..500

``@trials`` rows read Optuna samplers' runs per trial (n_trials = budget); see benchmarks/README.md.

``gp`` (Optuna's GPSampler) costs seconds per trial, so it runs only up to ``--gp-budget``
evaluations with ``--gp-seeds`` seeds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calnas.searchers.registry import AUTO  # noqa: E402  (needs the path above when calnas is not installed)
from benchmarks.peers import PEERS  # noqa: E402  (imports no peer library)

DEFAULT_TASKS = ("digits-tss:acc,ece;digits-tss:acc,post_ece_15,params;"
                 "nats-tss-cifar10:acc,params;nats-tss-cifar100:acc,flops;"
                 "digits-sss:acc,ece;digits-sss:acc,post_ece_15,flops")
DEFAULT_SEARCHERS = "guided,local,evolution,random,tpe,nsga2,nsga3,gp"
OWN = ("guided", "local", "evolution", "auto")  # calnas's samplers: one trial per distinct architecture
THRESHOLDS = (0.95, 0.98, 0.99)  # 0.98: the size space's target (issue 25)
GAP_FLOOR = 1e-5  # a found front equal to the true one has gap 0, which a log axis cannot show
PEER_POPULATION = 20  # the peers' population (benchmarks/peers/pymoo_peers.py says why)


def scoring(result) -> dict:
    """What scoring a run of a task needs, from any calnas result on it: the objectives, the
    table's normalisation bounds, the true front's points and hypervolumes (both references)."""
    from calnas import pareto

    objectives = result.info["objectives"]
    names = [o["name"] for o in objectives]
    directions = [o["direction"] for o in objectives]
    bounds = result.info["normalisation"]
    best = pareto.as_minimisation([[bounds[n]["best"] for n in names]], directions)[0]
    worst = pareto.as_minimisation([[bounds[n]["worst"] for n in names]], directions)[0]
    true = pareto.normalise(pareto.as_minimisation(result.true_front[names].to_numpy(), directions), best, worst)
    corner = np.ones(len(names))  # the table's worst corner, normalised by the table's min and max
    return {"names": names, "directions": directions, "best": best, "worst": worst,
            "true_points": {tuple(p) for p in true.tolist()}, "true_hv": result.true_hypervolume,
            "true_hv_corner": pareto.hypervolume(true, corner), "corner": corner,
            "true_front_size": result.true_front_points}


def anytime(result) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hypervolume ratios (calnas's reference, worst-corner reference) and true-front members
    found after each evaluation of a result."""
    context = scoring(result)
    return anytime_values(result.trials[context["names"]].to_numpy(), context)


def anytime_values(values, context: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`anytime` for objective values (in the user's directions, one row per evaluation)."""
    from calnas import pareto

    points = pareto.normalise(pareto.as_minimisation(values, context["directions"]), context["best"], context["worst"])
    reference = np.full(len(context["names"]), pareto.REFERENCE)
    true_points = context["true_points"]
    ratios = np.empty(len(points))
    corner_ratios = np.empty(len(points))
    found = np.empty(len(points), dtype=int)
    front = np.zeros((0, len(context["names"])))
    hv = hv_corner = 0.0
    reached: set[tuple] = set()
    for i, point in enumerate(points):
        key = tuple(point.tolist())
        if key in true_points:
            reached.add(key)
        # Only a point that no front member dominates can change the hypervolume.
        if not any(pareto.dominates(f, point) or np.array_equal(f, point) for f in front):
            front = np.vstack([front[~np.array([pareto.dominates(point, f) for f in front], dtype=bool)], point])
            hv = pareto.hypervolume(front, reference)
            hv_corner = pareto.hypervolume(front, context["corner"])
        ratios[i] = hv / context["true_hv"]
        corner_ratios[i] = hv_corner / context["true_hv_corner"]
        found[i] = len(reached)
    return ratios, corner_ratios, found


def trials_to_distinct(result) -> np.ndarray:
    """Distinct architectures evaluated after each Optuna trial (repeats and failures included)."""
    from optuna.trial import TrialState

    counts, n = [], 0
    for trial in result.study.get_trials(deepcopy=False):
        if trial.state == TrialState.COMPLETE and "calnas_repeat_of" not in trial.user_attrs:
            n += 1
        counts.append(n)
    return np.asarray(counts, dtype=int)


_TABLES: dict = {}  # per worker process: each table is read once, its true fronts then cached


def _table(task: str):
    import calnas

    table = _TABLES.get(task)
    if table is None:
        table = _TABLES[task] = calnas.load_benchmark(task)
    return table


_CONTEXTS: dict = {}


def _context(task: str, objectives: str) -> dict:
    """Scoring context of a task (from a one-evaluation calnas search: the true front and the
    normalisation do not depend on the searcher)."""
    import calnas

    key = (task, objectives)
    if key not in _CONTEXTS:
        _CONTEXTS[key] = scoring(calnas.search(_table(task), objectives, budget=1, searcher="random", seed=0))
    return _CONTEXTS[key]


def per_trial_run(run: dict, distinct: np.ndarray) -> dict:
    """The same run read per trial (every proposal counted): ``distinct`` is the number of
    distinct architectures evaluated after each trial."""
    at = np.maximum(distinct - 1, 0)
    return {**run, "searcher": f"{run['searcher']}@trials", "indices": None,
            **{k: np.where(distinct > 0, run[k][at], 0) for k in ("ratios", "corner_ratios", "found")}}


def peer_run(job: tuple, population: int) -> list[dict]:
    from benchmarks.peers import run_peer

    task, objectives, searcher, seed, budget = job
    table = _table(task)
    context = _context(task, objectives)
    start = time.perf_counter()
    asked = run_peer(searcher, table, objectives, budget, seed, population)
    seconds = time.perf_counter() - start
    indices = np.asarray(list(dict.fromkeys(asked)), dtype=np.int64)  # distinct, first-asked order
    values = table.frame.loc[indices]
    from calnas import objectives as objectives_module

    spec = objectives_module.parse(objectives, table)
    values = np.column_stack([o.values(values) for o in spec.objectives])
    ratios, corner_ratios, found = anytime_values(values, context)
    run = {"task": f"{task}:{objectives}", "searcher": searcher, "seed": seed, "seconds": seconds,
           "ratios": ratios, "corner_ratios": corner_ratios, "found": found,
           "true_front_size": context["true_front_size"], "indices": indices}
    first_ask = np.zeros(len(asked), dtype=int)  # 1 where a request was an architecture's first
    first_ask[[asked.index(a) for a in indices]] = 1
    distinct = np.cumsum(first_ask)
    return [run, per_trial_run(run, distinct)]


def one_run(job: tuple, population: int = PEER_POPULATION) -> list[dict]:
    task, objectives, searcher, seed, budget = job
    if searcher in PEERS:
        return peer_run(job, population)
    import calnas

    table = _table(task)
    start = time.perf_counter()
    result = calnas.search(table, objectives, budget=budget, searcher=searcher, seed=seed)
    seconds = time.perf_counter() - start
    ratios, corner_ratios, found = anytime(result)
    assert abs(ratios[-1] - result.hypervolume_ratio) < 1e-9  # the incremental front agrees
    assert found[-1] == result.true_front_points_found
    run = {"task": f"{task}:{objectives}", "searcher": searcher, "seed": seed, "seconds": seconds,
           "ratios": ratios, "corner_ratios": corner_ratios, "found": found,
           "true_front_size": result.true_front_points, "indices": result.trials["index"].to_numpy()}
    if searcher in OWN:
        return [run]
    # The same run read per Optuna trial: what n_trials = budget buys.
    return [run, per_trial_run(run, trials_to_distinct(result))]


def check_prefix(task: str, objectives: str, searcher: str, budget: int, full: dict,
                 population: int = PEER_POPULATION) -> None:
    import calnas

    if searcher in PEERS:
        short = peer_run((task, objectives, searcher, full["seed"], budget), population)[0]
        if not np.array_equal(short["indices"], full["indices"][:budget]):
            raise SystemExit(f"{searcher}: a run of {budget} is not a prefix of a longer run; budgets cannot share runs")
        return
    short = calnas.search(task, objectives, budget=budget, searcher=searcher, seed=full["seed"])
    if not np.array_equal(short.trials["index"].to_numpy(), full["indices"][:budget]):
        raise SystemExit(f"{searcher}: a run of {budget} is not a prefix of a longer run; budgets cannot share runs")


def summarise(runs: list[dict], budgets: list[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    for run in runs:
        for budget in budgets:
            if budget > len(run["ratios"]):
                continue
            row = {"task": run["task"], "searcher": run["searcher"], "seed": run["seed"], "budget": budget,
                   "hv_ratio": run["ratios"][budget - 1], "hv_ratio_corner": run["corner_ratios"][budget - 1],
                   "true_front_points_found": run["found"][budget - 1],
                   "true_front_size": run["true_front_size"]}
            for t in THRESHOLDS:
                reached = np.flatnonzero(run["ratios"][:budget] >= t)
                row[f"evals_to_{t}"] = int(reached[0]) + 1 if reached.size else np.nan
            rows.append(row)
    per_run = pd.DataFrame(rows)
    groups = per_run.groupby(["task", "searcher", "budget"], sort=False)
    summary = groups.agg(
        seeds=("seed", "size"),
        hv_ratio_median=("hv_ratio", "median"),
        hv_ratio_q25=("hv_ratio", lambda s: s.quantile(0.25)),
        hv_ratio_q75=("hv_ratio", lambda s: s.quantile(0.75)),
        hv_corner_median=("hv_ratio_corner", "median"),
        hv_corner_q25=("hv_ratio_corner", lambda s: s.quantile(0.25)),
        hv_corner_q75=("hv_ratio_corner", lambda s: s.quantile(0.75)),
        found_median=("true_front_points_found", "median"),
        true_front_size=("true_front_size", "first"),
        **{f"evals_to_{t}_median": (f"evals_to_{t}", _median_never) for t in THRESHOLDS},
        **{f"reached_{t}": (f"evals_to_{t}", "count") for t in THRESHOLDS},
    ).reset_index()
    return per_run, summary


def _median_never(values: pd.Series) -> float:
    """Median with seeds that never reach the threshold counted as infinitely late (NaN if the
    median falls among them)."""
    filled = values.fillna(np.inf).sort_values().to_numpy()
    med = float(np.median(filled)) if len(filled) else np.nan
    return med if np.isfinite(med) else np.nan


def markdown(summary: pd.DataFrame) -> str:
    lines = []
    for task, block in summary.groupby("task", sort=False):
        lines += [f"### {task}", "",
                  "| searcher | budget | seeds | HV ratio median [IQR] | HV ratio, corner ref, median [IQR] | "
                  "true-front points found (median / total) | "
                  + " | ".join(f"evals to {t} (reached)" for t in THRESHOLDS) + " |",
                  "| --- | ---: | ---: | --- | --- | --- |" + " --- |" * len(THRESHOLDS)]
        for r in block.to_dict("records"):
            cells = [r["searcher"], str(r["budget"]), str(r["seeds"]),
                     f"{r['hv_ratio_median']:.4f} [{r['hv_ratio_q25']:.4f}, {r['hv_ratio_q75']:.4f}]",
                     f"{r['hv_corner_median']:.4f} [{r['hv_corner_q25']:.4f}, {r['hv_corner_q75']:.4f}]",
                     f"{r['found_median']:g} / {r['true_front_size']}"]
            for t in THRESHOLDS:
                med = r[f"evals_to_{t}_median"]
                cells.append(f"{med:.0f} ({r[f'reached_{t}']}/{r['seeds']})" if med == med
                             else f"- ({r[f'reached_{t}']}/{r['seeds']})")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(runs: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = list(dict.fromkeys(r["task"] for r in runs))
    cols = min(2, len(tasks))
    rows = -(-len(tasks) // cols)
    figure = Figure(figsize=(6.5 * cols, 4.6 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    for n, task in enumerate(tasks):
        ax = figure.add_subplot(rows, cols, n + 1)
        for searcher in dict.fromkeys(r["searcher"] for r in runs if r["task"] == task):
            if searcher.endswith("@trials"):
                continue  # the plot counts distinct architectures; the tables have both
            curves = [r["ratios"] for r in runs if r["task"] == task and r["searcher"] == searcher]
            length = min(len(c) for c in curves)
            stack = np.vstack([c[:length] for c in curves])
            x = np.arange(1, length + 1)
            # The gap to the true front on a log scale: ratios all crowd just under 1.
            gap = np.clip(1.0 - stack, GAP_FLOOR, None)
            q25, med, q75 = np.quantile(gap, [0.25, 0.5, 0.75], axis=0)
            label = f"{searcher} (= auto)" if searcher == AUTO else searcher
            (line,) = ax.plot(x, med, label=f"{label} ({len(curves)} seeds)", linewidth=2.2 if searcher == AUTO else 1.2)
            ax.fill_between(x, q25, q75, color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(max(GAP_FLOOR, 1e-4), 0.2)
        ax.set_xlabel("distinct architectures evaluated")
        ax.set_ylabel("1 - hypervolume ratio (gap to the true front)")
        ax.set_title(task, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="lower left")
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=DEFAULT_TASKS, help="BENCHMARK:OBJECTIVES;... (default: %(default)s)")
    parser.add_argument("--searchers", default=DEFAULT_SEARCHERS,
                        help=f"comma-separated; peers from other libraries: {', '.join(PEERS)} "
                             "('peers' = all four; run with .venv-bench/bin/python)")
    parser.add_argument("--peer-population", type=int, default=PEER_POPULATION,
                        help="population of the evolutionary peers (default %(default)s; see benchmarks/peers/)")
    parser.add_argument("--budgets", default="50,100,200,500")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first-seed .. first-seed + seeds - 1 (develop on other seeds than the measurement's)")
    parser.add_argument("--gp-budget", type=int, default=50)
    parser.add_argument("--gp-seeds", type=int, default=3)
    parser.add_argument("--gp-tasks", type=int, default=1, help="gp runs on the first N tasks only")
    parser.add_argument("--quick", action="store_true", help="5 seeds, budgets 50,100,200, no gp")
    parser.add_argument("--png", type=Path, default=None, help="also copy anytime.png here")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "search-quality")
    args = parser.parse_args()
    searchers = list(dict.fromkeys(p for s in args.searchers.split(",") for p in (PEERS if s == "peers" else [s])))
    for searcher in searchers:
        if searcher in PEERS:
            from benchmarks.peers import missing

            reason = missing(searcher)
            if reason is not None:
                raise SystemExit(reason)
    budgets = sorted(int(b) for b in args.budgets.split(","))
    seeds = args.seeds
    if args.quick:
        searchers = [s for s in searchers if s != "gp"]
        budgets, seeds = [b for b in budgets if b <= 200] or budgets[:1], min(seeds, 5)
    tasks = [tuple(t.rsplit(":", 1)) for t in args.tasks.split(";")]

    jobs = []
    for task, objectives in tasks:
        for searcher in searchers:
            if searcher == "gp":
                if (task, objectives) not in tasks[:args.gp_tasks]:
                    continue
                jobs += [(task, objectives, searcher, s, min(args.gp_budget, budgets[-1])) for s in range(args.first_seed, args.first_seed + args.gp_seeds)]
            else:
                jobs += [(task, objectives, searcher, s, budgets[-1]) for s in range(args.first_seed, args.first_seed + seeds)]
    start = time.perf_counter()
    # gp first: its runs are the longest, so the pool does not wait on them at the end.
    jobs.sort(key=lambda j: j[2] != "gp")
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        runs = [run for pair in pool.map(partial(one_run, population=args.peer_population), jobs) for run in pair]
    for searcher in searchers:
        first = next(r for r in runs if r["searcher"] == searcher)
        task, objectives = first["task"].rsplit(":", 1)
        check_prefix(task, objectives, searcher, min(budgets[0], len(first["ratios"])), first, args.peer_population)

    args.out.mkdir(parents=True, exist_ok=True)
    per_run, summary = summarise(runs, budgets)
    per_run.to_csv(args.out / "runs.csv", index=False, float_format="%.6g")
    summary.to_csv(args.out / "summary.csv", index=False, float_format="%.6g")
    text = markdown(summary)
    (args.out / "summary.md").write_text(text)
    plot(runs, args.out / "anytime.png")
    if args.png is not None:
        plot(runs, args.png)
    seconds = pd.DataFrame(runs).groupby(["task", "searcher"], sort=False)["seconds"].median()
    print(text)
    print("median seconds per run (largest budget):")
    print(seconds.round(2).to_string())
    print(f"\n{len(runs)} runs in {time.perf_counter() - start:.0f} s; files in {args.out}")


if __name__ == "__main__":
    main()
