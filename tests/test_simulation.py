"""Simulated multi-fidelity search on a curve table (calnas.simulation, calnas search --early-stopping).

The curve frame here is a test input in the curve build's layout (calnas.curve_layout) with
curves drawn from a seeded generator, so the simulator's bookkeeping can be checked quickly on
hundreds of architectures; the curve build itself is tested on real trainings in test_curves.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from calnas.curve_layout import POINT_COLUMNS, curve_column
from calnas.curve_table import CurveTable
from calnas.errors import UserError
from calnas.spaces import TSS

EPOCHS = (1, 2, 4, 8)


def curve_frame(n: int = 200, seeds=(0, 1), seed: int = 0) -> pd.DataFrame:
    from calnas.table_meta import tss_meta

    rng = np.random.default_rng(seed)
    classes = np.sort(rng.choice(np.unique(tss_meta()["iso"].to_numpy()), n, replace=False))
    quality, gap, speed = rng.random(n), rng.random(n), 0.05 + 0.1 * rng.random(n)
    rows = []
    for i, index in enumerate(classes):
        for s in seeds:
            noise = np.random.default_rng([seed, int(index), s])
            row = {"index": int(index), "arch": TSS.arch(int(index)), "iso": int(index), "seed": s}
            for e in EPOCHS:
                acc = min(1.0, 0.1 + 0.8 * quality[i] * (1 - np.exp(-e / 3)) + 0.02 * noise.standard_normal())
                point = {c: 0.0 for c in POINT_COLUMNS}
                point.update(acc=acc, pre_ECE_15=0.02 + 0.1 * gap[i] * e / 8 + 0.01 * noise.random(),
                             val_acc=acc + 0.01 * noise.standard_normal(), val_ECE_15=0.02 + 0.1 * gap[i] * e / 8,
                             cpu_seconds=speed[i] * e)
                row.update({curve_column(e, c): v for c, v in point.items()})
            row["acc"], row["pre_ECE_15"] = row["e8_acc"], row["e8_pre_ECE_15"]
            rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def curves_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "curves.csv"
    curve_frame().to_csv(path, index=False)
    return path


def _search(path, **kw):
    from calnas.api import search

    return search(str(path), "acc,ece", **{"budget": 60, "seed": 0, **kw})


def test_simulation_is_deterministic_and_charges_what_the_table_measured(curves_csv):
    table = CurveTable(pd.read_csv(curves_csv))
    a = _search(curves_csv, early_stopping="asha", eta=2, simulated_workers=4)
    b = _search(curves_csv, early_stopping="asha", eta=2, simulated_workers=4)
    assert a.trials.equals(b.trials)
    trials = a.trials
    assert set(trials["stopped"]) <= {"pruned", "completed"} and (trials["stopped"] == "pruned").any()
    for row in trials.itertuples():
        assert row.train_seconds == pytest.approx(table.metrics(row.index, row.epochs)["cpu_seconds"])
        assert (row.stopped == "completed") == (row.epochs == 8)
    sim = a.info["simulation"]
    assert a.info["epochs_trained"] == sim["epochs_trained"] == int(trials["epochs"].sum())
    assert sim["train_seconds"] == pytest.approx(trials["train_seconds"].sum())
    # four workers share the clock: it ends between a quarter of the charges and all of them
    assert sim["train_seconds"] / 4 <= sim["simulated_clock"] + 1e-9 <= sim["train_seconds"]
    assert trials["train_seconds_total"].max() == pytest.approx(sim["train_seconds"])
    assert sum(sim["rung_histogram"].values()) == len(trials) == 60
    ordered = trials.sort_values("sim_end")
    assert (np.diff(ordered["hypervolume_at_end"].to_numpy()) >= -1e-12).all()


def test_early_stopping_trains_fewer_epochs_than_full_fidelity_for_the_same_architectures_started(curves_csv):
    full = _search(curves_csv, simulated_workers=2)
    asha = _search(curves_csv, early_stopping="asha", eta=2, simulated_workers=2)
    hyper = _search(curves_csv, early_stopping="hyperband", eta=2, simulated_workers=2)
    assert (full.trials["stopped"] == "completed").all() and full.info["epochs_trained"] == 60 * 8
    assert asha.info["epochs_trained"] < hyper.info["epochs_trained"] < full.info["epochs_trained"]
    assert full.info["simulation"]["early_stopping"] == "none"


def test_the_figures_show_hypervolume_against_time_and_the_rung_histogram(curves_csv, tmp_path):
    from calnas.plots import hypervolume_spec, rung_spec

    asha = _search(curves_csv, early_stopping="asha", eta=2, simulated_workers=4)
    panels = hypervolume_spec(asha).panels
    assert [p.xlabel for p in panels] == ["evaluations", "simulated wall-clock (s)", "training seconds spent"]
    ordered = asha.trials.sort_values("sim_end", kind="stable")
    np.testing.assert_array_equal(panels[1].series[0].x, ordered["sim_end"].to_numpy())
    np.testing.assert_array_equal(panels[2].series[0].y, ordered["hypervolume_at_end"].to_numpy())
    bars = {s.style: dict(zip(s.x, s.y)) for s in rung_spec(asha).panels[0].series}
    ticks = dict(rung_spec(asha).panels[0].xticks)
    counted = {int(ticks[x]): n for style in bars for x, n in bars[style].items()}
    assert counted == {int(e): n for e, n in asha.info["simulation"]["rung_histogram"].items() if n}
    assert sum(bars["completed"].values()) == (asha.trials["stopped"] == "completed").sum()
    paths = asha.save(tmp_path / "a")
    assert paths["rung_plot"].name == "rungs.png" and paths["rung_plot"].stat().st_size > 0
    # a full-fidelity search has no rungs: no figure, and none left from an earlier search there
    full = _search(curves_csv, simulated_workers=2)
    assert rung_spec(full) is None and "rung_plot" not in full.save(tmp_path / "a")
    assert not (tmp_path / "a" / "rungs.png").exists()


def test_budget_epochs_stops_the_search(curves_csv):
    result = _search(curves_csv, budget=200, early_stopping="asha", eta=2, budget_epochs=100, simulated_workers=3)
    assert 100 <= result.info["epochs_trained"] < 100 + 3 * 8
    assert result.evaluations < 200


def test_fidelity_errors_are_one_line_and_before_any_work(curves_csv, tmp_path):
    from calnas.api import search

    with pytest.raises(UserError, match="rungs at epochs 3"):
        _search(curves_csv, early_stopping="asha", eta=3)
    with pytest.raises(UserError, match="unknown rung metric"):
        _search(curves_csv, early_stopping="asha", rung_metric="val_acc,bogus")
    with pytest.raises(UserError, match="unknown early stopping"):
        _search(curves_csv, early_stopping="sometimes")
    with pytest.raises(UserError, match="min_epochs"):
        _search(curves_csv, early_stopping="asha", min_epochs=8)
    plain = tmp_path / "plain.csv"
    pd.read_csv(curves_csv).query("seed == 0").drop(columns="seed").to_csv(plain, index=False)
    with pytest.raises(UserError, match="no learning curves"):
        search(str(plain), "acc,ece", budget=5, early_stopping="asha")


def test_a_curve_table_search_reports_its_noise_ceiling(curves_csv):
    result = _search(curves_csv, budget=30)
    ceiling = result.info["noise_ceiling"]
    assert ceiling["pairs"] == 2 and 0 < ceiling["min"] <= ceiling["median"] <= ceiling["max"] <= 1


def test_cli_writes_the_epochs_and_stops_of_every_trial(curves_csv, tmp_path, run_cli):
    out = tmp_path / "out"
    result = run_cli("search", "--benchmark", str(curves_csv), "--objective", "acc,ece", "--budget", "40",
                     "--early-stopping", "asha", "--eta", "2", "--simulated-workers", "4", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "noise ceiling" in result.stdout and "simulated asha on 4 workers" in result.stdout
    trials = pd.read_csv(out / "trials.csv")
    assert {"epochs", "stopped", "train_seconds", "sim_end", "train_seconds_total", "hypervolume_at_end"} <= set(trials)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_trained"] == int(trials["epochs"].sum())
    bad = run_cli("search", "--benchmark", str(curves_csv), "--eta", "3", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "applies with --early-stopping" in bad.stderr


# -- a simulated search writes its study as a table search does (issue 24) --------------------------

def _sim_cli(capsys, curves_csv, url, out, *extra):
    from tests.test_hardening import cli

    return cli(capsys, "search", "--benchmark", curves_csv, "--objective", "acc,ece", "--budget", 12,
               "--early-stopping", "asha", "--eta", 2, "--simulated-workers", 3, "--storage", url, "--out", out,
               "--json", *extra)


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_study_a_simulated_search_refuses_is_left_byte_for_byte(capsys, curves_csv, tmp_path, kind):
    import hashlib

    import optuna

    from tests.test_hardening import refused

    path = tmp_path / ("s.db" if kind == "sqlite" else "s.log")
    url = f"{kind}:///{path}"
    code, _, err = _sim_cli(capsys, curves_csv, url, tmp_path / "o")
    assert code == 0, err
    # a plain-Optuna study holding no trials but a simulation's totals: refused before calnas stamps it
    from calnas.storage import open_storage

    optuna.create_study(storage=open_storage(url), study_name="p", directions=["maximize", "minimize"]).set_user_attr(
        "calnas_simulation", {"clock": 1.0})
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    for name in ("calnas", "p"):
        refused(capsys, "search", "--benchmark", curves_csv, "--objective", "acc,ece", "--budget", 12,
                "--early-stopping", "asha", "--eta", 2, "--storage", url, "--study-name", name,
                "--out", tmp_path / f"o-{name}", match="already holds trials")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert "calnas" not in optuna.load_study(study_name="p", storage=open_storage(url, read_only=True)).user_attrs


def test_a_simulated_search_records_its_run_like_any_search(curves_csv, tmp_path):
    result = _search(curves_csv, budget=12, early_stopping="asha", eta=2, simulated_workers=3,
                     storage=f"sqlite:///{tmp_path / 's.db'}")
    (run,) = result.info["runs"]
    assert run["held"] == 0 and run["workers"] == 1 and run["budget"] == 12
    assert run["fidelity"]["simulated_workers"] == 3 and run["fidelity"]["early_stopping"] == "asha"


def test_a_full_disk_during_a_simulated_search_is_one_line(capsys, curves_csv, tmp_path, monkeypatch):
    from tests.test_hardening import refused
    from tests.test_study_integrity import _full_disk_after

    log = tmp_path / "s.log"
    with monkeypatch.context() as patch:
        _full_disk_after(patch, 6_000)  # the study is created, then the disk fills midway through a trial
        refused(capsys, "search", "--benchmark", curves_csv, "--objective", "acc,ece", "--budget", 40,
                "--early-stopping", "asha", "--eta", 2, "--simulated-workers", 3, "--storage", f"journal:///{log}",
                "--out", tmp_path / "o", match="cannot write to storage")
    assert log.read_bytes().endswith(b"\n")
    with monkeypatch.context() as patch:  # the library: a UserError naming the storage and that the study is kept
        _full_disk_after(patch, 6_000)
        with pytest.raises(UserError, match=r"cannot write to storage .*s2\.log.*No space left.*the study is kept"):
            _search(curves_csv, budget=40, early_stopping="asha", eta=2, storage=f"journal:///{tmp_path / 's2.log'}")
