"""Training recipes: what a live training minimises (``--recipe NAME[:PARAM]``).

The names, their one parameter and its default are defined here once (:data:`RECIPES`); the
CLI's help, the protocol's check and the docs' tests read them from here. A recipe is recorded
in its canonical spelling ``NAME:PARAM`` with the parameter explicit (``ce`` has none), e.g.
``focal`` is recorded as ``focal:3``. The losses themselves (torch) are in
:mod:`calnas.live.losses`; this module imports neither torch nor numpy, so the table-search path
can parse and show recipes.

docs/live.md, "Training recipes", says what each one computes and where it comes from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from calnas.errors import UserError


@dataclass(frozen=True)
class Recipe:
    name: str
    param: str | None          # the parameter's name (None: the recipe has none)
    default: float | None
    valid: Callable[[float], bool] | None
    requirement: str           # what a valid parameter is, for the error message
    summary: str


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("ce", None, None, None, "", "plain cross-entropy (NATS-Bench's loss; the default)"),
    Recipe("label-smoothing", "eps", 0.1, lambda v: 0.0 <= v < 1.0, "0 <= eps < 1",
           "cross-entropy against (1-eps)*one-hot + eps/K"),
    Recipe("focal", "gamma", 3.0, lambda v: v >= 0.0, "gamma >= 0",
           "focal loss -(1-p_y)^gamma log p_y, fixed gamma (Mukhoti et al. 2020)"),
    Recipe("mixup", "alpha", 0.2, lambda v: v > 0.0, "alpha > 0",
           "mixup: inputs and one-hot targets mixed with lambda ~ Beta(alpha, alpha), cross-entropy "
           "against the mixed targets (Zhang et al. 2018; Chidambaram & Ge 2024)"),
    Recipe("margin", "weight", 0.1, lambda v: v >= 0.0, "weight >= 0",
           "cross-entropy + weight * (exponential margin tail + local smoothness); calnas's reading "
           "of 'Too Sharp, Too Sure' (arXiv 2604.20614)"),
)}
DEFAULT_RECIPE = "ce"


def format_param(value: float) -> str:
    """The shortest text that reads back as the same float, without a trailing '.0' (3, 0.1, 1e-05)."""
    text = repr(float(value) + 0.0)  # + 0.0 turns -0.0 into 0.0: one spelling per value
    return text[:-2] if text.endswith(".0") else text


def parse_recipe(text) -> tuple[str, float | None]:
    """``NAME`` or ``NAME:PARAM`` -> (name, parameter): the default parameter when none is given."""
    raw = str(text)
    name, sep, param_text = raw.strip().partition(":")
    name = name.strip().lower()
    recipe = RECIPES.get(name)
    if recipe is None:
        raise UserError(f"unknown recipe {raw[:40]!r}; expected one of {', '.join(RECIPES)} (e.g. focal:3)")
    if recipe.param is None:
        if sep:
            raise UserError(f"recipe {name} takes no parameter, got {raw[:40]!r}")
        return name, None
    if not sep:
        return name, recipe.default
    param_text = param_text.strip()
    try:
        value = float(param_text) if len(param_text) <= 40 else float("nan")
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or "_" in param_text:
        raise UserError(f"recipe {name}: {recipe.param} must be a number, got {param_text[:40]!r}")
    if not recipe.valid(value):
        raise UserError(f"recipe {name}: {recipe.param} must satisfy {recipe.requirement}, got {param_text}")
    return name, value


def canonical_recipe(text) -> str:
    """The recorded spelling: ``ce``, or ``NAME:PARAM`` with the parameter explicit."""
    name, value = parse_recipe(text)
    return name if value is None else f"{name}:{format_param(value)}"


def recipe_help() -> str:
    """The --recipe flag's help, from :data:`RECIPES`."""
    parts = [f"{r.name}" if r.param is None else f"{r.name}[:{r.param.upper()}] (default {format_param(r.default)})"
             for r in RECIPES.values()]
    return "Training recipe: " + " | ".join(parts) + f". Default {DEFAULT_RECIPE} (docs/live.md, Training recipes)."


# The small grid a joint architecture x recipe search (``calnas search --live --recipes``) tries
# for a recipe named without its parameter: the default and one step either side (factor ~2-3),
# so the search can tell whether more or less of the recipe helps without multiplying the space.
SEARCH_GRID: dict[str, tuple[float, ...]] = {
    "label-smoothing": (0.05, 0.1, 0.2),
    "focal": (1.0, 3.0, 5.0),
    "mixup": (0.1, 0.2, 0.4),
    "margin": (0.03, 0.1, 0.3),
}


def expand_recipes(items) -> tuple[str, ...]:
    """The recipes a joint search tries, canonical and in the order given: ``NAME:PARAM`` as is,
    a bare ``NAME`` as its :data:`SEARCH_GRID` (its default alone when it has no grid)."""
    if isinstance(items, str):
        items = items.split(",")
    out: list[str] = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        name, _ = parse_recipe(text)
        if ":" in text or RECIPES[name].param is None:
            chosen = [canonical_recipe(text)]
        else:
            chosen = [f"{name}:{format_param(v)}" for v in SEARCH_GRID.get(name, (RECIPES[name].default,))]
        out.extend(r for r in chosen if r not in out)
    if len(out) < 2:
        raise UserError(f"a joint search needs at least two recipes, got {', '.join(out) or 'none'} "
                        "(for one recipe use --recipe)")
    return tuple(out)
