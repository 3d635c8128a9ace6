"""Training recipes on digits: each recipe against ``ce`` on 20 architectures, 3 seeds.

    nice -n 10 .venv/bin/python benchmarks/recipes.py                  # 2 workers, runs/bench-recipes/
    nice -n 10 .venv/bin/python benchmarks/recipes.py --workers 1 --out other.csv

Every (architecture, seed, recipe) is one ``calnas.live.evaluate.evaluate_live`` on CPU with the
default digits TSS protocol (``DIGITS_TSS``: C=8, N=2, 6 epochs of batch 32 on 150 images, SGD
lr 0.1, 30 steps) and ``--recipe`` at its default parameter. The architectures are a fixed
list (:data:`ARCHS`): the class representatives at the 2.5%, 7.5%, ..., 97.5% quantiles of
accuracy in the embedded ``digits-tss`` table (6,466 classes), so they span the space from
near-chance to the best networks. A seed fixes the data split, the initial weights and the batch
order, and every recipe draws its own random numbers from its own stream, so ``recipe`` and
``ce`` with the same (architecture, seed) start alike and see the same batches: the script
reports the paired differences recipe - ce.

Each finished evaluation is appended (flushed, fsynced) to the checkpoint CSV; a rerun skips
what is there, so an interrupted run resumes. At most 2 worker processes (spawned, one torch
thread each). The summary (markdown) goes to stdout.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Class representatives at accuracy quantiles (i + 0.5) / 20 of the embedded digits-tss table,
# lowest accuracy first (computed once from the table; fixed here so that runs compare).
ARCHS = (8498, 109, 6857, 3378, 2927, 10960, 9148, 14039, 1080, 6774,
         5025, 6390, 907, 8464, 737, 12311, 10213, 1041, 4800, 903)
SEEDS = (0, 1, 2)
METRICS = ("pre_ECE_15", "post_ECE_15", "acc", "temperature")
FIELDS = ("index", "seed", "recipe", *METRICS, "train_seconds", "final_train_loss")


def recipes() -> list[str]:
    """Every recipe at its default parameter, ce first (from calnas.live.recipes.RECIPES)."""
    from calnas.live.recipes import RECIPES, canonical_recipe

    return [canonical_recipe(name) for name in RECIPES]


def evaluate(task: tuple[int, int, str]) -> dict:
    from calnas.live.evaluate import evaluate_live

    index, seed, recipe = task
    record = evaluate_live(index, dataset="digits", device="cpu", seed=seed, recipe=recipe).record
    row = {"index": index, "seed": seed, "recipe": record["settings"]["recipe"]}
    row.update({m: record["metrics"].get(m) for m in METRICS})
    row.update(train_seconds=round(record["training"]["train_seconds"], 4),
               final_train_loss=record["training"]["final_train_loss"])
    return row


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def done_keys(path: Path) -> set[tuple[int, int, str]]:
    if not path.is_file() or path.stat().st_size == 0:
        return set()
    with open(path, "rb") as fh:
        data = fh.read()
    end = data.rfind(b"\n") + 1
    if end < len(data):  # a torn last line (killed mid-write): cut it
        with open(path, "r+b") as fh:
            fh.truncate(end)
        data = data[:end]
    rows = list(csv.DictReader(data.decode().splitlines()))
    return {(int(r["index"]), int(r["seed"]), r["recipe"]) for r in rows}


def run(out: Path, workers: int) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    done = done_keys(out)
    todo = [(i, s, r) for i in ARCHS for s in SEEDS for r in recipes() if (i, s, r) not in done]
    print(f"{len(done)} evaluations in {out}, {len(todo)} to run", file=sys.stderr)
    new = not out.is_file() or out.stat().st_size == 0
    with open(out, "a", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS, lineterminator="\n")
        if new:
            writer.writeheader()

        def keep(row):
            writer.writerow(row)
            fh.flush()
            os.fsync(fh.fileno())

        if workers == 1:
            _init_worker()
            for n, task in enumerate(todo, 1):
                keep(evaluate(task))
                if n % 10 == 0:
                    print(f"{n}/{len(todo)}", file=sys.stderr)
            return
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            for n, row in enumerate(pool.imap_unordered(evaluate, todo, chunksize=1), 1):
                keep(row)
                if n % 10 == 0:
                    print(f"{n}/{len(todo)}", file=sys.stderr)


def summarise(out: Path) -> str:
    import numpy as np
    import pandas as pd

    frame = pd.read_csv(out)
    names = recipes()
    base = frame[frame["recipe"] == "ce"].set_index(["index", "seed"])
    lines = [f"{len(frame)} evaluations: {frame['index'].nunique()} architectures x {frame['seed'].nunique()} "
             f"seeds x {frame['recipe'].nunique()} recipes.", "",
             "| recipe | pairs | median pre_ECE_15 | Δ pre_ECE_15 | pre better | median post_ECE_15 "
             "| Δ post_ECE_15 | post better | median acc | Δ acc | acc not worse | median train s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name in names:
        mine = frame[frame["recipe"] == name].set_index(["index", "seed"])
        pairs = mine.join(base.add_suffix("_ce"), how="inner")
        secs = mine["train_seconds"].median()
        if name == "ce":
            lines.append(f"| `ce` | {len(mine)} | {mine['pre_ECE_15'].median():.3f} | – | – | "
                         f"{mine['post_ECE_15'].median():.3f} | – | – | {mine['acc'].median():.3f} | – | – | {secs:.2f} |")
            continue
        cells = [f"`{name}`", str(len(pairs))]
        for metric, better in (("pre_ECE_15", "lower"), ("post_ECE_15", "lower"), ("acc", "higher")):
            delta = pairs[metric] - pairs[f"{metric}_ce"]
            wins = (delta < 0) if better == "lower" else (delta >= 0)
            q1, q3 = delta.quantile(0.25), delta.quantile(0.75)
            cells += [f"{pairs[metric].median():.3f}", f"{delta.median():+.3f} [{q1:+.3f}, {q3:+.3f}]",
                      f"{wins.mean():.0%}"]
        cells.append(f"{secs:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Δ: median over (architecture, seed) pairs of recipe - ce, [25%, 75%] quantiles; "
              "'better': share of pairs where the recipe's ECE is lower; 'acc not worse': share with "
              "accuracy >= ce's. 'median': the recipe's own median over its 60 evaluations."]
    # Per accuracy band of the architectures (ce accuracy, seed-averaged): where does a recipe help?
    ce_acc = base["acc"].groupby(level="index").mean()
    bands = pd.qcut(ce_acc, 2, labels=["lower half", "upper half"])
    lines += ["", "| recipe | Δ pre_ECE_15, archs in the lower / upper half of ce accuracy | "
              "Δ post_ECE_15, lower / upper | Δ acc, lower / upper |", "| --- | --- | --- | --- |"]
    for name in names[1:]:
        mine = frame[frame["recipe"] == name].set_index(["index", "seed"])
        pairs = mine.join(base.add_suffix("_ce"), how="inner").reset_index()
        pairs["band"] = pairs["index"].map(bands)
        cells = [f"`{name}`"]
        for metric in ("pre_ECE_15", "post_ECE_15", "acc"):
            delta = (pairs[metric] - pairs[f"{metric}_ce"]).groupby(pairs["band"], observed=False).median()
            cells.append(f"{delta['lower half']:+.3f} / {delta['upper half']:+.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    # The scale of run-to-run noise: ce against ce with another seed (another split, initialisation
    # and batch order) on the same architecture.
    by_seed = base.reset_index().pivot(index="index", columns="seed")
    spread = {}
    for metric in ("pre_ECE_15", "post_ECE_15", "acc"):
        values = by_seed[metric].to_numpy()
        gaps = [abs(values[:, a] - values[:, b]) for a in range(values.shape[1]) for b in range(a + 1, values.shape[1])]
        spread[metric] = float(np.median(np.concatenate(gaps))) if gaps else float("nan")
    lines += ["", "Seed-to-seed spread of ce (median |difference| between two seeds of one architecture): "
              + ", ".join(f"{m} {v:.3f}" for m, v in spread.items()) + "."]
    temps = frame.groupby("recipe")["temperature"].median()
    lines += ["", "Median fitted temperature: " + ", ".join(f"{n} {temps[n]:.2f}" for n in names if n in temps) + "."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-recipes" / "evaluations.csv",
                        help="checkpoint CSV (resumed when it exists)")
    parser.add_argument("--workers", type=int, default=2, choices=(1, 2))
    parser.add_argument("--summary-only", action="store_true", help="summarise the checkpoint without training")
    args = parser.parse_args()
    if not args.summary_only:
        run(args.out, args.workers)
    print(summarise(args.out))


if __name__ == "__main__":
    main()
