"""Pareto dominance, non-dominated sorting, crowding and hypervolume, for any number of objectives.

Every function here works on **minimisation** points: an ``(n, k)`` float array where smaller is
better in every column. :func:`as_minimisation` turns values in the user's directions into that
form. ``p`` dominates ``q`` when ``p <= q`` everywhere and ``p < q`` somewhere; equal points do
not dominate each other, so duplicates of a front member are front members too.

Hypervolume is exact at every size: calnas's own numpy code up to 3 objectives (a sweep for
2-D, slices along the last objective down to that sweep for 3-D, both vectorised over
candidates for :func:`hypervolume_improvements`), and moocore's (the C library pymoo calls) from
4 objectives on, where a searcher that wants only the best candidate calls
:func:`best_improvements` and skips those a cheap bound rules out. Why moocore rather than
Optuna's ``optuna._hypervolume``: it is a maintained, public API whose algorithms
(HV3D+/HV4D+/WFG) are the reference implementations, where Optuna's is a private module that
may change with any release; its licence (LGPL-2.1-or-later) binds
changes to moocore itself, not to calnas, which only imports it, and its floor (numpy >= 1.24,
Python >= 3.10) is calnas's own. calnas measures it in a normalised space, see
:func:`normalise` and ``docs/search.md``: each objective is scaled to [0, 1] by the minimum and
maximum of the whole table column and the reference point is ``REFERENCE`` (1.1) in every
dimension.

numpy only, so that searchers can use it without pulling pandas.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# Reference point coordinate in the normalised space: a little past the worst value of the table,
# so that the extreme members of a front (the best in one objective, the worst in another) still
# add volume.
REFERENCE = 1.1


def as_minimisation(values, directions: Sequence[str]) -> np.ndarray:
    """Negate maximised columns so that smaller is better everywhere."""
    points = np.array(values, dtype=float, ndmin=2)
    signs = np.array([-1.0 if d.startswith("max") else 1.0 for d in directions])
    return points * signs


def dominates(p, q) -> bool:
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    return bool(np.all(p <= q) and np.any(p < q))


def nondominated_mask(points) -> np.ndarray:
    """Boolean mask of the points no other point dominates."""
    pts = np.asarray(points, dtype=float)
    n = len(pts)
    if n == 0:
        return np.zeros(0, dtype=bool)
    if pts.ndim == 1 or pts.shape[1] == 1:
        col = pts.reshape(n, -1)[:, 0]
        return col == col.min()
    if pts.shape[1] == 2:
        return _mask_2d(pts)
    return _mask_kd(pts)


def _mask_2d(pts: np.ndarray) -> np.ndarray:
    # In lexicographic order a dominator always comes before the point it dominates, so a point
    # survives when every strictly earlier distinct point has a larger second coordinate.
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    s = pts[order]
    new_group = np.ones(len(s), dtype=bool)
    new_group[1:] = np.any(s[1:] != s[:-1], axis=1)
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(len(s)), 0))
    prefix_min = np.concatenate(([np.inf], np.minimum.accumulate(s[:, 1])[:-1]))
    keep_sorted = prefix_min[group_start] > s[:, 1]
    mask = np.empty(len(s), dtype=bool)
    mask[order] = keep_sorted
    return mask


def _mask_kd(pts: np.ndarray) -> np.ndarray:
    # moocore's is_nondominated (keep_weakly: duplicates of a front member stay on the front, as
    # everywhere in calnas) is 40x faster than a numpy cull at 3,000 points in 4-D.
    import moocore

    return np.asarray(moocore.is_nondominated(pts, keep_weakly=True), dtype=bool)


# Up to this many points, ranks come from one pairwise domination matrix (fast for populations);
# beyond it, fronts are peeled with the O(n log n)-per-front masks to bound memory.
_MATRIX_LIMIT = 512


def nondominated_ranks(points) -> np.ndarray:
    """Front number of every point (0 = non-dominated)."""
    pts = np.asarray(points, dtype=float)
    if pts.ndim == 2 and len(pts) <= _MATRIX_LIMIT:
        return _ranks_matrix(pts)
    ranks = np.full(len(pts), -1, dtype=int)
    remaining = np.arange(len(pts))
    rank = 0
    while remaining.size:
        mask = nondominated_mask(pts[remaining])
        ranks[remaining[mask]] = rank
        remaining = remaining[~mask]
        rank += 1
    return ranks


def front_mask(points, violation=None) -> np.ndarray:
    """The first feasible-first front: feasible non-dominated points, or, when no point is
    feasible, the points that violate the constraints least."""
    pts = np.asarray(points, dtype=float)
    if violation is None:
        return nondominated_mask(pts)
    violation = np.asarray(violation, dtype=float)
    feasible = violation <= 0
    if not feasible.any():
        return violation == violation.min() if len(pts) else feasible
    mask = np.zeros(len(pts), dtype=bool)
    mask[np.flatnonzero(feasible)[nondominated_mask(pts[feasible])]] = True
    return mask


def display_order(points) -> np.ndarray:
    """Best first on the first objective, then the next ones (stable, so ties keep row order)."""
    return np.lexsort(np.asarray(points).T[::-1])


def front_positions(points, violation=None) -> tuple[np.ndarray, np.ndarray]:
    """(the first feasible-first front, its feasible members): positions into ``points`` in
    display order. The feasible members are what a hypervolume and a "front found" count read;
    the whole front is what a result shows (the least violating points when none is feasible)."""
    pts = np.asarray(points, dtype=float)
    positions = np.flatnonzero(front_mask(pts, violation)) if len(pts) else np.zeros(0, dtype=int)
    positions = positions[display_order(pts[positions])]
    feasible = positions if violation is None else positions[np.asarray(violation)[positions] <= 0]
    return positions, feasible


def _ranks_matrix(pts: np.ndarray) -> np.ndarray:
    dominates_ = np.all(pts[:, None, :] <= pts[None, :, :], axis=2) & np.any(pts[:, None, :] < pts[None, :, :], axis=2)
    dominators = dominates_.sum(axis=0)
    ranks = np.full(len(pts), -1, dtype=int)
    remaining = np.ones(len(pts), dtype=bool)
    rank = 0
    while remaining.any():
        current = remaining & (dominators == 0)
        ranks[current] = rank
        remaining &= ~current
        dominators = dominators - dominates_[current].sum(axis=0)
        rank += 1
    return ranks


def constrained_ranks(points, violation=None) -> np.ndarray:
    """Feasible-first ranks: feasible points by front, then infeasible ones by total violation.

    ``violation`` is the summed amount by which each point misses its constraints (0 = feasible).
    Among infeasible points only the violation counts (Deb's constrained domination), so a
    slightly infeasible point outranks a badly infeasible one whatever its objectives.
    """
    pts = np.asarray(points, dtype=float)
    if violation is None:
        return nondominated_ranks(pts)
    violation = np.asarray(violation, dtype=float)
    feasible = violation <= 0
    ranks = np.empty(len(pts), dtype=int)
    ranks[feasible] = nondominated_ranks(pts[feasible])
    offset = ranks[feasible].max() + 1 if feasible.any() else 0
    if (~feasible).any():
        _, dense = np.unique(violation[~feasible], return_inverse=True)
        ranks[~feasible] = offset + dense
    return ranks


def crowding_distance(points) -> np.ndarray:
    """NSGA-II crowding distance within one set of points (boundary points get infinity)."""
    pts = np.asarray(points, dtype=float)
    n = len(pts)
    distance = np.zeros(n)
    if n <= 2:
        distance[:] = np.inf
        return distance
    for col in pts.T:
        order = np.argsort(col, kind="stable")
        span = col[order[-1]] - col[order[0]]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (col[order[2:]] - col[order[:-2]]) / span
    return distance


def selection_keys(points, violation=None) -> tuple[np.ndarray, np.ndarray]:
    """(rank, crowding) of each point, crowding measured within the point's own front.

    Better means lower rank, then larger crowding distance (the diversity tie-break).
    """
    ranks = constrained_ranks(points, violation)
    crowd = np.zeros(len(ranks))
    pts = np.asarray(points, dtype=float)
    for rank in np.unique(ranks):
        members = np.flatnonzero(ranks == rank)
        crowd[members] = crowding_distance(pts[members])
    return ranks, crowd


def normalise(points, lower, upper) -> np.ndarray:
    """Scale minimisation points so that ``lower`` maps to 0 and ``upper`` to 1 per objective.

    A constant objective (``upper == lower``) maps to 0.
    """
    pts = np.asarray(points, dtype=float)
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    span = np.where(upper > lower, upper - lower, 1.0)
    return (pts - lower) / span


def _hv_points(points, reference) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference, dtype=float).ravel()
    pts = np.asarray(points, dtype=float).reshape(-1, ref.size)
    pts = pts[np.all(pts < ref, axis=1)]
    if len(pts):
        pts = np.unique(pts[nondominated_mask(pts)], axis=0)
    return pts, ref


def hypervolume_method(points, reference) -> str:
    """How :func:`hypervolume` computes these points: always "exact" (kept for the summary)."""
    return "exact"


def hypervolume(points, reference) -> float:
    """Volume dominated by ``points`` and bounded by ``reference`` (minimisation).

    Points that do not strictly improve on the reference in every objective add nothing.
    """
    pts, ref = _hv_points(points, reference)
    if len(pts) == 0:
        return 0.0
    if ref.size >= 4:
        import moocore

        return float(moocore.hypervolume(pts, ref=ref))
    return _hv(pts, ref)


def _hv(pts: np.ndarray, ref: np.ndarray) -> float:
    k = ref.size
    if k == 1:
        return float(ref[0] - pts[:, 0].min())
    if k == 2:
        # Non-dominated points sorted by the first objective have a decreasing second one.
        s = pts[np.argsort(pts[:, 0])]
        widths = np.diff(np.append(s[:, 0], ref[0]))
        return float(np.sum(widths * (ref[1] - s[:, 1])))
    # Slice along the last objective: between consecutive levels the dominated region is the
    # (k-1)-dimensional hypervolume of the points at or below that level.
    order = np.argsort(pts[:, -1], kind="stable")
    s = pts[order]
    levels = np.append(s[:, -1], ref[-1])
    total = 0.0
    for i in range(len(s)):
        depth = levels[i + 1] - levels[i]
        if depth <= 0:
            continue
        head = s[: i + 1, :-1]
        head = head[nondominated_mask(head)]
        total += depth * _hv(head, ref[:-1])
    return total


_CLIP_BLOCK = 1 << 20  # floats of clipped fronts held at once by hypervolume_improvements (8 MB)


def hypervolume_improvements(front, candidates, reference) -> np.ndarray:
    """How much each candidate point alone would add to the hypervolume of ``front``.

    Exact, and vectorised over the candidates for 2 and 3 objectives (a search scores hundreds
    of candidates per proposal): in 2-D the staircase of ``front`` is cut into boxes; in 3-D the
    space is cut into slabs between consecutive values of the last objective, in each of which
    the front is a fixed 2-D staircase. Beyond that, one exact :func:`hypervolume` (moocore) per
    candidate that no front point dominates.
    """
    ref = np.asarray(reference, dtype=float).ravel()
    cands = np.asarray(candidates, dtype=float).reshape(-1, ref.size)
    pts, ref = _hv_points(front, ref)
    if len(cands) == 0:
        return np.zeros(0)
    if ref.size == 2:
        return _improvements_2d(pts, cands, ref)
    if ref.size == 3:
        pts = pts[np.argsort(pts[:, 2], kind="stable")]
        levels = np.append(pts[:, 2], ref[2])
        out = np.zeros(len(cands))
        for i in range(len(levels)):
            # Between levels[i-1] and levels[i] the front is pts[:i] seen from above.
            low = levels[i - 1] if i else -np.inf
            thickness = np.clip(levels[i] - np.maximum(low, cands[:, 2]), 0, None)
            if np.any(thickness > 0):
                active = pts[:i, :2]
                out += thickness * _improvements_2d(active[nondominated_mask(active)], cands[:, :2], ref[:2])
        return out
    out = np.zeros(len(cands))
    inside = _undominated_inside(pts, cands, ref)
    out[inside] = _improvements_kd(pts, cands[inside], ref)
    return out


def best_improvements(front, candidates, reference, weights=None) -> np.ndarray:
    """``weights * hypervolume_improvements(front, candidates, reference)``, exact for every
    candidate that can reach the maximum (within 1e-12) and ``-inf`` for the others.

    For the argmax only (a searcher picking the best candidate). Below 4 objectives everything is
    computed, vectorised. From 4 on each exact improvement is one moocore call, so candidates
    are taken in decreasing order of a cheap upper bound, their box less the largest box of a
    single front point clipped to it, and the rest skipped once the bound falls below the best
    exact value: on a 4-objective search that skips about four calls in five.
    """
    ref = np.asarray(reference, dtype=float).ravel()
    cands = np.asarray(candidates, dtype=float).reshape(-1, ref.size)
    w = np.ones(len(cands)) if weights is None else np.asarray(weights, dtype=float).ravel()
    if ref.size < 4:
        return w * hypervolume_improvements(front, cands, ref)
    pts, ref = _hv_points(front, ref)
    out = np.zeros(len(cands))  # a candidate outside the box or dominated adds nothing
    inside = _undominated_inside(pts, cands, ref)
    out[inside] = -np.inf
    bound = w[inside] * (np.prod(ref - cands[inside], axis=1) - _largest_single_cover(pts, cands[inside], ref))
    ranked = np.argsort(-bound, kind="stable")
    order, bound = inside[ranked], bound[ranked]
    best = 0.0
    for start in range(0, len(order), _BOUND_BATCH):
        if bound[start] < best - 1e-12:
            break
        batch = order[start:start + _BOUND_BATCH]
        out[batch] = w[batch] * _improvements_kd(pts, cands[batch], ref)
        best = max(best, float(out[batch].max()))
    return out


_BOUND_BATCH = 16  # exact improvements computed between two looks at the bound


def _undominated_inside(pts: np.ndarray, cands: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Positions of the candidates that can add anything: inside the reference box, dominated
    by no front point."""
    inside = np.all(cands < ref, axis=1)
    if len(pts):
        for part in _candidate_blocks(pts, len(cands)):
            inside[part] &= ~np.any(np.all(pts[None, :, :] <= cands[part][:, None, :], axis=2), axis=1)
    return np.flatnonzero(inside)


def _candidate_blocks(pts: np.ndarray, n: int):
    """Slices of ``n`` candidates small enough that one copy of the front per candidate holds at
    most ``_CLIP_BLOCK`` floats."""
    step = max(1, _CLIP_BLOCK // max(pts.size, 1))
    return (slice(start, start + step) for start in range(0, n, step))


def _largest_single_cover(pts: np.ndarray, cands: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """For each candidate, the largest part of its box that one front point alone covers."""
    out = np.zeros(len(cands))
    if len(pts) == 0:
        return out
    for part in _candidate_blocks(pts, len(cands)):
        clipped = np.maximum(pts[None, :, :], cands[part][:, None, :])
        out[part] = np.prod(ref - clipped, axis=2).max(axis=1)
    return out


def _improvements_kd(pts: np.ndarray, cands: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Exact improvements of candidates inside the box that no front point dominates: each one's
    box [c, ref] less the part of it the front already covers, which is the hypervolume of the
    front's points clipped to c (moocore ignores dominated points)."""
    import moocore

    boxes = np.prod(ref - cands, axis=1)
    if len(pts) == 0:
        return boxes
    # Clipped copies of the front, a block of candidates at a time (bounded memory); moocore's
    # object form checks the reference point once instead of on every call (half its cost).
    covered = moocore.Hypervolume(ref=ref)
    out = np.empty(len(cands))
    for part in _candidate_blocks(pts, len(cands)):
        clipped = np.maximum(pts[None, :, :], cands[part][:, None, :])
        out[part] = boxes[part] - np.fromiter((covered(c) for c in clipped), dtype=float, count=len(clipped))
    return out


def _improvements_2d(pts: np.ndarray, cands: np.ndarray, ref: np.ndarray) -> np.ndarray:
    # ``pts``: non-dominated, inside the reference box. Sorted by the first objective they form a
    # staircase; box i spans [x_i, x_{i+1}) below height h_i, the second objective there.
    s = pts[np.argsort(pts[:, 0])]
    lefts = np.concatenate([[-np.inf], s[:, 0]])
    rights = np.concatenate([s[:, 0], [ref[0]]])
    heights = np.concatenate([[ref[1]], s[:, 1]])
    widths = np.clip(rights[None, :] - np.maximum(lefts[None, :], cands[:, [0]]), 0, None)
    return (widths * np.clip(heights[None, :] - cands[:, [1]], 0, None)).sum(axis=1)


def anytime_hypervolume(points, violation, reference) -> np.ndarray:
    """Hypervolume of the feasible front of ``points[:i + 1]`` for every i (the anytime curve of
    a search, in evaluation order). Rows with a NaN (failed evaluations) add nothing."""
    pts = np.asarray(points, dtype=float)
    out = np.zeros(len(pts))
    front = np.zeros((0, pts.shape[1] if pts.ndim == 2 else 0))
    current = 0.0
    for i, p in enumerate(pts):
        usable = np.all(np.isfinite(p)) and (violation is None or violation[i] <= 0)
        if usable and not np.any(np.all(front <= p, axis=1)):
            front = np.vstack([front[~np.all(p <= front, axis=1)], p])
            current = hypervolume(front, reference)
        out[i] = current
    return out
