"""What calnas/data/README.md states about a curve table (``digits-tss-curves``): spread, regime,
seed noise per column, agreement with NATS-Bench CIFAR-10 accuracy, build cost.

    .venv/bin/python benchmarks/curve_table_summary.py                      # the shipped table
    .venv/bin/python benchmarks/curve_table_summary.py --table CURVES.csv   # a build in progress

Every statistic is over isomorphism classes (one row per trained network), at the last epoch:

* spread: 10th / 50th / 90th percentiles of the seed mean of acc, pre/post ECE_15, NLL, temperature;
* regime: the share of classes whose seed-mean fitted temperature is above 1 (over-confident),
  and of single trainings;
* seed noise: for each key column, the share of the seed mean's variance that is seed noise and
  the within-architecture share of a single seed's variance (one-way random effects, as
  ``benchmarks/curve_protocol.py`` measures a candidate protocol), and Spearman's rho between
  the seeds' values (the median over the seed pairs);
* Spearman's rho of accuracy with pre-scaling ECE_15 (seed means) and with NATS-Bench's CIFAR-10
  test accuracy of the class's representative;
* cost: the build's summed training + evaluation seconds (CPU time of one torch thread).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

from curve_protocol import within_share  # noqa: E402

NOISE_COLUMNS = ("acc", "pre_ECE_15", "post_ECE_15", "pre_NLL", "post_NLL", "pre_Brier", "temperature", "AURC")
SPREAD_COLUMNS = ("acc", "pre_ECE_15", "post_ECE_15", "pre_NLL", "temperature")


def summarise(benchmark: str) -> dict:
    import pandas as pd
    from scipy.stats import spearmanr

    from calnas.curve_table import load_curves
    from calnas.embedded import ACCURACY_FILE, data_path

    curves = load_curves(benchmark)
    rows = curves.frame.reset_index()
    seeds = sorted(rows["seed"].unique())
    complete = rows.groupby("index")["seed"].transform("size") == len(seeds)
    rows = rows[complete]

    def grid(column: str) -> np.ndarray:
        return rows.pivot(index="index", columns="seed", values=column).to_numpy(dtype=float)

    out = {"table": str(benchmark), "classes": int(rows["index"].nunique()), "seeds": [int(s) for s in seeds],
           "epochs": list(curves.epochs), "spread": {}, "noise": {}}
    for column in SPREAD_COLUMNS:
        means = np.nanmean(grid(column), axis=1)
        out["spread"][column] = [round(float(q), 4) for q in np.nanquantile(means, [0.1, 0.5, 0.9])]
    temperature = grid("temperature")
    out["classes_over_confident"] = round(float(np.mean(temperature.mean(axis=1) > 1)), 3)
    out["classes_under_confident"] = round(float(np.mean(temperature.mean(axis=1) < 1)), 3)
    out["trainings_over_confident"] = round(float(np.mean(temperature > 1)), 3)
    out["trainings_under_confident"] = round(float(np.mean(temperature < 1)), 3)
    for column in NOISE_COLUMNS:
        values = grid(column)
        values = values[np.isfinite(values).all(axis=1)]
        mean_share, single_share = within_share(values)
        pairs = [spearmanr(values[:, a], values[:, b])[0] for a, b in itertools.combinations(range(len(seeds)), 2)]
        out["noise"][column] = {"within_share_seed_mean": round(mean_share, 3),
                                "within_share_one_seed": round(single_share, 3),
                                "seed_pair_rho_median": round(float(np.median(pairs)), 3)}
    acc, pre = grid("acc").mean(axis=1), grid("pre_ECE_15").mean(axis=1)
    out["rho_acc_pre_ECE_15"] = round(float(spearmanr(acc, pre)[0]), 3)
    with data_path(ACCURACY_FILE).open("rb") as fh:
        nats = pd.read_csv(fh, compression="gzip").set_index("index")["cifar10_test_acc"]
    classes = rows.pivot(index="index", columns="seed", values="acc").index
    out["rho_acc_nats_cifar10"] = round(float(spearmanr(acc, nats.reindex(classes).to_numpy())[0]), 3)
    seconds = rows["train_seconds"].sum() + rows.get("eval_seconds", pd.Series(0.0)).sum()
    out["cpu_hours"] = round(float(seconds) / 3600, 2)
    out["cpu_seconds_per_training"] = round(float(seconds) / len(rows), 3)
    return out


def markdown(s: dict) -> str:
    lines = ["| column | p10 / p50 / p90 (seed means) | noise share of the seed mean | noise share, one seed | "
             "seed-pair rho |", "| --- | --- | --- | --- | --- |"]
    for column in NOISE_COLUMNS:
        spread = " / ".join(f"{v:g}" for v in s["spread"][column]) if column in s["spread"] else ""
        n = s["noise"][column]
        lines.append(f"| `{column}` | {spread} | {n['within_share_seed_mean']:.2f} | {n['within_share_one_seed']:.2f} | "
                     f"{n['seed_pair_rho_median']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", default="digits-tss-curves", help="an embedded curve table's name or a curve build CSV")
    args = ap.parse_args()
    summary = summarise(args.table)
    print(json.dumps(summary, indent=2))
    print(markdown(summary))


if __name__ == "__main__":
    main()
