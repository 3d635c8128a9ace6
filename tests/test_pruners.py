"""calnas.pruners: multi-objective successive halving inside an Optuna study."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from calnas.errors import UserError
from calnas.pruners import (
    BRACKET_ATTR,
    PRUNE,
    MultiObjectiveSuccessiveHalving,
    rung_epochs,
    rung_order,
    trial_progress,
)

DIRS = ["maximize", "minimize"]


pytestmark = pytest.mark.usefixtures("quiet_optuna")  # conftest: Optuna's per-trial log lines off


def test_rungs_sit_at_min_epochs_times_powers_of_eta_below_the_schedule():
    assert rung_epochs(1, 3, 27) == (1, 3, 9)
    assert rung_epochs(1, 3, 28) == (1, 3, 9, 27)
    assert rung_epochs(2, 2, 20) == (2, 4, 8, 16)
    assert rung_epochs(1, 3, 27, bracket=2) == (9,)
    for args, message in (((0, 3, 27), "min_epochs"), ((1, 1, 27), "eta"), ((27, 3, 27), "below"),
                          ((1.5, 3, 27), "min_epochs")):
        with pytest.raises(UserError, match=message):
            rung_epochs(*args)
    with pytest.raises(UserError, match="brackets must be between 1 and 3"):
        MultiObjectiveSuccessiveHalving(DIRS, max_epochs=27, brackets=4)
    with pytest.raises(UserError, match="directions"):
        MultiObjectiveSuccessiveHalving(["up"], max_epochs=27)


def test_order_is_front_rank_then_hypervolume_contribution_then_trial_number():
    # maximise the first, minimise the second
    vectors = np.array([[0.9, 0.10],   # front 0, an extreme
                        [0.5, 0.01],   # front 0, the other extreme
                        [0.8, 0.05],   # front 0, in the middle
                        [0.7, 0.20],   # dominated by 0 and 2
                        [0.7, 0.20]])  # its duplicate, a later trial
    order = rung_order(vectors, DIRS, [0, 1, 2, 3, 4])
    assert set(order[:3]) == {0, 1, 2} and list(order[3:]) == [3, 4]
    from calnas.pareto import as_minimisation, hypervolume

    every = as_minimisation(vectors, DIRS)  # scaled by the rung's whole range, dominated vectors included
    scaled = ((every - every.min(0)) / (every.max(0) - every.min(0)))[:3]
    ref = np.array([1.1, 1.1])
    contrib = [hypervolume(scaled, ref) - hypervolume(np.delete(scaled, i, 0), ref) for i in range(3)]
    assert list(order[:3]) == list(np.argsort(contrib)[::-1])
    assert set(rung_order(vectors, DIRS, [0, 1, 2, 3, 4], "crowding")[:2]) == {0, 1}  # crowding: extremes first


def _study(storage=None):
    return optuna.create_study(directions=DIRS, storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))


def _replay(study, pruner, curves):
    """Run trials whose rung vectors are given: curves[i][epoch] -> vector."""
    stops = []
    for curve in curves:
        trial = study.ask()
        stopped = None
        for epoch in range(1, pruner.max_epochs + 1):
            if pruner.report(trial, epoch, curve(epoch)):
                stopped = epoch
                break
        if stopped is None:
            study.tell(trial, list(curve(pruner.max_epochs)))
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        stops.append(stopped)
    return stops


def _curves(n, seed=0):
    rng = np.random.default_rng(seed)
    params = rng.random((n, 2))
    return [lambda e, q=q, r=r: (q * (1 - np.exp(-e / 4)), 0.02 + r * 0.1 + 0.05 / e) for q, r in params]


def test_asynchronous_rule_keeps_the_top_third_and_lets_the_first_leader_on():
    pruner = MultiObjectiveSuccessiveHalving(DIRS, min_epochs=1, eta=3, max_epochs=9)
    study = _study()
    stops = _replay(study, pruner, _curves(30))
    assert stops[0] is None  # the first trial leads its rungs when it arrives
    for epoch in pruner.all_rungs():
        reached = [t for t in study.trials if f"calnas:rung:{epoch}" in t.user_attrs]
        continued = [t for t in reached if t.user_attrs[f"calnas:decision:{epoch}"] == "continue"]
        # at most the top 1/eta of what the rung held when each asked, so about a third overall
        assert 0 < len(continued) <= len(reached) // 3 + 2
    progress = [trial_progress(t, 9) for t in study.trials]
    assert {p["stopped"] for p in progress} == {"pruned", "completed"}
    assert all(p["epochs"] == 9 for p in progress if p["stopped"] == "completed")


def test_decisions_are_functions_of_the_study_in_every_storage(tmp_path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    pruner = MultiObjectiveSuccessiveHalving(DIRS, min_epochs=1, eta=2, max_epochs=8)
    memory = _replay(_study(), pruner, _curves(20, seed=1))
    sqlite = _replay(_study(f"sqlite:///{tmp_path / 's.db'}"), pruner, _curves(20, seed=1))
    journal = _replay(_study(JournalStorage(JournalFileBackend(str(tmp_path / "j.log")))), pruner, _curves(20, seed=1))
    assert memory == sqlite == journal
    assert any(s is not None for s in memory) and any(s is None for s in memory)


def test_a_failed_trial_is_not_ranked_so_a_redone_one_decides_as_before(tmp_path):
    """A killed trial (failed as stale) keeps its rung records, but a redo must not compete with
    its own ghost: the redone trial's decision is the uninterrupted run's."""
    pruner = MultiObjectiveSuccessiveHalving(DIRS, min_epochs=1, eta=2, max_epochs=8)
    curves = _curves(12, seed=2)
    plain = _replay(_study(), pruner, curves)
    study = _study(f"sqlite:///{tmp_path / 'k.db'}")
    _replay(study, pruner, curves[:5])
    ghost = study.ask()  # trial 6 is "killed" after its first rung
    pruner.report(ghost, 1, curves[5](1))
    study.tell(ghost, state=optuna.trial.TrialState.FAIL)
    # the redone trial is a new number, so the bracket cycle and tie order stay those of the arrival order
    resumed = _replay(study, pruner, curves[5:])
    assert resumed == plain[5:]


def test_hyperband_deals_trials_to_brackets_and_ranks_within_them():
    pruner = MultiObjectiveSuccessiveHalving(DIRS, min_epochs=1, eta=3, max_epochs=27, brackets=3)
    cycle = [pruner.bracket_of(n) for n in range(35)]
    assert cycle.count(0) > cycle.count(1) > cycle.count(2) > 0  # aggressive brackets get more trials
    assert pruner.rungs(cycle.index(2)) == (9,)
    study = _study()
    _replay(study, pruner, _curves(40, seed=3))
    for trial in study.trials:
        bracket = trial.user_attrs[BRACKET_ATTR]
        rungs = [int(k.split(":")[-1]) for k in trial.user_attrs if k.startswith("calnas:rung:")]
        assert min(rungs) == 3 ** bracket
    late = [t for t in study.trials if t.user_attrs[BRACKET_ATTR] == 2]
    assert all(trial_progress(t, 27)["epochs"] in (9, 27) for t in late)


def test_report_checks_its_vector_and_ignores_epochs_that_are_not_rungs():
    pruner = MultiObjectiveSuccessiveHalving(DIRS, min_epochs=2, eta=2, max_epochs=8)
    study = _study()
    trial = study.ask()
    assert pruner.report(trial, 1, (0.5, 0.1)) is False and not trial.user_attrs
    with pytest.raises(UserError, match="2 numbers"):
        pruner.report(trial, 2, (0.5,))
    with pytest.raises(UserError, match="2 numbers"):
        pruner.report(trial, 2, ("a", 0.1))
    assert pruner.report(trial, 2, (0.5, 0.1)) is False
    assert trial_progress(study.trials[0])["rungs"] == {2: "continue"}
    assert PRUNE == "prune"


@pytest.mark.parametrize("objectives, tie_break", [(2, "hypervolume"), (2, "crowding"), (3, "hypervolume")])
def test_a_decision_is_the_full_rung_orders_answer(objectives, tie_break):
    """promotes tie-breaks only the layer the cut falls in; the answer must be the full order's."""
    rng = np.random.default_rng(objectives)
    directions = ["maximize", "minimize", "minimize"][:objectives]
    for trial in range(200):
        n = int(rng.integers(1, 40))
        vectors = rng.random((n, objectives))
        if trial % 3 == 0:
            vectors = np.round(vectors, 1)  # ties and duplicates
        if trial % 5 == 0:
            vectors[rng.integers(0, n)] = np.nan
        eta = int(rng.integers(2, 5))
        pruner = MultiObjectiveSuccessiveHalving(directions, min_epochs=1, eta=eta, max_epochs=16, tie_break=tie_break)
        numbers = list(rng.permutation(n))
        order = rung_order(vectors, directions, numbers, tie_break)
        keep = max(1, n // eta)
        for position in range(n):
            expected = int(np.flatnonzero(order == position)[0]) < keep
            assert pruner.promotes(vectors, numbers, position) == expected


def test_two_objective_contributions_are_the_exclusive_hypervolumes():
    from calnas.pareto import hypervolume, nondominated_ranks
    from calnas.pruners import _contributions

    rng = np.random.default_rng(7)
    reference = np.full(2, 1.1)
    for trial in range(100):
        points = rng.random((int(rng.integers(2, 25)), 2))
        points = np.round(points, 1) if trial % 2 else points
        front = points[nondominated_ranks(points) == 0]
        total = hypervolume(front, reference)
        exact = [total - hypervolume(np.delete(front, i, axis=0), reference) for i in range(len(front))]
        np.testing.assert_allclose(_contributions(front), exact if len(front) > 1 else [total], atol=1e-12)
