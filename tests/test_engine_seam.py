"""The engine through its seam alone: a third kind of evaluator, defined here, runs through
storages and workers; the study record's claim queries; the random-fallback rule and its counters."""

from __future__ import annotations

import functools
import time

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

import calnas
from calnas import record as rec
from calnas.evaluators import Candidates, Evaluation, Evaluator
from calnas.spaces import TSS

N = 120  # the formula evaluator's candidates: the first N TSS architectures


def formula_metrics(index: int) -> dict[str, float]:
    """Made-up numbers (not benchmark data) that are a function of the index alone."""
    return {"acc": ((index * 37) % 101) / 101, "pre_ECE_15": ((index * 53) % 97) / 97, "params": 0.1 + index / N}


class _Columns:
    """What objective parsing reads: a name and (empty) columns."""

    name = "formula"
    frame = pd.DataFrame({c: pd.Series(dtype=float) for c in formula_metrics(0)})


class FormulaEvaluator(Evaluator):
    """Answers with a formula: neither a table nor a training."""

    kind = "formula"
    name = "formula-120"
    dataset = "none"
    needs_heartbeat = False

    def __init__(self, spec, *, stream: int = 0):
        self.spec, self.stream = spec, stream
        self.space = TSS
        indices = np.arange(N)
        self._candidates = Candidates(TSS, [TSS.arch(int(i)) for i in indices], indices, indices.copy(),
                                      indices.copy())
        self.calls = 0
        self.slow = False

    def candidates(self) -> Candidates:
        return self._candidates

    def evaluate(self, positions):
        self.calls += len(positions)
        if self.stream == 0 and self.slow:
            time.sleep(0.2)  # the calling process is slow: the spawned worker gets evaluations once started
        return [Evaluation(formula_metrics(int(self._candidates.indices[p]))) for p in positions]

    def worker_factory(self):
        return functools.partial(_formula_evaluator, self.spec)


def _formula_evaluator(spec, *, stream: int = 0) -> FormulaEvaluator:
    return FormulaEvaluator(spec, stream=stream)


def _spec(objectives="acc,ece", constraints=None):
    from calnas import objectives as objectives_module

    return objectives_module.parse(objectives, _Columns(), constraints)


def _run(evaluator, spec, **options):
    settings = {"budget": 30, "searcher": "auto", "seed": 0, "storage": None, "study_name": "f", "workers": 1,
                "progress": None}
    return calnas.run_search(evaluator, spec, **{**settings, **options})


def _check(result, budget):
    assert result.evaluations == budget and result.info["evaluator"] == "formula"
    assert result.trials["index"].is_unique
    for row in result.trials.itertuples(index=False):
        assert row.acc == pytest.approx(formula_metrics(row.index)["acc"])
    assert "infeasible_untrained" not in result.info["proposals"]  # its missing mark is the table's


def test_a_third_evaluator_runs_in_memory_and_matches_a_rerun():
    spec = _spec()
    first, again = _run(FormulaEvaluator(spec), spec), _run(FormulaEvaluator(spec), spec)
    _check(first, 30)
    assert first.trials.equals(again.trials)


@pytest.mark.parametrize("scheme", ["sqlite", "journal"])
def test_a_third_evaluator_runs_on_a_storage_with_two_workers_and_shows(tmp_path, scheme):
    url = f"sqlite:///{tmp_path / 's.db'}" if scheme == "sqlite" else f"journal:///{tmp_path / 's.log'}"
    spec = _spec(constraints="params<=0.9")
    evaluator = FormulaEvaluator(spec)
    evaluator.slow = True
    result = _run(evaluator, spec, budget=40, storage=url, workers=2)
    _check(result, 40)
    from calnas.storage import open_storage

    stored = optuna.load_study(study_name="f", storage=open_storage(url))
    streams = {t.user_attrs.get(rec.STREAM, 0) for t in stored.trials if rec.METRICS in t.user_attrs}
    assert streams == {0, 1}  # the spawned worker rebuilt the evaluator from its factory and evaluated
    shown = calnas.show(url, "f")  # from the storage alone, without the evaluator
    assert shown.trials.equals(result.trials) and shown.front.equals(result.front)
    resumed = _run(FormulaEvaluator(spec), spec, budget=50, storage=url)
    _check(resumed, 50)
    assert resumed.trials.head(40)["index"].tolist() == result.trials["index"].tolist()


# --------------------------------------------------------------------------------------------
# the study record's claim queries


def _study_and_record(stale_after=4.0):
    from calnas.searchers.domain import Domain

    evaluator = FormulaEvaluator(_spec())
    c = evaluator.candidates()
    domain = Domain(c.space, c.archs, c.indices, c.keys, c.classes)
    study = optuna.create_study(directions=["maximize", "minimize"])
    return study, domain, rec.StudyRecord(study, domain, stale_after=stale_after)


def _running(study, domain, position):
    study.enqueue_trial(domain.params(position))
    return study.ask(domain.distributions)


