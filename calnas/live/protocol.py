"""Training protocols: every setting of a live evaluation in one record.

NATS-Bench trains every network with SGD (Nesterov momentum 0.9, weight decay 5e-4, lr 0.1),
a cosine schedule to zero, cross-entropy, batch 256: 200 epochs for the topology space (hp
"200") and 90 for the size space (hp "90"). calnas keeps that recipe for CIFAR and
ImageNet16-120 and, for ``digits``, scaled-down protocols (one per space) chosen by measurement
so that a whole-space table trains on two CPU cores in hours and is not saturated (see
docs/live.md for the measurements behind each number).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from calnas.datasets import NATS_EPOCHS
from calnas.errors import UserError
from calnas.live.datasets import canonical_dataset
from calnas.live.recipes import DEFAULT_RECIPE, canonical_recipe

# Optimisers train() knows, as recorded; --optimizer takes them in any case. Adam uses lr and
# weight_decay (L2, torch.optim.Adam's) and ignores momentum/nesterov.
OPTIMIZERS = ("SGD", "Adam")
# Upper bounds of the size settings (docs/inputs.md, Limits): far above any protocol calnas or
# NATS-Bench trains (200 epochs, C = 16, N = 5), low enough that a training ends and that one
# network fits a machine: a TSS network's weights grow with C^2 * N, and the widest at C = 256,
# N = 5 has 0.39 G parameters (1.2 G at N = 16, about 15 GB to train).
MAX_SIZES = {"epochs": 10_000, "channels": 256, "cells": 16, "batch_size": 65_536}


@dataclass(frozen=True)
class Protocol:
    dataset: str
    space: str = "tss"
    channels: int = 16          # TSS: stem channels C (cells double them at each reduction)
    cells: int = 5              # TSS: cells per stage N
    epochs: int = 200
    batch_size: int = 256
    eval_batch_size: int = 1024
    optimizer: str = "SGD"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"    # per-step cosine decay from lr to 0 over all training steps
    recipe: str = DEFAULT_RECIPE    # training recipe, canonical NAME:PARAM (calnas.live.recipes)
    train_size: int | None = None   # cap on training images (None: the whole training split)
    val_size: int | None = None     # validation images for temperature scaling (None: all)
    test_size: int | None = None
    drop_last: bool = False         # keep the last partial batch (NATS-Bench's loaders keep it)
    spare_to_test: bool = False     # digits: pool images beyond train_size join the test split
    threads: int | None = None      # torch threads (None: torch's default)

    def __post_init__(self) -> None:
        from calnas.checks import check_int

        for key, most in MAX_SIZES.items():
            object.__setattr__(self, key, check_int(key, getattr(self, key), minimum=1, maximum=most))
        # Recorded spellings: the recipe as NAME:PARAM, the optimiser as in OPTIMIZERS.
        object.__setattr__(self, "recipe", canonical_recipe(self.recipe))
        object.__setattr__(self, "optimizer", canonical_optimizer(self.optimizer))

    def settings(self) -> dict:
        """Every setting, for the JSON record and the table's columns."""
        return asdict(self)

    @classmethod
    def from_settings(cls, settings: dict) -> "Protocol":
        """A protocol from a recorded ``settings()`` dict, also one written before a field existed."""
        return cls(**normalise_settings(settings))

    def with_overrides(self, **changes) -> "Protocol":
        clean = {k: v for k, v in changes.items() if v is not None}  # sizes are checked by __post_init__
        if "lr" in clean:
            lr = clean["lr"]
            if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
                raise UserError(f"lr must be a positive number, got {lr!r}")
            clean["lr"] = float(lr)
        return replace(self, **clean)


def canonical_optimizer(name) -> str:
    for known in OPTIMIZERS:
        if str(name).strip().lower() == known.lower():
            return known
    raise UserError(f"unknown optimizer {str(name)[:40]!r}; expected one of {', '.join(o.lower() for o in OPTIMIZERS)}")


def normalise_settings(settings: dict) -> dict:
    """A recorded protocol (``settings()``, e.g. a protocol.json's ``protocol``) as this version
    records it: fields it lacks take their defaults (a record written before training recipes
    has no ``recipe``: it trained with ``ce``), and the ``loss`` field those records carry,
    always ``cross_entropy``, is the recipe ``ce``. Other keys are kept, so a comparison of two
    records still sees them."""
    out = dict(settings)
    if "loss" in out and "recipe" not in out:
        loss = out.pop("loss")
        if loss != "cross_entropy":
            raise UserError(f"recorded protocol has loss {str(loss)[:40]!r}; calnas knows only cross_entropy "
                            "(the recipe ce)")
        out["recipe"] = DEFAULT_RECIPE
    for field in fields(Protocol):
        if field.name not in out and field.name != "dataset":
            out[field.name] = field.default
    return out


# The shipped digits protocol (measured in benchmarks/live_throughput.py; see docs/live.md).
DIGITS_TSS = Protocol(
    dataset="digits", space="tss", channels=8, cells=2, epochs=6, batch_size=32,
    eval_batch_size=1100, lr=0.1, train_size=150, val_size=300, test_size=1097, threads=1,
)

# The digits protocol of the size space (measured in benchmarks/sss_protocol.py; see docs/live.md,
# "The SSS digits protocol"). Same data splits, optimiser and thread count as DIGITS_TSS; the
# network is NATS-Bench's infer.shape.tiny at the architecture's own five widths (8-64), so
# ``channels``/``cells`` do not apply (left at their defaults; evaluations drop them). 4 epochs
# of batch 32 (20 steps) at lr 0.2: with lr 0.1 the short schedule leaves the networks so
# under-confident that ECE is nearly a function of accuracy (Spearman 0.79 at 4 epochs, 0.99 at
# 3), and with 6 epochs accuracy saturates (median 0.92).
DIGITS_SSS = Protocol(
    dataset="digits", space="sss", epochs=4, batch_size=32, eval_batch_size=1100, lr=0.2,
    train_size=150, val_size=300, test_size=1097, threads=1,
)


def default_protocol(dataset: str, space: str = "tss") -> Protocol:
    key = canonical_dataset(dataset)
    space = space.lower()
    if space not in ("tss", "sss"):
        raise UserError(f"unknown search space {space!r}; expected tss or sss")
    if key == "digits":
        return DIGITS_TSS if space == "tss" else DIGITS_SSS
    # NATS-Bench's own recipe: 200 epochs (TSS, hp "200") or 90 (SSS, hp "90").
    return Protocol(dataset=key, space=space, epochs=NATS_EPOCHS[space])


# The curve table's protocol (digits-tss-curves; measured with benchmarks/curve_protocol.py, see
# docs/live.md, "The curve protocol"): the digits-tss network and split, 75 training images in 3
# batches of 25 for 16 epochs at lr 0.2 (48 steps), so that the networks fit their training
# images and end over-confident (median fitted temperature 1.4) as trained CIFAR networks do,
# while test accuracy stays unsaturated (10th-90th percentile 0.66-0.84).
DIGITS_TSS_CURVES = replace(DIGITS_TSS, epochs=16, train_size=75, batch_size=25, lr=0.2)


def curve_protocol(dataset: str, space: str = "tss") -> Protocol:
    """The default protocol of a curve build: the curve protocol on digits TSS, else the dataset's
    default (a curve build elsewhere records curves of the usual schedule)."""
    if canonical_dataset(dataset) == "digits" and space.lower() == "tss":
        return DIGITS_TSS_CURVES
    return default_protocol(dataset, space)
