"""Every searcher on real NATS-Bench accuracies and on a small calibration table.

The calibration table is written by the test in the published layout (300 TSS architectures,
values made up by tests/conftest.py) -- enough to exercise a search, not benchmark data.
"""

import random

import numpy as np
import optuna
import pytest

import calnas
from calnas import searchers
from calnas import pareto
from calnas.errors import UserError
from calnas.spaces import SSS, TSS
from calnas.tables import load_benchmark
from calnas.searchers.domain import Domain
from calnas.searchers import evolution, local
from calnas.searchers.evolution import RegularizedEvolutionSampler
from calnas.searchers.local import LocalSearchSampler
from tests.conftest import make_published_frame

FAST = ["evolution", "local", "guided", "random", "tpe", "nsga2", "nsga3", "qmc"]


@pytest.fixture(scope="module")
def calib_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("tables") / "cifar10_tss.csv"
    make_published_frame(TSS, random.Random(0).sample(range(TSS.size), 300), seed=5).to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def c10():
    return load_benchmark("nats-tss-cifar10")


def check_result(result, table, budget, names):
    trials, front = result.trials, result.front
    assert result.evaluations == len(trials) == budget
    assert trials["index"].is_unique and trials["arch"].is_unique
    assert list(trials["trial"]) == list(range(budget))
    frame = table.frame
    for name, column in names.items():
        assert np.array_equal(trials[name].to_numpy(), frame.loc[trials["index"], column].to_numpy())
    directions = [o["direction"] for o in result.info["objectives"]]
    points = pareto.as_minimisation(front[list(names)].to_numpy(), directions)
    assert pareto.nondominated_mask(points).all()
    assert set(front["index"]) <= set(trials["index"])
    # The found front is exactly the non-dominated subset of the trials.
    all_points = pareto.as_minimisation(trials[list(names)].to_numpy(), directions)
    assert set(trials["index"][pareto.nondominated_mask(all_points)]) == set(front["index"])
    assert 0 < result.hypervolume <= result.true_hypervolume + 1e-12


@pytest.mark.parametrize("name", FAST)
def test_searchers_on_nats_accuracy_table(c10, name):
    result = calnas.search(c10, "acc,params", budget=40, searcher=name, seed=3)
    check_result(result, c10, 40, {"acc": "acc", "params": "params"})
    assert result.info["searcher"] == name


@pytest.mark.parametrize("name", FAST)
def test_searchers_on_small_calibration_table(calib_path, name):
    result = calnas.search(calib_path, "acc,ece", budget=25, searcher=name, seed=1)
    table = load_benchmark(calib_path)
    check_result(result, table, 25, {"acc": "acc", "ece": "pre_ECE_15"})
    assert list(result.trials.columns) == ["arch", "index", "trial", "acc", "ece", "pre_ECE_15", "hypervolume"]
    proposals = result.info["proposals"]
    # 300 of 15,625 architectures: most blind proposals miss the table and cost nothing.
    assert proposals["asked"] == 25 + proposals["repeats"] + proposals["not_in_table"]


@pytest.mark.parametrize("name", ["evolution", "nsga2", "tpe"])
def test_same_seed_same_trials(c10, name):
    first = calnas.search(c10, "acc,flops", budget=60, searcher=name, seed=11)
    second = calnas.search(c10, "acc,flops", budget=60, searcher=name, seed=11)
    other = calnas.search(c10, "acc,flops", budget=60, searcher=name, seed=12)
    assert first.trials.equals(second.trials) and first.front.equals(second.front)
    assert not first.trials["index"].equals(other.trials["index"])


def test_gp_searcher_when_available(calib_path):
    if "gp" not in [n for n in searchers.SEARCHERS if searchers.SEARCHERS[n].available()]:
        pytest.skip("Optuna's GPSampler or torch is not installed")
    result = calnas.search(calib_path, "acc,ece", budget=12, searcher="gp", seed=0)
    assert result.evaluations == 12 and result.trials["index"].is_unique


def test_repeats_cost_no_budget(c10):
    # NSGA-II's offspring often repeat parents in a 15,625-cell space; none may be counted.
    result = calnas.search(c10, "acc,params", budget=300, searcher="nsga2", seed=0)
    proposals = result.info["proposals"]
    assert proposals["repeats"] > 0
    assert result.evaluations == 300 and result.trials["index"].is_unique
    assert proposals["asked"] == 300 + proposals["repeats"] + proposals["not_in_table"]
    study_trials = result.study.get_trials(deepcopy=False)
    assert len(study_trials) == proposals["asked"]


def test_dedupe_iso_counts_isomorphism_classes(c10):
    result = calnas.search(c10, "acc", budget=200, searcher="evolution", seed=2, dedupe="iso")
    iso = c10.frame.loc[result.trials["index"], "iso"]
    assert iso.is_unique and result.evaluations == 200
    # With a cost objective a class is refined by the cost: twins that cost the same count once.
    costly = calnas.search(c10, "acc,params", budget=200, searcher="evolution", seed=2, dedupe="iso")
    keys = c10.frame.loc[costly.trials["index"], ["iso", "params"]]
    assert not keys.duplicated().any() and costly.evaluations == 200
    plain = calnas.search(c10, "acc,params", budget=200, searcher="random", seed=2)
    assert not c10.frame.loc[plain.trials["index"], "iso"].is_unique  # twins do occur without it


