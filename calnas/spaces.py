"""The NATS-Bench search spaces: parsing, indices, isomorphism, Optuna encoding, mutation.

Two spaces, one interface (:class:`Space`):

* ``tss`` — the topology space (NAS-Bench-201 cell): 4 nodes, 6 edges, 5 operations,
  15,625 cells. Strings look like ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.
  Index order is NATS-Bench's own (a fixed shuffle, not a product order), so it is read from
  the embedded accuracy file, which lists every index with its string.
* ``sss`` — the size space: 5 layers with channels in {8, 16, ..., 64}, 32,768 configs.
  Strings look like ``8:16:32:64:64``. NATS-Bench enumerates them as a product with the first
  layer most significant (``traverse_net`` in its ``main-sss.py``), so index 0 is ``8:8:8:8:8``.

Everything here is pure Python: no numpy, no torch.
"""

from __future__ import annotations

import numbers
import random
import re
from functools import cached_property
from typing import Iterable, Sequence

from calnas.errors import UserError

TSS_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (to_node, from_node) for the 6 edges, in the order they appear in an arch string.
TSS_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
SSS_CHANNELS: tuple[int, ...] = (8, 16, 24, 32, 40, 48, 56, 64)
SSS_LAYERS = 5
# The one cell every SSS network uses: NATS-Bench's size space fixes the topology to the best
# TSS cell on CIFAR-100 validation (index 9930; ``genotype`` in exps/NATS-Bench/main-sss.py of
# D-X-Y/AutoDL-Projects); only the five channel counts vary.
SSS_GENOTYPE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


# ASCII digits only: str.isdigit() also accepts '²' or '٣', which int() rejects or reads as 3.
_INDEX_RE = re.compile(r"-?[0-9]+")
_DIGITS_RE = re.compile(r"[0-9]{1,6}")  # a node input or a channel count (longer is never valid)


def _brief(text: str, limit: int = 100) -> str:
    """A string for an error message: its repr, cut short so that the message stays one line."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


def _as_index(value) -> int | None:
    """An integer (Python or numpy) or a string of ASCII digits is an index; anything else is not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, str) and _INDEX_RE.fullmatch(value.strip()):
        text = value.strip()
        if len(text) > 12:  # (int() refuses over 4,300 digits) no space has an index this long
            raise UserError(f"architecture index {text[:12]}... ({len(text)} digits) is out of range; "
                            f"expected 0..{max(s.size for s in SPACES.values()) - 1}")
        return int(text)
    return None


