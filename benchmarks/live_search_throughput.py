"""Live search vs. table build: evaluations per hour on the same workers, digits protocol.

    .venv/bin/python benchmarks/live_search_throughput.py                       # 80 archs, 2 workers, 3 rounds
    .venv/bin/python benchmarks/live_search_throughput.py --count 120 --rounds 5 --searcher guided

Each round runs, one after the other and as fresh processes (alternating which goes first, so a
change in the machine's load hits both alike):

* ``calnas table build --space tss --dataset digits --limit COUNT --workers W`` (the first COUNT
  classes of the build order), and
* ``calnas search --live --dataset digits --objective acc,ece --budget COUNT --workers W
  --storage sqlite:///... --searcher S`` (COUNT classes the searcher proposes; ``--storage
  journal`` for a journal file instead).

Both append one row per architecture to a table file; this script polls the file, so for each
run it reports the wall time, the start-up (until the first row) and the steady rate (rows after
the first, per second of wall time). It also reads each row's ``train_seconds + eval_seconds``:
the architectures differ between the two commands (a searcher does not propose the build order),
so the ratio of wall time per evaluation to training time per evaluation is the fairer measure of
what the search machinery adds (storage, claims, proposals). The searcher defaults to ``random``,
whose architectures are spread like the build order's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def watch(command: list[str], table: Path, count: int) -> dict:
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen, first, last = 0, None, None
    while proc.poll() is None:
        rows = max(0, table.read_bytes().count(b"\n") - 1) if table.is_file() else 0
        now = time.perf_counter() - start
        if rows > seen:
            if first is None:
                first = now
            seen, last = rows, now
        time.sleep(0.01)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command[3:6])} failed: {proc.stderr.strip()[-400:]}")
    import pandas as pd

    frame = pd.read_csv(table)
    seconds = float((frame["train_seconds"] + frame["eval_seconds"]).mean())
    steady = (last - first) / max(len(frame) - 1, 1)
    return {"rows": len(frame), "wall_s": wall, "startup_s": first, "steady_s_per_eval": steady,
            "evals_per_hour": 3600 / steady, "train_eval_s_per_eval": seconds}


def storage(kind: str, folder: Path) -> str:
    return f"sqlite:///{folder / 's.db'}" if kind == "sqlite" else f"journal:///{folder / 's.log'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=80)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--searcher", default="random")
    parser.add_argument("--storage", choices=("sqlite", "journal"), default="sqlite")
    args = parser.parse_args()
    calnas = [sys.executable, "-m", "calnas"]
    results: dict[str, list[dict]] = {"build": [], "search": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            folder = Path(tmp) / str(round_)
            folder.mkdir()
            runs = {
                "build": (calnas + ["table", "build", "--space", "tss", "--dataset", "digits", "--limit", str(args.count),
                                    "--workers", str(args.workers), "--out", str(folder / "build.csv")],
                          folder / "build.csv"),
                "search": (calnas + ["search", "--live", "--dataset", "digits", "--objective", "acc,ece", "--budget",
                                     str(args.count), "--workers", str(args.workers), "--searcher", args.searcher,
                                     "--seed", str(round_), "--storage", storage(args.storage, folder), "--no-plot",
                                     "--out", str(folder / "search")],
                           folder / "search" / "table.csv"),
            }
            order = ["build", "search"] if round_ % 2 == 0 else ["search", "build"]
            for name in order:
                command, table = runs[name]
                result = watch(command, table, args.count)
                results[name].append(result)
                print(json.dumps({"round": round_, "command": name, **{k: round(v, 3) for k, v in result.items()}}),
                      flush=True)
    summary = {}
    for name, runs in results.items():
        summary[name] = {key: round(statistics.median(r[key] for r in runs), 3)
                         for key in ("wall_s", "startup_s", "steady_s_per_eval", "evals_per_hour",
                                     "train_eval_s_per_eval")}
        summary[name]["wall_per_train_eval"] = round(statistics.median(
            r["steady_s_per_eval"] / r["train_eval_s_per_eval"] for r in runs), 3)
    summary["search/build evals per hour"] = round(summary["search"]["evals_per_hour"]
                                                   / summary["build"]["evals_per_hour"], 3)
    summary["search/build wall per training second"] = round(summary["search"]["wall_per_train_eval"]
                                                             / summary["build"]["wall_per_train_eval"], 3)
    print(json.dumps({"count": args.count, "workers": args.workers, "searcher": args.searcher,
                      "storage": args.storage, "medians": summary},
                     indent=2))


if __name__ == "__main__":
    main()
