"""The training objectives of the recipes (:mod:`calnas.live.recipes`), in torch.

:func:`make_objective` returns ``objective(model, x, y) -> (loss, logits)`` for one batch.
``ce`` runs exactly the operations training ran before recipes existed (one forward,
``F.cross_entropy``) and draws no random numbers, so its rows are bit for bit those of earlier
builds. The recipes that draw random numbers (mixup, margin) draw them from their own
generators seeded from the training seed, never from the training generator, so a recipe's
batches, crops and initial weights are those of ``ce`` with the same seed (paired comparisons).

What each computes, and why, is in docs/live.md, "Training recipes".
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from calnas.live.networks import logits_of
from calnas.live.recipes import parse_recipe

# margin: the documented constants (docs/live.md, "Training recipes").
MARGIN_TAU = 1.0       # logit units of the exponential margin tail exp(-m / tau)
MARGIN_FLOOR = -2.0    # margins below this (clearly misclassified points) are left to the cross-entropy
SMOOTH_SIGMA = 0.1     # std of the Gaussian input perturbation (inputs are standardised)
SMOOTH_WEIGHT = 0.01   # weight of the smoothness estimate relative to the margin tail

# Streams of the recipes' own random numbers, offset from the training seed.
_MIXUP_STREAM = 0x6D69
_MARGIN_STREAM = 0x6D61


def focal_loss(logits: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor:
    """mean_i -(1 - p_iy)^gamma log p_iy (Lin et al. 2017; Mukhoti et al. 2020, fixed gamma)."""
    logp = F.log_softmax(logits, dim=1).gather(1, y.view(-1, 1)).squeeze(1)
    return -((1.0 - logp.exp()) ** gamma * logp).mean()


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """mean_i -sum_k t_ik log p_ik for probability targets t."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()


def logit_margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """m_i = z_iy - max_{k != y} z_ik (positive: correctly classified)."""
    true = logits.gather(1, y.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, y.view(-1, 1), float("-inf"))
    return true - others.max(1).values


def margin_tail(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """mean_i exp(-max(m_i, MARGIN_FLOOR) / MARGIN_TAU)."""
    return torch.exp(-logit_margins(logits, y).clamp(min=MARGIN_FLOOR) / MARGIN_TAU).mean()


def smoothness(logits: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor:
    """mean_i ||log p(x_i + sigma u_i) - log p(x_i)||^2 / sigma^2, u_i ~ N(0, I): a one-sample
    finite-difference estimate of the squared Frobenius norm of the input Jacobian of the
    log-probabilities (E ||J u||^2 = ||J||_F^2)."""
    diff = F.log_softmax(perturbed, dim=1) - F.log_softmax(logits, dim=1)
    return (diff ** 2).sum(1).mean() / SMOOTH_SIGMA ** 2


def margin_loss(logits: torch.Tensor, perturbed: torch.Tensor, y: torch.Tensor, weight: float) -> torch.Tensor:
    """cross-entropy + weight * (margin tail + SMOOTH_WEIGHT * smoothness)."""
    return F.cross_entropy(logits, y) + weight * (margin_tail(logits, y) + SMOOTH_WEIGHT * smoothness(logits, perturbed))


@contextlib.contextmanager
def running_stats_frozen(model: torch.nn.Module):
    """Batch-norm layers normalise with the batch's statistics (train mode) but do not update
    their running statistics (momentum 0 for the duration)."""
    saved = []
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            saved.append((module, module.momentum, module.num_batches_tracked.clone()))
            module.momentum = 0.0
    try:
        yield
    finally:
        for module, momentum, tracked in saved:
            module.momentum = momentum
            module.num_batches_tracked.copy_(tracked)


def make_objective(recipe: str, *, seed: int, num_classes: int):
    """``objective(model, x, y) -> (loss, logits of x)`` for one training batch."""
    name, param = parse_recipe(recipe)
    if name == "ce":
        def objective(model, x, y):
            logits = logits_of(model, x)
            return F.cross_entropy(logits, y), logits
    elif name == "label-smoothing":
        def objective(model, x, y):
            logits = logits_of(model, x)
            return F.cross_entropy(logits, y, label_smoothing=param), logits
    elif name == "focal":
        def objective(model, x, y):
            logits = logits_of(model, x)
            return focal_loss(logits, y, param), logits
    elif name == "mixup":
        rng = np.random.default_rng(seed + _MIXUP_STREAM)

        def objective(model, x, y):
            # One lambda per batch (Zhang et al.) and a random pairing of the batch, from this
            # recipe's own stream (numpy's Beta sampler; torch's would use the global generator).
            lam = float(rng.beta(param, param))
            perm = torch.from_numpy(rng.permutation(len(y))).to(x.device)
            mixed = lam * x + (1.0 - lam) * x[perm]
            onehot = F.one_hot(y, num_classes).to(x.dtype)
            targets = lam * onehot + (1.0 - lam) * onehot[perm]
            logits = logits_of(model, mixed)
            return soft_cross_entropy(logits, targets), logits
    else:  # margin
        gen = torch.Generator().manual_seed(seed + _MARGIN_STREAM)

        def objective(model, x, y):
            # The clean batch's forward is the one ce runs; the perturbed images go through a
            # second forward that leaves batch norm's running statistics alone (on this short
            # protocol a second update of them alone moves test accuracy by several points).
            logits = logits_of(model, x)
            noise = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
            with running_stats_frozen(model):
                perturbed = logits_of(model, x + SMOOTH_SIGMA * noise)
            return margin_loss(logits, perturbed, y, param), logits
    return objective
