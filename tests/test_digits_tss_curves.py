"""The shipped curve table `digits-tss-curves`: every isomorphism class of the topology space,
three training seeds, learning curves at the curve epochs; its final-epoch seed-mean view is an
ordinary table that every command reads; it is in the over-confident regime it was built for."""

from __future__ import annotations

import json

import numpy as np
import pytest

import calnas
from calnas.curve_layout import CURVE_SEEDS
from calnas.curve_table import load_curves
from calnas.live.protocol import DIGITS_TSS_CURVES
from calnas.spaces import TSS
from calnas.tables import embedded_benchmarks, tss_meta

NAME = "digits-tss-curves"
pytestmark = pytest.mark.skipif(NAME not in embedded_benchmarks(), reason="digits-tss-curves is not shipped yet")


@pytest.fixture(scope="module")
def curves():
    return load_curves(NAME)


@pytest.fixture(scope="module")
def table():
    return calnas.load_benchmark(NAME)


def test_every_class_has_three_seeds_at_every_curve_epoch(curves):
    classes = sorted(set(tss_meta()["iso"]))
    rows = curves.frame.reset_index()
    assert sorted(rows["index"].unique()) == classes
    assert rows.groupby("index")["seed"].apply(lambda s: tuple(sorted(s)) == tuple(CURVE_SEEDS)).all()
    assert curves.epochs[0] == 1 and curves.last_epoch == DIGITS_TSS_CURVES.epochs
    first = classes[0]
    for epoch in curves.epochs:
        point = curves.metrics(first, epoch, seed=CURVE_SEEDS[0])
        assert 0 <= point["acc"] <= 1 and np.isfinite(point["pre_ECE_15"])


def test_the_final_view_is_the_seed_mean_of_the_last_epoch(curves, table):
    assert table.space is TSS and table.source == "embedded" and len(table.frame) == TSS.size
    assert (table.frame["seeds"] == len(CURVE_SEEDS)).all()
    for index in (0, 1234, TSS.size - 1):
        cls = int(table.frame.loc[index, "iso"])
        per_seed = [curves.metrics(cls, curves.last_epoch, seed=s)["acc"] for s in CURVE_SEEDS]
        assert table.frame.loc[index, "acc"] == pytest.approx(np.mean(per_seed), abs=1e-6)
        assert table.frame.loc[index, "acc_std"] == pytest.approx(np.std(per_seed, ddof=1), abs=1e-6)


def test_its_networks_are_over_confident_and_unsaturated(table):
    """What the table was built for (docs/live.md, "The curve protocol"), on all of it."""
    classes = table.frame.drop_duplicates("iso")
    assert classes["temperature"].median() > 1 and (classes["temperature"] < 1).mean() < 1 / 3
    assert classes["acc"].quantile(0.9) - classes["acc"].quantile(0.1) >= 0.15


def test_cli_lists_it_and_simulates_early_stopping_on_it(run_cli, tmp_path):
    listed = run_cli("benchmarks", "--json")
    assert listed.returncode == 0, listed.stderr
    assert any(r["name"] == NAME and r["space"] == "tss" for r in json.loads(listed.stdout))
    searched = run_cli("search", "--benchmark", NAME, "--objective", "acc,ece", "--budget", "60",
                       "--early-stopping", "asha", "--simulated-workers", "4", "--out", tmp_path / "s",
                       "--no-plot", "--json")
    assert searched.returncode == 0, searched.stderr
    summary = json.loads(searched.stdout)
    assert summary["evaluations"] == 60 and 0 < summary["hypervolume_ratio"] <= 1


def test_it_is_the_embedded_default_and_a_plain_search_reads_its_curves(run_cli, tmp_path):
    """Without --benchmark a search runs on this table: its report carries the noise ceiling, and
    early stopping replays its curves (no --benchmark needed)."""
    from calnas.tables import default_benchmark

    assert default_benchmark() == NAME
    plain = run_cli("search", "--objective", "acc,ece", "--budget", "40", "--out", tmp_path / "p", "--no-plot",
                    "--json")
    assert plain.returncode == 0, plain.stderr
    summary = json.loads(plain.stdout)
    assert 0.5 < summary["noise_ceiling"]["min"] <= summary["noise_ceiling"]["median"] < 1
    stopped = calnas.search(objectives="acc,ece", budget=40, early_stopping="asha")
    assert stopped.info["noise_ceiling"] == summary["noise_ceiling"]
    assert stopped.evaluations == 40
