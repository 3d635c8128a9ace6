"""What a searcher may propose: the architectures of one table, and when two count as the same.

A :class:`Domain` is built by the search driver from the table being searched. Its architectures
are addressed by *position* (row order of the table), which is also how the driver stores the
objective values, so no lookup goes through pandas during a search. ``keys`` decide duplicates:
the NATS-Bench index with ``--dedupe arch``, the isomorphism class with ``--dedupe iso``.
"""

from __future__ import annotations

import random
from functools import cached_property
from typing import Iterable, Sequence

import numpy as np
from optuna.distributions import CategoricalDistribution

from calnas.spaces import Space

# Random draws before falling back to listing the unseen architectures (only near exhaustion).
_RANDOM_TRIES = 64


class Domain:
    def __init__(self, space: Space, archs: Sequence[str], indices: Sequence[int], keys: Sequence[int] | None = None,
                 classes: Sequence[int] | None = None):
        self.space = space
        self.archs = list(archs)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.keys = self.indices if keys is None else np.asarray(keys, dtype=np.int64)
        # Isomorphism class of every position (TSS; architectures that compute the same
        # function share one); None when unknown, then every architecture is its own class.
        self.classes = self.keys if classes is None else np.asarray(classes, dtype=np.int64)
        self._position = {arch: pos for pos, arch in enumerate(self.archs)}
        self._neighbours: dict[int, list[int]] = {}
        self._encodings: dict[frozenset, tuple[np.ndarray, np.ndarray]] = {}  # rows, encoded-yet mask

    def __len__(self) -> int:
        return len(self.archs)

    @classmethod
    def whole_space(cls, space: Space, dedupe: str = "arch") -> "Domain":
        """Every architecture of the space, addressed by its index (what a live search proposes,
        and what a stored study is read with)."""
        indices = np.arange(space.size)
        classes = _iso_classes(space)
        keys = classes if dedupe == "iso" else indices
        return cls(space, space.all_archs(), indices, keys, classes)

    @cached_property
    def distributions(self) -> dict[str, CategoricalDistribution]:
        """One categorical Optuna parameter per edge (TSS) or layer (SSS)."""
        return {name: CategoricalDistribution(choices) for name, choices in self.space.param_choices().items()}

    def onehot(self, positions) -> np.ndarray:
        """``(len(positions), sum of choices)`` one-hot encoding, one block per parameter.

        Two rows' dot product is the number of edges (layers) on which they agree. Rows are
        encoded on first use: a search touches a few hundred architectures, not the whole space.
        """
        return self._rows(positions, frozenset())

    def code(self, positions) -> np.ndarray:
        """The surrogate's encoding (:mod:`searchers.surrogate`): half the squared distance of two
        rows is how many edges (layers) differ, counting an ordinal parameter
        (``Space.ordinal_params``, the widths) by how many steps apart its two choices are.
        Categorical parameters are one-hot; an ordinal one with c choices is c - 1 thermometer
        bits scaled by sqrt 2 (choice k sets the first k), so 8 and 16 channels are one step apart
        and 8 and 64 seven. Without ordinal parameters this is :meth:`onehot`."""
        return self._rows(positions, self.space.ordinal_params())

    def _rows(self, positions, ordinal: frozenset) -> np.ndarray:
        """The rows of ``positions`` in the encoding that treats ``ordinal`` as ordered, each
        row encoded once (kept per encoding)."""
        choices = self.space.param_choices()
        if ordinal not in self._encodings:
            width = sum(len(v) - 1 if name in ordinal else len(v) for name, v in choices.items())
            self._encodings[ordinal] = (np.zeros((len(self.archs), width)), np.zeros(len(self.archs), dtype=bool))
        rows, done = self._encodings[ordinal]
        positions = np.asarray(positions, dtype=np.int64)
        todo = np.unique(positions[~done[positions]])
        for pos in todo:
            row, start = rows[pos], 0
            for name, value in self.space.to_params(self.archs[pos]).items():
                k = choices[name].index(value)
                if name in ordinal:
                    row[start:start + k] = np.sqrt(2.0)
                    start += len(choices[name]) - 1
                else:
                    row[start + k] = 1.0
                    start += len(choices[name])
        done[todo] = True
        return rows[positions]

    def max_distance(self) -> float:
        """The largest distance :meth:`code` can give (every parameter at its furthest)."""
        ordinal = self.space.ordinal_params()
        return float(sum(len(v) - 1 if name in ordinal else 1 for name, v in self.space.param_choices().items()))

    def mask(self, values: Iterable[int], of: str = "keys") -> np.ndarray:
        """A boolean mask indexed by key (``of="keys"``) or class (``"classes"``), set at ``values``."""
        domain_values = self.keys if of == "keys" else self.classes
        out = np.zeros(int(domain_values.max()) + 1 if len(domain_values) else 0, dtype=bool)
        values = np.fromiter(values, dtype=np.int64)
        out[values[values < len(out)]] = True
        return out

    @cached_property
    def n_keys(self) -> int:
        """How many distinct architectures (or isomorphism classes) there are to evaluate."""
        return int(np.unique(self.keys).size)

    # -- conversions -----------------------------------------------------------------------
    def arch_of_params(self, params: dict) -> str:
        return self.space.from_params(params)

    def position(self, arch: str) -> int | None:
        """Position of a canonical architecture string, None when the table lacks it."""
        return self._position.get(arch)

    def position_of_params(self, params: dict) -> int | None:
        return self._position.get(self.space.from_params(params))

    def params(self, pos: int) -> dict:
        return self.space.to_params(self.archs[pos])

    def key(self, pos: int) -> int:
        return int(self.keys[pos])

    def class_of(self, pos: int) -> int:
        return int(self.classes[pos])

    def random_unseen_class(self, rng: random.Random, seen_classes) -> int | None:
        """A random architecture whose class is not in ``seen_classes`` (a set, or a boolean
        mask indexed by class)."""
        return _random_position_outside(self.classes, rng, seen_classes)

    # -- moves -------------------------------------------------------------------------------
    def random_unseen(self, rng: random.Random, seen) -> int | None:
        """A uniformly random architecture whose key is not in ``seen`` (a set, or a boolean mask
        indexed by key); None when none is left."""
        return _random_position_outside(self.keys, rng, seen)

    def neighbours(self, pos: int) -> list[int]:
        """Positions of the one-edge / one-layer neighbours that the table has."""
        cached = self._neighbours.get(pos)
        if cached is None:
            found = (self._position.get(a) for a in self.space.neighbours(self.archs[pos]))
            cached = self._neighbours[pos] = [p for p in found if p is not None]
        return cached

    def mutate(self, pos: int, rng: random.Random) -> int | None:
        """One random one-edge / one-layer change; None when the table lacks the result."""
        return self._position.get(self.space.mutate(self.archs[pos], rng))

    def unseen(self, positions: Iterable[int], seen: set[int]) -> list[int]:
        return [p for p in positions if int(self.keys[p]) not in seen]


