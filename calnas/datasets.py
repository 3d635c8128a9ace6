"""Dataset names calnas knows, their aliases, and what NATS-Bench fixes per dataset and space.

The one place for these facts: the tables, live training, NATS-Bench weights and the cost
model all read them here. No torch, no pandas.
"""

from __future__ import annotations

# Datasets live training can load (calnas.live.datasets), as calnas spells them.
DATASETS = ("digits", "cifar10", "cifar100", "imagenet16-120")
# Other spellings: the published files' (imagenet), NATS-Bench's file names and loose forms.
DATASET_ALIASES = {
    **{name: name for name in DATASETS},
    "imagenet": "imagenet16-120",
    "imagenet16": "imagenet16-120",
    "imagenet16_120": "imagenet16-120",
    "imagenet16120": "imagenet16-120",
}
# The datasets NATS-Bench benchmarks, by calnas name -> the key of its API (nats_bench).
NATS_DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16-120": "ImageNet16-120"}
# NATS-Bench's (input resolution, classes) per dataset.
NATS_INPUTS: dict[str, tuple[int, int]] = {"cifar10": (32, 10), "cifar100": (32, 100), "imagenet16-120": (16, 120)}
# NATS-Bench's full training length per space: 200 epochs for the topology space (its hp "200"),
# 90 for the size space (hp "90"); its reported numbers and weights are those of this schedule.
NATS_EPOCHS = {"tss": 200, "sss": 90}


def nats_hp(space: str) -> str:
    """The ``hp`` key under which NATS-Bench's API keeps a space's full schedule."""
    return str(NATS_EPOCHS[space])


def dataset_alias(name: str) -> str | None:
    """calnas's name for ``name`` (any case), or None when it is not a known spelling."""
    return DATASET_ALIASES.get(str(name).strip().lower())
