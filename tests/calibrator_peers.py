"""Independent implementations of calnas's post-hoc calibrators, for the agreement tests and
benchmarks/calibrators_speed.py: torch-uncertainty's where it has the method, scikit-learn's
isotonic regression, and the papers' formulas re-implemented where no library has them (the
study's ECE grid for temperature, Guo et al.'s vector scaling with an intercept, Zhang et al.'s
ensemble temperature scaling as their published code fits it). Each takes validation logits and
labels and test logits (numpy), and returns calibrated test probabilities (numpy).

Only the tests and benchmarks import this (it needs torch and torch-uncertainty).
"""

from __future__ import annotations

import logging

import numpy as np

logging.getLogger("root").setLevel(logging.ERROR)  # torch-uncertainty warns "model is None" on every fit


def tu():
    """torch-uncertainty's calibration subpackage (torch_uncertainty.post_processing.calibration).

    Its package root imports lightning and torchvision (for its training CLI and plots), which the
    calibration code never uses and which calnas does not install (torchvision would replace the
    CPU torch); so where the root does not import, only the calibration modules are loaded, under
    stand-in parent packages."""
    import importlib
    import importlib.util
    import sys
    import types
    from pathlib import Path

    name = "torch_uncertainty.post_processing.calibration"
    if name in sys.modules:
        return sys.modules[name]
    try:
        return importlib.import_module(name)
    except ImportError:
        pass
    for key in [k for k in sys.modules if k.startswith("torch_uncertainty")]:
        del sys.modules[key]  # the half-imported root
    root = Path(importlib.util.find_spec("torch_uncertainty").origin).parent
    for package, folder in (("torch_uncertainty", root), ("torch_uncertainty.post_processing", root / "post_processing")):
        module = types.ModuleType(package)
        module.__path__ = [str(folder)]
        sys.modules[package] = module
    abstract = importlib.import_module("torch_uncertainty.post_processing.abstract")
    sys.modules["torch_uncertainty.post_processing"].PostProcessing = abstract.PostProcessing
    return importlib.import_module(name)


def _loader(z, y):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    data = TensorDataset(torch.as_tensor(z, dtype=torch.float64), torch.as_tensor(y, dtype=torch.long))
    return DataLoader(data, batch_size=len(y))


def _tu_probs(scaler, z):
    import torch

    with torch.no_grad():
        return torch.softmax(scaler(torch.as_tensor(z, dtype=torch.float64)), dim=1).numpy()


def _softmax(z, t=1.0):
    s = (z - z.max(axis=1, keepdims=True)) / t
    e = np.exp(s)
    return e / e.sum(axis=1, keepdims=True)


def ece_naive(p, y, bins=15):
    """Top-label ECE, bins (lo, hi] of equal width, written out sample by sample."""
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = (conf > lo) & (conf <= hi) if b else (conf <= hi)
        if inside.any():
            total += inside.sum() * abs(conf[inside].mean() - (pred[inside] == y[inside]).mean())
    return total / len(y)


def temperature_grid(vz, vy, z):
    """The study's protocol: T in 0.1 ... 10.0, lowest 15-bin ECE (the first on ties)."""
    grid = np.arange(1, 101) / 10.0
    eces = [ece_naive(_softmax(vz, t), vy) for t in grid]
    return _softmax(z, grid[int(np.argmin(eces))])


def temperature_nll(vz, vy, z):
    import torch
    TemperatureScaler = tu().TemperatureScaler

    torch.set_default_dtype(torch.float64)
    try:
        scaler = TemperatureScaler(lr=0.1, max_iter=2000)
        scaler.fit(_loader(vz, vy), progress=False)
        return _tu_probs(scaler, z)
    finally:
        torch.set_default_dtype(torch.float32)


def _torch_fit(params, loss_fn, max_iter):
    import torch

    optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, tolerance_grad=1e-12,
                                  tolerance_change=1e-15, history_size=50, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    optimizer.step(closure)