def test_the_lowest_numbered_live_trial_of_a_key_holds_it():
    study, domain, record = _study_and_record()
    first, second, other = _running(study, domain, 5), _running(study, domain, 5), _running(study, domain, 7)
    record.update()
    key = domain.key(5)
    assert record.running == {first.number: key, second.number: key, other.number: domain.key(7)}
    assert record.holder_before(first.number, key) is None  # the first holds its key
    assert record.holder_before(second.number, key) == first.number  # the second does not
    assert record.running_holders() == {key: first.number, domain.key(7): other.number}
    assert record.holders_below(other.number) == 1 and record.holders_below(other.number + 1) == 2
    first.set_user_attr(rec.METRICS, {"acc": 0.5})  # what calnas writes with an evaluation (foreign trials do not count)
    study.tell(first, [0.5, 0.5])
    record.update()
    assert record.holders == {key: first.number} and record.n_done == 1
    assert record.holder_before(second.number, key) == first.number  # finished, it still holds the key
    assert record.taken_keys()[[key, domain.key(7)]].all() and not record.taken_keys()[domain.key(9)]


def test_a_silent_running_trial_is_failed_as_stale_and_frees_its_key():
    study, domain, record = _study_and_record(stale_after=4.0)
    silent, mine = _running(study, domain, 3), _running(study, domain, 4)
    record.mine.add(mine.number)
    record.update()
    assert record.fail_stale(now=time.time()) == 0  # just started: alive
    assert record.fail_stale(now=time.time() + 60) == 1  # silent past stale_after; its own trial is never failed
    trial = study.get_trials(deepcopy=False)[silent.number]
    assert trial.state == TrialState.FAIL and trial.user_attrs[rec.INTERRUPTED]
    assert domain.key(3) not in record.running_holders() and record.counts.interrupted == 1
    assert record.holder_before(silent.number + 10, domain.key(3)) is None  # free for one new evaluation


def test_a_heartbeat_keeps_a_running_trial_alive():
    study, domain, record = _study_and_record(stale_after=4.0)
    beating = _running(study, domain, 3)
    study._storage.set_trial_system_attr(beating._trial_id, rec.HEARTBEAT, time.time() + 58)
    record.update()
    assert record.fail_stale(now=time.time() + 60) == 0
    assert record.oldest_silence(now=time.time() + 60) == pytest.approx(2, abs=1)


# --------------------------------------------------------------------------------------------
# the random-fallback rule


class Stubborn(FormulaEvaluator):
    """Only every fourth architecture is a candidate: most random proposals cost no budget."""

    def __init__(self, spec, *, stream: int = 0):
        super().__init__(spec, stream=stream)
        keep = np.arange(0, 4 * N, 4)
        self._candidates = Candidates(TSS, [TSS.arch(int(i)) for i in keep], keep, keep.copy(), keep.copy())


def test_after_max_repeats_free_proposals_the_next_trial_is_a_random_unseen_one(tmp_path):
    from calnas.worker_loop import MAX_REPEATS

    spec = _spec()
    url = f"sqlite:///{tmp_path / 's.db'}"
    result = _run(Stubborn(spec), spec, budget=25, searcher="random", storage=url)
    # The counters of the search that told its trials itself are those of the storage read afresh.
    assert calnas.show(url, "f").info["proposals"] == result.info["proposals"]
    trials = result.study.get_trials(deepcopy=False)
    free = [rec.NOT_IN_TABLE in t.user_attrs or rec.REPEAT_OF in t.user_attrs for t in trials]
    fallbacks = [t.number for t in trials if t.user_attrs.get(rec.FALLBACK)]
    assert fallbacks and result.info["proposals"]["random_fallbacks"] == len(fallbacks)
    for number in fallbacks:  # each follows exactly MAX_REPEATS free proposals and is evaluated
        assert free[number - MAX_REPEATS:number] == [True] * MAX_REPEATS and not free[number]
        assert rec.METRICS in trials[number].user_attrs
    run = 0
    for number, is_free in enumerate(free):  # never more than MAX_REPEATS free ones in a row
        run = run + 1 if is_free else 0
        assert run <= MAX_REPEATS, number
    counts = result.info["proposals"]
    assert counts["not_in_table"] == sum(rec.NOT_IN_TABLE in t.user_attrs for t in trials)
    assert counts["asked"] == len(trials) and counts["repeats"] == sum(rec.REPEAT_OF in t.user_attrs for t in trials)


def test_fallback_position_is_due_only_after_max_repeats_and_is_unseen():
    from calnas.worker_loop import MAX_REPEATS, fallback_position

    study, domain, record = _study_and_record()
    record.update()
    assert fallback_position(domain, record, 0, 0, MAX_REPEATS - 1) is None
    picks = {fallback_position(domain, record, 0, 0, MAX_REPEATS) for _ in range(3)}
    assert len(picks) == 1 and 0 <= picks.pop() < N  # a function of the seed and the history