class Space:
    """Common interface of the NATS-Bench spaces."""

    name: str
    size: int

    # -- strings and indices -------------------------------------------------------------
    def parse(self, value) -> str:
        """Canonical architecture string for an arch string or an integer index."""
        index = _as_index(value)
        if index is not None:
            return self.arch(index)
        if not isinstance(value, str):
            raise UserError(f"architecture must be a string or an index, got {type(value).__name__}")
        return self._parse_string(value)

    def _parse_string(self, text: str) -> str:
        raise NotImplementedError

    def arch(self, index: int) -> str:
        if not 0 <= index < self.size:
            raise UserError(
                f"architecture index {index} is out of range for {self.name} (expected 0..{self.size - 1})"
            )
        return self._arch(index)

    def _arch(self, index: int) -> str:
        raise NotImplementedError

    def index(self, arch) -> int:
        return self._index(self.parse(arch))

    def _index(self, canonical: str) -> int:
        raise NotImplementedError

    def all_archs(self) -> list[str]:
        return [self._arch(i) for i in range(self.size)]

    @cached_property
    def index_of_canonical(self) -> dict[str, int]:
        """Canonical string -> index for the whole space: a column of strings already in canonical
        form is parsed by one dictionary lookup each (only other spellings go through parse)."""
        return {arch: i for i, arch in enumerate(self.all_archs())}

    def parse_column(self, values) -> tuple[list[str], list[int]]:
        """(canonical strings, indices) of a sequence of architecture strings or indices."""
        lookup = self.index_of_canonical
        if hasattr(values, "to_numpy"):  # pandas: plain objects iterate far faster than its arrays
            values = values.to_numpy(dtype=object)
        archs, indices = [], []
        for value in values:
            index = lookup.get(value) if isinstance(value, str) else None
            if index is None:
                canonical = self.parse(value)
                index = lookup[canonical]
                value = canonical
            archs.append(value)
            indices.append(index)
        return archs, indices

    # -- isomorphism -------------------------------------------------------------------
    def iso_key(self, arch) -> str:
        """A key shared by architectures that compute the same function."""
        return self.parse(arch)

    # -- encoding for Optuna -------------------------------------------------------------
    def param_choices(self) -> dict[str, tuple]:
        """Optuna categorical parameters: name -> choices, one per edge / layer."""
        raise NotImplementedError

    def ordinal_params(self) -> frozenset:
        """Parameters whose choices are ordered (in ``param_choices`` order), so that choices
        further apart are less alike: a surrogate measures distance along them."""
        return frozenset()

    def to_params(self, arch) -> dict:
        return dict(zip(self.param_choices(), self._genes(self.parse(arch))))

    def from_params(self, params: dict) -> str:
        choices = self.param_choices()
        missing = [name for name in choices if name not in params]
        if missing:
            raise UserError(f"parameters for {self.name} miss {', '.join(missing)}")
        genes = []
        for name, options in choices.items():
            if params[name] not in options:
                raise UserError(f"parameter {name}={params[name]!r} is not one of {list(options)}")
            genes.append(params[name])
        return self._from_genes(genes)

    def _genes(self, canonical: str) -> list:
        raise NotImplementedError

    def _from_genes(self, genes: Sequence) -> str:
        raise NotImplementedError

    # -- neighbourhood -----------------------------------------------------------------
    def neighbours(self, arch) -> list[str]:
        """Every architecture that differs in exactly one edge (TSS) or one layer (SSS)."""
        genes = self._genes(self.parse(arch))
        out = []
        for pos, options in enumerate(self.param_choices().values()):
            for option in options:
                if option != genes[pos]:
                    out.append(self._from_genes(genes[:pos] + [option] + genes[pos + 1 :]))
        return out

    def mutate(self, arch, rng: random.Random) -> str:
        """One random one-edge / one-layer change (never the same architecture)."""
        genes = self._genes(self.parse(arch))
        options = list(self.param_choices().values())
        pos = rng.randrange(len(genes))
        genes[pos] = rng.choice([o for o in options[pos] if o != genes[pos]])
        return self._from_genes(genes)

    def sample(self, rng: random.Random) -> str:
        return self._from_genes([rng.choice(options) for options in self.param_choices().values()])


