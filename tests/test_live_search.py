"""Live search: the engine with an evaluator that trains (calnas search --live, calnas.search(live=...))."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("xautodl")

import calnas  # noqa: E402
from calnas.errors import UserError  # noqa: E402
from calnas.live.build import table_columns  # noqa: E402
from calnas.live.protocol import Protocol  # noqa: E402
from calnas.metrics import PANEL_COLUMNS  # noqa: E402
from calnas.tables import space_costs  # noqa: E402
from calnas.spaces import TSS  # noqa: E402

from conftest import BUILD_CPU, ROOT, on_build_machine  # noqa: E402

# A protocol small enough for many trainings per second (tests of the machinery, not of digits).
TINY = Protocol(dataset="digits", channels=4, cells=1, epochs=1, batch_size=32, train_size=48, val_size=30,
                test_size=60, threads=1)
TINY_FLAGS = ["--epochs", "1", "--channels", "4", "--cells", "1"]


def stored_trials(url: str, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


def live_cli(*args, out, **kw) -> list[str]:
    return [sys.executable, "-m", "calnas", "search", "--live", "--no-plot", "--out", str(out), *map(str, args)]


# --------------------------------------------------------------------------------------------
# one code path


def test_live_search_rows_are_the_rows_of_evaluate_live_and_the_study(tmp_path):
    from calnas.live.evaluate import evaluate_live, tss_iso

    table = tmp_path / "t.csv"
    result = calnas.search(objectives="acc,ece", budget=4, seed=3,
                           live=calnas.LiveConfig(dataset="digits", table_out=table))
    assert result.evaluations == 4 and result.info["evaluation_time"]["trained"] == 4
    rows = pd.read_csv(table)
    assert list(rows.columns) == table_columns(PANEL_COLUMNS) and len(rows) == 4
    assert (rows["iso"] == rows["index"]).all()  # TSS trains the class representative, as the build does
    recorded = json.loads((tmp_path / "t.csv.protocol.json").read_text())
    assert recorded["seed"] == 0 and recorded["protocol"]["epochs"] == 6
    for _, row in rows.iterrows():
        again = evaluate_live(int(row["index"]), device="cpu", seed=0).record["metrics"]
        for column in PANEL_COLUMNS:
            assert _same(row[column], again[column]), (row["index"], column)  # repr-written: exact
    by_class = rows.set_index("index")
    for trial in result.study.trials:  # the study holds the very numbers the table file holds
        stored = trial.user_attrs["metrics"]
        expected = by_class.loc[tss_iso(trial.user_attrs["index"])]
        assert all(_same(stored[c], expected[c]) for c in PANEL_COLUMNS)


def _same(a, b) -> bool:
    return (np.isnan(a) and np.isnan(b)) or a == b


def test_live_search_trains_the_rows_of_the_embedded_digits_table(tmp_path):
    """One code path: a live search with the digits protocol and seed 0 trains exactly the
    numbers of the embedded digits-tss rows (compared at the shipped 6 significant digits)."""
    table = tmp_path / "t.csv"
    calnas.search(objectives="acc,ece", budget=6, seed=0, live=calnas.LiveConfig(dataset="digits", table_out=table))
    embedded = calnas.load_benchmark("digits-tss").frame
    rows = pd.read_csv(table)
    assert len(rows) == 6
    mismatched = [(int(row["index"]), column) for _, row in rows.iterrows() for column in PANEL_COLUMNS
                  if not _same(float(f"{row[column]:.6g}"), embedded.loc[int(row["index"]), column])]
    if mismatched and not on_build_machine():
        pytest.skip(f"this CPU is not the build machine's {BUILD_CPU}; {len(mismatched)} values differ in the last digits")
    assert not mismatched


# --------------------------------------------------------------------------------------------
# the table file, caches, and searching the table


def test_cli_live_table_searches_as_a_benchmark_and_answers_a_later_search(tmp_path, run_cli):
    first = run_cli("search", "--live", "--objective", "acc,ece", "--budget", "5", "--seed", "1", *TINY_FLAGS,
                    "--out", tmp_path / "a", "--no-plot", "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    table = tmp_path / "a" / "table.csv"
    assert summary["table_out"] == str(table.resolve()) and summary["evaluation_time"]["trained"] == 5
    assert summary["benchmark"] == "live:digits" and summary["hypervolume_ratio"] is None  # not the digits protocol
    assert summary["normalisation"] is None and summary["reference_point"] == {"acc": 0.0, "ece": 1.0}
    assert len(pd.read_csv(table)) == 5

    searched = run_cli("search", "--benchmark", table, "--objective", "acc,ece", "--budget", "3", "--out",
                       tmp_path / "b", "--no-plot", "--json")
    assert searched.returncode == 0, searched.stderr
    assert json.loads(searched.stdout)["evaluations"] == 3

    # The same search again, with the first table as a cache: the same proposals, none trained.
    again = run_cli("search", "--live", "--objective", "acc,ece", "--budget", "5", "--seed", "1", *TINY_FLAGS,
                    "--cache", table, "--out", tmp_path / "c", "--no-plot", "--json")
    assert again.returncode == 0, again.stderr
    timing = json.loads(again.stdout)["evaluation_time"]
    assert timing["trained"] == 0 and timing["cached"] == 5
    assert (pd.read_csv(tmp_path / "c" / "table.csv").sort_values("index").reset_index(drop=True)
            .equals(pd.read_csv(table).sort_values("index").reset_index(drop=True)))

    other = run_cli("search", "--live", "--budget", "2", "--epochs", "2", "--cache", table, "--out", tmp_path / "d")
    assert other.returncode == 2 and "another protocol or seed" in other.stderr and len(other.stderr.splitlines()) == 1


def test_twins_are_answered_by_their_class_row(tmp_path):
    config = calnas.LiveConfig(dataset="digits", protocol=TINY, table_out=tmp_path / "t.csv")
    # dedupe arch: twins are distinct architectures, each costs budget, but one training answers all.
    result = calnas.search(objectives="acc,ece", budget=6, seed=0, dedupe="arch", searcher="random", live=config)
    rows = pd.read_csv(tmp_path / "t.csv")
    assert rows["index"].is_unique and len(rows) == result.info["evaluation_time"]["trained"]
    from calnas.evaluators import Evaluation  # noqa: F401 - the seam the evaluator answers through
    from calnas.live.search import live_evaluator

    evaluator, _ = live_evaluator(config.replace(table_out=None, cache=(str(tmp_path / "t.csv"),)), "acc,ece", None,
                                  "arch")
    candidates = evaluator.candidates()
    rep = int(rows["index"].iloc[0])
    twins = [p for p in range(len(candidates)) if candidates.classes[p] == rep]
    answers = evaluator.evaluate(twins)
    assert all(a.cached for a in answers) and len({a.metrics["acc"] for a in answers}) == 1


def test_a_table_older_than_the_calibrator_columns_is_refused_only_where_they_are_needed(tmp_path):
    import hashlib

    from calnas.calibrator_columns import CALIBRATOR_COLUMNS

    config = calnas.LiveConfig(dataset="digits", protocol=TINY, table_out=tmp_path / "t.csv")
    calnas.search(objectives="acc,ece", budget=2, seed=0, searcher="random", live=config)
    old = tmp_path / "old.csv"  # the same rows in the layout written before the calibrators
    pd.read_csv(tmp_path / "t.csv").drop(columns=list(CALIBRATOR_COLUMNS)).to_csv(old, index=False)
    (tmp_path / "old.csv.protocol.json").write_bytes((tmp_path / "t.csv.protocol.json").read_bytes())
    digest = hashlib.sha256(old.read_bytes()).hexdigest()
    cached = calnas.LiveConfig(dataset="digits", protocol=TINY, cache=(str(old),))

    for objectives in ("acc,best_post_ece", "acc,post_ece_15@dirichlet"):
        with pytest.raises(UserError, match="written before the columns .* needs") as refused:
            calnas.search(objectives=objectives, budget=2, seed=0, searcher="random", live=cached)
        assert "@" in str(refused.value) and len(str(refused.value)) < 300
    with pytest.raises(UserError, match="written before the columns"):  # as the search's own table, too
        calnas.search(objectives="acc,best_post_ece", budget=2, seed=0, searcher="random",
                      live=cached.replace(cache=(), table_out=old))
    assert hashlib.sha256(old.read_bytes()).hexdigest() == digest

    # Objectives the old layout holds are answered from it, without training.
    result = calnas.search(objectives="acc,ece", budget=2, seed=0, searcher="random", live=cached)
    assert result.info["evaluation_time"]["cached"] == 2 and result.info["evaluation_time"]["trained"] == 0


# --------------------------------------------------------------------------------------------
# constraints known before training, failures


def test_cost_constraints_are_checked_before_training(tmp_path):
    from calnas.live.evaluate import tss_iso

    table = tmp_path / "t.csv"
    result = calnas.search(objectives="acc,ece", constraints="params<=0.3", budget=6, seed=0, searcher="random",
                           live=calnas.LiveConfig(dataset="digits", protocol=TINY, table_out=table))
    summary = result.summary()
    params = space_costs(TSS, "digits")["params"]
    trained = pd.read_csv(table)["index"]  # the networks trained (TSS: class representatives)
    assert len(trained) == 6 and (params[trained] <= 0.3).all()
    assert (result.trials["params"] <= 0.3).all() and result.trials["feasible"].all()
    check = summary["pre_training_check"]
    iso = np.asarray([tss_iso(i) for i in range(TSS.size)])
    feasible = (params <= 0.3) & (params[iso] <= 0.3)  # the proposal and the network trained for it
    assert check["candidates"] == int(feasible.sum()) and check["excluded"] == TSS.size - int(feasible.sum())
    # random proposes over the whole space: its infeasible proposals were answered untrained, for free
    assert summary["proposals"]["infeasible_untrained"] > 0
    assert summary["evaluations"] == 6

    with pytest.raises(UserError, match="no architecture of tss satisfies params<=0.001"):
        calnas.search(objectives="acc,ece", constraints="params<=0.001", budget=2,
                      live=calnas.LiveConfig(dataset="digits", protocol=TINY))


def test_a_diverging_training_is_a_failed_evaluation_and_a_search_of_only_those_stops(tmp_path):
    exploding = Protocol(**{**TINY.settings(), "lr": 1e12})
    url = f"sqlite:///{tmp_path}/s.db"
    with pytest.raises(UserError, match="the first 3 evaluations all failed: training diverged at epoch 1"):
        calnas.search(objectives="acc,ece", budget=10, seed=0, storage=url, study_name="s",
                      live=calnas.LiveConfig(dataset="digits", protocol=exploding, table_out=tmp_path / "t.csv"))
    trials = stored_trials(url, "s")
    assert len(trials) == 3 and all("diverged at epoch" in t.user_attrs["calnas_failure"] for t in trials)
    assert len(pd.read_csv(tmp_path / "t.csv")) == 0  # a failed evaluation writes no row


def test_live_input_errors_are_one_line(tmp_path, run_cli):
    with pytest.raises(UserError, match="benchmark and live exclude"):
        calnas.search("digits-tss", live=calnas.LiveConfig())
    with pytest.raises(UserError, match="must be a calnas.LiveConfig"):
        calnas.search(live={"dataset": "digits"})
    for args, expected in ((["--dataset", "digits"], "--dataset applies to live searches; add --live"),
                           (["--live", "--dataset", "mnist"], "unknown dataset 'mnist'"),
                           (["--live", "--objective", "eec"], "unknown objective 'eec'"),
                           (["--live", "--space", "abc"], "abc"),
                           (["--live", "--benchmark", "digits-tss"], "--benchmark and --live exclude")):
        proc = run_cli("search", *args, "--budget", "2", "--out", tmp_path / "o")
        assert proc.returncode == 2 and expected in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr


# --------------------------------------------------------------------------------------------
# killed and resumed, with workers


def _count(url: str, name: str, table) -> dict:
    trials = stored_trials(url, name)
    evaluated = [t for t in trials if "metrics" in t.user_attrs and "calnas_repeat_of" not in t.user_attrs]
    trained = [t.user_attrs["index"] for t in evaluated if "calnas_seconds" in t.user_attrs]
    rows = pd.read_csv(table)
    return {"evaluated": len({t.user_attrs["index"] for t in evaluated}), "entries": len(evaluated),
            "trained": trained, "cached": sum(1 for t in evaluated if t.user_attrs.get("calnas_cached")),
            "rows": len(rows), "distinct_rows": rows["index"].nunique()}


def _rows(table) -> int:
    """Complete rows of a table file (0 while it does not exist)."""
    return max(0, table.read_bytes().count(b"\n") - 1) if table.is_file() else 0


def _kill_and_rerun(tmp_path, budget: int, kills: int, flags: list[str]) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    command = [sys.executable, "-m", "calnas", "search", "--live", "--dataset", "digits", "--objective", "acc,ece",
               "--budget", str(budget), "--storage", url, "--study-name", "x", "--workers", "2", "--no-plot", *flags]
    rng = random.Random(kills)
    table = tmp_path / "k0" / "table.csv"  # the study keeps the table its first run chose
    sizes = []
    for kill in range(kills):
        # Killed once the table has grown by a random number of rows, whatever the machine's speed,
        # plus a random fraction of an evaluation so that kills land in every phase of one.
        target = _rows(table) + rng.randint(2, budget // (2 * kills))
        proc = subprocess.Popen([*command, "--out", tmp_path / f"k{kill}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while _rows(table) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        sizes.append(_rows(table))
    final = subprocess.run([*command, "--out", tmp_path / "final", "--json"], cwd=ROOT, capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=600)
    assert final.returncode == 0, final.stderr
    summary = json.loads(final.stdout)
    assert summary["table_out"] == str(table.resolve())
    counts = _count(url, "x", table)
    assert counts["evaluated"] == counts["entries"] == budget == summary["evaluations"]
    assert counts["rows"] == counts["distinct_rows"] == budget
    assert len(counts["trained"]) == len(set(counts["trained"]))  # no architecture trained twice
    assert len(counts["trained"]) + counts["cached"] == budget
    assert all(0 < size < budget for size in sizes)  # every killed run was killed mid-search


@pytest.mark.slow  # 40 s; the engine's own SIGKILL test stays in the default run
def test_sigkilled_live_search_with_two_workers_trains_each_architecture_once(tmp_path):
    _kill_and_rerun(tmp_path, budget=16, kills=1, flags=TINY_FLAGS)


@pytest.mark.slow
def test_sigkilled_twice_digits_protocol_budget_40(tmp_path):
    # The command: calnas search --live --dataset digits --objective acc,ece --budget 40
    # --storage sqlite:///l.db --study-name x --workers 2, killed with SIGKILL twice and rerun.
    _kill_and_rerun(tmp_path, budget=40, kills=2, flags=[])


# --------------------------------------------------------------------------------------------
# the user's own images


def write_npz(path, *, n_train=80, n_test=40, classes=3, layout="nhwc", dtype=np.uint8, val=False, seed=0, **replace):
    """Images whose class is a bright square's position: learnable in a few steps."""
    rng = np.random.default_rng(seed)

    def images(labels):
        x = rng.uniform(0, 60, size=(len(labels), 12, 12, 3))
        for i, k in enumerate(labels):
            x[i, 1 + 3 * k:4 + 3 * k, 2:6] = 250
        if layout == "grey":
            x = x[..., 0]
        elif layout == "nchw":
            x = np.transpose(x, (0, 3, 1, 2))
        return x.astype(dtype)

    arrays = {}
    for split, n in (("train", n_train), ("test", n_test), *((("val", 30),) if val else ())):
        labels = rng.integers(0, classes, n)
        labels[:classes] = np.arange(classes)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images(labels), labels
    arrays.update(replace)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