def _iso_classes(space: Space) -> np.ndarray:
    """Isomorphism class per index: TSS's shipped ``iso`` column; SSS has none (every index); a
    joint architecture x recipe space: the architecture's class with the same recipe."""
    base = getattr(space, "base", None)
    if base is not None:
        n = len(space.recipes)
        index = np.arange(space.size)
        return _iso_classes(base)[index // n] * n + index % n
    if space.name == "tss":
        from calnas.tables import tss_meta

        return tss_meta()["iso"].reindex(range(space.size)).to_numpy(dtype=np.int64)
    return np.arange(space.size)


def _random_position_outside(values: np.ndarray, rng: random.Random, seen) -> int | None:
    """A uniformly random position whose value is not in ``seen`` (a set of values, or a boolean
    mask indexed by value); None when none is left.

    Rejection sampling first (cheap while little is seen), then an exact draw over what is left.
    """
    n = len(values)
    masked = isinstance(seen, np.ndarray)
    for _ in range(_RANDOM_TRIES):
        pos = rng.randrange(n)
        value = int(values[pos])
        if not (seen[value] if masked else value in seen):
            return pos
    if masked:
        unseen = np.flatnonzero(~seen[values])
    else:
        unseen = np.flatnonzero(~np.isin(values, np.fromiter(seen, dtype=np.int64, count=len(seen))))
    if unseen.size == 0:
        return None
    return int(unseen[rng.randrange(unseen.size)])
