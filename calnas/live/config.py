"""What a live search trains and where its rows go (:class:`LiveConfig`), and the columns a
live evaluation produces, for parsing objectives against them (:func:`live_columns`).

No torch here: a LiveConfig is made (and pickled to workers) before anything is trained.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class LiveConfig:
    """What a live search trains and where its rows go; the fields are the CLI's training options.

    ``seed`` is the training seed (data split, initialisation, batch order), not the search's.
    ``devices`` gives each worker its own GPU (worker i takes ``devices[i % len(devices)]``).
    ``table_out``: the table file to append to; when None, a resumed study's own table, else
    ``table_default`` (the CLI passes ``OUT/table.csv``), else no file. ``cache``: tables of the
    same protocol whose rows answer without training. ``protocol``: a whole
    :class:`~calnas.live.protocol.Protocol` instead of the dataset's default (``epochs``,
    ``channels``, ``cells``, ``recipe``, ``optimizer``, ``lr`` still override it). ``recipe``:
    ``NAME[:PARAM]`` (:data:`calnas.live.recipes.RECIPES`; None: the protocol's, ``ce`` by
    default); ``optimizer``: sgd | adam. ``recipes``: search over architecture x recipe instead
    (``NAME`` stands for its small grid, ``NAME:PARAM`` for itself; :mod:`calnas.live.joint`).
    """

    dataset: str = "digits"
    space: str = "tss"
    data_root: str | None = None
    epochs: int | None = None
    channels: int | None = None
    cells: int | None = None
    seed: int = 0
    device: str = "auto"
    devices: tuple[str, ...] | None = None
    table_out: str | None = None
    cache: tuple[str, ...] = ()
    protocol: object | None = None
    table_default: str | None = None
    recipe: str | None = None
    optimizer: str | None = None
    lr: float | None = None
    recipes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        # Frozen for hashing and pickling to workers; inputs are normalised once here.
        def put(name, value):
            object.__setattr__(self, name, value)

        for name in ("data_root", "table_out", "table_default"):
            value = getattr(self, name)
            if value is not None:
                put(name, str(value))
        cache = self.cache
        if cache is None:
            cache = ()
        elif isinstance(cache, (str, os.PathLike)):
            cache = (cache,)
        put("cache", tuple(str(c) for c in cache))
        recipes = self.recipes
        if isinstance(recipes, str):
            recipes = recipes.split(",")
        if recipes is not None:
            # given but empty stays empty (not None), so the joint search refuses it in one line
            put("recipes", tuple(str(r).strip() for r in recipes if str(r).strip()))
        devices = self.devices
        if isinstance(devices, str):
            devices = [d for d in devices.split(",") if d.strip()]
        if devices is not None:
            put("devices", tuple(str(d).strip() for d in devices) or None)

    def replace(self, **changes) -> "LiveConfig":
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return LiveConfig(**values)


@dataclass
class _Columns:
    """What objective parsing reads of a table: a name and (empty) columns of the live record."""

    name: str
    frame: object


def live_columns(name: str):
    """A table-like view of the live record's columns (the metric panel, params, flops), so
    ``calnas.objectives.parse`` resolves names exactly as for a table."""
    import pandas as pd

    from calnas.calibrator_columns import CALIBRATOR_COLUMNS
    from calnas.columns import COST_COLUMNS
    from calnas.metrics import PANEL_COLUMNS

    return _Columns(name, pd.DataFrame({c: pd.Series(dtype=float)
                                        for c in (*PANEL_COLUMNS, *CALIBRATOR_COLUMNS, *COST_COLUMNS)}))

