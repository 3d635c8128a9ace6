"""The search API in a few lines: tables, a search, its front, the hypervolume and a plot.

Run from the repository root: ``python examples/search_api.py [OUT_DIR]``. It searches the
embedded default table for accuracy and calibration when that table has calibration columns,
and the real NATS-Bench CIFAR-10 accuracies for accuracy and parameter count otherwise.
"""

import sys
from pathlib import Path

import calnas

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/example-search")

table = calnas.load_benchmark(None)  # the embedded default
print(f"default table: {table.name}, {len(table)} rows, columns {table.metric_columns}")
if table.has("pre_ECE_15"):
    benchmark, objectives, constraints = table, "acc,ece", ["acc>=0.5"]
else:
    benchmark, objectives, constraints = "nats-tss-cifar10", "acc,params", ["acc>=0.9"]

result = calnas.search(benchmark=benchmark, objectives=objectives, budget=300, searcher="auto", seed=0,
                       constraints=constraints)

print(result.front.to_string(index=False))
print(f"{result.evaluations} architectures evaluated; hypervolume {result.hypervolume:.4f}, "
      f"{result.hypervolume_ratio:.4f} of the true front's; "
      f"{result.true_front_found} of {len(result.true_front)} true-front members found")

# Every evaluated architecture, in order, as a DataFrame; and the files the CLI writes.
print(result.trials.head())
paths = result.save(out)
print("wrote", ", ".join(str(p) for p in paths.values()))
