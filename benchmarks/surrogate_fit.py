"""How well the guided searcher's surrogate ranks unseen architectures (``searchers.surrogate``).

    python benchmarks/surrogate_fit.py [--train 100] [--repeats 4]

For each problem, ``--train`` random architectures are the training set and 3,000 others the
test set; printed is the Spearman correlation of the posterior mean with the truth per
objective, the mean over ``--repeats`` random splits (seeds 0..) with its range. Two models:

* ``hamming``: the earlier surrogate, one-hot codes (width treated as categorical), kernel
  ``exp(-d / lengthscale)`` on length-scales 1, 2, 4 and noises 0.03, 0.1, 0.3;
* ``current``: ``ArchitectureGP`` as the searcher uses it (ordinal width codes on SSS, wider
  length-scales, the additive mixture, hyperparameters per objective).

The ``hamming`` row chooses its hyperparameters per objective too (the earlier model shared one
choice across objectives), so the difference shown is the kernel's and the codes' alone.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.stats import spearmanr

import calnas
from calnas.searchers import surrogate
from calnas.searchers.domain import Domain

PROBLEMS = (("digits-sss", ("acc", "pre_ECE_15")), ("nats-tss-cifar100", ("acc", "flops")),
            ("digits-tss-curves", ("acc", "pre_ECE_15")), ("digits-tss", ("acc", "post_ECE_15", "params")))
HAMMING = {"KERNELS": ((1.0, 1.0), (2.0, 1.0), (4.0, 1.0)), "NOISES": (0.03, 0.1, 0.3)}


def rank_quality(domain, values, train, test, *, hamming: bool):
    saved = {k: getattr(surrogate, k) for k in HAMMING}
    if hamming:
        for k, v in HAMMING.items():
            setattr(surrogate, k, v)
    try:
        encode = domain.onehot if hamming else domain.code
        span = len(domain.space.param_choices()) if hamming else domain.max_distance()
        out = []
        for j in range(values.shape[1]):  # one model per objective
            gp = surrogate.ArchitectureGP(encode, span).fit(list(train), values[train, j:j + 1])
            out.append(spearmanr(gp.predict(test)[0][:, 0], values[test, j])[0])
        return out
    finally:
        for k, v in saved.items():
            setattr(surrogate, k, v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=4)
    args = ap.parse_args()
    for name, columns in PROBLEMS:
        table = calnas.load_benchmark(name)
        domain = Domain.whole_space(table.space)
        values = table.frame.loc[:, list(columns)].to_numpy(float)
        rows = {"hamming": [], "current": []}
        for rep in range(args.repeats):
            order = np.random.default_rng(rep).permutation(len(values))
            train, test = order[: args.train], order[args.train: args.train + 3000]
            for model in rows:
                rows[model].append(rank_quality(domain, values, train, test, hamming=model == "hamming"))
        for model, found in rows.items():
            found = np.asarray(found)
            cells = ", ".join(f"{c} {m:.3f} ({lo:.3f}-{hi:.3f})" for c, m, lo, hi in
                              zip(columns, found.mean(0), found.min(0), found.max(0)))
            print(f"{name:20s} {model:8s} {cells}", flush=True)


if __name__ == "__main__":
    main()
