"""The search engine: the study as the only record, storages, resume, kills and workers.

Every count here is read back from the storage (Optuna's own API), not from calnas's output.
"""

import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import optuna
import pandas as pd
import pytest

import calnas
from calnas.errors import UserError
from calnas.record import ARCH, INDEX, METRICS, REPEAT_OF
from calnas.tables import load_benchmark
from tests.conftest import ROOT, _free_port

OWN = ["guided", "local", "evolution"]


def stored_evaluations(storage: str, study_name: str) -> list[optuna.trial.FrozenTrial]:
    """COMPLETE trials that are evaluations (not repeats), read with plain Optuna."""
    from calnas.storage import open_storage

    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    return [t for t in study.get_trials(deepcopy=False)
            if t.state == optuna.trial.TrialState.COMPLETE and REPEAT_OF not in t.user_attrs]


def assert_exact_budget(storage: str, study_name: str, budget: int) -> None:
    evaluated = stored_evaluations(storage, study_name)
    archs = [t.user_attrs[ARCH] for t in evaluated]
    assert len(archs) == budget, len(archs)
    twice = [a for a, n in collections.Counter(archs).items() if n > 1]
    assert not twice, twice


@pytest.mark.parametrize("searcher", OWN)
def test_resumed_search_equals_uninterrupted(tmp_path, searcher):
    whole = calnas.search(None, "acc,ece", budget=90, searcher=searcher, seed=3)
    url = f"sqlite:///{tmp_path / 's.db'}"
    calnas.search(None, "acc,ece", budget=37, searcher=searcher, seed=3, storage=url, study_name="r")
    resumed = calnas.search(None, "acc,ece", budget=90, searcher=searcher, seed=3, storage=url, study_name="r")
    for attr in ("trials", "front"):
        a, b = tmp_path / f"a_{attr}.csv", tmp_path / f"b_{attr}.csv"
        getattr(whole, attr).to_csv(a, index=False)
        getattr(resumed, attr).to_csv(b, index=False)
        assert a.read_bytes() == b.read_bytes(), attr
    assert resumed.hypervolume == whole.hypervolume


