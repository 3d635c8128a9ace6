"""What every peer sees of a task: the table's objective values (read through calnas's own
objective parser, exactly as ``calnas.search`` reads them), an integer encoding of the space and
a lookup from genes to architecture index.

Encoding: one gene per choice of ``space.param_choices()`` (TSS: 6 edges, each 0..4 in the order
of ``calnas.spaces.TSS_OPS``; SSS: 5 layers, each 0..7 indexing ``SSS_CHANNELS`` 8..64, ordinal).
An evaluation answers the table row of that architecture; on TSS an isomorphic twin has its own
row with the same values, and is another architecture for the budget (calnas counts distinct
architectures, ``dedupe="arch"``, the default for tables).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_TASKS: dict = {}


@dataclass
class TableTask:
    names: list[str]
    directions: list[str]
    points: np.ndarray  # (rows, k) minimisation form, NaN where the table lacks a value
    worst: np.ndarray  # per objective, the worst (largest) minimisation value of the table
    choices: list[tuple]  # per gene, the options (param_choices order)
    param_names: list[str]
    lookup: np.ndarray  # mixed-radix gene code -> row position in points (-1: not in the table)
    index: np.ndarray  # row position -> architecture index
    space: object

    @classmethod
    def of(cls, table, objectives: str) -> "TableTask":
        key = (id(table), objectives)
        if key not in _TASKS:
            _TASKS[key] = cls._build(table, objectives)
        return _TASKS[key]

    @classmethod
    def _build(cls, table, objectives: str) -> "TableTask":
        from calnas import objectives as objectives_module, pareto

        spec = objectives_module.parse(objectives, table)
        frame, space = table.frame, table.space
        values = np.column_stack([o.values(frame) for o in spec.objectives]).astype(float)
        points = pareto.as_minimisation(values, spec.directions)
        choices = list(space.param_choices().values())
        param_names = list(space.param_choices())
        sizes = [len(c) for c in choices]
        lookup = np.full(int(np.prod(sizes)), -1, dtype=np.int64)
        option_pos = [{o: i for i, o in enumerate(c)} for c in choices]
        for row, arch in enumerate(frame["arch"].to_numpy()):
            params = space.to_params(arch)
            code = 0
            for name, size, pos in zip(param_names, sizes, option_pos):
                code = code * size + pos[params[name]]
            if np.all(np.isfinite(points[row])):
                lookup[code] = row
        return cls([o.name for o in spec.objectives], list(spec.directions), points,
                   np.nanmax(points, axis=0), choices, param_names, lookup, frame.index.to_numpy(), space)

    @property
    def sizes(self) -> list[int]:
        return [len(c) for c in self.choices]

    def rows_of_genes(self, genes: np.ndarray) -> np.ndarray:
        """Row positions of an (n, genes) integer array (-1 where the table has no such row)."""
        genes = np.asarray(genes, dtype=np.int64).reshape(-1, len(self.choices))
        code = np.zeros(len(genes), dtype=np.int64)
        for j, size in enumerate(self.sizes):
            code = code * size + genes[:, j]
        return self.lookup[code]

    def row_of_params(self, params: dict) -> int:
        genes = [self.choices[j].index(params[name]) for j, name in enumerate(self.param_names)]
        return int(self.rows_of_genes(np.asarray([genes]))[0])

    def answer(self, rows: np.ndarray) -> np.ndarray:
        """Minimisation objective vectors of rows; a row the table lacks gets the table's worst
        values (calnas answers such a proposal at no cost; no whole-space table here has one)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.tile(self.worst, (len(rows), 1))
        ok = rows >= 0
        out[ok] = self.points[rows[ok]]
        return out


def asked_until(rows: list[int], index: np.ndarray, budget: int) -> list[int]:
    """The architecture indices of ``rows`` (every request, in order), cut where the ``budget``-th
    distinct architecture was asked for; rows the table lacks (-1) are dropped (no cost)."""
    out, seen = [], set()
    for row in rows:
        if row < 0:
            continue
        arch = int(index[row])
        out.append(arch)
        seen.add(arch)
        if len(seen) >= budget:
            break
    return out


def distinct_count(asked: list[int]) -> int:
    return len(set(asked))
