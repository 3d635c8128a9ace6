"""The surrogate-guided local search: its Gaussian process, the one-hot encoding, the
hypervolume-improvement acquisition, and the sampler itself on real and test-made tables."""

import random

import numpy as np
import pytest
from scipy.stats import spearmanr

import calnas
from calnas import pareto
from calnas.spaces import SSS, TSS
from calnas.tables import load_benchmark
from calnas.searchers import guided
from calnas.searchers.domain import Domain
from calnas.searchers.surrogate import ArchitectureGP
from tests.conftest import make_published_frame


@pytest.fixture(scope="module")
def c10():
    return load_benchmark("nats-tss-cifar10")


@pytest.fixture(scope="module")
def domain(c10):
    return Domain(TSS, c10.frame["arch"].tolist(), c10.frame.index.to_numpy())


def test_onehot_dot_product_counts_shared_edges(domain):
    rng = np.random.default_rng(0)
    positions = rng.choice(len(domain), 40, replace=False)
    rows = domain.onehot(positions)
    assert rows.shape == (40, 30) and np.all(rows.sum(axis=1) == 6)
    genes = [list(domain.params(int(p)).values()) for p in positions]
    shared = np.array([[sum(x == y for x, y in zip(a, b)) for b in genes] for a in genes])
    assert np.array_equal(rows @ rows.T, shared)
    assert np.array_equal(domain.onehot(positions[::-1]), rows[::-1])  # cached rows come back unchanged


def test_onehot_for_the_size_space():
    archs = [SSS.arch(i) for i in range(0, SSS.size, 997)]
    rows = Domain(SSS, archs, range(len(archs))).onehot(range(len(archs)))
    assert rows.shape == (len(archs), 5 * 8) and np.all(rows.sum(axis=1) == 5)


def test_gp_grows_its_factor_like_a_full_fit(domain, c10):
    acc = c10.frame["acc"].to_numpy()
    flops = c10.frame["flops"].to_numpy()
    targets = np.column_stack([acc, flops])
    rng = np.random.default_rng(1)
    positions = [int(p) for p in rng.choice(len(domain), 60, replace=False)]
    grown = ArchitectureGP(domain.code, domain.max_distance()).fit(positions[:40], targets[positions[:40]])
    grown.fit(positions, targets[positions])  # 60 < 1.5 * 40: appended rows, same hyperparameters
    assert len(grown.hyper) == 2  # one (lengthscale, mix, noise) per output
    full = ArchitectureGP(domain.code, domain.max_distance())
    full.hyper, full._rows = grown.hyper, positions
    full._z, full._mean, full._scale = grown._z, grown._mean, grown._scale
    d = full.distance(positions, positions)
    full._inv = [np.linalg.inv(full.kernel_of(d, ls, mix) + noise * np.eye(60)) for ls, mix, noise in grown.hyper]
    queries = rng.choice(len(domain), 30, replace=False)
    for a, b in zip(grown.predict(queries), full.predict(queries)):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_code_distance_counts_differing_edges_and_width_steps():
    """TSS: how many edges differ. SSS: how many width steps apart, summed over layers."""
    rng = np.random.default_rng(3)
    tss_pos = rng.choice(TSS.size, 30, replace=False)
    tss = Domain(TSS, [TSS.arch(int(i)) for i in tss_pos], range(30))
    gp = ArchitectureGP(tss.code, tss.max_distance())
    genes = [list(tss.params(p).values()) for p in range(30)]
    expected = [[sum(x != y for x, y in zip(a, b)) for b in genes] for a in genes]
    assert np.array_equal(gp.distance(range(30), range(30)), expected) and tss.max_distance() == 6
    sss_pos = rng.choice(SSS.size, 30, replace=False)
    sss = Domain(SSS, [SSS.arch(int(i)) for i in sss_pos], range(30))
    gp = ArchitectureGP(sss.code, sss.max_distance())
    steps = [[SSS.param_choices()[n].index(v) for n, v in sss.params(p).items()] for p in range(30)]
    expected = [[sum(abs(x - y) for x, y in zip(a, b)) for b in steps] for a in steps]
    assert np.array_equal(gp.distance(range(30), range(30)), expected) and sss.max_distance() == 5 * 7


def test_additive_kernel_learns_flops_from_few_cells(domain, c10):
    """FLOPs are a sum over edges: 60 cells rank 1,000 unseen ones almost exactly."""
    flops = c10.frame["flops"].to_numpy()
    order = np.random.default_rng(4).permutation(len(domain))
    train, test = [int(p) for p in order[:60]], order[60:1060]
    mean, _ = ArchitectureGP(domain.code, domain.max_distance()).fit(train, flops[train, None]).predict(test)
    assert spearmanr(mean[:, 0], flops[test])[0] > 0.98


