"""Architectures per hour of live table building with the shipped digits protocol, on this machine.

    .venv/bin/python benchmarks/live_throughput.py                  # 2 workers x 1 thread, 80 archs
    .venv/bin/python benchmarks/live_throughput.py --limit 120 --configs 1x1 2x1 1x2

Each config ``WxT`` runs ``W`` worker processes with ``T`` torch threads each through the same
code path as ``calnas table build`` (first ``--limit`` architectures of the fixed TSS order),
into a throw-away file, and reports wall-clock architectures/hour, the projected time for the
whole 6,466-class TSS table, and where the time goes (training vs. prediction + metric panel,
and the fixed start-up cost of the worker processes). Run it on an otherwise idle machine:
other processes on the same cores lower the numbers one for one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calnas.live.build import build_table  # noqa: E402
from calnas.live.protocol import DIGITS_TSS  # noqa: E402
from calnas.spaces import TSS  # noqa: E402

TSS_CLASSES = 6466


def measure(limit: int, workers: int, threads: int) -> dict:
    protocol = replace(DIGITS_TSS, threads=threads)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        first_row = []

        def on_row(row):
            if not first_row:
                first_row.append(time.perf_counter() - start)
            rows.append(row)

        # The protocol's thread count is what each worker sets (evaluate_prepared applies it).
        summary = build_table(space=TSS, protocol=protocol, out=Path(tmp) / "t.csv", limit=limit,
                              workers=workers, on_row=on_row)
        wall = time.perf_counter() - start
    ok = [r for r in rows if "error" not in r]
    train = sum(r["train_seconds"] for r in ok) / len(ok)
    evaluate = sum(r["eval_seconds"] for r in ok) / len(ok)
    steady = (wall - first_row[0]) / max(len(ok) - 1, 1)  # excludes process start-up and imports
    per_hour = 3600 / steady
    return {"config": f"{workers}x{threads}", "archs": len(ok), "failed": summary.failed, "wall_s": round(wall, 2),
            "startup_s": round(first_row[0], 2), "wall_s_per_arch": round(steady, 3),
            "train_s_per_arch_per_worker": round(train, 3), "eval_s_per_arch_per_worker": round(evaluate, 3),
            "archs_per_hour": round(per_hour), "full_tss_table_minutes": round(TSS_CLASSES / per_hour * 60, 1),
            "mean_acc": round(sum(r["acc"] for r in ok) / len(ok), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=80, help="architectures per config")
    parser.add_argument("--configs", nargs="+", default=["2x1"], help="WORKERSxTHREADS, e.g. 2x1 1x1 1x2")
    args = parser.parse_args()
    print(json.dumps({"cpus": os.cpu_count(), "protocol": DIGITS_TSS.settings()}), flush=True)
    for config in args.configs:
        workers, threads = (int(v) for v in config.lower().split("x"))
        print(json.dumps(measure(args.limit, workers, threads)), flush=True)


if __name__ == "__main__":
    main()
