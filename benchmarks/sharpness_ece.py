"""The sharpness-ECE coupling along training on digits (issue 14's must-show).

    nice -n 10 .venv/bin/python benchmarks/sharpness_ece.py --workers 2      # 19 min on 2 cores at load 6-8

For each architecture of :data:`ARCHS` (a fixed list of TSS cells, from all-3x3 convolutions to
all-skip and all-pooling cells), ``calnas.live.evaluate.evaluate_live(..., track=True)`` trains
the digits TSS protocol (``DIGITS_TSS``: C=8, N=2, 150 training images, batch 32, SGD with
Nesterov momentum, lr 0.1, cosine per step, seed 0, one torch thread) for :data:`EPOCHS` epochs
instead of 6, and records after every epoch the validation ECE (15 bins, pre-scaling), NLL,
accuracy, mean margin and the sharpness (top Gauss-Newton eigenvalue of the training loss on
the first 128 training images, 20 power iterations; docs/live.md, "Trajectories, sharpness and
certainty").

Why 40 epochs: the 6-epoch protocol is 30 SGD steps, which gives 6 points per trajectory and
stops while the networks are still in the first fast phase of training. 40 epochs (200 steps,
the same cosine schedule stretched over them) let the networks fit the 150 training images and
go on training after that, where margins grow. Most of the time goes to the tracking itself
(41 sharpness estimates per network).

It prints a markdown table: per architecture, Spearman's rho between per-epoch sharpness and
ECE over epochs 1..EPOCHS, over the second half, and with the epoch partialled out (both fall
along training; the partial rho asks what is left beyond that common trend), rho of each with
the epoch, rho of sharpness and mean margin, and the final validation accuracy and ECE; then
the medians. ``--records FILE`` keeps the trajectories; ``--from-records FILE`` summarises and
draws such a file again without training. The figure (``--plot``) shows
sharpness and ECE against the epoch and ECE against sharpness, one colour per architecture.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

EPOCHS = 40
SEED = 0
# Spread over the space: every operation, deep and shallow cells, with and without convolutions.
ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_1x1~2|",
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_3x3~0|skip_connect~1|nor_conv_1x1~2|",
    "|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|",
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
]


def run_one(arch: str) -> dict:
    from calnas.live.evaluate import evaluate_live

    start = time.perf_counter()
    record = evaluate_live(arch, dataset="digits", epochs=EPOCHS, device="cpu", seed=SEED, track=True).record
    return {"arch": arch, "index": record["index"], "trajectory": record["trajectory"],
            "test_metrics": {k: record["metrics"][k] for k in ("acc", "pre_ECE_15", "post_ECE_15")},
            "seconds": time.perf_counter() - start}


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def partial_spearman(a, b, given) -> float:
    """Spearman's rho of a and b with the ranks of ``given`` partialled out (here the epoch:
    what is left of the coupling once the common trend along training is removed)."""
    ab, ag, bg = spearman(a, b), spearman(a, given), spearman(b, given)
    return float((ab - ag * bg) / np.sqrt((1 - ag ** 2) * (1 - bg ** 2)))


def summarise(result: dict) -> dict:
    epochs = [e for e in result["trajectory"]["epochs"] if e["epoch"] >= 1]
    late = epochs[len(epochs) // 2:]
    col = {k: np.array([e[k] for e in epochs]) for k in ("epoch", "sharpness", "ECE", "margin", "acc")}
    late_col = {k: np.array([e[k] for e in late]) for k in ("sharpness", "ECE")}
    peak = int(np.argmax(col["sharpness"])) + 1
    return {"index": result["index"], "arch": result["arch"],
            "rho_sharp_ece": spearman(col["sharpness"], col["ECE"]),
            "rho_sharp_ece_late": spearman(late_col["sharpness"], late_col["ECE"]),
            "rho_sharp_ece_given_epoch": partial_spearman(col["sharpness"], col["ECE"], col["epoch"]),
            "rho_epoch_sharp": spearman(col["epoch"], col["sharpness"]),
            "rho_epoch_ece": spearman(col["epoch"], col["ECE"]),
            "rho_sharp_margin": spearman(col["sharpness"], col["margin"]),
            "peak_epoch": peak, "peak_sharpness": float(col["sharpness"].max()),
            "final_sharpness": float(col["sharpness"][-1]), "final_val_acc": float(col["acc"][-1]),
            "final_val_ece": float(col["ECE"][-1]), "test_pre_ece": result["test_metrics"]["pre_ECE_15"],
            "seconds": result["seconds"]}


def figure_of(results: list[dict]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13.0, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    sharp_ax, ece_ax, scatter_ax = figure.subplots(1, 3)
    colours = [f"C{i}" for i in range(10)]
    for n, result in enumerate(results):
        epochs = [e for e in result["trajectory"]["epochs"] if e["epoch"] >= 1]
        xs = [e["epoch"] for e in epochs]
        sharp = [e["sharpness"] for e in epochs]
        ece = [e["ECE"] for e in epochs]
        label = f"#{result['index']}"
        sharp_ax.plot(xs, sharp, color=colours[n % 10], linewidth=1.2, label=label)
        ece_ax.plot(xs, ece, color=colours[n % 10], linewidth=1.2, label=label)
        scatter_ax.scatter(sharp, ece, color=colours[n % 10], s=8, label=label)
    sharp_ax.set_yscale("log")
    sharp_ax.set_ylabel("sharpness (top Gauss-Newton eigenvalue)")
    ece_ax.set_ylabel("validation ECE (15 bins)")
    for ax in (sharp_ax, ece_ax):
        ax.set_xlabel("epoch")
    scatter_ax.set_xscale("log")
    scatter_ax.set_xlabel("sharpness")
    scatter_ax.set_ylabel("validation ECE")
    for ax in (sharp_ax, ece_ax, scatter_ax):
        ax.grid(alpha=0.3)
    scatter_ax.legend(fontsize=7, ncol=2, title="TSS index", title_fontsize=7)
    figure.suptitle(f"Sharpness and ECE along training on digits (TSS, C=8, N=2, {EPOCHS} epochs, seed {SEED})",
                    fontsize=10)
    return figure


def save_small_png(figure, path) -> None:
    """The figure as a palette PNG (64 colours): a fraction of the RGBA file's size."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    buffer.seek(0)
    Image.open(buffer).convert("RGB").quantize(colors=64).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="processes (at most 2 on this machine)")
    parser.add_argument("--plot", default=str(Path(__file__).with_name("sharpness_ece.png")))
    parser.add_argument("--records", default=None, help="also write the trajectories here (JSON)")
    parser.add_argument("--archs", type=int, default=len(ARCHS), help="the first N of ARCHS (a quick check)")
    parser.add_argument("--from-records", default=None,
                        help="summarise and draw the trajectories of an earlier --records file instead of training")
    args = parser.parse_args()
    archs = ARCHS[:args.archs]
    start = time.perf_counter()
    if args.from_records:
        results = json.loads(Path(args.from_records).read_text())
    elif args.workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(args.workers, len(archs))) as pool:
            results = pool.map(run_one, archs, chunksize=1)
    else:
        results = [run_one(a) for a in archs]
    rows = [summarise(r) for r in results]
    print(json.dumps({"epochs": EPOCHS, "seed": SEED, "seconds": round(time.perf_counter() - start, 1),
                      "cpus": os.cpu_count(), "from_records": args.from_records}))
    print()
    half = EPOCHS // 2
    print(f"| TSS index | rho(sharpness, ECE), epochs 1-{EPOCHS} | epochs {half + 1}-{EPOCHS} | given the epoch "
          "| rho(epoch, sharpness) | rho(epoch, ECE) | rho(sharpness, margin) "
          "| peak sharpness (epoch) | final sharpness | final val acc | final val ECE | s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['index']} | {r['rho_sharp_ece']:+.2f} | {r['rho_sharp_ece_late']:+.2f} | "
              f"{r['rho_sharp_ece_given_epoch']:+.2f} | {r['rho_epoch_sharp']:+.2f} | {r['rho_epoch_ece']:+.2f} | "
              f"{r['rho_sharp_margin']:+.2f} | {r['peak_sharpness']:.1f} ({r['peak_epoch']}) | "
              f"{r['final_sharpness']:.3f} | {r['final_val_acc']:.3f} | {r['final_val_ece']:.3f} | {r['seconds']:.0f} |")
    for key in ("rho_sharp_ece", "rho_sharp_ece_late", "rho_sharp_ece_given_epoch", "rho_epoch_sharp",
                "rho_epoch_ece", "rho_sharp_margin"):
        print(f"median {key}: {np.median([r[key] for r in rows]):+.2f}")
    for r in rows:
        print(f"#{r['index']}: {r['arch']}")
    save_small_png(figure_of(results), args.plot)
    if args.records:
        Path(args.records).write_text(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