class TopologySpace(Space):
    name = "tss"
    size = 15625

    def _parse_string(self, text: str) -> str:
        expected = "an arch string like |nor_conv_3x3~0|+|none~0|skip_connect~1|+|...~0|...~1|...~2|"
        nodes = text.strip().split("+")
        if len(nodes) != 3:
            raise UserError(f"malformed TSS architecture {_brief(text)}: expected 3 nodes joined by '+', {expected}")
        ops: dict[tuple[int, int], str] = {}
        for to_node, node in enumerate(nodes, start=1):
            if not (node.startswith("|") and node.endswith("|")):
                raise UserError(f"malformed TSS architecture {_brief(text)}: node {node!r} must start and end with '|'")
            for token in filter(None, node.split("|")):
                op, sep, src = token.partition("~")
                if not sep or not _DIGITS_RE.fullmatch(src):
                    raise UserError(f"malformed TSS architecture {_brief(text)}: edge {token!r} should be op~input")
                if op not in TSS_OPS:
                    raise UserError(f"unknown operation {op!r} in {_brief(text)}; expected one of {', '.join(TSS_OPS)}")
                src_node = int(src)
                if src_node >= to_node:
                    raise UserError(
                        f"malformed TSS architecture {_brief(text)}: node {to_node} cannot take input {src_node} "
                        f"(expected inputs 0..{to_node - 1})"
                    )
                if (to_node, src_node) in ops:
                    raise UserError(f"malformed TSS architecture {_brief(text)}: edge {src_node}->{to_node} given twice")
                ops[(to_node, src_node)] = op
        missing = [f"{s}->{t}" for t, s in TSS_EDGES if (t, s) not in ops]
        if missing:
            raise UserError(f"malformed TSS architecture {_brief(text)}: missing edges {', '.join(missing)}")
        return self._from_genes([ops[edge] for edge in TSS_EDGES])

    def _genes(self, canonical: str) -> list:
        return [token.split("~")[0] for token in canonical.replace("+", "").split("|") if token]

    def _from_genes(self, genes: Sequence) -> str:
        g = list(genes)
        return f"|{g[0]}~0|+|{g[1]}~0|{g[2]}~1|+|{g[3]}~0|{g[4]}~1|{g[5]}~2|"

    @cached_property
    def _order(self) -> tuple[list[str], dict[str, int]]:
        from calnas.embedded import tss_arch_strings

        archs = tss_arch_strings()
        return archs, {a: i for i, a in enumerate(archs)}

    def _arch(self, index: int) -> str:
        return self._order[0][index]

    def _index(self, canonical: str) -> int:
        return self._order[1][canonical]

    def all_archs(self) -> list[str]:
        return list(self._order[0])

    @property
    def index_of_canonical(self) -> dict[str, int]:
        return self._order[1]

    def param_choices(self) -> dict[str, tuple]:
        return {f"edge_{s}_{t}": TSS_OPS for t, s in TSS_EDGES}

    def iso_key(self, arch) -> str:
        """NAS-Bench-201's isomorphism key (``to_unique_str(consider_zero=True)``), 6,466 classes.

        Each node is the sorted sum of its incoming terms; ``skip_connect`` passes its input
        through, ``none`` or an all-zero input gives the zero term ``#``. Zero terms are kept in
        the sum, as NAS-Bench-201 does: that is what yields the standard 6,466 classes (dropping
        them would merge a few more cells, 5,273 classes in all).
        """
        genes = self._genes(self.parse(arch))
        expr = {0: "x"}
        for to_node in (1, 2, 3):
            terms = []
            for (t, s), op in zip(TSS_EDGES, genes):
                if t != to_node:
                    continue
                if op == "none" or expr[s] == "#":
                    terms.append("#")
                elif op == "skip_connect":
                    terms.append(expr[s])
                else:
                    terms.append(f"({expr[s]})@{op}")
            expr[to_node] = "+".join(sorted(terms))
        return expr[3]


class SizeSpace(Space):
    name = "sss"
    size = len(SSS_CHANNELS) ** SSS_LAYERS

    def _parse_string(self, text: str) -> str:
        parts = text.strip().split(":")
        if len(parts) != SSS_LAYERS or not all(_DIGITS_RE.fullmatch(p.strip()) for p in parts):
            raise UserError(
                f"malformed SSS architecture {_brief(text)}: expected {SSS_LAYERS} channel counts like 8:16:32:64:64"
            )
        channels = [int(p) for p in parts]
        bad = [c for c in channels if c not in SSS_CHANNELS]
        if bad:
            raise UserError(
                f"channel count {bad[0]} in {_brief(text)} is out of the SSS space; expected one of "
                f"{', '.join(map(str, SSS_CHANNELS))}"
            )
        return self._from_genes(channels)

    def _genes(self, canonical: str) -> list:
        return [int(c) for c in canonical.split(":")]

    def ordinal_params(self) -> frozenset:
        return frozenset(self.param_choices())  # widths: 8 < 16 < ... < 64

    def _from_genes(self, genes: Sequence) -> str:
        return ":".join(str(int(c)) for c in genes)

    def _arch(self, index: int) -> str:
        genes = []
        for _ in range(SSS_LAYERS):
            index, digit = divmod(index, len(SSS_CHANNELS))
            genes.append(SSS_CHANNELS[digit])
        return self._from_genes(reversed(genes))

    def _index(self, canonical: str) -> int:
        index = 0
        for c in self._genes(canonical):
            index = index * len(SSS_CHANNELS) + SSS_CHANNELS.index(c)
        return index

    def param_choices(self) -> dict[str, tuple]:
        return {f"layer_{i}": SSS_CHANNELS for i in range(SSS_LAYERS)}


TSS = TopologySpace()
SSS = SizeSpace()
SPACES = {"tss": TSS, "sss": SSS}

RECIPE_SEPARATOR = "@"  # between an architecture and its training recipe: |...|@mixup:0.2, 8:16:24:32:40@ce
_RECIPES_TAG = "+recipes:"  # a joint space's name: tss+recipes:ce,focal:3


