"""How long loading a calibration table takes next to pandas.read_csv, cold and cached.

Writes the embedded digits-tss table (15,625 rows, the published layout plus calnas's columns)
as a plain CSV, then, pair by pair in one process (CPU time, so other work on the machine
matters less): ``pandas.read_csv`` alone; ``calnas.tables.load_csv`` with the parsed-table cache
off (parsing and checking every architecture); with the disk cache warm (a new process: the
in-memory entry cleared); and again in the same process (the in-memory entry).

    .venv/bin/python benchmarks/table_load.py --repeat 7
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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
