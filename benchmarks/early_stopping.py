"""Multi-fidelity on a curve table: what to rank at a rung, and the compute early stopping saves.

    .venv/bin/python benchmarks/early_stopping.py rung-metrics --table CURVES.csv
    .venv/bin/python benchmarks/early_stopping.py compute --table CURVES.csv --seeds 20 --workers 4

``rung-metrics``: for each candidate rung metric (a set of curve columns, ranked as the pruner
ranks them: non-dominated sorting, then hypervolume contribution) and each recorded epoch k
below the last, how well the order at epoch k predicts the final (acc, pre-ECE_15) front: the
share of the final front's architectures (seed means, final epoch) that the top 1/eta at epoch k
keeps (recall), and the share of the final order's top 1/eta it keeps, for eta 2 and 4, over
every architecture of the table; and Spearman's rho of the order at k with the final order. Validation columns are what a live search can rank by without
the test labels; the test columns are listed for comparison.

``compute``: full-fidelity ``guided`` with ``--target-budget`` evaluations (default 300) sets a
hypervolume target per seed; each searcher then runs with ASHA (default eta 2) on the same
simulated workers (``--early-stopping hyperband``: Hyperband's brackets instead) until it reaches that hypervolume or spends ``--max-factor`` times the
target's training seconds; reported: the training seconds to reach the target as a fraction of
full-fidelity guided's (median and interquartile range over seeds), and the share of seeds that
reached it. Every run is a ``calnas.search`` call, as the CLI makes it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

CANDIDATES = {
    "val_acc,val_ECE_15": ("val_acc", "val_ECE_15"),
    "val_acc,val_NLL": ("val_acc", "val_NLL"),
    "val_acc,val_post_ECE_15": ("val_acc", "val_post_ECE_15"),
    "val_acc": ("val_acc",),
    "val_NLL": ("val_NLL",),
    "train_loss": ("train_loss",),
    "acc,pre_ECE_15 (test)": ("acc", "pre_ECE_15"),
}
MAXIMISE = {"val_acc", "acc", "train_acc"}


def rung_metrics(table_path: str) -> list[dict]:
    from scipy.stats import spearmanr

    from calnas.curve_table import load_curves
    from calnas.pareto import as_minimisation, front_mask
    from calnas.pruners import rung_order

    curves = load_curves(table_path)
    last = curves.last_epoch
    final = np.column_stack([curves.column_at("acc", last), curves.column_at("pre_ECE_15", last)])
    final_pts = as_minimisation(final, ["maximize", "minimize"])
    on_front = front_mask(final_pts)
    numbers = list(range(len(final)))
    final_order = rung_order(final, ["maximize", "minimize"], numbers)
    final_rank = np.empty(len(final)); final_rank[final_order] = np.arange(len(final))
    rows = []
    for name, columns in CANDIDATES.items():
        directions = ["maximize" if c in MAXIMISE else "minimize" for c in columns]
        for epoch in [e for e in curves.epochs if e < last]:
            vectors = np.column_stack([curves.column_at(c, epoch) for c in columns])
            order = rung_order(vectors, directions, numbers)
            rank = np.empty(len(order)); rank[order] = np.arange(len(order))
            row = {"metric": name, "epoch": epoch, "archs": len(order), "front": int(on_front.sum()),
                   "rho_final_order": round(float(spearmanr(rank, final_rank)[0]), 3)}
            for eta in (2, 4):
                keep = set(order[: max(1, len(order) // eta)].tolist())
                row[f"front_kept_eta{eta}"] = round(float(np.mean([i in keep for i in np.flatnonzero(on_front)])), 3)
                # the final order's top 1/eta (the architectures a halving should carry on)
                best = final_order[: max(1, len(order) // eta)]
                row[f"top_kept_eta{eta}"] = round(float(np.mean([i in keep for i in best])), 3)
            rows.append(row)
    return rows


def _reach(result, target: float) -> float | None:
    trials = result.trials.sort_values("sim_end")
    hit = trials[trials["hypervolume_at_end"] >= target - 1e-12]
    return None if hit.empty else float(hit["train_seconds_total"].iloc[0])


def compute(table_path: str, seeds: int, workers: int, searchers: list[str], eta: int, target_budget: int,
            max_factor: float, objectives: str, first_seed: int = 0, early_stopping: str = "asha") -> dict:
    import optuna

    from calnas.api import search

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = {}
    for seed in range(first_seed, first_seed + seeds):
        full = search(table_path, objectives, budget=target_budget, searcher="guided", seed=seed,
                      simulated_workers=workers)
        target = float(full.hypervolume)
        spent = float(full.info["simulation"]["train_seconds"])
        out.setdefault("full_guided_seconds", []).append(spent)
        for name in searchers:
            res = search(table_path, objectives, budget=100000, searcher=name, seed=seed, early_stopping=early_stopping,
                         eta=eta, simulated_workers=workers,
                         budget_epochs=int(max_factor * full.info["epochs_trained"]))
            reached = _reach(res, target)
            out.setdefault(name, []).append(None if reached is None else reached / spent)
        print(json.dumps({"seed": seed, "target_hv": target, **{k: v[-1] for k, v in out.items()}}), flush=True)
    summary = {}
    for name in searchers:
        values = out[name]
        got = np.array([v for v in values if v is not None])
        summary[name] = {"reached": f"{len(got)}/{len(values)}",
                         "median": None if not len(got) else round(float(np.median(got)), 3),
                         "iqr": None if not len(got) else [round(float(q), 3) for q in np.quantile(got, [0.25, 0.75])]}
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["rung-metrics", "compute"])
    ap.add_argument("--table", required=True, help="a curve build CSV (calnas table build --curves)")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds FIRST ... FIRST+SEEDS-1 (split a run over processes)")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--searchers", default="guided,random,tpe")
    ap.add_argument("--eta", type=int, default=2)
    ap.add_argument("--early-stopping", default="asha", choices=["asha", "hyperband"],
                    help="the rule the early-stopping runs use (full-fidelity guided sets the target either way)")
    ap.add_argument("--target-budget", type=int, default=300)
    ap.add_argument("--max-factor", type=float, default=1.0,
                    help="stop an early-stopping run at this multiple of full-fidelity guided's epochs")
    ap.add_argument("--objectives", default="acc,ece")
    args = ap.parse_args()
    if args.what == "rung-metrics":
        rows = rung_metrics(args.table)
        header = list(rows[0])
        print("| " + " | ".join(header) + " |\n|" + " --- |" * len(header))
        for row in rows:
            print("| " + " | ".join(str(row[h]) for h in header) + " |")
    else:
        summary = compute(args.table, args.seeds, args.workers, args.searchers.split(","), args.eta,
                          args.target_budget, args.max_factor, args.objectives, args.first_seed,
                          args.early_stopping)
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