def test_gp_learns_real_accuracies(domain, c10):
    """On NATS-Bench CIFAR-10, 200 evaluated cells rank unseen ones far better than chance."""
    acc = c10.frame["acc"].to_numpy()
    rng = np.random.default_rng(2)
    order = rng.permutation(len(domain))
    train, test = [int(p) for p in order[:200]], order[200:1200]
    mean, sd = ArchitectureGP(domain.code, domain.max_distance()).fit(train, acc[train, None]).predict(test)
    assert spearmanr(mean[:, 0], acc[test])[0] > 0.6
    assert np.all(sd > 0)
    # At an evaluated cell the mean is near what was measured, with less uncertainty.
    seen_mean, seen_sd = ArchitectureGP(domain.code, domain.max_distance()).fit(train, acc[train, None]).predict(train[:20])
    assert np.mean(np.abs(seen_mean[:, 0] - acc[train[:20]])) < np.mean(np.abs(mean[:20, 0] - acc[test[:20]]))
    assert seen_sd.mean() < sd.mean()


@pytest.mark.parametrize("k, block", [(2, None), (3, None), (4, None), (5, None), (4, 10)])
def test_hypervolume_improvements_match_brute_force(k, block, monkeypatch):
    if block is not None:  # clipped fronts made a few candidates at a time
        monkeypatch.setattr(pareto, "_CLIP_BLOCK", block)
    rng = np.random.default_rng(k)
    reference = np.full(k, 1.1)
    for _ in range(50):
        front = rng.random((int(rng.integers(0, 7)), k))
        candidates = rng.random((15, k)) * 1.3 - 0.1
        gains = pareto.hypervolume_improvements(front, candidates, reference)
        base = pareto.hypervolume(front, reference)
        expected = [pareto.hypervolume(np.vstack([front, c]), reference) - base for c in candidates]
        np.testing.assert_allclose(gains, expected, atol=1e-12)


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_best_improvements_keep_the_argmax_and_its_exact_values(k):
    rng = np.random.default_rng(10 + k)
    reference = np.full(k, 1.1)
    skipped = 0
    for trial in range(40):
        front = rng.random((int(rng.integers(0, 12)), k))
        candidates = rng.random((60, k)) * 1.2 - 0.05
        weights = None if trial % 2 else rng.random(60)
        exact = pareto.hypervolume_improvements(front, candidates, reference) * (1 if weights is None else weights)
        best = pareto.best_improvements(front, candidates, reference, weights)
        scored = np.isfinite(best)
        np.testing.assert_allclose(best[scored], exact[scored], atol=1e-12)
        assert np.all(exact[~scored] < exact.max() - 1e-12)  # what was skipped could not tie
        assert best.max() == pytest.approx(exact.max(), abs=1e-12)
        skipped += (~scored).sum()
    assert (skipped > 0) == (k >= 4)  # bounds prune only where each exact value is a moocore call


def test_guided_moves_to_neighbours_and_never_repeats(c10):
    start = guided.N_STARTUP
    result = calnas.search(c10, "acc,params", budget=start + 80, searcher="guided", seed=4)
    archs = result.trials["arch"].tolist()
    assert len(set(archs)) == len(archs)
    assert not c10.frame.loc[result.trials["index"], ["iso", "params"]].duplicated().any()
    hamming = lambda a, b: sum(x != y for x, y in zip(TSS.to_params(a).values(), TSS.to_params(b).values()))
    moves = archs[start:]
    steps = sum(any(hamming(arch, a) == 1 for a in archs[:i + start]) for i, arch in enumerate(moves))
    assert steps / len(moves) > 0.9


def test_guided_is_deterministic(c10):
    first = calnas.search(c10, "acc,flops", budget=60, searcher="guided", seed=11)
    second = calnas.search(c10, "acc,flops", budget=60, searcher="guided", seed=11)
    assert first.trials.equals(second.trials) and first.front.equals(second.front)


def test_guided_under_constraints_finds_feasible_architectures(c10):
    result = calnas.search(c10, "acc,params", budget=120, searcher="guided", seed=0,
                           constraints=["acc>=0.93", "params<=0.8"])
    trials = result.trials
    assert trials["feasible"].sum() >= 5 and result.front["feasible"].all()


def test_guided_three_objectives_and_size_space(tmp_path):
    path = tmp_path / "cifar10_sss.csv"
    make_published_frame(SSS, random.Random(3).sample(range(SSS.size), 400), seed=2).to_csv(path, index=False)
    result = calnas.search(str(path), "acc,ece,params", budget=40, searcher="guided", seed=0)
    assert result.evaluations == 40 and result.trials["index"].is_unique
