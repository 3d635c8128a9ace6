"""How long `calnas search` takes, end to end, next to a bare Optuna script with the same sampler.

Both run as fresh processes (interpreter start and imports included) and search 500
architectures of the real NATS-Bench CIFAR-10 table for accuracy and parameter count:

* calnas: ``python -m calnas search --benchmark nats-tss-cifar10 --objective acc,params
  --budget 500 --seed 0 --searcher S --out DIR`` -- 500 *distinct* architectures, true front,
  hypervolume, front.csv, trials.csv, summary.json and pareto.png;
* bare Optuna: read the same embedded table with pandas, ``study.optimize`` for 500 trials
  with the same sampler (calnas's own class for evolution/local/guided, Optuna's for the others),
  repeats included, nothing written. With ``--bare-distinct`` it stops at 500 *distinct*
  architectures instead (repeats answered from a dict), the same work as calnas's budget.

Usage::

    python benchmarks/search_speed.py                      # guided (= auto), nsga2, random
    python benchmarks/search_speed.py --searchers evolution --repeat 9
    python benchmarks/search_speed.py --objective acc,ece --benchmark digits-tss   # calnas only
    python benchmarks/search_speed.py --storage sqlite --searchers guided,random    # both on a fresh SQLite file
    python benchmarks/search_speed.py --storage journal --no-plot                   # both on a fresh journal file

``--sweep 500,1000,2000,4000,8000,15625`` instead times the search alone (in a fresh process,
after loading the table and a 10-evaluation warm-up) at each budget, and prints the cost per
evaluation and its ratio to the cost at the first budget: how a searcher scales up to
exhausting the table.

With ``--storage``, each run of either side gets a fresh file of that kind (calnas through
``--storage``, the bare script through Optuna's own storage), and the ratio calnas/bare is taken
pair by pair (the two run back to back).

Prints the median and the fastest of ``--repeat`` runs of each.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BARE = r'''
import sys, optuna, pandas as pd
from importlib import resources
optuna.logging.set_verbosity(optuna.logging.WARNING)
searcher, budget, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = resources.files("calnas") / "data"
acc = pd.read_csv(data / "nats_tss_test_accuracy.csv.gz").set_index("arch")["cifar10_test_acc"] / 100
meta = pd.read_csv(data / "tss_meta.csv.gz")
arch_of = pd.read_csv(data / "nats_tss_test_accuracy.csv.gz")["arch"]
params = dict(zip(arch_of[meta["index"]], meta["params_cifar10"]))
ops = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
edges = ("edge_0_1", "edge_0_2", "edge_1_2", "edge_0_3", "edge_1_3", "edge_2_3")
lookup = {a: (float(acc[a]), float(params[a])) for a in acc.index}

def arch_string(p):
    g = [p[e] for e in edges]
    return f"|{g[0]}~0|+|{g[1]}~0|{g[2]}~1|+|{g[3]}~0|{g[4]}~1|{g[5]}~2|"

if searcher in ("evolution", "local", "guided"):
    sys.path.insert(0, sys.argv[4])
    from calnas.spaces import TSS
    from calnas.searchers.domain import Domain
    from calnas.searchers.evolution import RegularizedEvolutionSampler
    from calnas.searchers.guided import GuidedLocalSampler
    from calnas.searchers.local import LocalSearchSampler
    archs = list(lookup)
    cls = {"evolution": RegularizedEvolutionSampler, "local": LocalSearchSampler, "guided": GuidedLocalSampler}[searcher]
    sampler = cls(Domain(TSS, archs, range(len(archs))), seed=seed)
else:
    sampler = {"random": optuna.samplers.RandomSampler, "nsga2": optuna.samplers.NSGAIISampler,
               "nsga3": optuna.samplers.NSGAIIISampler, "tpe": optuna.samplers.TPESampler,
               "qmc": optuna.samplers.QMCSampler}[searcher](seed=seed)
storage = None
if len(sys.argv) > 6 and sys.argv[5] == "sqlite":
    storage = f"sqlite:///{sys.argv[6]}"
elif len(sys.argv) > 6 and sys.argv[5] == "journal":
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    storage = JournalStorage(JournalFileBackend(sys.argv[6]))
study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler, storage=storage)
seen = set()

def objective(t):
    arch = arch_string({e: t.suggest_categorical(e, ops) for e in edges})
    seen.add(arch)
    return lookup[arch]

def stop_at_distinct(study, trial):
    if len(seen) >= budget:
        study.stop()

if sys.argv[-1] == "distinct":  # the same work as calnas: `budget` distinct architectures, repeats answered too
    study.optimize(objective, callbacks=[stop_at_distinct])
else:
    study.optimize(objective, n_trials=budget)
print(len(study.best_trials))
'''


SWEEP = r'''
import sys, time, optuna, calnas
optuna.logging.set_verbosity(optuna.logging.WARNING)
benchmark, objective, searcher, budget, seed = sys.argv[1:6]
table = calnas.load_benchmark(benchmark)
calnas.search(table, objective, budget=10, searcher=searcher, seed=int(seed))
start = time.perf_counter()
result = calnas.search(table, objective, budget=int(budget), searcher=searcher, seed=int(seed))
print(time.perf_counter() - start, result.evaluations)
'''


def sweep(args) -> None:
    budgets = [int(b) for b in args.sweep.split(",")]
    print(f"search time alone (s) and per evaluation (ms) by budget; {args.benchmark}, {args.objective}, "
          f"median of {args.repeat}")
    for searcher in args.searchers.split(","):
        first = None
        for budget in budgets:
            runs = []
            for _ in range(args.repeat):
                proc = subprocess.run([sys.executable, "-c", SWEEP, args.benchmark, args.objective, searcher,
                                       str(budget), str(args.seed)], cwd=ROOT, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise SystemExit(proc.stderr)
                seconds, evaluations = proc.stdout.split()
                runs.append((float(seconds), int(evaluations)))
            seconds = statistics.median(r[0] for r in runs)
            per = 1000 * seconds / runs[0][1]
            first = per if first is None else first
            print(f"{searcher:<10} {budget:>6} {runs[0][1]:>6} evaluated {seconds:8.2f} s {per:7.3f} ms/eval "
                  f"{per / first:5.2f}x")


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one process; CPU time is less sensitive to other load."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searchers", default="guided,nsga2,random")
    parser.add_argument("--budget", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--benchmark", default="nats-tss-cifar10")
    parser.add_argument("--objective", default="acc,params")
    parser.add_argument("--storage", choices=("memory", "sqlite", "journal"), default="memory")
    parser.add_argument("--sweep", help="comma-separated budgets: time the search alone at each")
    parser.add_argument("--bare-distinct", action="store_true",
                        help="the bare script stops at --budget distinct architectures (calnas's work: repeats "
                             "answered, not counted) instead of --budget trials")
    parser.add_argument("--no-plot", action="store_true",
                        help="calnas writes no PNGs (the bare script draws none): search overhead alone")
    args = parser.parse_args()
    if args.sweep:
        sweep(args)
        return
    bare_ok = args.benchmark == "nats-tss-cifar10" and args.objective == "acc,params"

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for searcher in args.searchers.split(","):
            calnas_times, bare_times = [], []
            for run in range(args.repeat):  # interleaved, so drifts in machine load hit both alike
                calnas_cmd = [sys.executable, "-m", "calnas", "search", "--benchmark", args.benchmark,
                              "--objective", args.objective, "--budget", str(args.budget), "--seed", str(args.seed),
                              "--searcher", searcher, "--out", str(Path(tmp) / searcher), "--json"]
                if args.no_plot:
                    calnas_cmd.append("--no-plot")
                bare_cmd = [sys.executable, "-c", BARE, searcher, str(args.budget), str(args.seed), str(ROOT)]
                if args.storage != "memory":
                    suffix = "db" if args.storage == "sqlite" else "log"
                    mine, theirs = Path(tmp) / f"calnas-{searcher}-{run}.{suffix}", Path(tmp) / f"bare-{searcher}-{run}.{suffix}"
                    calnas_cmd += ["--storage", f"{args.storage}:///{mine}"]
                    bare_cmd += [args.storage, str(theirs)]
                if args.bare_distinct:
                    bare_cmd.append("distinct")
                calnas_times.append(timed(calnas_cmd))
                if bare_ok:
                    bare_times.append(timed(bare_cmd))
            rows.append((searcher, calnas_times, bare_times))

    bare_stop = "distinct architectures" if args.bare_distinct else "trials"
    print(f"{args.budget} architectures, {args.benchmark}, objectives {args.objective}, storage {args.storage}, "
          f"bare script stops at {args.budget} {bare_stop}; {args.repeat} runs each; seconds per whole process, "
          f"wall (CPU)")
    print(f"{'searcher':<10} {'calnas median':>16} {'calnas min':>16} {'bare median':>16} {'bare min':>16} "
          f"{'ratio (wall)':>13}")
    for searcher, calnas_times, bare_times in rows:
        ratios = [c[0] / b[0] for c, b in zip(calnas_times, bare_times)]
        ratio = f"{statistics.median(ratios):13.2f}" if ratios else f"{'-':>13}"
        print(f"{searcher:<10} {_cell(calnas_times, statistics.median)} {_cell(calnas_times, min)} "
              f"{_cell(bare_times, statistics.median)} {_cell(bare_times, min)} {ratio}")


def _cell(times, pick) -> str:
    if not times:
        return f"{'-':>16}"
    wall, cpu = pick(t[0] for t in times), pick(t[1] for t in times)
    return f"{wall:8.2f} ({cpu:5.2f})"


if __name__ == "__main__":
    main()
