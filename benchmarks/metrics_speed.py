"""Speed of the calibration panel, and of the metrics it shares with netcal and torchmetrics.

    .venv/bin/python benchmarks/metrics_speed.py [--repeats 5]

Synthetic logits (N = 10,000 test and 10,000 held-out samples, K = 10 and 100). Rows:

* calnas pre panel: every pre_* column plus acc/confidences and selective prediction (what the
  target "under 1 s for 10,000 x 100" refers to), from logits (softmax included).
* calnas full panel: pre + post, temperature fitted on the held-out split with each protocol.
* shared metrics: top-label ECE and MCE at the nine bin counts, plus MMCE (netcal only; torchmetrics
  has no MMCE), computed by calnas and by each peer from the same probabilities.

Times are the median of --repeats runs (netcal's O(N^2) MMCE: one run), in milliseconds. Every
library runs on one thread (torch.set_num_threads(1)), as calnas's numpy code does.

``--memory`` instead prints the peak memory of the study's temperature fit (``fit_temperature``,
the 100-value grid) as a multiple of the logits' size, for N x K from 1,000 x 2 to 10^6 x 10
(``tracemalloc``: every numpy allocation the fit makes, the input excluded).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

from calnas.metrics import DEFAULT_BINS, binned_errors, calibration_panel, ece, fit_temperature, mce
from calnas.metrics._inputs import TopLabel, check_labels, check_probs, softmax
from calnas.metrics.binning import classwise_binned, top_label_binned
from calnas.metrics.kernel import kdece_from, mmce_from


def synthetic(rng, n, k):
    z = rng.normal(size=(n, k)) * 3.0
    y = rng.integers(0, k, n)
    z[np.arange(n), y] += 4.0
    return z, y


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def calnas_shared(p, y, with_mmce):
    p = check_probs(p)
    top = TopLabel.from_probs(p, check_labels(y, *p.shape))
    out = top_label_binned(top, DEFAULT_BINS)
    return (out, mmce_from(top)) if with_mmce else out


def netcal_shared(p, y):
    from netcal.metrics import ECE, MCE, MMCE

    out = [(ECE(b).measure(p, y), MCE(b).measure(p, y)) for b in DEFAULT_BINS]
    return out, MMCE().measure(p, y)


def netcal_binned(p, y):
    from netcal.metrics import ECE, MCE

    return [(ECE(b).measure(p, y), MCE(b).measure(p, y)) for b in DEFAULT_BINS]


def torchmetrics_shared(p, y):
    import torch
    from torchmetrics.functional.classification import multiclass_calibration_error

    pt, yt, k = torch.from_numpy(p), torch.from_numpy(y), p.shape[1]
    return [
        (
            multiclass_calibration_error(pt, yt, num_classes=k, n_bins=b, norm="l1"),
            multiclass_calibration_error(pt, yt, num_classes=k, n_bins=b, norm="max"),
        )
        for b in DEFAULT_BINS
    ]


def memory() -> None:
    import tracemalloc

    rng = np.random.default_rng(0)
    print("| N | K | logits (MiB) | peak of the grid fit / logits |")
    print("| ---: | ---: | ---: | ---: |")
    for n in (1_000, 10_000, 65_536, 100_000, 1_000_000):
        for k in (2, 3, 10, 100):
            if n * k > 10_000_000:
                continue
            z = rng.normal(size=(n, k)) * 3
            y = rng.integers(0, k, n)
            tracemalloc.start()
            fit_temperature(z, y)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"| {n:,} | {k} | {z.nbytes / 2**20:.2f} | {peak / z.nbytes:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--memory", action="store_true", help="peak memory of the temperature grid fit instead")
    args = parser.parse_args()
    if args.memory:
        memory()
        return
    r = args.repeats
    rng = np.random.default_rng(0)
    import torch

    torch.set_num_threads(1)

    print(f"# calnas metrics speed: N = {args.n:,} (+ {args.n:,} held-out), median of {r} runs, ms")
    machine = platform.processor() or platform.machine()
    print(f"# {machine}, python {platform.python_version()}, numpy {np.__version__}")
    print()
    print("| what | K = 10 | K = 100 |")
    print("| --- | ---: | ---: |")
    rows: dict[str, list[str]] = {}

    def add(name, value):
        rows.setdefault(name, []).append(value)

    for k in (10, 100):
        z, y = synthetic(rng, args.n, k)
        vz, vy = synthetic(rng, args.n, k)
        p = softmax(z)
        top = TopLabel.from_probs(p, y)

        add("calnas pre panel (all pre_* + selective), from logits",
            f"{timed(lambda: calibration_panel(None, y, logits=z), r):.0f}")
        add("calnas full panel, T by ECE grid (study protocol, default)",
            f"{timed(lambda: calibration_panel(None, y, logits=z, val_logits=vz, val_labels=vy), r):.0f}")
        def full_nll():
            return calibration_panel(
                None, y, logits=z, val_logits=vz, val_labels=vy, temperature_method="nll"
            )

        add("calnas full panel, T by NLL", f"{timed(full_nll, r):.0f}")
        add("  of which: T by ECE grid (100 temperatures)", f"{timed(lambda: fit_temperature(vz, vy), r):.0f}")
        add("  of which: T by NLL", f"{timed(lambda: fit_temperature(vz, vy, 'nll'), r):.0f}")
        add("  of which: classwise CE, 9 bin counts x 2 schemes",
            f"{timed(lambda: classwise_binned(p, y, DEFAULT_BINS), r):.0f}")
        add("  of which: KDECE", f"{timed(lambda: kdece_from(top), r):.1f}")
        add("  of which: MMCE", f"{timed(lambda: mmce_from(top), r):.1f}")

        ours_binned = timed(lambda: calnas_shared(p, y, False), r)
        ours_all = timed(lambda: calnas_shared(p, y, True), r)
        tm = timed(lambda: torchmetrics_shared(p, y), r)
        nc_binned = timed(lambda: netcal_binned(p, y), max(1, r // 2))
        nc_all = timed(lambda: netcal_shared(p, y), 1)
        add("ECE + MCE x 9 bin counts: calnas", f"{ours_binned:.1f}")
        add("ECE + MCE x 9 bin counts: calnas binned_errors (validates once)",
            f"{timed(lambda: binned_errors(p, y), r):.1f}")
        add("ECE + MCE x 9 bin counts: calnas ece() and mce() per bin count (18 calls)",
            f"{timed(lambda: [(ece(p, y, b), mce(p, y, b)) for b in DEFAULT_BINS], r):.0f}")
        add("ECE + MCE x 9 bin counts: torchmetrics", f"{tm:.0f} ({tm / ours_binned:.0f}x)")
        add("ECE + MCE x 9 bin counts: netcal", f"{nc_binned:.0f} ({nc_binned / ours_binned:.0f}x)")
        add("ECE + MCE x 9 + MMCE: calnas", f"{ours_all:.1f}")
        add("ECE + MCE x 9 + MMCE: netcal", f"{nc_all:.0f} ({nc_all / ours_all:.0f}x)")

    for name, values in rows.items():
        print(f"| {name} | " + " | ".join(values) + " |")


if __name__ == "__main__":
    main()
