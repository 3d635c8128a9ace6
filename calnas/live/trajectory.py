"""Training trajectories: validation calibration and loss sharpness after every epoch.

A :class:`TrajectoryTracker` is :func:`calnas.live.train.train`'s ``on_epoch`` hook (and is
called once more before training, for epoch 0). For each call it records, on the validation
split: accuracy, top-label ECE (:func:`calnas.metrics.ece` with its default equal-width bins),
NLL (exact float64 log-softmax, as the panel's default), the mean logit margin (true-class logit
minus the largest other logit), and the sharpness of the training loss: the top eigenvalue of
the Gauss-Newton matrix of the mean cross-entropy on a fixed batch of training images
(:func:`top_eigenvalue`) as training sees it: batch norm normalises with the batch's own
statistics (on a copy of the network whose batch-norm layers keep no running statistics, so the
network's own are untouched).

Tracking never changes the training: the validation quantities come from the network in eval
mode (as its predictions are made; the training mode is restored afterwards), without gradients;
the sharpness from a copy; random numbers from the tracker's own generator; and the global torch
RNG state is saved and restored around each call. With tracking on, the trained network and its metrics are bit-for-bit those of tracking
off. Definitions, iterations and batch: docs/live.md, "Trajectories, sharpness and certainty".

torch is imported inside the functions that need it (the figure needs none).
"""

from __future__ import annotations

import math

import numpy as np

SHARPNESS_ITERATIONS = 20   # power iterations per estimate
SHARPNESS_BATCH = 128       # the first this many training images (no augmentation)
SHARPNESS_SEED = 0          # seed of the power iteration's start vector
SHARPNESS_KINDS = ("gn", "hessian")
TRACKED = ("acc", "ECE", "NLL", "margin", "sharpness")   # the per-epoch quantities, in plot order


# -- sharpness ---------------------------------------------------------------------------------

def top_eigenvalue(model, x, y, *, kind: str = "gn", iterations: int = SHARPNESS_ITERATIONS,
                   seed: int = SHARPNESS_SEED) -> float:
    """The top eigenvalue of the curvature of the mean cross-entropy of ``model`` on ``(x, y)``
    with respect to all its parameters, by ``iterations`` steps of power iteration.

    ``kind="gn"``: the Gauss-Newton matrix ``G = (1/B) sum_i J_i^T (diag(p_i) - p_i p_i^T) J_i``
    (``J_i`` the Jacobian of sample i's logits, ``p_i`` its softmax), positive semi-definite, so
    power iteration converges to its largest eigenvalue; a product ``G v`` is ``J v`` (by
    differentiating ``J^T u`` in ``u``: reverse over reverse), the softmax curvature, then
    ``J^T`` (one backward pass). ``kind="hessian"``: the Hessian, by Hessian-vector products
    (double backward); power iteration converges to the eigenvalue of largest magnitude,
    returned with its sign.

    The start vector is Gaussian from a ``torch.Generator`` seeded with ``seed`` (the global RNG
    is not used); the result is the Rayleigh quotient ``v^T A v`` of the last unit iterate, a
    lower bound of the top eigenvalue of a PSD matrix that rises to it. The model is evaluated in
    its current mode (see :func:`training_view`) and nothing of it is modified.
    """
    import torch

    if kind not in SHARPNESS_KINDS:
        raise ValueError(f"kind must be one of {SHARPNESS_KINDS}, got {kind!r}")
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    from torch.func import functional_call

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    names = [n for n, _ in named]
    primals = tuple(p.detach() for _, p in named)
    buffers = dict(model.named_buffers())

    def logits_fn(*params):
        out = functional_call(model, ({**dict(zip(names, params)), **buffers}), (x,))
        return out[1] if isinstance(out, (tuple, list)) else out

    gen = torch.Generator().manual_seed(int(seed))
    v = tuple(torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) for p in primals)
    v = _scaled(v, 1.0 / _norm(v))

    params = tuple(p.detach().requires_grad_(True) for p in primals)
    logits = logits_fn(*params)
    if kind == "gn":
        probs = torch.softmax(logits.detach(), dim=1)
        batch = x.shape[0]
        # J^T u as a function of a dummy cotangent u: differentiating it again in u gives J v
        # (reverse over reverse, so no forward-mode machinery is needed).
        u = torch.zeros_like(logits, requires_grad=True)
        jt_u = torch.autograd.grad(logits, params, grad_outputs=u, create_graph=True)

        def product(vec):
            jv = torch.autograd.grad(jt_u, u, grad_outputs=vec, retain_graph=True)[0]
            hjv = (probs * jv - probs * (probs * jv).sum(1, keepdim=True)) / batch
            return tuple(g.detach() for g in torch.autograd.grad(logits, params, grad_outputs=hjv,
                                                                  retain_graph=True))
    else:
        grads = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, y), params, create_graph=True)

        def product(vec):
            dot = sum((g * t).sum() for g, t in zip(grads, vec))
            return tuple(h.detach() for h in torch.autograd.grad(dot, params, retain_graph=True))

    estimate = 0.0
    for _ in range(iterations):
        w = product(v)
        estimate = float(sum((a * b).sum() for a, b in zip(v, w)))
        size = _norm(w)
        if not size > 0.0 or not math.isfinite(size):
            break
        v = _scaled(w, 1.0 / size)
    return estimate


