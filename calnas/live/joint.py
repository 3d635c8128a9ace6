"""The joint architecture x training-recipe search (``calnas search --live --recipes ...``).

The searched space is :class:`calnas.spaces.RecipeSpace`: every architecture of the base space
(TSS or SSS) with every recipe of the list (a recipe named without its parameter stands for its
small grid, :data:`calnas.live.recipes.SEARCH_GRID`). The recipe is one more categorical
parameter, so calnas's searchers' one-parameter moves include a recipe change, and the budget
counts distinct (architecture, recipe) pairs (TSS with ``dedupe iso``: (class, recipe) pairs).

:class:`JointLiveEvaluator` is a :class:`LiveEvaluator` per recipe behind one seam: each
trains its recipe's protocol and keeps its own table file, a standard calnas table of one
protocol (``table.csv`` becomes ``table.ce.csv``, ``table.mixup-0.2.csv``, ...; each searchable
with ``calnas search --benchmark`` and usable as a ``--cache`` for a search of that recipe), and
a ``cache`` table answers for the recipe whose protocol it was built with. No table covers a
joint space, so the summary's hypervolume is in the objectives' own units.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

import numpy as np

from calnas import record as rec
from calnas.errors import UserError
from calnas.evaluators import Candidates, Evaluation, Evaluator
from calnas.live.config import LiveConfig
from calnas.live.evaluator import (HEARTBEAT_S, STALE_S, TABLE_NOTE, LiveEvaluator, _columns, _same_file,
                                   chosen_table, set_notes)
from calnas.live.protocol_file import protocol_identity, protocol_path, read_protocol
from calnas.live.recipes import expand_recipes
from calnas.live.table_file import TableFile
from calnas.spaces import RECIPE_SEPARATOR, RecipeSpace, get_space

RECIPE_TABLES_NOTE = "recipe_tables"  # the study's note (and summary key): recipe -> its table file


def recipe_table_path(path: str | Path, recipe: str) -> Path:
    """The table file of one recipe: ``OUT/table.csv`` -> ``OUT/table.mixup-0.2.csv``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.{recipe.replace(':', '-')}{path.suffix or '.csv'}")


