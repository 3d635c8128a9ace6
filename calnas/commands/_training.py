"""The training options, defined once for `calnas evaluate --live`, `calnas table build` and
`calnas search --live` (and the keys of `search --config`, which are the flag names): the three
commands spell, document and default them alike. In Python the same settings are the fields of
:class:`calnas.LiveConfig`; every command turns them into a protocol with
:func:`calnas.live.evaluate.make_protocol`.
"""

from __future__ import annotations

import typer

DATASET_DEFAULT = "digits"
DATASET_HELP = ("digits (default) | cifar10 | cifar100 | imagenet16-120 | PATH.npz (your own images: x_train, y_train, "
                "x_test, y_test; docs/live.md).")

# Flag name (= config key) -> default, for the options every training command takes.
DEFAULTS = {"dataset": DATASET_DEFAULT, "data-root": None, "epochs": None, "channels": None, "cells": None,
            "recipe": None, "optimizer": None, "lr": None}


def dataset_option():
    return typer.Option(None, "--dataset", help=DATASET_HELP)


def data_root_option():
    return typer.Option(None, "--data-root", help="Folder holding the dataset files (CIFAR, ImageNet16-120; not digits or .npz).")


def _most(key: str) -> str:
    from calnas.live.protocol import MAX_SIZES  # the bounds the protocol itself enforces

    return f"{MAX_SIZES[key]:,}"


def epochs_option():
    return typer.Option(None, "--epochs", min=1,
                        help=f"Training epochs, 1 to {_most('epochs')} (default: the dataset's protocol).")


def channels_option():
    return typer.Option(None, "--channels", "-C",
                        help=f"TSS stem channels C, 1 to {_most('channels')} (default: the protocol's).")


def cells_option():
    return typer.Option(None, "--cells", "-N",
                        help=f"TSS cells per stage N, 1 to {_most('cells')} (default: the protocol's).")


def recipe_option():
    from calnas.live.recipes import recipe_help

    return typer.Option(None, "--recipe", help=recipe_help())


def optimizer_option():
    return typer.Option(None, "--optimizer", help="sgd | adam (default: the protocol's, sgd; adam ignores momentum/Nesterov).")


def lr_option():
    return typer.Option(None, "--lr", help="Peak learning rate of the cosine schedule (default: the protocol's).")


def device_option(default: str):
    # A table build defaults to cpu (bit-for-bit reproducible rows); evaluation and search to auto.
    return typer.Option(default, "--device", help="auto | cpu | cuda (CPU results are bit-for-bit reproducible).")