def training_view(model):
    """A copy of ``model`` in training mode whose batch-norm layers normalise with the batch's
    statistics and keep no running statistics: the function the training loss is a function of,
    which can be evaluated without touching the network's running statistics."""
    import copy

    import torch

    view = copy.deepcopy(model)
    torch.func.replace_all_batch_norm_modules_(view)
    return view.train()


def _norm(vec) -> float:
    return math.sqrt(float(sum((t.double() ** 2).sum() for t in vec)))


def _scaled(vec, factor: float):
    return tuple(t * factor for t in vec)


# -- validation quantities ---------------------------------------------------------------------

def logit_summary(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, ECE (calnas.metrics.ece's default bins), NLL and mean margin of logits (N, K)."""
    from scipy.special import log_softmax

    from calnas.metrics import ece

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    rows = np.arange(len(labels))
    log_p = log_softmax(logits, axis=1)
    true = logits[rows, labels]
    others = logits.copy()
    others[rows, labels] = -np.inf
    return {"acc": float((logits.argmax(1) == labels).mean()),
            "ECE": float(ece(np.exp(log_p), labels)),
            "NLL": float(-log_p[rows, labels].mean()),
            "margin": float((true - others.max(1)).mean())}


# -- the tracker -------------------------------------------------------------------------------

class TrajectoryTracker:
    """Records :data:`TRACKED` after each epoch; ``tracker(epoch, model)`` is ``train``'s hook.

    ``sharpness_batch`` training images (the first ones of the split, not augmented) fix the
    sharpness batch; ``sharpness_iterations`` power iterations per estimate.
    """

    def __init__(self, splits, *, device, eval_batch_size: int = 1024, kind: str = "gn",
                 sharpness_batch: int = SHARPNESS_BATCH, sharpness_iterations: int = SHARPNESS_ITERATIONS,
                 seed: int = SHARPNESS_SEED):
        if kind not in SHARPNESS_KINDS:
            raise ValueError(f"kind must be one of {SHARPNESS_KINDS}, got {kind!r}")
        self.splits = splits
        self.device = device
        self.eval_batch_size = int(eval_batch_size)
        self.kind = kind
        self.batch = min(int(sharpness_batch), len(splits.train_y))
        self.iterations = int(sharpness_iterations)
        self.seed = int(seed)
        self.epochs: list[dict] = []

    def settings(self) -> dict:
        return {"every": "epoch", "split": "val", "sharpness": {
            "matrix": "gauss-newton" if self.kind == "gn" else "hessian",
            "loss": "mean cross-entropy", "batch": f"the first {self.batch} training images, not augmented",
            "batch_size": self.batch, "iterations": self.iterations, "start_seed": self.seed,
            "mode": "training (batch norm with the batch's statistics; running statistics untouched)"}}

    def record(self) -> dict:
        return {"settings": self.settings(), "epochs": list(self.epochs)}

    def __call__(self, epoch: int, model) -> None:
        import torch

        start = _time()
        cpu_state = torch.get_rng_state()
        # Only a CUDA that is in use has RNG state to keep (asking would initialise an unused one).
        cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        was_training = model.training
        try:
            model.eval()
            with torch.no_grad():
                logits = self._logits(model, self.splits.val_x)
            if not np.isfinite(logits).all():
                from calnas.live.train import diverged

                raise diverged(epoch, "outputs")
            entry = {"epoch": int(epoch), **logit_summary(logits, self.splits.val_y)}
            x = torch.from_numpy(self.splits.train_x[:self.batch]).to(self.device)
            y = torch.from_numpy(self.splits.train_y[:self.batch]).to(self.device)
            entry["sharpness"] = top_eigenvalue(training_view(model), x, y, kind=self.kind,
                                                iterations=self.iterations, seed=self.seed)
        finally:
            model.train(was_training)
            torch.set_rng_state(cpu_state)
            if cuda_states is not None:
                torch.cuda.set_rng_state_all(cuda_states)
        entry["seconds"] = round(_time() - start, 4)
        self.epochs.append(entry)

    def _logits(self, model, x: np.ndarray) -> np.ndarray:
        import torch

        from calnas.live.networks import logits_of

        out = []
        for i in range(0, len(x), self.eval_batch_size):
            xb = torch.from_numpy(x[i:i + self.eval_batch_size]).to(self.device)
            out.append(logits_of(model, xb).float().cpu().numpy())
        return np.concatenate(out).astype(np.float64)


def _time() -> float:
    import time

    return time.perf_counter()


# -- the figure --------------------------------------------------------------------------------

LABELS = {"acc": "validation accuracy", "ECE": "validation ECE", "NLL": "validation NLL",
          "margin": "mean logit margin", "sharpness": "sharpness (top GN eigenvalue)"}


def trajectory_figure(trajectory: dict, title: str = ""):
    """The tracked quantities of one record's ``trajectory`` on shared epochs (five panels), and
    ECE against sharpness coloured by epoch (the sixth)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = trajectory["epochs"]
    xs = np.array([e["epoch"] for e in epochs])
    figure = Figure(figsize=(9.0, 8.0), layout="constrained")
    FigureCanvasAgg(figure)  # the object API and the Agg canvas: no pyplot, no backend change
    axes = figure.subplots(3, 2)
    flat = axes.ravel()
    matrix = trajectory.get("settings", {}).get("sharpness", {}).get("matrix", "gauss-newton")
    labels = {**LABELS, "sharpness": "sharpness (top GN eigenvalue)" if matrix == "gauss-newton"
              else "sharpness (top Hessian eigenvalue)"}
    for ax, key in zip(flat, TRACKED):
        ax.plot(xs, [e[key] for e in epochs], marker="o", markersize=3, color="tab:blue")
        ax.set_ylabel(labels[key])
        ax.grid(alpha=0.3)
        if key == "sharpness" and all(e[key] > 0 for e in epochs):
            ax.set_yscale("log")
    for ax in flat[1:len(TRACKED)]:
        ax.sharex(flat[0])
    flat[0].xaxis.set_major_locator(MaxNLocator(integer=True))  # shared: every epoch axis
    for ax in flat[len(TRACKED) - 2:len(TRACKED)]:
        ax.set_xlabel("epoch (0: at initialisation)")
    ax = flat[len(TRACKED)]
    points = ax.scatter([e["sharpness"] for e in epochs], [e["ECE"] for e in epochs], c=xs, cmap="viridis", s=14)
    if all(e["sharpness"] > 0 for e in epochs):
        ax.set_xscale("log")
    ax.set_xlabel(labels["sharpness"])
    ax.set_ylabel(labels["ECE"])
    ax.grid(alpha=0.3)
    figure.colorbar(points, ax=ax, label="epoch")
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def write_trajectory_plot(trajectory: dict, path, title: str = ""):
    """Draw :func:`trajectory_figure` into ``path`` (.png, .pdf or .svg; folders created)."""
    from pathlib import Path

    from calnas.files import check_figure_path

    path = check_figure_path(Path(path), "trajectory plot")
    figure = trajectory_figure(trajectory, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