class JointLiveEvaluator(Evaluator):
    """Trains each proposed (architecture, recipe) pair; see the module docstring."""

    kind = "live"
    heartbeat_interval = HEARTBEAT_S
    stale_after = STALE_S
    missing_mark = rec.INFEASIBLE
    covers_space = False

    def __init__(self, config: LiveConfig, spec, dedupe: str, *, stream: int = 0, pin_threads: bool = False,
                 table_paths: dict | None = None):
        if config.recipe is not None:
            raise UserError("recipe and recipes exclude each other: --recipe trains one recipe, "
                            "--recipes searches over several")
        self.config, self.spec, self.dedupe, self.stream = config, spec, dedupe, stream
        self.recipes = expand_recipes(config.recipes)
        self.base = get_space(config.space)
        self.space = RecipeSpace(self.base, self.recipes)
        table_paths = table_paths or {}
        caches = {recipe: [] for recipe in self.recipes}
        self.parts: dict[str, LiveEvaluator] = {}
        for recipe in self.recipes:
            part_config = config.replace(recipe=recipe, recipes=None, cache=(), table_out=None, table_default=None)
            first = next(iter(self.parts.values()), None)
            shared = {} if first is None else {  # data and candidates do not depend on the recipe
                "splits": first._splits_cache, "prepared": (first._candidates, first._costs, first._prechecked)}
            self.parts[recipe] = LiveEvaluator(part_config, spec, dedupe, stream=stream, pin_threads=pin_threads,
                                               table_path=table_paths.get(recipe), **shared)
        for path in config.cache:  # each cache answers for the recipe whose protocol built it
            owner = _cache_owner(path, self.parts)
            caches[owner].append(path)
        for recipe, paths in caches.items():
            if paths:
                self.parts[recipe].add_caches(paths)
        if stream == 0 and config.table_out is not None:  # each recipe's table, before the study is created
            for recipe, part in self.parts.items():
                TableFile.check(recipe_table_path(Path(config.table_out).expanduser(), recipe), part._record, _columns())
        first = self.parts[self.recipes[0]]
        self.dataset, self.name = first.dataset, first.name
        self.seed = first.seed
        self.protocol = {**first.protocol, "space": self.space.name,
                         "protocol": {**first.protocol["protocol"], "recipe": list(self.recipes)}}
        self._candidates = _joint_candidates(self.space, first.candidates())

    # -- the seam ------------------------------------------------------------------------------
    def candidates(self) -> Candidates:
        return self._candidates

    @property
    def max_epochs(self) -> int:
        return min(part.max_epochs for part in self.parts.values())

    def evaluate(self, positions: Sequence[int], monitor=None) -> list[Evaluation]:
        out = []
        n = len(self.recipes)
        for position in positions:
            base_position, r = divmod(int(position), n)
            (evaluation,) = self.parts[self.recipes[r]].evaluate([base_position], monitor)
            out.append(evaluation)
        return out

    def own_reference(self, spec) -> list[float] | None:
        return self.parts[self.recipes[0]].own_reference(spec)

    def notes(self) -> dict:
        out = dict(self.parts[self.recipes[0]].notes())
        if "pre_training_check" in out:
            out["pre_training_check"] = {**out["pre_training_check"], "candidates": len(self._candidates),
                                         "excluded": self.space.size - len(self._candidates)}
        out["recipes"] = list(self.recipes)
        return out

    def attach(self, study) -> None:
        base, notes = chosen_table(study, self.config)
        if base is None:
            return
        tables = {}
        for recipe, part in self.parts.items():
            tables[recipe] = str(recipe_table_path(base, recipe))
            part.use_table(tables[recipe])
        set_notes(study, notes, **{TABLE_NOTE: base, RECIPE_TABLES_NOTE: tables})

    def check_outputs(self, study) -> None:
        base, _ = chosen_table(study, self.config)
        if self.stream != 0 or base is None or _same_file(base, self.config.table_out):
            return  # --table-out's recipe tables were checked on construction
        for recipe, part in self.parts.items():
            TableFile.check(recipe_table_path(base, recipe), part._record, _columns())

    @property
    def table_path(self) -> str | None:
        paths = {recipe: part.table_path for recipe, part in self.parts.items()}
        return None if not any(paths.values()) else paths

    def recorded_protocol(self, stored):
        return self.parts[self.recipes[0]].recorded_protocol(stored)

    def worker_factory(self):
        return functools.partial(_worker_evaluator, self.config, self.spec, self.dedupe, self.table_path)


def _worker_evaluator(config, spec, dedupe, table_paths, *, stream: int) -> JointLiveEvaluator:
    return JointLiveEvaluator(config, spec, dedupe, stream=stream, pin_threads=True, table_paths=table_paths)


def _joint_candidates(space: RecipeSpace, base: Candidates) -> Candidates:
    """Every (base candidate, recipe) pair, recipe fastest: joint position = base position * R + r."""
    n = len(space.recipes)
    r = np.tile(np.arange(n), len(base))
    archs = [f"{arch}{RECIPE_SEPARATOR}{recipe}" for arch in base.archs for recipe in space.recipes]
    return Candidates(space, archs, np.repeat(base.indices, n) * n + r, np.repeat(base.keys, n) * n + r,
                      np.repeat(base.classes, n) * n + r,
                      {name: np.repeat(values, n) for name, values in base.cheap.items()})


def _cache_owner(path, parts: dict[str, LiveEvaluator]) -> str:
    meta_path = protocol_path(path)
    if not meta_path.is_file():
        raise UserError(f"cache table {path} has no {meta_path.name}; only a table whose protocol is known "
                        "can answer without training")
    identity = protocol_identity(read_protocol(meta_path))
    for recipe, part in parts.items():
        if identity == part.protocol:
            return recipe
    raise UserError(f"cache table {path} was built with a protocol none of the searched recipes trains "
                    f"({', '.join(parts)}); its rows cannot stand for this search's training")