def test_finished_study_just_reports_and_show_rebuilds_it(tmp_path, run_cli):
    url = f"journal:///{tmp_path / 's.log'}"
    first = calnas.search(None, "acc,ece", budget=40, seed=1, storage=url, study_name="j")
    again = calnas.search(None, "acc,ece", budget=40, seed=1, storage=url, study_name="j")
    assert len(again.study.trials) == len(first.study.trials) == 40
    proc = run_cli("show", "--storage", url, "--study-name", "j", "--out", tmp_path / "shown", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["evaluations"] == 40 and summary["hypervolume"] == pytest.approx(first.hypervolume)
    shown = pd.read_csv(tmp_path / "shown" / "trials.csv")
    assert shown["arch"].tolist() == first.trials["arch"].tolist()
    assert sorted(os.listdir(tmp_path / "shown")) == ["front.csv", "hypervolume.png", "pareto.png", "summary.json", "trials.csv"]


def test_study_records_everything_the_result_needs(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    result = calnas.search("nats-tss-cifar10", "acc,params", budget=25, seed=0, storage=url, study_name="n",
                           constraints="acc>=0.9")
    evaluated = stored_evaluations(url, "n")
    frame = load_benchmark("nats-tss-cifar10").frame
    for trial in evaluated:
        index = trial.user_attrs[INDEX]
        assert trial.user_attrs[ARCH] == frame.loc[index, "arch"]
        assert trial.user_attrs[METRICS]["acc"] == frame.loc[index, "acc"]
        assert trial.values == [frame.loc[index, "acc"], frame.loc[index, "params"]]
    study = optuna.load_study(study_name="n", storage=url)
    assert study.metric_names == ["acc", "params"]
    assert result.trials["feasible"].tolist() == [t.user_attrs[METRICS]["acc"] >= 0.9 for t in evaluated]


def test_a_different_search_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    calnas.search(None, "acc,ece", budget=5, storage=url, study_name="a")
    with pytest.raises(UserError, match="searches objectives 'acc,ece', not 'acc,nll'"):
        calnas.search(None, "acc,nll", budget=5, storage=url, study_name="a")
    with pytest.raises(UserError, match="searches benchmark"):
        calnas.search("nats-tss-cifar10", "acc", budget=5, storage=url, study_name="a")


def test_sqlite_studies_use_a_write_ahead_log_and_leave_other_engines_alone(tmp_path):
    import sqlalchemy

    from calnas.storage import open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    with storage.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    other = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'other.db'}")  # no global listener
    with other.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "delete"
    result = calnas.search(None, budget=12, storage=f"sqlite:///{tmp_path / 's.db'}", study_name="w")
    assert result.evaluations == 12  # a study in WAL mode reads back like any other


def test_storage_errors_are_one_line(tmp_path, run_cli):
    with pytest.raises(UserError, match="needs a persistent storage"):
        calnas.search(None, budget=5, workers=2)
    with pytest.raises(UserError, match="not one calnas knows"):
        calnas.search(None, budget=5, storage="mongodb://x")
    with pytest.raises(UserError, match="does not exist"):
        calnas.search(None, budget=5, storage=f"sqlite:///{tmp_path}/missing/s.db")
    proc = run_cli("search", "--budget", "5", "--workers", "0", "--storage", f"sqlite:///{tmp_path}/s.db")
    assert proc.returncode == 2 and proc.stderr.startswith("error: --workers must be at least 1")
    proc = run_cli("show", "--storage", f"sqlite:///{tmp_path}/s.db", "--study-name", "nope")
    assert proc.returncode == 2 and "does not exist" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "s.db").exists()  # show reads: it never creates a storage
    url = f"sqlite:///{tmp_path}/t.db"
    assert run_cli("search", "--budget", "5", "--storage", url, "--study-name", "a", "--no-plot", "--out",
                   tmp_path / "a").returncode == 0
    proc = run_cli("show", "--storage", url, "--study-name", "nope")
    assert proc.returncode == 2 and "no study 'nope'" in proc.stderr and len(proc.stderr.splitlines()) == 1
    proc = run_cli("search", "--budget", "5", "--objective", "acc,params", "--storage", url, "--study-name", "a",
                   "--no-plot", "--out", tmp_path / "b")
    assert proc.returncode == 2 and "use another --study-name" in proc.stderr  # the flag, not the parameter


def _search_cmd(url: str, budget: int, *extra) -> list[str]:
    return [sys.executable, "-m", "calnas", "search", "--objective", "acc,ece", "--budget", str(budget),
            "--storage", url, "--study-name", "k", "--no-plot", "--json", *extra]


def _finished_trials(url: str) -> int:
    """Finished trials in a SQLite study, read with sqlite3 (cheap enough to poll; 0 before the
    search has made its tables)."""
    import sqlite3

    try:
        with sqlite3.connect(url[len("sqlite:///"):], timeout=5) as connection:
            return connection.execute("SELECT COUNT(*) FROM trials WHERE state != 'RUNNING'").fetchone()[0]
    except sqlite3.OperationalError:  # no such table yet
        return 0


def _kill_and_rerun(tmp_path, url: str, budget: int, kills: int, seed: int) -> subprocess.CompletedProcess:
    rng = random.Random(seed)
    for _ in range(kills):
        before = _finished_trials(url)
        proc = subprocess.Popen(_search_cmd(url, budget, "--out", tmp_path / "k"), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        # Killed once this run has recorded something, whatever the machine's speed, plus a random
        # fraction of a second so that kills land in every phase of a trial.
        deadline = time.monotonic() + 120
        while _finished_trials(url) <= before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.1))
        assert proc.poll() is None, "the search finished before it was killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = len(stored_evaluations(url, "k"))
        assert 0 < done < budget, done  # the kill landed mid-search: trials were being recorded
    return subprocess.run(_search_cmd(url, budget, "--out", tmp_path / "k"), cwd=ROOT, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)


