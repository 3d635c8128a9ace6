"""Pareto utilities against brute force on random point sets (ties included: integer grids)."""

import itertools

import numpy as np
import pytest

from calnas import pareto


def brute_mask(points):
    n = len(points)
    return np.array([not any(pareto.dominates(points[j], points[i]) for j in range(n) if j != i) for i in range(n)])


def brute_ranks(points):
    ranks = np.full(len(points), -1)
    remaining = list(range(len(points)))
    rank = 0
    while remaining:
        front = [i for i in remaining if not any(pareto.dominates(points[j], points[i]) for j in remaining)]
        ranks[front] = rank
        remaining = [i for i in remaining if i not in front]
        rank += 1
    return ranks


def grid_hypervolume(points, ref):
    """Unit cells of the integer grid below ``ref`` that some point weakly dominates."""
    ref = [int(r) for r in ref]
    count = 0
    for cell in itertools.product(*(range(r) for r in ref)):
        if any(all(p[d] <= cell[d] for d in range(len(ref))) for p in points):
            count += 1
    return count


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", range(6))
def test_nondominated_mask_and_ranks_match_brute_force(k, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    # Few distinct values per axis, so ties and exact duplicates are common.
    points = rng.integers(0, 5, size=(n, k)).astype(float)
    assert np.array_equal(pareto.nondominated_mask(points), brute_mask(points))
    assert np.array_equal(pareto.nondominated_ranks(points), brute_ranks(points))


def test_large_sets_use_the_peeling_path_and_agree():
    rng = np.random.default_rng(7)
    points = rng.integers(0, 12, size=(700, 3)).astype(float)  # above the matrix limit
    ranks = pareto.nondominated_ranks(points)
    assert np.array_equal(ranks, pareto._ranks_matrix(points))
    assert np.array_equal(ranks == 0, brute_mask(points))


def test_continuous_points_kd_mask():
    rng = np.random.default_rng(3)
    points = rng.random((300, 3))
    assert np.array_equal(pareto.nondominated_mask(points), brute_mask(points))


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", range(5))
def test_hypervolume_matches_grid_count(k, seed):
    rng = np.random.default_rng(100 + seed)
    side = 6 if k < 4 else 4
    n = int(rng.integers(1, 15))
    points = rng.integers(0, side, size=(n, k)).astype(float)
    ref = np.full(k, side)
    assert pareto.hypervolume(points, ref) == pytest.approx(grid_hypervolume(points, ref))


def test_hypervolume_simple_cases():
    assert pareto.hypervolume([[0.5, 0.5]], [1.0, 1.0]) == pytest.approx(0.25)
    # Dominated points and points beyond the reference add nothing.
    assert pareto.hypervolume([[0.5, 0.5], [0.7, 0.7], [1.5, 0.0]], [1.0, 1.0]) == pytest.approx(0.25)
    assert pareto.hypervolume(np.zeros((0, 2)), [1.0, 1.0]) == 0.0
    assert pareto.hypervolume([[0.0, 0.0, 0.0]], [1.1, 1.1, 1.1]) == pytest.approx(1.1**3)


def test_as_minimisation_and_normalise():
    values = np.array([[0.9, 2.0], [0.5, 1.0]])
    points = pareto.as_minimisation(values, ["maximize", "minimize"])
    assert np.array_equal(points, [[-0.9, 2.0], [-0.5, 1.0]])
    scaled = pareto.normalise(points, points.min(axis=0), points.max(axis=0))
    assert np.allclose(scaled, [[0.0, 1.0], [1.0, 0.0]])
    assert np.array_equal(pareto.normalise([[3.0]], [3.0], [3.0]), [[0.0]])  # constant column


def test_constrained_ranks_and_front_mask_put_feasible_first():
    points = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [0.5, 0.5]])
    violation = np.array([0.3, 0.0, 0.0, 0.1])
    ranks = pareto.constrained_ranks(points, violation)
    assert list(ranks) == [3, 0, 1, 2]  # feasible by front, then infeasible by violation
    assert list(pareto.front_mask(points, violation)) == [False, True, False, False]
    # With nothing feasible, the least violating points form the front.
    assert list(pareto.front_mask(points, violation + 1)) == [False, True, True, False]


def test_crowding_distance_boundaries_and_interior():
    points = np.array([[0.0, 4.0], [1.0, 2.0], [3.0, 1.0], [4.0, 0.0]])
    distance = pareto.crowding_distance(points)
    assert np.isinf(distance[0]) and np.isinf(distance[3])
    assert distance[1] == pytest.approx(3 / 4 + 3 / 4)
    assert distance[2] == pytest.approx(3 / 4 + 2 / 4)


@pytest.mark.parametrize("k,n", [(4, 12), (5, 12), (6, 8), (4, 300)])
def test_hypervolume_is_exact_for_many_objectives(k, n):
    rng = np.random.default_rng(k * 100 + n)
    points = rng.integers(0, 4, size=(n, k)).astype(float)
    ref = np.full(k, 4.0)
    assert pareto.hypervolume(points, ref) == pytest.approx(grid_hypervolume(points, ref), rel=1e-12)
    assert pareto.hypervolume_method(points, ref) == "exact"
