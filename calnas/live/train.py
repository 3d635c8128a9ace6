"""Training and prediction loops (plain tensors, no DataLoader: the data sets fit in memory)."""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from calnas.errors import UserError
from calnas.live.datasets import Splits
from calnas.live.losses import make_objective
from calnas.live.networks import logits_of
from calnas.live.protocol import Protocol


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def _augment(x: torch.Tensor, padding: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Random crop after zero padding, and random horizontal flip (NATS-Bench's CIFAR augmentation)."""
    n, _, h, w = x.shape
    if flip:
        mask = torch.rand(n, generator=gen) < 0.5
        x = torch.where(mask.view(-1, 1, 1, 1), x.flip(3), x)
    if padding:
        padded = F.pad(x, (padding, padding, padding, padding))
        dy = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
        dx = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
        out = torch.empty_like(x)
        # Grouping by offset pair keeps this a handful of slices instead of one per image.
        keys = dy * (2 * padding + 1) + dx
        for key in torch.unique(keys).tolist():
            sel = (keys == key).nonzero(as_tuple=True)[0]
            oy, ox = divmod(key, 2 * padding + 1)
            out[sel] = padded[sel, :, oy:oy + h, ox:ox + w]
        x = out
    return x


def make_optimizer(model: torch.nn.Module, protocol: Protocol) -> torch.optim.Optimizer:
    """The protocol's optimiser (SGD with its momentum/Nesterov, or Adam, which has neither)."""
    if protocol.optimizer == "Adam":
        return torch.optim.Adam(model.parameters(), lr=protocol.lr, weight_decay=protocol.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=protocol.lr, momentum=protocol.momentum,
                           nesterov=protocol.nesterov, weight_decay=protocol.weight_decay)


def train(model: torch.nn.Module, splits: Splits, protocol: Protocol, *, device: torch.device,
          seed: int, on_epoch: Callable[[int, torch.nn.Module], None] | None = None) -> dict:
    """Train in place with the protocol's recipe; returns training statistics.

    ``on_epoch(epoch, model)``, when given, is called after each epoch (1, 2, ...) with the model
    in training mode; it must leave the model, its mode and the RNGs as it found them (the
    trajectory tracker, calnas.live.trajectory, and the curve recorder, calnas.live.curves, do).
    It returning ``True`` ends the training after that epoch (early stopping; the learning-rate
    schedule is the full training's, so the epochs run are exactly the full training's first).

    ``train_seconds`` is the wall time of the training with the hook's time left out. The returned ``history`` has one entry per epoch: its mean training loss and accuracy and
    ``cpu_seconds``, the process CPU time spent training so far with the hook's time left out.
    CPU time, not wall time: it is what a simulator charges for reaching that epoch, and on a
    shared machine it does not grow with the load of other processes the way wall time does.
    """
    start = time.perf_counter()
    cpu_start = time.process_time()
    hook_cpu = hook_wall = 0.0
    history: list[dict] = []
    gen = torch.Generator().manual_seed(seed)
    x_all = torch.from_numpy(splits.train_x)
    y_all = torch.from_numpy(splits.train_y)
    n = len(y_all)
    batch = min(protocol.batch_size, n)
    steps_per_epoch = n // batch if protocol.drop_last else math.ceil(n / batch)
    total_steps = steps_per_epoch * protocol.epochs
    optimizer = make_optimizer(model, protocol)
    objective = make_objective(protocol.recipe, seed=seed, num_classes=splits.num_classes)
    model.to(device).train()
    step = 0
    last_loss, last_correct, last_seen = float("nan"), 0, 0
    for epoch in range(protocol.epochs):
        order = torch.randperm(n, generator=gen)
        epoch_loss, correct, seen = 0.0, 0, 0
        for b in range(steps_per_epoch):
            idx = order[b * batch:(b + 1) * batch]
            xb = x_all[idx]
            if splits.crop_padding or splits.flip:
                xb = _augment(xb, splits.crop_padding, splits.flip, gen)
            xb, yb = xb.to(device), y_all[idx].to(device)
            for group in optimizer.param_groups:
                group["lr"] = 0.5 * protocol.lr * (1.0 + math.cos(math.pi * step / total_steps))
            loss, logits = objective(model, xb, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            value = float(loss.detach())
            if not math.isfinite(value):
                # Stopped here: the epoch's hooks and the metrics would only report NaN in their own words.
                raise diverged(epoch + 1, "loss")
            epoch_loss += value * len(idx)
            correct += int((logits.detach().argmax(1) == yb).sum())
            seen += len(idx)
        last_loss, last_correct, last_seen = epoch_loss / max(seen, 1), correct, seen
        history.append({"epoch": epoch + 1, "train_loss": last_loss, "train_acc": correct / max(seen, 1),
                        "cpu_seconds": time.process_time() - cpu_start - hook_cpu})
        if on_epoch is not None:
            hook_start, hook_wall_start = time.process_time(), time.perf_counter()
            stop = on_epoch(epoch + 1, model)
            hook_cpu += time.process_time() - hook_start
            hook_wall += time.perf_counter() - hook_wall_start
            if stop is True:  # early stopping: the schedule stays the full one's, so the prefix is identical
                break
    return {"steps": step, "final_train_loss": last_loss,
            "final_train_acc": last_correct / max(last_seen, 1),
            "train_seconds": time.perf_counter() - start - hook_wall, "history": history}


def diverged(epoch: int, what: str) -> UserError:
    """The one message of a training whose numbers left the floats (``what``: loss, outputs)."""
    return UserError(f"training diverged at epoch {epoch} (non-finite {what}); try a smaller learning rate")


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, x: np.ndarray, *, device: torch.device,
                   batch_size: int = 1024) -> np.ndarray:
    model.to(device).eval()
    out = []
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[i:i + batch_size]).to(device)
        out.append(logits_of(model, xb).float().cpu().numpy())
    return np.concatenate(out).astype(np.float64)
