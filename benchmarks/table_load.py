"""How long loading a calibration table takes next to pandas.read_csv, cold and cached.

Writes the embedded digits-tss table (15,625 rows, the published layout plus calnas's columns)
as a plain CSV, then, pair by pair in one process (CPU time, so other work on the machine
matters less): ``pandas.read_csv`` alone; ``calnas.tables.load_csv`` with the parsed-table cache
off (parsing and checking every architecture); with the disk cache warm (a new process: the
in-memory entry cleared); and again in the same process (the in-memory entry).

    .venv/bin/python benchmarks/table_load.py --repeat 7

``--memory``: peak memory of loading a large table instead. A CSV of the whole SSS space
(32,768 rows) with the published layout's first columns and ``--columns`` made-up metric
columns (about 190 MB for 640) is written once; each repeat loads it in a fresh process (cache
off) and reports that process's peak resident memory (``VmHWM``) above its resident memory
just before, divided by the parsed frame's size (``memory_usage(deep=True)``): once for
``calnas.table_files._parse_csv`` (parsing) and once for ``calnas.tables.load_csv`` (parsing,
the in-memory cache's entry and the caller's copy of it).

    .venv/bin/python benchmarks/table_load.py --memory --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--memory", action="store_true", help="peak memory of loading a large table instead")
    parser.add_argument("--columns", type=int, default=640, help="--memory: metric columns of the table")
    parser.add_argument("--child", nargs=2, metavar=("STEP", "CSV"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _memory_child(*args.child)
    if args.memory:
        return _memory(args.repeat, args.columns)
    import pandas as pd

    import calnas
    from calnas import table_cache
    from calnas.tables import load_csv

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cifar10_tss.csv"
        calnas.load_benchmark("digits-tss").frame.reset_index().to_csv(path, index=False)
        os.environ[table_cache.CACHE_ENV] = str(Path(tmp) / "cache")
        rows = {"read_csv": [], "load_csv, no cache": [], "load_csv, disk cache": [], "load_csv, memory": []}
        load_csv(path)  # warm imports and the disk entry
        for _ in range(args.repeat):
            start = time.process_time()
            pd.read_csv(path)
            rows["read_csv"].append(time.process_time() - start)
            os.environ[table_cache.CACHE_ENV] = "off"
            table_cache._memory.clear()
            start = time.process_time()
            load_csv(path)
            rows["load_csv, no cache"].append(time.process_time() - start)
            os.environ[table_cache.CACHE_ENV] = str(Path(tmp) / "cache")
            table_cache._memory.clear()
            start = time.process_time()
            load_csv(path)
            rows["load_csv, disk cache"].append(time.process_time() - start)
            start = time.process_time()
            load_csv(path)
            rows["load_csv, memory"].append(time.process_time() - start)
        size = path.stat().st_size / 1e6
    base = rows["read_csv"]
    print(f"digits-tss as CSV ({size:.1f} MB, 15,625 rows), CPU seconds, median of {args.repeat}; ratio to read_csv "
          "taken pair by pair")
    print(f"{'':24} {'median s':>9} {'ratio':>7}")
    for name, times in rows.items():
        ratio = statistics.median(t / b for t, b in zip(times, base))
        print(f"{name:24} {statistics.median(times):9.3f} {ratio:7.2f}")


def _memory(repeat: int, columns: int) -> None:
    import json
    import subprocess
    import sys

    import numpy as np
    import pandas as pd

    from calnas.spaces import SSS

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cifar10_sss.csv"
        rng = np.random.default_rng(0)
        data = {"config": np.arange(SSS.size), "arch": [SSS.arch(i) for i in range(SSS.size)],
                "acc": np.round(rng.uniform(0.1, 0.99, SSS.size), 6)}
        data.update({f"metric_{k}": np.round(rng.uniform(0.001, 0.999, SSS.size), 6) for k in range(columns)})
        pd.DataFrame(data).to_csv(path, index=False)
        del data
        size = path.stat().st_size / 1e6
        runs = {"parse": [], "load_csv": []}
        for _ in range(repeat):
            for step in runs:
                out = subprocess.run([sys.executable, __file__, "--child", step, str(path)], check=True,
                                     capture_output=True, text=True, env={**os.environ, "CALNAS_CACHE_DIR": "off"})
                runs[step].append(json.loads(out.stdout))
    frame_mb = runs["parse"][0]["frame"] / 1e6
    print(f"SSS as CSV ({size:.0f} MB, {SSS.size:,} rows, {columns + 3} columns; parsed frame {frame_mb:.0f} MB), "
          f"peak resident memory above the start / frame size, {repeat} fresh processes")
    print(f"{'':10} {'ratios':>24} {'peak MB':>9}")
    for step, found in runs.items():
        ratios = [(r["peak"] - r["before"]) / r["frame"] for r in found]
        shown = " ".join(f"{x:.2f}" for x in ratios)
        print(f"{step:10} {shown:>24} {max(r['peak'] - r['before'] for r in found) / 1e6:9.0f}")


def _memory_child(step: str, csv: str) -> None:
    import json

    from calnas import table_files, table_meta, tables

    table_meta.sss_meta()  # the package's own tables, loaded once per process: not the table's cost

    def status(field: str) -> int:
        # VmHWM, not ru_maxrss: Linux carries a parent's peak over into ru_maxrss across exec,
        # and the parent has just made the whole table.
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(field + ":"))

    before = status("VmRSS")
    if step == "parse":
        frame = table_files._parse_csv(Path(csv), "cifar10")[1]
    else:
        frame = tables.load_csv(csv).frame
    peak = status("VmHWM")
    print(json.dumps({"before": before, "peak": peak, "frame": int(frame.memory_usage(deep=True).sum())}))


if __name__ == "__main__":
    main()
