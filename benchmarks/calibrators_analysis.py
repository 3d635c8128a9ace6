"""Which calibrator suits which architecture, and how the front changes once each architecture is
calibrated its own best way (docs/analysis.md, "Post-hoc calibrators per architecture").

    python benchmarks/calibrators_analysis.py TABLE.csv

TABLE: a calnas-built table with the calibrator columns, e.g.
``calnas table build --space tss --dataset digits --out TABLE.csv --limit 300``. Prints, per
calibrator: its mean test ECE_15 and accuracy, how often it has the lowest test ECE_15 of an
architecture (the oracle's winner), how often the validation split chooses it (best_post_ece);
then the accuracy x ECE fronts under post_ece (temperature scaling, the panel's post_ECE_15) and
under best_post_ece, and how many members they share.
"""

from __future__ import annotations

import sys

import numpy as np


def main(path: str) -> None:
    from calnas import pareto
    from calnas.calibrator_columns import CALIBRATOR_NAMES, column
    from calnas.objectives import best_post
    import pandas as pd

    # The file's rows as built: one per TSS isomorphism class (load_csv would expand each to its twins).
    frame = pd.read_csv(path).set_index("index")
    n = len(frame)
    test = frame[[column("ECE_15", c) for c in CALIBRATOR_NAMES]].to_numpy(dtype=float)
    acc = frame[[column("acc", c) for c in CALIBRATOR_NAMES]].to_numpy(dtype=float)
    oracle = np.argmin(test, axis=1)
    chosen = best_post.choices(frame)
    chosen_value = best_post.values(frame)
    print(f"{path}: {n} architectures (one per isomorphism class)")
    print(f"uncalibrated ECE_15 mean {frame['pre_ECE_15'].mean():.4f}; acc mean {frame['acc'].mean():.4f}")
    print(f"{'calibrator':12s} {'ECE_15':>8s} {'acc':>8s} {'test-best':>10s} {'val-chosen':>10s}")
    for i, name in enumerate(CALIBRATOR_NAMES):
        print(f"{name:12s} {test[:, i].mean():8.4f} {acc[:, i].mean():8.4f} {np.sum(oracle == i):10d} "
              f"{np.sum(chosen == i):10d}")
    print(f"best_post_ece mean {np.nanmean(chosen_value):.4f}; oracle (test-chosen) mean "
          f"{test[np.arange(n), oracle].mean():.4f}; post_ECE_15 (temperature) mean {frame['post_ECE_15'].mean():.4f}")
    print(f"best_post_ece below post_ECE_15 on {np.sum(chosen_value < frame['post_ECE_15'].to_numpy())} of {n}; "
          f"validation choice = test winner on {np.sum(chosen == oracle)} of {n}")

    fronts = {}
    plain = frame["acc"].to_numpy(dtype=float)
    post = frame["post_ECE_15"].to_numpy(dtype=float)
    # acc,post_ece and acc,best_post_ece as `calnas search` takes them (acc: the uncalibrated
    # accuracy, which temperature scaling keeps); then with the chosen calibrator's own accuracy.
    for label, a, ece in (("acc,post_ece", plain, post), ("acc,best_post_ece", plain, chosen_value),
                          ("acc@chosen,best_post_ece", acc[np.arange(n), chosen], chosen_value)):
        points = pareto.as_minimisation(np.column_stack([a, ece]), ["maximize", "minimize"])
        mask = pareto.front_mask(points, None)
        members = frame.index[mask]
        fronts[label] = set(members.tolist())
        order = np.argsort(-a[mask])
        print(f"front under {label}: {mask.sum()} members")
        for j in order:
            index = members[j]
            extra = f"  {CALIBRATOR_NAMES[chosen[mask][j]]}" if "best_post_ece" in label else ""
            print(f"  #{index:<6d} acc {a[mask][j]:.4f}  ECE_15 {ece[mask][j]:.4f}{extra}")
    shared = fronts["acc,post_ece"] & fronts["acc,best_post_ece"]
    print(f"members in both acc,post_ece and acc,best_post_ece: {len(shared)} ({sorted(shared)})")


if __name__ == "__main__":
    main(sys.argv[1])
