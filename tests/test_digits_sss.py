"""The shipped size-space table `digits-sss`: complete, listed, searchable, and re-trainable."""

from __future__ import annotations

import json

import numpy as np
import pytest

import calnas
from calnas.metrics import PANEL_COLUMNS
from calnas.spaces import SSS
from calnas.tables import space_costs

from conftest import BUILD_CPU, on_build_machine

@pytest.fixture(scope="module")
def table():
    return calnas.load_benchmark("digits-sss")


def test_the_table_covers_the_size_space_with_the_full_panel_and_costs(table):
    frame = table.frame
    assert table.space is SSS and table.dataset == "digits" and table.source == "embedded"
    assert len(frame) == SSS.size and sorted(frame.index) == list(range(SSS.size))
    assert set(PANEL_COLUMNS) <= set(frame.columns)
    assert frame["acc"].between(0, 1).all() and frame["pre_ECE_15"].between(0, 1).all()
    assert (frame["arch"] == [SSS.arch(i) for i in frame.index]).all()
    costs = space_costs(SSS, "digits")  # calnas.cost's NATS-Bench network, as for digits-tss
    for cost in ("params", "flops"):
        np.testing.assert_array_equal(frame[cost].to_numpy(), costs[cost])
    # a real spread, not saturated: what the README states
    assert frame["acc"].quantile(0.9) - frame["acc"].quantile(0.1) > 0.2
    assert frame["pre_ECE_15"].quantile(0.9) > 2 * frame["pre_ECE_15"].quantile(0.1)


def test_cli_lists_evaluates_and_searches_it(run_cli, tmp_path):
    listed = run_cli("benchmarks", "--json")
    assert listed.returncode == 0, listed.stderr
    row = next(r for r in json.loads(listed.stdout) if r["name"] == "digits-sss")
    assert row["space"] == "sss" and row["rows"] == SSS.size

    shown = run_cli("evaluate", "8:16:32:64:64", "--benchmark", "digits-sss", "--json")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["index"] == SSS.index("8:16:32:64:64")
    assert set(PANEL_COLUMNS) <= set(record["metrics"]) and all(np.isfinite(record["metrics"][c]) for c in ("acc", "pre_ECE_15", "post_ECE_15"))

    searched = run_cli("search", "--benchmark", "digits-sss", "--objective", "acc,ece", "--budget", "60",
                       "--out", tmp_path / "s", "--no-plot", "--json")
    assert searched.returncode == 0, searched.stderr
    summary = json.loads(searched.stdout)
    assert summary["covers_space"] is True and summary["evaluations"] == 60
    assert 0 < summary["hypervolume_ratio"] <= 1


def test_shipped_rows_retrain_to_the_same_values(table):
    """One code path: `calnas evaluate --live` with the shipped protocol and seed gives the rows
    the build wrote (compared at the shipped 6 significant digits)."""
    pytest.importorskip("torch")
    from calnas.live.build import build_order
    from calnas.live.evaluate import evaluate_live
    from calnas.live.protocol import DIGITS_SSS

    order = build_order(SSS)
    checked = [order[0], order[1], order[-1]]  # built in the first session and in the last
    mismatched = []
    for index in checked:
        metrics = evaluate_live(SSS.arch(index), device="cpu", seed=0, protocol=DIGITS_SSS).record["metrics"]
        shipped = table.frame.loc[index]
        mismatched += [(index, c) for c in PANEL_COLUMNS
                       if not (np.isnan(metrics[c]) and np.isnan(shipped[c]))
                       and float(f"{metrics[c]:.6g}") != shipped[c]]
    if mismatched and not on_build_machine():
        pytest.skip(f"this CPU is not the build machine's {BUILD_CPU}; {len(mismatched)} values differ in the last digits")
    assert not mismatched