@pytest.mark.parametrize("name", ["local", "evolution"])
def test_own_searchers_skip_isomorphic_twins(c10, name):
    # Twins compute the same function: calnas's own searchers never spend budget on one, even
    # when the budget counts architectures (dedupe="arch") -- unless it costs differently and
    # the cost is an objective (then it is another candidate: docs/search.md).
    result = calnas.search(c10, "acc", budget=300, searcher=name, seed=1)
    assert c10.frame.loc[result.trials["index"], "iso"].is_unique and result.evaluations == 300
    costly = calnas.search(c10, "acc,params", budget=300, searcher=name, seed=1)
    assert not c10.frame.loc[costly.trials["index"], ["iso", "params"]].duplicated().any()


def test_true_front_points_count_distinct_vectors():
    result = calnas.search(None, "acc,ece", budget=60, searcher="local", seed=0)
    distinct = result.true_front[["acc", "ece"]].drop_duplicates()
    assert result.true_front_points == len(distinct) < len(result.true_front)
    found = result.front[["acc", "ece"]].drop_duplicates().merge(distinct)
    assert result.true_front_points_found == len(found)
    assert result.summary()["true_front_points"] == result.true_front_points


def test_small_table_is_exhausted_not_looped(tmp_path):
    path = tmp_path / "cifar100_sss.csv"
    make_published_frame(SSS, random.Random(1).sample(range(SSS.size), 30)).to_csv(path, index=False)
    for name in ("random", "evolution", "nsga2"):
        result = calnas.search(str(path), "acc,ece", budget=100, searcher=name, seed=0)
        assert result.evaluations == 30 and result.exhausted
        assert result.true_front_found == len(result.true_front) and result.hypervolume_ratio == pytest.approx(1.0)


def test_constraints_rank_feasible_first(c10):
    result = calnas.search(c10, "acc,params", budget=150, searcher="evolution", seed=0,
                           constraints=["acc>=0.9", "params<=0.6"])
    trials, front = result.trials, result.front
    expected = (trials["acc"] >= 0.9) & (trials["params"] <= 0.6)
    assert trials["feasible"].equals(expected)
    assert front["feasible"].all() and len(front) > 0
    feasible = c10.frame[(c10.frame["acc"] >= 0.9) & (c10.frame["params"] <= 0.6)]
    assert set(result.true_front["index"]) <= set(feasible.index)


def test_custom_samplers_work_in_a_plain_optuna_study(c10):
    """They derive their state from the study, so Optuna's own optimize loop drives them too."""
    domain = Domain(TSS, c10.frame["arch"].tolist(), c10.frame.index.to_numpy())
    acc = c10.frame["acc"].to_numpy()
    for sampler in (RegularizedEvolutionSampler(domain, seed=0), LocalSearchSampler(domain, seed=0)):
        study = optuna.create_study(direction="maximize", sampler=sampler)
        optuna.logging.set_verbosity(optuna.logging.WARNING)

        def objective(trial):
            params = {n: trial.suggest_categorical(n, d.choices) for n, d in domain.distributions.items()}
            return float(acc[domain.position_of_params(params)])

        study.optimize(objective, n_trials=80)
        archs = [domain.arch_of_params(t.params) for t in study.trials]
        assert len(set(archs)) == 80  # they never propose an architecture twice
        assert study.best_value > np.quantile(acc, 0.9)


def _hamming(a, b):
    return sum(x != y for x, y in zip(TSS.to_params(a).values(), TSS.to_params(b).values()))


def test_evolution_children_are_one_edge_mutations(c10):
    population = evolution.POPULATION_SIZE
    result = calnas.search(c10, "acc,params", budget=population + 100, searcher="evolution", seed=4)
    archs = result.trials["arch"].tolist()
    children = archs[population:]
    mutated = sum(any(_hamming(child, a) == 1 for a in archs[:i + population]) for i, child in enumerate(children))
    assert mutated / len(children) > 0.9


def test_local_search_moves_to_neighbours(c10):
    start = local.N_STARTUP
    result = calnas.search(c10, "acc,params", budget=start + 100, searcher="local", seed=4)
    archs = result.trials["arch"].tolist()
    moves = archs[start:]
    steps = sum(any(_hamming(arch, a) == 1 for a in archs[:i + start]) for i, arch in enumerate(moves))
    assert steps / len(moves) > 0.9


def test_registry_names_and_errors():
    assert searchers.resolve("auto") == searchers.AUTO
    assert searchers.resolve("NSGA2") == "nsga2"
    assert set(FAST) <= set(searchers.names())
    with pytest.raises(UserError, match="unknown searcher 'nsga' \\(did you mean nsga"):
        searchers.resolve("nsga")