@pytest.mark.parametrize("space, layout, val, budget", [("tss", "nhwc", False, 2),
                                                         pytest.param("sss", "grey", True, 1, marks=pytest.mark.slow)])
def test_own_npz_dataset_searches_tss_and_sss(tmp_path, run_cli, space, layout, val, budget):
    data = write_npz(tmp_path / "my.npz", layout=layout, dtype=np.float32 if layout == "grey" else np.uint8, val=val)
    proc = run_cli("search", "--live", "--dataset", data, "--space", space, "--epochs", "1", "--budget", budget,
                   *(["-C", "4", "-N", "1"] if space == "tss" else []), "--out", tmp_path / "o", "--no-plot", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["evaluations"] == budget and summary["space"] == space and summary["dataset"].startswith("npz:")
    rows = pd.read_csv(tmp_path / "o" / "table.csv")
    assert len(rows) == budget and rows["acc"].between(0, 1).all()
    recorded = json.loads((tmp_path / "o" / "table.csv.protocol.json").read_text())
    assert recorded["protocol"]["dataset"] == summary["dataset"]  # the data is named by content
    # NLL's reference is a uniform prediction's, ln K with K = 3 classes taken from the labels
    assert summary["reference_point"]["acc"] == 0.0


def test_npz_splits_take_size_classes_and_normalisation_from_the_data(tmp_path):
    from calnas.live.datasets import load_splits, resolve_dataset

    key, path = resolve_dataset(str(write_npz(tmp_path / "a.npz", layout="nchw", classes=4)))
    splits = load_splits(key, data_root=path, seed=0)
    assert splits.num_classes == 4 and splits.train_x.shape[1:] == (3, 12, 12)
    assert len(splits.val_y) == 10 and len(splits.train_y) == 70 and len(splits.test_y) == 40  # seeded 10% held out
    assert np.allclose(splits.train_x.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    again = load_splits(key, data_root=path, seed=0)
    assert np.array_equal(again.val_y, splits.val_y) and not np.array_equal(load_splits(key, data_root=path, seed=1).val_y,
                                                                            splits.val_y)
    key, path = resolve_dataset(str(write_npz(tmp_path / "g.npz", layout="grey")))
    grey = load_splits(key, data_root=path, seed=0)
    assert grey.train_x.shape[1] == 3 and np.array_equal(grey.train_x[:, 0], grey.train_x[:, 1])


def _bad_npz(tmp_path, case: str):
    path = tmp_path / f"{case}.npz"
    good = dict(n_train=40, n_test=20, layout="grey")
    if case == "not-npz":
        path.write_text("x_train,y_train\n")
        return path
    if case == "missing-file":
        return tmp_path / "absent.npz"
    x = np.zeros((20, 12, 12), np.uint8)
    variants = {
        "no-y_test": dict(y_test=None),
        "flat-images": dict(x_train=np.zeros((40, 144), np.uint8)),
        "four-channels": dict(x_train=np.zeros((40, 12, 12, 4), np.uint8)),
        "int64-images": dict(x_train=np.zeros((40, 12, 12), np.int64)),
        "float-labels": dict(y_train=np.zeros(40, np.float64)),
        "negative-labels": dict(y_train=np.r_[-1, np.arange(39) % 3]),
        "unknown-test-label": dict(y_test=np.full(20, 7)),
        "nan-images": dict(x_test=np.full((20, 12, 12), np.nan, np.float32)),
        "val-without-y": dict(x_val=x),
        "too-few-test": dict(x_test=x[:5], y_test=np.zeros(5, np.int64)),
        "label-count": dict(y_train=np.zeros(39, np.int64)),
        "other-size": dict(x_test=np.zeros((20, 16, 16), np.uint8)),
        "odd-size": dict(x_train=np.zeros((40, 10, 10), np.uint8), x_test=np.zeros((20, 10, 10), np.uint8)),
        "one-class": dict(y_train=np.zeros(40, np.int64)),
    }
    return write_npz(path, **good, **variants[case])


BAD_NPZ = {
    "not-npz": "cannot read", "missing-file": "does not exist", "no-y_test": "no y_test",
    "flat-images": "x_train has shape (40, 144)", "four-channels": "x_train has shape (40, 12, 12, 4)",
    "int64-images": "x_train has dtype int64; expected uint8 or float", "float-labels": "y_train has dtype float64",
    "negative-labels": "y_train has negative labels", "unknown-test-label": "y_test has label 7",
    "nan-images": "x_test holds NaN", "val-without-y": "x_val without y_val", "too-few-test": "x_test has 5 images",
    "label-count": "y_train has shape (39,)", "other-size": "x_test images are 16x16x1", "one-class": "single class",
    "odd-size": "divisible by 4",
}


def test_each_malformed_npz_is_one_line_naming_the_key(tmp_path, capsys):
    from calnas.cli import main

    for case, expected in BAD_NPZ.items():
        with pytest.raises(SystemExit) as stop:
            main(["search", "--live", "--dataset", str(_bad_npz(tmp_path, case)), "--budget", "1",
                  "--out", str(tmp_path / "o"), "--no-plot"])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.startswith("error: ") and expected in err, (case, err)
        assert len(err.strip().splitlines()) == 1, (case, err)
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_config_file_holds_the_training_options(tmp_path, run_cli):
    config = tmp_path / "live.yaml"
    config.write_text("live: true\ndataset: digits\nepochs: 1\nchannels: 4\ncells: 1\ntrain-seed: 2\n"
                      "objective: [acc, post_ece_15]\nbudget: 2\nno-plot: true\n")
    proc = run_cli("search", "--config", config, "--out", tmp_path / "o", "--json")
    assert proc.returncode == 0, proc.stderr
    recorded = json.loads((tmp_path / "o" / "table.csv.protocol.json").read_text())
    assert recorded["seed"] == 2 and recorded["protocol"]["epochs"] == 1 and recorded["protocol"]["channels"] == 4
    assert json.loads(proc.stdout)["evaluations"] == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("live: true\nepochs: many\n")
    proc = run_cli("search", "--config", bad, "--out", tmp_path / "p")
    assert proc.returncode == 2 and "epochs must be an integer" in proc.stderr
