"""Measure candidate digits protocols for the size space (SSS, xautodl's ``infer.shape.tiny``).

    .venv/bin/python benchmarks/sss_protocol.py --n 40          # docs/live.md's table (~15 min on one core)
    .venv/bin/python benchmarks/sss_protocol.py --n 40 --candidates e4,t150,b32,lr0.2 e5,t200,b32,lr0.1

A candidate is ``eEPOCHS,tTRAIN,bBATCH,lrLR`` (any part left out: ``DIGITS_SSS``'s value); every
other setting is that of the shipped protocols (SGD + Nesterov, weight decay 5e-4, cosine per
step, 300 validation / 1,097 test images as in digits-tss, seed 0, one torch thread). The SSS
network has no width or depth knob of its own: the five channel counts *are* the architecture
(cell, reduction, cell, reduction, cell; one cell per stage), so only the recipe varies.

Each candidate trains the first ``--n`` configurations of the table build order (a seeded
shuffle of all 32,768, ``calnas.live.build.build_order``), in this one process, single-threaded,
through the same ``evaluate_prepared`` path as ``calnas table build``. It prints one JSON line
per candidate: seconds per architecture (wall, training + prediction + panel), accuracy and
pre-scaling ECE_15 min / median / max, post-scaling ECE_15 and the fitted temperature, Spearman's
rho of parameter count (``calnas.cost``, 10 classes) and of MFLOPs at 8x8 with accuracy, and of
accuracy with ECE_15; then a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from calnas.cost import sss_cost  # noqa: E402
from calnas.live.build import build_order  # noqa: E402
from calnas.live.protocol import DIGITS_SSS, Protocol  # noqa: E402
from calnas.spaces import SSS  # noqa: E402

# The measured candidates of docs/live.md, in its table's order; the chosen one is DIGITS_SSS.
DEFAULT_CANDIDATES = ["e6,t150,b32,lr0.1", "e5,t150,b32,lr0.1", "e4,t150,b32,lr0.1", "e3,t150,b32,lr0.1",
                      "e2,t150,b32,lr0.1", "e3,t150,b32,lr0.05", "e4,t100,b25,lr0.1", "e5,t100,b25,lr0.1",
                      "e3,t200,b32,lr0.1", "e5,t150,b50,lr0.1", "e3,t150,b32,lr0.2", "e4,t150,b32,lr0.2",
                      "e5,t150,b32,lr0.2", "e4,t150,b32,lr0.3"]


def parse_candidate(text: str) -> Protocol:
    keys = {"e": "epochs", "t": "train_size", "b": "batch_size", "lr": "lr"}
    changes = {}
    for part in text.split(","):
        part = part.strip().lower()
        for prefix in ("lr", "e", "t", "b"):
            if part.startswith(prefix):
                value = part[len(prefix):]
                changes[keys[prefix]] = float(value) if prefix == "lr" else int(value)
                break
        else:
            raise SystemExit(f"bad candidate part {part!r} in {text!r}; expected eN, tN, bN or lrX")
    return replace(DIGITS_SSS, **changes)


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b)[0])


def measure(protocol: Protocol, n: int) -> dict:
    import torch

    from calnas.live.evaluate import evaluate_prepared, load_protocol_splits

    torch.set_num_threads(protocol.threads or 1)
    splits = load_protocol_splits(protocol, seed=0)
    device = torch.device("cpu")
    indices = build_order(SSS)[:n]
    acc, ece, post, temp, params, flops, secs, train_acc = [], [], [], [], [], [], [], []
    for index in indices:
        arch = SSS.arch(index)
        start = time.perf_counter()
        rec = evaluate_prepared(arch, SSS, protocol, splits, device=device, seed=0).record
        secs.append(time.perf_counter() - start)
        acc.append(rec["metrics"]["acc"])
        ece.append(rec["metrics"]["pre_ECE_15"])
        post.append(rec["metrics"]["post_ECE_15"])
        temp.append(rec["metrics"]["temperature"])
        train_acc.append(rec["training"]["final_train_acc"])
        p, f = sss_cost(arch, resolution=8, num_classes=10)
        params.append(p)
        flops.append(f)

    def q(values):
        return [round(float(v), 3) for v in np.quantile(values, [0, 0.5, 1])]

    return {"epochs": protocol.epochs, "train": protocol.train_size, "batch": protocol.batch_size,
            "lr": protocol.lr, "archs": len(indices), "s_per_arch": round(float(np.mean(secs)), 3),
            "acc": q(acc), "acc_p10_p90": [round(float(v), 3) for v in np.quantile(acc, [0.1, 0.9])],
            "pre_ece_15": q(ece), "post_ece_15": q(post), "temperature_median": round(float(np.median(temp)), 2),
            "final_train_acc_median": round(float(np.median(train_acc)), 3),
            "rho_params_acc": round(spearman(params, acc), 2), "rho_flops_acc": round(spearman(flops, acc), 2),
            "rho_params_ece": round(spearman(params, ece), 2), "rho_acc_ece": round(spearman(acc, ece), 2)}


def markdown(rows: list[dict]) -> str:
    def num(x: float) -> str:
        return f"{x:.3f}".replace("0.", ".", 1)

    def three(values) -> str:
        return " / ".join(num(x) for x in values)

    header = ["epochs", "train", "batch", "lr", "archs", "s/arch", "acc min / median / max",
              "pre ECE_15 min / median / max", "post ECE_15 median", "T median", "rho(params, acc)",
              "rho(MFLOPs, acc)", "rho(acc, ECE)"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for r in rows:
        cells = [r["epochs"], r["train"], r["batch"], f"{r['lr']:g}", r["archs"], f"{r['s_per_arch']:.2f}",
                 three(r["acc"]), three(r["pre_ece_15"]), num(r["post_ece_15"][1]), f"{r['temperature_median']:.2f}",
                 f"{r['rho_params_acc']:.2f}", f"{r['rho_flops_acc']:.2f}", f"{r['rho_acc_ece']:.2f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32, help="configurations per candidate (first N of the build order)")
    parser.add_argument("--candidates", nargs="+", default=DEFAULT_CANDIDATES,
                        help="eEPOCHS,tTRAIN,bBATCH,lrLR (default: the measured set)")
    args = parser.parse_args()
    protocols = [parse_candidate(c) for c in args.candidates]
    print(json.dumps({"cpus": os.cpu_count(), "base": DIGITS_SSS.settings()}), flush=True)
    rows = []
    for protocol in protocols:
        rows.append(measure(protocol, args.n))
        print(json.dumps(rows[-1]), flush=True)
    print(markdown(rows), flush=True)


if __name__ == "__main__":
    main()
