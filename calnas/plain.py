"""Plain JSON values: what every file and study attribute calnas writes holds.

JSON has no NaN or infinity and no numpy types: an undefined metric (or an infinite NLL) is
``null``, a numpy scalar its Python value, a tuple a list.
"""

from __future__ import annotations

import math

import numpy as np


def jsonable(value):
    """``value`` with numpy scalars and arrays as Python values and non-finite floats as None."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
