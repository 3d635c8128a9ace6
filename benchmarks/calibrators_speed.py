"""Speed of each post-hoc calibrator (fit on N validation rows, predict N test rows) against the
library version, on N = 10,000, K = 100 (the issue's size).

    python benchmarks/calibrators_speed.py [--n 10000] [--k 100] [--repeats 2]

Peers (tests/calibrator_peers.py loads them): torch-uncertainty's TemperatureScaler (against
calnas's ``nll`` temperature), VectorScaler, MatrixScaler, DirichletScaler, HistogramBinningScaler
and IsotonicRegressionScaler, with their default settings; no library has the study's ECE grid
(against a plain numpy loop over the grid, tests' ``temperature_grid``) or ensemble temperature
scaling (against Zhang et al.'s published fit, re-implemented there). Everything on one thread
(torch and BLAS), best of ``--repeats`` runs. Prints one line per calibrator: seconds for calnas,
for the peer, the ratio calnas / peer (below 1: calnas is faster) and the largest difference in
a calibrated probability (the peers' defaults stop their fits earlier than calnas: vector scaling
differs in kind, torch-uncertainty's having no intercept, matrix scaling in its regulariser).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def logits(n, k, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k)) * 2.0
    z[np.arange(n), y] += 4.0
    return z * 1.5, y


def _tu_fit_predict(make, vz, vy, z):
    import calibrator_peers as peers
    import torch

    scaler = make(peers.tu())
    scaler.fit(peers._loader(vz, vy), progress=False)
    with torch.no_grad():
        return torch.softmax(scaler(torch.as_tensor(z, dtype=torch.float64)), dim=1).numpy()


def library_versions(k):
    import calibrator_peers as peers

    return {
        "temperature": ("numpy grid loop", peers.temperature_grid),
        "temperature:nll": ("torch-uncertainty TemperatureScaler",
                            lambda vz, vy, z: _tu_fit_predict(lambda tu: tu.TemperatureScaler(), vz, vy, z)),
        "vector": ("torch-uncertainty VectorScaler",
                   lambda vz, vy, z: _tu_fit_predict(lambda tu: tu.VectorScaler(num_classes=k), vz, vy, z)),
        "matrix": ("torch-uncertainty MatrixScaler",
                   lambda vz, vy, z: _tu_fit_predict(lambda tu: tu.MatrixScaler(num_classes=k), vz, vy, z)),
        "dirichlet": ("torch-uncertainty DirichletScaler",
                      lambda vz, vy, z: _tu_fit_predict(lambda tu: tu.DirichletScaler(num_classes=k, lambda_reg=1.0,
                                                                                       mu_reg=1.0), vz, vy, z)),
        # The default stops at 200 L-BFGS steps, short of the optimum; run on, it is a like-for-like fit.
        "dirichlet:peer-converged": ("DirichletScaler, 5000 steps at lr 1",
                                     lambda vz, vy, z: peers.dirichlet(vz, vy, z, max_iter=5000)),
        "histogram": ("torch-uncertainty HistogramBinningScaler",
                      lambda vz, vy, z: _tu_fit_predict(lambda tu: tu.HistogramBinningScaler(num_bins=15), vz, vy, z)),
        "isotonic": ("torch-uncertainty IsotonicRegressionScaler",
                     lambda vz, vy, z: _tu_fit_predict(lambda tu: tu.IsotonicRegressionScaler(), vz, vy, z)),
        "ets": ("Zhang et al.'s fit (SLSQP)", peers.ets),
    }


def best(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", default=None, help="comma-separated calibrators")
    args = parser.parse_args()
    import torch
    from threadpoolctl import threadpool_limits

    from calnas.metrics import make_calibrator

    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    vz, vy = logits(args.n, args.k, 0)
    z, _ = logits(args.n, args.k, 1)
    peers = library_versions(args.k)
    wanted = args.only.split(",") if args.only else list(peers)
    print(f"N={args.n} K={args.k}, one thread, best of {args.repeats}")
    with threadpool_limits(1):
        for key in wanted:
            name, _, method = key.partition(":")
            options = {"method": method} if method in ("nll", "ece_grid") else {}
            out = {}
            ours = best(lambda: out.update(a=make_calibrator(name, **options).fit(vz, vy).predict_proba(z)),
                        args.repeats)
            label, peer = peers[key]
            theirs = best(lambda: out.update(b=peer(vz, vy, z)), args.repeats)
            gap = np.abs(out["a"] - out["b"]).max()
            print(f"{key:16s} calnas {ours:8.3f} s   {label:42s} {theirs:8.3f} s   ratio {ours / theirs:.3f}"
                  f"   max |p - p_peer| {gap:.1e}", flush=True)


if __name__ == "__main__":
    main()