def vector(vz, vy, z, mu=0.01, max_iter=2000):
    """Guo et al.'s vector scaling softmax(a * z + b), NLL + mu / K * |b|^2, by torch autograd and
    L-BFGS with a strong-Wolfe line search (torch-uncertainty's VectorScaler has no intercept)."""
    import torch

    x = torch.as_tensor(vz, dtype=torch.float64)
    t = torch.as_tensor(vy, dtype=torch.long)
    k = x.shape[1]
    a = torch.ones(k, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    _torch_fit([a, b], lambda: torch.nn.functional.cross_entropy(x * a + b, t) + mu * (b ** 2).sum() / k, max_iter)
    with torch.no_grad():
        return torch.softmax(torch.as_tensor(z, dtype=torch.float64) * a + b, dim=1).numpy()


def _odir(vz, vy, z, lam, mu, log_probs, max_iter):
    """torch-uncertainty's DirichletScaler (ODIR on log-softmax); on the logits themselves for
    matrix scaling (its MatrixScaler has no regulariser, the ODIR loss is DirichletScaler's)."""
    import torch
    from torch.nn.functional import linear
    DirichletScaler = tu().DirichletScaler

    class MatrixODIR(DirichletScaler):
        def _scale(self, logits):
            return linear(logits, self.inv_temperature_weight, self.inv_temperature_bias)

    torch.set_default_dtype(torch.float64)
    try:
        cls = DirichletScaler if log_probs else MatrixODIR
        scaler = cls(num_classes=vz.shape[1], lambda_reg=lam, mu_reg=mu, lr=1.0, max_iter=max_iter)
        scaler.fit(_loader(vz, vy), progress=False)
        return _tu_probs(scaler, z)
    finally:
        torch.set_default_dtype(torch.float32)


def matrix(vz, vy, z, lam=0.1, mu=0.1, max_iter=2000):
    return _odir(vz, vy, z, lam, mu, False, max_iter)


def dirichlet(vz, vy, z, lam=1.0, mu=1.0, max_iter=2000):
    return _odir(vz, vy, z, lam, mu, True, max_iter)


def histogram(vz, vy, z, bins=15):
    """torch-uncertainty's HistogramBinningScaler; its output is log(clamp(q, 1e-6)) of the
    renormalised one-vs-rest values q, so the softmax of it is q up to that clamp."""
    import torch
    HistogramBinningScaler = tu().HistogramBinningScaler

    torch.set_default_dtype(torch.float64)
    try:
        scaler = HistogramBinningScaler(num_bins=bins)
        scaler.fit(_loader(vz, vy), progress=False)
        return _tu_probs(scaler, z)
    finally:
        torch.set_default_dtype(torch.float32)


def isotonic(vz, vy, z):
    """scikit-learn's IsotonicRegression one-vs-rest on softmax probabilities, renormalised."""
    from sklearn.isotonic import IsotonicRegression

    pv, pt = _softmax(vz), _softmax(z)
    q = np.empty_like(pt)
    for k in range(pv.shape[1]):
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(pv[:, k], (vy == k).astype(float))
        q[:, k] = model.predict(pt[:, k])
    sums = q.sum(axis=1, keepdims=True)
    return np.where(sums > 0, q / np.where(sums > 0, sums, 1.0), 1.0 / q.shape[1])


def ets(vz, vy, z):
    """Zhang et al. 2020's ets_calibrate as published (Mix-n-Match), with the temperature fitted by
    NLL ('ce', the option their code offers) and the weights by SLSQP on the mean squared error."""
    from scipy.optimize import minimize

    k = vz.shape[1]
    onehot = np.eye(k)[vy]

    def ll_t(t):
        p = np.clip(_softmax(vz, t[0]), 1e-20, 1 - 1e-20)
        return -np.sum(onehot * np.log(p)) / len(vy)

    t = minimize(ll_t, np.array([1.0]), method="L-BFGS-B", bounds=((0.05, 5.0),), tol=1e-12).x[0]
    p0, p1, p2 = _softmax(vz, t), _softmax(vz), np.ones_like(vz) / k

    def mse_w(w):
        p = w[0] * p0 + w[1] * p1 + w[2] * p2
        return np.mean((p - onehot) ** 2)

    w = minimize(mse_w, (1.0, 0.0, 0.0), method="SLSQP", bounds=((0.0, 1.0),) * 3,
                 constraints={"type": "eq", "fun": lambda x: np.sum(x) - 1}, tol=1e-12).x
    return w[0] * _softmax(z, t) + w[1] * _softmax(z) + w[2] / k


PEERS = {"temperature": temperature_grid, "vector": vector, "matrix": matrix, "dirichlet": dirichlet,
         "histogram": histogram, "isotonic": isotonic, "ets": ets}
