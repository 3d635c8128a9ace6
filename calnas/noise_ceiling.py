"""The noise ceiling of a search on a table with several training seeds (a curve table).

Kept apart from :mod:`calnas.curve_table` because it builds tables (``table_from_frame``), which
itself reads curve frames through that module.
"""

from __future__ import annotations

import weakref

import numpy as np

# Each seed's table, per curve table: building them is most of the ceiling's cost (about a second
# for digits-tss-curves), and every search on the embedded default asks for its ceiling again.
_SEED_FRAMES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _seed_frame(curves, seed):
    from calnas.table_frame import table_from_frame

    frames = _SEED_FRAMES.setdefault(curves, {})
    if seed not in frames:
        frames[seed] = table_from_frame(curves.seed_frame(seed), name=f"{curves.name} seed {seed}").frame
    return frames[seed]


def noise_ceiling(curves, spec) -> dict | None:
    """How well a front can be known from one training per architecture: for every ordered pair
    of seeds (a, b), the hypervolume ratio that seed a's true front reaches when measured with
    seed b's values (normalised as a search's ratio on seed b is: b's column minima and maxima,
    reference point 1.1). A search whose ratio differs from another's by less than the spread of
    these is inside seed noise. Constraints are not applied (feasibility moves with the seed too).
    None when the table holds one seed."""
    from calnas import pareto

    if len(curves.seeds) < 2:
        return None
    points = {}
    for seed in curves.seeds:
        frame = _seed_frame(curves, seed)
        values = np.column_stack([o.values(frame) for o in spec.objectives])
        points[seed] = (frame.index.to_numpy(), pareto.as_minimisation(values, spec.directions))
    ratios = []
    for a in curves.seeds:
        for b in curves.seeds:
            if a == b:
                continue
            index_a, pts_a = points[a]
            index_b, pts_b = points[b]
            common = np.intersect1d(index_a, index_b)
            pa = pts_a[np.searchsorted(index_a, common)]
            pb = pts_b[np.searchsorted(index_b, common)]
            ok = np.all(np.isfinite(pa), axis=1) & np.all(np.isfinite(pb), axis=1)
            pa, pb = pa[ok], pb[ok]
            lower, upper = pb.min(axis=0), pb.max(axis=0)
            reference = np.full(pb.shape[1], pareto.REFERENCE)
            best = pareto.hypervolume(pareto.normalise(pb[pareto.front_mask(pb)], lower, upper), reference)
            reached = pareto.hypervolume(pareto.normalise(pb[pareto.front_mask(pa)], lower, upper), reference)
            ratios.append(reached / best if best > 0 else float("nan"))
    ratios = np.asarray(ratios)
    return {"pairs": len(ratios), "median": float(np.median(ratios)), "min": float(ratios.min()),
            "max": float(ratios.max()), "seeds": list(curves.seeds)}


def cached_noise_ceiling(benchmark, spec) -> dict | None:
    """:func:`noise_ceiling` of the curves behind ``benchmark`` (None without curves), through the
    table cache when ``benchmark`` names a shipped curve table: the ceiling depends only on the
    table's files and the objectives, and computing it means parsing every curve (about 3 s
    for digits-tss-curves), which a plain search on the embedded default would otherwise pay
    each time."""
    from pathlib import Path

    from calnas import embedded, table_cache
    from calnas.curve_table import curve_source

    def compute():
        curves = curve_source(benchmark)
        return None if curves is None else noise_ceiling(curves, spec)

    name = benchmark.lower() if isinstance(benchmark, str) else None
    if name not in embedded.CURVE_TABLES or not embedded.shipped(name):
        return compute()
    paths = [embedded.data_path(f) for f in embedded.CALIBRATION_TABLES[name][1]]
    if not all(isinstance(path, Path) for path in paths):
        return compute()
    key = repr([(o.name, o.direction, o.column, o.inputs, o.options) for o in spec.objectives])
    return table_cache.remember(paths, f"noise-ceiling {key}", compute)