def _kill_check(tmp_path, kills: int) -> None:
    budget = 200
    reference = subprocess.run(_search_cmd(f"sqlite:///{tmp_path / 'ref.db'}", budget, "--out", tmp_path / "ref"),
                               cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert reference.returncode == 0, reference.stderr
    url = f"sqlite:///{tmp_path / 's.db'}"
    final = _kill_and_rerun(tmp_path, url, budget, kills, seed=kills)
    assert final.returncode == 0, final.stderr
    assert_exact_budget(url, "k", budget)
    for name in ("trials.csv", "front.csv"):
        assert (tmp_path / "k" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name


def test_sigkilled_search_resumes_to_the_same_result(tmp_path):
    _kill_check(tmp_path, kills=1)  # the slow test below kills 10 times


@pytest.mark.slow
def test_ten_sigkills(tmp_path):
    _kill_check(tmp_path, kills=10)


def _workers(url: str, searcher: str, budget: int, out, workers: int = 4) -> dict:
    proc = subprocess.run([sys.executable, "-m", "calnas", "search", "--objective", "acc,ece", "--budget", str(budget),
                           "--storage", url, "--study-name", f"w-{searcher}", "--workers", str(workers), "--searcher",
                           searcher, "--no-plot", "--json", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgresql"])
def test_four_workers_share_one_study(tmp_path, kind, request):
    if kind == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 's.db'}" if kind == "sqlite" else f"journal:///{tmp_path / 's.log'}"
    summary = _workers(url, "auto", 40, tmp_path / "out")
    assert summary["evaluations"] == 40
    assert_exact_budget(url, "w-auto", 40)
    streams = {t.user_attrs.get("calnas_stream", 0) for t in stored_evaluations(url, "w-auto")}
    assert max(streams) >= 1  # spawned workers evaluated (how much each did depends on the load)


@pytest.mark.slow
@pytest.mark.parametrize("searcher", ["guided", "local", "evolution", "random", "tpe", "nsga2", "nsga3", "qmc"])
def test_every_searcher_with_four_workers(tmp_path, searcher):
    url = f"journal:///{tmp_path / 's.log'}"
    _workers(url, searcher, 60, tmp_path / "out")
    assert_exact_budget(url, f"w-{searcher}", 60)


def test_optuna_dashboard_lists_the_study(tmp_path):
    pytest.importorskip("optuna_dashboard")
    url = f"sqlite:///{tmp_path / 's.db'}"
    calnas.search(None, "acc,ece", budget=12, seed=0, storage=url, study_name="dash")
    port = _free_port()
    from pathlib import Path

    command = Path(sys.executable).with_name("optuna-dashboard")
    server = subprocess.Popen([str(command), url, "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              stdin=subprocess.DEVNULL)
    try:
        studies = _get_json(f"http://127.0.0.1:{port}/api/studies", timeout=30)
        (study,) = [s for s in studies["study_summaries"] if s["study_name"] == "dash"]
        detail = _get_json(f"http://127.0.0.1:{port}/api/studies/{study['study_id']}", timeout=10)
        assert detail["objective_names"] == ["acc", "ece"]
        trials = detail["trials"]
        assert len(trials) == 12
        attrs = [{a["key"]: a["value"] for a in t["user_attrs"]} for t in trials]
        assert all("|" in a["arch"] for a in attrs)
    finally:
        server.terminate()
        server.wait()


def _get_json(url: str, timeout: float):
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.3)


def test_user_objectives_module_cannot_shadow_calnas(tmp_path):
    (tmp_path / "objectives.py").write_text("raise RuntimeError('the user module was imported')\n")
    (tmp_path / "searchers.py").write_text("raise RuntimeError('the user module was imported')\n")
    code = "import calnas\nr = calnas.search(budget=10, seed=0)\nprint(r.evaluations)\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "10"


def test_tables_are_independent_and_dataframes_search():
    first, second = load_benchmark("nats-tss-cifar10"), load_benchmark("nats-tss-cifar10")
    assert first.frame is not second.frame
    first.frame.loc[:, "acc"] = 0.0
    assert second.frame["acc"].max() > 0.9
    frame = load_benchmark("nats-tss-cifar10").to_frame()
    result = calnas.search(frame, "acc,params", budget=30, seed=0)
    table_result = calnas.search("nats-tss-cifar10", "acc,params", budget=30, seed=0)
    assert result.trials.equals(table_result.trials)
    assert result.hypervolume_ratio == pytest.approx(table_result.hypervolume_ratio)


def test_true_front_follows_edits_of_a_frame():
    table = load_benchmark("nats-tss-cifar10")
    before = calnas.search(table, "acc,params", budget=10, seed=0)
    best = before.true_front["index"].iloc[0]
    table.frame.loc[best, "acc"] = 0.0
    after = calnas.search(table, "acc,params", budget=10, seed=0)
    assert best not in set(after.true_front["index"])


def test_library_leaves_logging_alone():
    import logging

    optuna.logging.set_verbosity(optuna.logging.INFO)
    level = logging.getLogger("optuna").level
    calnas.search(None, budget=5)
    assert logging.getLogger("optuna").level == level
    np.testing.assert_equal(level, logging.INFO)


def test_twins_with_other_costs_stay_proposable():
    """Twins share metrics but not params/FLOPs: with a cost among the objectives, a twin that
    costs differently is a candidate of its own (else one expensive twin locks out cheap ones)."""
    from calnas import objectives
    from calnas.evaluators import TableEvaluator

    table = load_benchmark(None)
    frame = table.frame
    plain = TableEvaluator(table, objectives.parse("acc,ece", table), "iso").candidates()
    costly = TableEvaluator(table, objectives.parse("acc,ece,params", table), "iso").candidates()
    assert len(np.unique(plain.classes)) == frame["iso"].nunique() == 6466
    expected = frame[["iso", "params"]].drop_duplicates()
    assert len(np.unique(costly.classes)) == len(expected) > 6466
    # Twins with equal params still share a class.
    same = pd.Series(costly.classes).groupby([frame["iso"].to_numpy(), frame["params"].to_numpy()]).nunique()
    assert (same == 1).all()


def test_a_worker_taken_for_dead_drops_its_result_and_goes_on(tmp_path):
    """On an overloaded machine a slow worker's trial can pass stale_after and be failed as
    interrupted by another worker; the slow worker must not crash, and the budget stays exact."""
    import optuna
    from optuna.trial import TrialState

    from calnas import objectives, record
    from calnas.evaluators import TableEvaluator
    from calnas.searching import run_search

    url = f"sqlite:///{tmp_path / 's.db'}"
    table = calnas.load_benchmark(None)
    spec = objectives.parse("acc,ece", table)

    class TakenForDead(TableEvaluator):
        calls = 0

        def evaluate(self, positions):
            TakenForDead.calls += 1
            if TakenForDead.calls == 3:  # what another worker's fail_stale does to this running trial
                other = optuna.storages.get_storage(url)
                study_id = other.get_study_id_from_name("d")
                (running,) = other.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
                other.set_trial_user_attr(running._trial_id, record.INTERRUPTED, True)
                other.set_trial_state_values(running._trial_id, TrialState.FAIL)
            return super().evaluate(positions)

    result = run_search(TakenForDead(table, spec, "arch"), spec, budget=8, searcher="random", seed=0, storage=url,
                        study_name="d", workers=1, progress=None)
    assert result.evaluations == 8 and TakenForDead.calls >= 9  # the dropped evaluation was redone
    assert_exact_budget(url, "d", 8)
    interrupted = [t for t in optuna.load_study(study_name="d", storage=url).trials
                   if t.user_attrs.get(record.INTERRUPTED)]
    assert len(interrupted) == 1 and interrupted[0].state == TrialState.FAIL
