"""Live early stopping (`calnas search --live --early-stopping asha|hyperband`): trainings stop at
their rungs on the pruner's decision, a pruned trial is final and not a table row, every trial's
learning curve is kept, and a pruned training's curve is the full training's first epochs."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import optuna
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("xautodl")

import calnas  # noqa: E402
from calnas import record as rec  # noqa: E402
from calnas.live.protocol import Protocol  # noqa: E402
from calnas.pruners import DECISION_ATTR, PRUNE, RUNG_ATTR  # noqa: E402

# Four epochs of a tiny network: rungs at 1 and 2 (eta 2), many trainings a second.
TINY4 = Protocol(dataset="digits", channels=4, cells=1, epochs=4, batch_size=16, train_size=48, val_size=30,
                 test_size=60, threads=1)
FLAGS = ["--epochs", "4", "--channels", "4", "--cells", "1"]


pytestmark = pytest.mark.usefixtures("quiet_optuna")  # conftest: Optuna's per-trial log lines off


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    folder = tmp_path_factory.mktemp("les")
    config = calnas.LiveConfig(dataset="digits", protocol=TINY4, table_out=str(folder / "t.csv"))
    result = calnas.search(objectives="acc,ece", budget=10, seed=3, live=config, early_stopping="asha", eta=2,
                           storage=f"sqlite:///{folder / 's.db'}", study_name="x")
    return result, folder


def test_trainings_stop_at_their_rungs_on_the_pruners_decision(searched):
    result, folder = searched
    trials = [t for t in result.study.get_trials() if rec.STOPPED in t.user_attrs]
    assert len(trials) == result.evaluations == 10
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert pruned and completed and len(pruned) + len(completed) == 10
    for trial in pruned:
        stop = trial.user_attrs[rec.EPOCHS_REACHED]
        assert stop in (1, 2) and trial.user_attrs[rec.STOPPED] == "pruned"
        assert trial.user_attrs[f"{DECISION_ATTR}{stop}"] == PRUNE
        assert [p["epoch"] for p in trial.user_attrs[rec.CURVE]][-1] == stop  # trained no further
    for trial in completed:
        assert trial.user_attrs[rec.EPOCHS_REACHED] == 4 and trial.user_attrs[rec.STOPPED] == "completed"
        assert f"{RUNG_ATTR}1" in trial.user_attrs and f"{RUNG_ATTR}2" in trial.user_attrs
        assert np.isfinite(trial.user_attrs[rec.METRICS]["pre_ECE_15"])
    sim = result.info["simulation"]
    assert sim["epochs_trained"] == sum(t.user_attrs[rec.EPOCHS_REACHED] for t in trials) < 10 * 4
    assert sim["stopped"] == {"completed": len(completed), "pruned": len(pruned)}
    # only completed trainings are table rows
    from calnas.tables import tss_meta

    iso = tss_meta()["iso"]  # a row is the class representative's training
    rows = pd.read_csv(folder / "t.csv")
    assert sorted(rows["index"]) == sorted(int(iso[t.user_attrs[rec.INDEX]]) for t in completed)


def test_every_trials_curve_is_kept_and_saved(searched, tmp_path):
    result, _ = searched
    paths = result.save(tmp_path / "out")
    curves = pd.read_csv(paths["curves"])
    trials = result.trials
    assert set(curves["trial"]) == set(trials["trial"])
    last = curves.groupby("trial")["epoch"].max()
    assert (last.reindex(trials["trial"]).to_numpy() == trials["epochs"].to_numpy()).all()
    assert (tmp_path / "out" / "rungs.png").exists()


def test_a_pruned_trainings_curve_is_the_full_trainings_first_epochs(searched):
    """Stopping changes nothing before the stop: the same seed's full training passes through the
    same points (and `evaluate --live --track` sees the same validation accuracy there)."""
    from calnas.live.evaluate import evaluate_live

    result, _ = searched
    pruned = next(t for t in result.study.get_trials() if t.state == optuna.trial.TrialState.PRUNED)
    curve = pruned.user_attrs[rec.CURVE]
    full = evaluate_live(pruned.user_attrs[rec.ARCH], protocol=TINY4, device="cpu", seed=0, track=True).record
    by_epoch = {e["epoch"]: e for e in full["trajectory"]["epochs"]}
    for point in curve:
        assert point["val_acc"] == pytest.approx(by_epoch[point["epoch"]]["acc"], abs=1e-12)


def test_a_resumed_search_keeps_its_decisions_and_trains_only_new_architectures(searched):
    result, folder = searched
    before = {t.number: (t.state, t.user_attrs.get(rec.EPOCHS_REACHED)) for t in result.study.get_trials()}
    config = calnas.LiveConfig(dataset="digits", protocol=TINY4, table_out=str(folder / "t.csv"))
    again = calnas.search(objectives="acc,ece", budget=14, seed=3, live=config, early_stopping="asha", eta=2,
                          storage=f"sqlite:///{folder / 's.db'}", study_name="x")
    after = {t.number: (t.state, t.user_attrs.get(rec.EPOCHS_REACHED)) for t in again.study.get_trials()}
    assert all(after[n] == before[n] for n in before)  # a pruned trial is final
    assert again.evaluations == 14


def test_a_resume_under_another_early_stopping_rule_is_refused(searched):
    from calnas.errors import UserError

    result, folder = searched
    before = len(result.study.get_trials())
    config = calnas.LiveConfig(dataset="digits", protocol=TINY4, table_out=str(folder / "t.csv"))
    for changed in ({"early_stopping": "hyperband", "eta": 2}, {"early_stopping": "asha", "eta": 4},
                    {"early_stopping": "none"}):
        with pytest.raises(UserError, match="another early-stopping rule"):
            calnas.search(objectives="acc,ece", budget=20, seed=3, live=config,
                          storage=f"sqlite:///{folder / 's.db'}", study_name="x", **changed)
    assert len(optuna.load_study(study_name="x", storage=f"sqlite:///{folder / 's.db'}").get_trials()) == before


def test_the_cli_runs_a_live_early_stopping_search_and_refuses_bad_settings(tmp_path, run_cli):
    done = run_cli("search", "--live", *FLAGS, "--objective", "acc,ece", "--budget", "6", "--seed", "2",
                   "--early-stopping", "hyperband", "--eta", "2", "--out", tmp_path / "o", "--no-plot", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["simulation"]["early_stopping"] == "hyperband" and summary["evaluations"] == 6
    assert (tmp_path / "o" / "curves.csv").exists()
    for bad, message in ((["--early-stopping", "asha", "--min-epochs", "4"], "rung"),
                         (["--early-stopping", "asha", "--rung-metric", "nope"], "unknown rung metric"),
                         (["--simulated-workers", "2"], "simulated-workers")):
        proc = run_cli("search", "--live", *FLAGS, "--budget", "2", *bad, "--out", tmp_path / "x", "--no-plot")
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_budget_epochs_stops_starting_trainings(tmp_path):
    config = calnas.LiveConfig(dataset="digits", protocol=replace(TINY4))
    result = calnas.search(objectives="acc,ece", budget=50, seed=1, live=config, early_stopping="asha", eta=2,
                           budget_epochs=12)
    spent = result.info["simulation"]["epochs_trained"]
    assert 12 <= spent < 12 + 4 and result.evaluations < 50


@pytest.mark.slow  # two SIGKILLs of a two-worker live search, then a resume (about a minute)
def test_a_sigkilled_early_stopping_search_resumes_without_redoing_decided_trainings(tmp_path):
    import random
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT
    from calnas.tables import tss_meta

    url, budget = f"sqlite:///{tmp_path / 'l.db'}", 16
    command = [sys.executable, "-m", "calnas", "search", "--live", *FLAGS, "--objective", "acc,ece", "--budget",
               str(budget), "--storage", url, "--study-name", "x", "--workers", "2", "--early-stopping", "asha",
               "--no-plot"]

    def finished() -> int:
        try:
            trials = optuna.load_study(study_name="x", storage=url).get_trials(deepcopy=False)
        except Exception:  # noqa: BLE001 - not created yet
            return 0
        return sum(1 for t in trials if t.state.is_finished() and rec.STOPPED in t.user_attrs)

    rng = random.Random(0)
    for kill in range(2):
        target = finished() + rng.randint(2, 5)
        proc = subprocess.Popen([*command, "--out", tmp_path / f"k{kill}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while finished() < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert 0 < finished() < budget  # killed mid-search
    before = {t.number: t.state for t in optuna.load_study(study_name="x", storage=url).get_trials()
              if t.state.is_finished()}
    final = subprocess.run([*command, "--out", tmp_path / "final", "--json"], cwd=ROOT, capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=600)
    assert final.returncode == 0, final.stderr
    assert json.loads(final.stdout)["evaluations"] == budget
    trials = optuna.load_study(study_name="x", storage=url).get_trials()
    assert all(t.state == before[t.number] for t in trials if t.number in before)  # decided trials stay decided
    done = [t for t in trials if t.state.is_finished() and rec.STOPPED in t.user_attrs]
    assert len(done) == budget
    iso = tss_meta()["iso"]
    classes = [int(iso[t.user_attrs[rec.INDEX]]) for t in done]
    assert len(classes) == len(set(classes))  # no architecture trained to a decision twice
    for trial in done:
        if trial.state == optuna.trial.TrialState.PRUNED:
            stop = trial.user_attrs[rec.EPOCHS_REACHED]
            assert trial.user_attrs[f"{DECISION_ATTR}{stop}"] == PRUNE
    # every other trial is a proposal that cost nothing (a repeat, taken, over the budget) or an
    # interrupted training (the two kills of two workers), whose architecture was trained anew
    marks = (rec.REPEAT_OF, rec.TAKEN_BY, rec.NOT_IN_TABLE, rec.OVER_BUDGET, rec.INFEASIBLE)
    other = [t for t in trials if t not in done]
    interrupted = [t for t in other if not any(m in t.user_attrs for m in marks)]
    assert all(t.state == optuna.trial.TrialState.FAIL for t in other)
    assert len(interrupted) <= 4 and all(t.user_attrs.get(rec.INTERRUPTED) for t in interrupted), \
        [t.user_attrs for t in interrupted]
