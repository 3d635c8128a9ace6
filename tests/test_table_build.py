"""Table building: order, crash-safe appends, resume, shards, workers, shipping."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("xautodl")

from calnas.errors import UserError  # noqa: E402
from calnas.live.build import (  # noqa: E402
    EXTRA_COLUMNS,
    build_order,
    build_table,
    parse_shard,
    read_done,
    select,
    table_columns,
)
from calnas.live.protocol import Protocol  # noqa: E402
from calnas.live.ship import ship_table  # noqa: E402
from calnas.metrics import PANEL_COLUMNS  # noqa: E402
from calnas.spaces import SSS, TSS  # noqa: E402

TINY = Protocol(dataset="digits", channels=4, cells=1, epochs=1, batch_size=32, train_size=48, val_size=30,
                test_size=60, threads=1)


def build(out, **kw):
    return build_table(space=TSS, protocol=TINY, out=out, **kw)


def test_tss_order_is_one_fixed_shuffle_of_the_class_representatives():
    from calnas.tables import tss_meta

    order = build_order(TSS)
    reps = set(tss_meta()["iso"])
    assert len(order) == len(reps) == 6466 and set(order) == reps
    assert order == build_order(TSS)
    assert order[:50] != sorted(order[:50])  # shuffled, so --limit samples the space
    assert len(build_order(SSS)) == 32768


def test_limit_then_shards_partition_the_selection():
    order = list(range(100, 120))
    assert select(order, limit=5) == [100, 101, 102, 103, 104]
    parts = [select(order, limit=10, shard=parse_shard(f"{i}/3")) for i in (1, 2, 3)]
    assert sorted(sum(parts, [])) == order[:10] and parts[0] == [100, 103, 106, 109]
    for bad in ("0/2", "3/2", "x", "1/0"):
        with pytest.raises(UserError, match="--shard"):
            parse_shard(bad)


@pytest.mark.slow  # five CLI builds (40 s); the curve build tests resume in the default run
def test_cli_build_then_resume_keeps_the_first_rows(tmp_path, run_cli):
    out = tmp_path / "t.csv"
    first = run_cli("table", "build", "--space", "tss", "--dataset", "digits", "--epochs", "1", "--limit", "2",
                    "--out", out)
    assert first.returncode == 0, first.stderr
    before = out.read_bytes()
    second = run_cli("table", "build", "--space", "tss", "--dataset", "digits", "--epochs", "1", "--limit", "3",
                     "--out", out, "--resume")
    assert second.returncode == 0, second.stderr
    assert "2 architectures already present" in second.stderr
    after = out.read_bytes()
    assert after.startswith(before)
    frame = pd.read_csv(out)
    assert len(frame) == 3 and list(frame["index"]) == build_order(TSS)[:3]
    assert list(frame.columns) == table_columns(PANEL_COLUMNS)
    assert (frame["iso"] == frame["index"]).all() and (frame["config"] == frame["index"]).all()
    assert (frame["epochs"] == 1).all() and frame["acc"].between(0, 1).all()
    protocol = json.loads((tmp_path / "t.csv.protocol.json").read_text())
    assert protocol["protocol"]["epochs"] == 1 and protocol["protocol"]["channels"] == 8

    again = run_cli("table", "build", "--epochs", "1", "--limit", "3", "--out", out)
    assert again.returncode == 2 and "pass --resume" in again.stderr and len(again.stderr.splitlines()) == 1
    other = run_cli("table", "build", "--epochs", "2", "--limit", "3", "--out", out, "--resume")
    assert other.returncode == 2 and "different protocol" in other.stderr
    unknown = run_cli("table", "build", "--dataset", "svhn", "--out", tmp_path / "u.csv")
    assert unknown.returncode == 2 and "unknown dataset 'svhn'" in unknown.stderr
    no_root = run_cli("table", "build", "--dataset", "cifar10", "--out", tmp_path / "u.csv")
    assert no_root.returncode == 2 and "--data-root" in no_root.stderr


def test_torn_last_line_is_dropped_and_redone(tmp_path):
    out = tmp_path / "b.csv"
    build(out, limit=2)
    complete = out.read_bytes()
    with open(out, "ab") as fh:  # what a kill in the middle of a write leaves behind
        fh.write(b"1234,1234,|nor_conv_3x3~0|+|no")
    assert read_done(out, table_columns(PANEL_COLUMNS)) == set(build_order(TSS)[:2])
    assert out.read_bytes() == complete
    with open(out, "ab") as fh:
        fh.write(b"999,999,|skip")
    summary = build(out, limit=3, resume=True)
    assert (summary.skipped, summary.written) == (2, 1)
    assert out.read_bytes().startswith(complete)
    assert len(pd.read_csv(out)) == 3


def test_rows_do_not_depend_on_workers_or_shards(tmp_path):
    serial = tmp_path / "serial.csv"
    build(serial, limit=4)
    parallel = tmp_path / "parallel.csv"
    build(parallel, limit=4, workers=2)
    shards = [tmp_path / f"s{i}.csv" for i in (1, 2)]
    for i, path in enumerate(shards, start=1):
        build(path, limit=4, shard=(i, 2))
    timing = ["train_seconds", "eval_seconds"]

    def frame(paths):
        rows = pd.concat([pd.read_csv(p) for p in paths]).drop(columns=timing)
        return rows.sort_values("index").reset_index(drop=True)

    expected = frame([serial])
    pd.testing.assert_frame_equal(frame([parallel]), expected)
    pd.testing.assert_frame_equal(frame(shards), expected)
    assert set(pd.read_csv(shards[0])["index"]).isdisjoint(pd.read_csv(shards[1])["index"])


def test_ship_sorts_rounds_and_is_reproducible(tmp_path):
    out = tmp_path / "b.csv"
    build(out, limit=3)
    first = ship_table(out, tmp_path / "a.csv.gz")
    ship_table(out, tmp_path / "b.csv.gz")
    assert (tmp_path / "a.csv.gz").read_bytes() == (tmp_path / "b.csv.gz").read_bytes()
    shipped = pd.read_csv(tmp_path / "a.csv.gz")
    raw = pd.read_csv(out).sort_values("index").reset_index(drop=True)
    assert list(shipped["index"]) == sorted(raw["index"])
    pd.testing.assert_series_equal(shipped["acc"], raw["acc"], rtol=1e-6)
    with gzip.open(tmp_path / "a.csv.gz", "rt") as fh:
        fh.readline()
        ece_text = fh.readline().split(",")[9]  # pre_ECE_15
    assert len(ece_text.replace("0.", "", 1).lstrip("0").replace("e-", "")) <= 8
    assert first["rows"] == 3 and first["acc"]["min"] <= first["acc"]["max"]
    with pytest.raises(UserError, match="expected 6466"):
        ship_table(out, tmp_path / "c.csv.gz", expected_rows=6466)


def test_ship_in_parts_writes_whole_row_slices(tmp_path, run_cli):
    out = tmp_path / "b.csv"
    build(out, limit=3)
    whole = ship_table(out, tmp_path / "t.csv.gz")
    done = run_cli("table", "ship", out, tmp_path / "t.csv.gz", "--parts", "2")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    parts = [tmp_path / "t-1.csv.gz", tmp_path / "t-2.csv.gz"]
    assert summary["files"] == {str(p): p.stat().st_size for p in parts}
    assert {k: v for k, v in summary.items() if k != "files"} == {k: v for k, v in whole.items() if k != "files"}
    slices = [pd.read_csv(p) for p in parts]
    assert [len(f) for f in slices] == [2, 1]  # each a whole CSV with the header, in index order
    joined = pd.concat(slices, ignore_index=True)
    pd.testing.assert_frame_equal(joined, pd.read_csv(tmp_path / "t.csv.gz"))
    for bad, message in (("0", "between 1 and"), ("4", "more than the build's 3 rows")):
        refused = run_cli("table", "ship", out, tmp_path / "u.csv.gz", "--parts", bad)
        assert refused.returncode == 2 and message in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert not list(tmp_path.glob("u*"))


def test_calnas_table_loader_reads_a_build(tmp_path):
    from calnas.tables import load_csv

    out = tmp_path / "digits_tss.csv"
    build(out, limit=2)
    table = load_csv(out, dataset="digits")
    rep = build_order(TSS)[0]
    assert table.row(rep)["acc"] == pytest.approx(pd.read_csv(out).set_index("index").loc[rep, "acc"])
    for column in EXTRA_COLUMNS[:2]:
        assert column in pd.read_csv(out).columns


def test_evaluate_live_reproduces_a_table_row(tmp_path):
    from calnas.live.evaluate import evaluate_live

    out = tmp_path / "b.csv"
    build(out, limit=1)
    row = pd.read_csv(out).iloc[0]
    live = evaluate_live(int(row["index"]), device="cpu", seed=0, protocol=TINY).record["metrics"]
    for column in ("acc", "pre_ECE_15", "post_ECE_15", "pre_NLL", "temperature", "AURC"):
        assert live[column] == row[column], column  # repr-written floats read back exactly


def test_sss_digits_build_uses_its_protocol_and_is_deterministic(tmp_path, run_cli):
    from calnas.live.protocol import DIGITS_SSS

    # The CLI (default protocol, shortened to 1 epoch) and an in-process build give the same rows.
    cli = tmp_path / "cli.csv"
    done = run_cli("table", "build", "--space", "sss", "--dataset", "digits", "--epochs", "1", "--limit", "2",
                   "--out", cli)
    assert done.returncode == 0, done.stderr
    recorded = json.loads((tmp_path / "cli.csv.protocol.json").read_text())
    assert recorded["space"] == "sss" and recorded["protocol"] == {**DIGITS_SSS.settings(), "epochs": 1}
    again = tmp_path / "again.csv"
    build_table(space=SSS, protocol=DIGITS_SSS.with_overrides(epochs=1), out=again, limit=2)
    timing = ["train_seconds", "eval_seconds"]
    first, second = (pd.read_csv(p).drop(columns=timing).sort_values("index").reset_index(drop=True)
                     for p in (cli, again))
    pd.testing.assert_frame_equal(first, second)
    assert sorted(first["index"]) == sorted(build_order(SSS)[:2])
    assert first["channels"].isna().all() and first["cells"].isna().all()  # SSS widths are the arch
    assert (first["train_size"] == 150).all() and first["arch"].str.count(":").eq(4).all()


def test_summary_correlates_accuracy_with_size():
    from calnas.live.ship import summarise
    from calnas.spaces import SSS
    from calnas.tables import space_costs

    indices = [0, 9, 300, 32767]  # summed widths 40, 56, 144, 320
    frame = pd.DataFrame({"index": indices, "arch": [SSS.arch(i) for i in indices],
                          "acc": [0.1, 0.2, 0.3, 0.4]})
    summary = summarise(frame)
    assert summary["spearman_acc_width"] == pytest.approx(1.0)
    params = space_costs(SSS, "digits")["params"][indices]
    expected = pd.Series(frame["acc"]).corr(pd.Series(params), method="spearman")
    assert summary["spearman_acc_params"] == pytest.approx(expected)