class RecipeSpace(Space):
    """Architecture x training recipe (the joint search of ``calnas search --live --recipes``).

    A point is an architecture of ``base`` trained with one of ``recipes`` (canonical recipe
    strings, e.g. ``mixup:0.2``): its string is ``ARCH@RECIPE``, its index ``base_index *
    len(recipes) + recipe_position``, and the recipe is one more categorical parameter, so a
    one-parameter neighbour changes one edge/layer or the recipe. Isomorphic architectures
    trained with the same recipe are isomorphic points.
    """

    def __init__(self, base: Space, recipes: Sequence[str]):
        recipes = tuple(recipes)
        if not recipes or len(set(recipes)) != len(recipes):
            raise UserError(f"a joint space needs distinct recipes, got {list(recipes)}")
        bad = [r for r in recipes if not r or RECIPE_SEPARATOR in r or "," in r]
        if bad:
            raise UserError(f"malformed recipe {bad[0]!r} in a joint space")
        self.base, self.recipes = base, recipes
        self.name = f"{base.name}{_RECIPES_TAG}{','.join(recipes)}"
        self.size = base.size * len(recipes)
        self._recipe_position = {r: i for i, r in enumerate(recipes)}

    def __eq__(self, other) -> bool:
        return isinstance(other, RecipeSpace) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def split(self, index: int) -> tuple[int, str]:
        """(architecture index in the base space, recipe) of a joint index."""
        base_index, r = divmod(int(index), len(self.recipes))
        return base_index, self.recipes[r]

    def join(self, base_index: int, recipe: str) -> int:
        return int(base_index) * len(self.recipes) + self._recipe_position[recipe]

    def _parse_string(self, text: str) -> str:
        arch, sep, recipe = text.strip().rpartition(RECIPE_SEPARATOR)
        if not sep:
            raise UserError(f"expected ARCH{RECIPE_SEPARATOR}RECIPE in the joint space, got {_brief(text)}")
        recipe = recipe.strip()
        if recipe not in self._recipe_position:
            raise UserError(f"recipe {recipe!r} of {_brief(text)} is not searched here; expected one of "
                            f"{', '.join(self.recipes)}")
        return f"{self.base.parse(arch)}{RECIPE_SEPARATOR}{recipe}"

    def _arch(self, index: int) -> str:
        base_index, recipe = self.split(index)
        return f"{self.base.arch(base_index)}{RECIPE_SEPARATOR}{recipe}"

    def _index(self, canonical: str) -> int:
        arch, _, recipe = canonical.rpartition(RECIPE_SEPARATOR)
        return self.join(self.base.index(arch), recipe)

    def all_archs(self) -> list[str]:
        return [f"{arch}{RECIPE_SEPARATOR}{recipe}" for arch in self.base.all_archs() for recipe in self.recipes]

    def param_choices(self) -> dict[str, tuple]:
        return {**self.base.param_choices(), "recipe": self.recipes}

    def ordinal_params(self) -> frozenset:
        return self.base.ordinal_params()

    def _genes(self, canonical: str) -> list:
        arch, _, recipe = canonical.rpartition(RECIPE_SEPARATOR)
        return [*self.base._genes(arch), recipe]

    def _from_genes(self, genes: Sequence) -> str:
        return f"{self.base._from_genes(list(genes)[:-1])}{RECIPE_SEPARATOR}{list(genes)[-1]}"

    def iso_key(self, arch) -> str:
        base_arch, _, recipe = self.parse(arch).rpartition(RECIPE_SEPARATOR)
        return f"{self.base.iso_key(base_arch)}{RECIPE_SEPARATOR}{recipe}"


def get_space(name: str) -> Space:
    if isinstance(name, str) and _RECIPES_TAG in name:  # a joint space, as a study records it
        base, _, recipes = name.partition(_RECIPES_TAG)
        return RecipeSpace(get_space(base), recipes.split(","))
    try:
        return SPACES[name.lower()]
    except (KeyError, AttributeError):
        raise UserError(f"unknown search space {name!r}; expected one of {', '.join(SPACES)}") from None


def infer_space(archs: Iterable[str]) -> Space:
    """The space of a column of architecture strings (TSS strings have '~', SSS have ':')."""
    for arch in archs:
        if isinstance(arch, str) and arch.strip():
            if "~" in arch:
                return TSS
            if ":" in arch:
                return SSS
            break
    raise UserError("cannot tell the search space from the arch column: expected TSS (op~i) or SSS (C:C:C:C:C) strings")
