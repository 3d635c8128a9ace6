"""Ten reference searches whose trials must not change when the engine is restructured.

Each line printed is one search: its name, a hash of its trial sequence (the architecture index
of every evaluation, in trial order) and a hash of its whole trials.csv (every value and the
anytime hypervolume). A change that keeps the behaviour prints the same lines before and after.

The searches: 2, 3, 4 and 5 objectives with seeds 0 and 1 on the embedded default table, one
under a constraint (``params<=0.5``), and one with 2 worker processes on a journal storage.
Two workers may evaluate in either order, and which architectures a history-driven searcher
proposes depends on that order, so the worker search runs over a 300-row table with a budget
of 300: its trial *set* (compared sorted) and its front are deterministic, its order is not.

    PYTHONPATH=. python benchmarks/reference_searches.py
"""

from __future__ import annotations

import hashlib
import io
import sys
import tempfile
from pathlib import Path

SEARCHES = [
    ("2obj-seed0", "acc,ece", 0, None),
    ("2obj-seed1", "acc,ece", 1, None),
    ("3obj-seed0", "acc,ece,params", 0, None),
    ("3obj-seed1", "acc,ece,params", 1, None),
    ("4obj-seed0", "acc,ece,nll,params", 0, None),
    ("4obj-seed1", "acc,ece,nll,params", 1, None),
    ("5obj-seed0", "acc,ece,nll,brier,params", 0, None),
    ("5obj-seed1", "acc,ece,nll,brier,params", 1, None),
    ("2obj-params<=0.5", "acc,ece", 0, "params<=0.5"),
]
BUDGET = 200
WORKER_ROWS = 300


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _csv(frame) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.12g", lineterminator="\n")
    return buffer.getvalue()


def main() -> None:
    import optuna

    import calnas

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a script of its own: Optuna's INFO lines are noise

    for name, objectives, seed, constraint in SEARCHES:
        result = calnas.search(None, objectives, budget=BUDGET, seed=seed, constraints=constraint)
        indices = ",".join(str(i) for i in result.trials["index"])
        print(f"{name:20s} trials {_digest(indices)} trials.csv {_digest(_csv(result.trials))} "
              f"front.csv {_digest(_csv(result.front))}")
        sys.stdout.flush()

    frame = calnas.load_benchmark("nats-tss-cifar10").to_frame().head(WORKER_ROWS)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"journal:///{Path(tmp) / 'reference.log'}"
        result = calnas.search(frame, "acc,params", budget=WORKER_ROWS, seed=0, storage=url, workers=2)
    indices = ",".join(str(i) for i in sorted(result.trials["index"]))
    print(f"{'2workers-journal':20s} trial set {_digest(indices)} front.csv {_digest(_csv(result.front))} "
          f"evaluations {result.evaluations}")


if __name__ == "__main__":
    main()
