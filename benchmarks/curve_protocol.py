"""Measure candidate protocols for the curve table (``digits-tss-curves``): TSS on digits, three
training seeds on one fixed split, curves at geometric epochs.

    .venv/bin/python benchmarks/curve_protocol.py --n 60              # docs/live.md's table
    .venv/bin/python benchmarks/curve_protocol.py --n 60 --candidates e20,t150,b32,lr0.1

A candidate is ``eEPOCHS,tTRAIN,bBATCH,lrLR[,cCHANNELS][,nCELLS][,spare]`` (a part left out: ``DIGITS_TSS``'s
value; ``spare``: the training-pool images a short training set leaves unused join the test
split, ``Protocol.spare_to_test``). Each trains the first ``--n`` isomorphism classes of the table build order
(``calnas.live.build.build_order``) with training seeds 0, 1, 2 on the split of seed 0, through
the same ``evaluate_prepared`` path (curve recorder on, at ``geometric_epochs``) as ``calnas
table build --curves``, in ``--workers`` processes of one torch thread each. Cost is CPU time
(``time.process_time`` around each whole evaluation: training, curve points, final panel), so it
does not grow with the load of other processes on a shared machine.

It prints, per candidate, one JSON line and then a markdown table of the issue's criteria:
the median fitted temperature and the share of classes (seed means) and of trainings below 1,
accuracy's 10th-90th percentile range, Spearman's rho of accuracy with pre-scaling ECE_15 (on
seed means), the within-architecture share of the seed mean's variance for accuracy, pre- and
post-scaling ECE_15 (and the single-seed share), and the whole table's CPU-hours (6,466 classes
x 3 seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from calnas.live.protocol import DIGITS_TSS, Protocol  # noqa: E402

DEFAULT_CANDIDATES = ["e10,t150,b32,lr0.1", "e15,t150,b32,lr0.1", "e20,t150,b32,lr0.1", "e30,t150,b32,lr0.1"]
SEEDS = (0, 1, 2)
TSS_CLASSES = 6466

_STATE: dict = {}


def parse_candidate(text: str) -> Protocol:
    keys = {"e": "epochs", "t": "train_size", "b": "batch_size", "lr": "lr", "c": "channels", "n": "cells"}
    changes = {}
    for part in text.split(","):
        part = part.strip().lower()
        if part == "spare":  # unused training-pool images join the (then uncapped) test split
            changes.update(spare_to_test=True, test_size=None)
            continue
        for prefix in ("lr", "e", "t", "b", "c", "n"):
            if part.startswith(prefix):
                value = part[len(prefix):]
                changes[keys[prefix]] = float(value) if prefix == "lr" else int(value)
                break
        else:
            raise SystemExit(f"bad candidate part {part!r} in {text!r}; expected eN, tN, bN, lrX, cN or nN")
    return replace(DIGITS_TSS, **changes)


def _init(settings: dict, ratio: float = 2.0) -> None:
    import torch

    from calnas.live.evaluate import load_protocol_splits

    torch.set_num_threads(1)
    protocol = Protocol.from_settings(settings)
    _STATE.update(protocol=protocol, splits=load_protocol_splits(protocol, seed=0), device=torch.device("cpu"),
                  ratio=ratio)


def _one(job: tuple[int, int]) -> dict:
    import time

    from calnas.live.curves import geometric_epochs
    from calnas.live.evaluate import evaluate_prepared
    from calnas.spaces import TSS

    index, seed = job
    protocol = _STATE["protocol"]
    start = time.process_time()
    rec = evaluate_prepared(TSS.arch(index), TSS, protocol, _STATE["splits"], device=_STATE["device"], seed=seed,
                            curve_epochs=geometric_epochs(protocol.epochs, _STATE["ratio"])).record
    m = rec["metrics"]
    return {"index": index, "seed": seed, "cpu": time.process_time() - start, "acc": m["acc"],
            "pre": m["pre_ECE_15"], "post": m["post_ECE_15"], "T": m["temperature"],
            "train_acc": rec["training"]["final_train_acc"]}


def _test_labels(protocol: Protocol):
    from calnas.live.evaluate import load_protocol_splits

    return load_protocol_splits(protocol, seed=0).test_y


def within_share(values: np.ndarray) -> tuple[float, float]:
    """(share of the seed mean's variance that is seed noise, the same for one seed): values is
    (architectures, seeds); one-way random-effects decomposition."""
    k = values.shape[1]
    within = float(np.mean(np.var(values, axis=1, ddof=1)))
    means_var = float(np.var(values.mean(axis=1), ddof=1))
    between = max(means_var - within / k, 0.0)
    return (within / k) / means_var if means_var > 0 else float("nan"), within / (within + between)


def measure(protocol: Protocol, n: int, workers: int, ratio: float = 2.0, dump=None) -> dict:
    import multiprocessing as mp

    from scipy.stats import spearmanr

    from calnas.live.build import build_order
    from calnas.spaces import TSS

    indices = build_order(TSS)[:n]
    jobs = [(i, s) for i in indices for s in SEEDS]
    with mp.get_context("spawn").Pool(workers, initializer=_init, initargs=(protocol.settings(), ratio)) as pool:
        rows = pool.map(_one, jobs, chunksize=1)
    if dump is not None:
        Path(dump).write_text(json.dumps(rows))
    by = {(r["index"], r["seed"]): r for r in rows}

    def grid(key):
        return np.array([[by[(i, s)][key] for s in SEEDS] for i in indices], dtype=float)

    acc, pre, post, temp = grid("acc"), grid("pre"), grid("post"), grid("T")
    cpu = np.array([r["cpu"] for r in rows])
    p10, p50, p90 = np.quantile(acc.mean(1), [0.1, 0.5, 0.9])
    out = {"epochs": protocol.epochs, "curve_ratio": ratio, "test": int(len(_test_labels(protocol))), "train": protocol.train_size, "batch": protocol.batch_size, "lr": protocol.lr,
           "channels": protocol.channels, "cells": protocol.cells, "classes": n, "seeds": len(SEEDS),
           "cpu_s_per_training": round(float(cpu.mean()), 3),
           "table_cpu_hours": round(float(cpu.mean()) * TSS_CLASSES * len(SEEDS) / 3600, 1),
           "acc_p10_p50_p90": [round(float(v), 3) for v in (p10, p50, p90)], "acc_range_p10_p90": round(float(p90 - p10), 3),
           "median_T": round(float(np.median(temp)), 2),
           "classes_T_below_1": round(float(np.mean(temp.mean(1) < 1)), 3),
           "trainings_T_below_1": round(float(np.mean(temp < 1)), 3),
           "rho_acc_pre_ece": round(float(spearmanr(acc.mean(1), pre.mean(1))[0]), 2),
           "rho_acc_pre_ece_per_seed": [round(float(spearmanr(acc[:, s], pre[:, s])[0]), 2) for s in range(len(SEEDS))],
           "pre_ece_median": round(float(np.median(pre)), 4), "post_ece_median": round(float(np.median(post)), 4),
           "train_acc_median": round(float(np.median([r["train_acc"] for r in rows])), 3)}
    for name, values in (("acc", acc), ("pre_ece", pre), ("post_ece", post)):
        mean_share, single = within_share(values)
        out[f"within_{name}_mean3"] = round(mean_share, 3)
        out[f"within_{name}_single"] = round(single, 3)
    return out


def markdown(rows: list[dict]) -> str:
    header = ["epochs", "train", "test", "lr", "C/N", "CPU s/training", "table CPU-h", "acc p10/p50/p90", "median T",
              "classes T<1", "rho(acc, pre ECE)", "within acc", "within pre ECE", "within post ECE"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for r in rows:
        cells = [r["epochs"], r["train"], r["test"], f"{r['lr']:g}", f"{r['channels']}/{r['cells']}", f"{r['cpu_s_per_training']:.2f}",
                 f"{r['table_cpu_hours']:.1f}", " / ".join(f"{v:.3f}" for v in r["acc_p10_p50_p90"]),
                 f"{r['median_T']:.2f}", f"{r['classes_T_below_1']:.2f}", f"{r['rho_acc_pre_ece']:.2f}",
                 f"{r['within_acc_mean3']:.2f} ({r['within_acc_single']:.2f})",
                 f"{r['within_pre_ece_mean3']:.2f} ({r['within_pre_ece_single']:.2f})",
                 f"{r['within_post_ece_mean3']:.2f} ({r['within_post_ece_single']:.2f})"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=60, help="isomorphism classes (first of the build order)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--candidates", nargs="+", default=DEFAULT_CANDIDATES)
    ap.add_argument("--ratio", type=float, default=2.0, help="ratio of the geometric curve epochs (1, r, r^2, ..., last)")
    ap.add_argument("--dump", default=None, help="folder for each candidate's per-training rows (JSON)")
    args = ap.parse_args()
    rows = []
    for text in args.candidates:
        dump = None if args.dump is None else Path(args.dump) / f"{text}.json"
        row = {"candidate": text, **measure(parse_candidate(text), args.n, args.workers, args.ratio, dump)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(markdown(rows))


if __name__ == "__main__":
    main()
