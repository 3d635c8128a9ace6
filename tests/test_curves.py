"""Curve tables: recording curves leaves the training alone; the curve build; the reader."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("xautodl")

from calnas.curve_layout import POINT_COLUMNS, curve_column  # noqa: E402
from calnas.curve_table import CurveTable, seed_mean_frame  # noqa: E402
from calnas.errors import UserError  # noqa: E402
from calnas.live.build import build_order, build_table  # noqa: E402
from calnas.live.curves import CurveSpec, geometric_epochs  # noqa: E402
from calnas.live.protocol import Protocol  # noqa: E402
from calnas.spaces import TSS  # noqa: E402

TINY = Protocol(dataset="digits", channels=4, cells=1, epochs=3, batch_size=16, train_size=48, val_size=30,
                test_size=60, threads=1)


@pytest.fixture(scope="module")
def curve_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("curves") / "c.csv"
    build_table(space=TSS, protocol=TINY, out=out, limit=2, curves=CurveSpec((1, 3), seeds=(0, 2)))
    return out


def test_geometric_epochs_start_at_one_and_end_at_the_last():
    assert geometric_epochs(20) == (1, 2, 4, 8, 16, 20)
    assert geometric_epochs(16) == (1, 2, 4, 8, 16)
    assert geometric_epochs(1) == (1,)
    assert geometric_epochs(10, ratio=3) == (1, 3, 9, 10)


def test_recording_curves_changes_no_final_number():
    """Evaluation at intermediate epochs must not touch the training state or random streams:
    the final panel with a curve recorded at every epoch is the panel without one, bit for bit."""
    import torch

    from calnas.live.evaluate import evaluate_prepared, load_protocol_splits

    splits = load_protocol_splits(TINY, seed=0)
    arch = TSS.arch(build_order(TSS)[0])
    for seed in (0, 1):
        plain = evaluate_prepared(arch, TSS, TINY, splits, device=torch.device("cpu"), seed=seed).record
        curved = evaluate_prepared(arch, TSS, TINY, splits, device=torch.device("cpu"), seed=seed,
                                   curve_epochs=(1, 2, 3)).record
        assert json.dumps(plain["metrics"]) == json.dumps(curved["metrics"])
        assert plain["training"]["final_train_loss"] == curved["training"]["final_train_loss"]
        last = curved["curve"][-1]
        assert [p["epoch"] for p in curved["curve"]] == [1, 2, 3]
        for column in ("acc", "pre_ECE_15", "post_ECE_15", "temperature"):
            assert last[column] == pytest.approx(curved["metrics"][column], rel=1e-12)
        assert last["pre_NLL"] == pytest.approx(curved["metrics"]["pre_NLL"], rel=1e-9)
        seconds = [p["cpu_seconds"] for p in curved["curve"]]
        assert seconds == sorted(seconds) and seconds[0] > 0


def test_curve_build_rows_are_keyed_by_architecture_and_seed(curve_build):
    frame = pd.read_csv(curve_build)
    order = build_order(TSS)[:2]
    assert list(zip(frame["index"], frame["seed"])) == [(order[0], 0), (order[0], 2), (order[1], 0), (order[1], 2)]
    for column in POINT_COLUMNS:
        assert curve_column(1, column) in frame.columns and curve_column(3, column) in frame.columns
    assert (frame["e3_acc"] == frame["acc"]).all()  # the last point is the row's panel
    meta = json.loads(curve_build.with_name("c.csv.protocol.json").read_text())
    assert meta["curves"]["epochs"] == [1, 3] and meta["curves"]["seeds"] == [0, 2]


def test_curve_build_row_matches_a_plain_build_of_that_seed(curve_build, tmp_path):
    """Seed 2's row of the curve build is the row a plain build trains with seed 2 on the split
    of seed 0 (the curve build's split) - here via evaluate_prepared, the plain build's path."""
    import torch

    from calnas.live.evaluate import evaluate_prepared, load_protocol_splits

    frame = pd.read_csv(curve_build)
    index = build_order(TSS)[0]
    rec = evaluate_prepared(TSS.arch(index), TSS, TINY, load_protocol_splits(TINY, seed=0),
                            device=torch.device("cpu"), seed=2).record
    row = frame[(frame["index"] == index) & (frame["seed"] == 2)].iloc[0]
    for column in ("acc", "pre_ECE_15", "post_ECE_15", "pre_NLL", "AURC"):
        assert row[column] == pytest.approx(rec["metrics"][column], rel=1e-12)


def test_curve_build_resumes_by_seed_and_refuses_another_spec(curve_build, tmp_path):
    out = tmp_path / "c.csv"
    out.write_bytes(curve_build.read_bytes())
    out.with_name("c.csv.protocol.json").write_bytes(curve_build.with_name("c.csv.protocol.json").read_bytes())
    data = out.read_bytes()
    out.write_bytes(data[:data.rstrip(b"\n").rfind(b"\n") + 1] + b"123,torn")  # the last row lost, a torn tail
    summary = build_table(space=TSS, protocol=TINY, out=out, limit=2, curves=CurveSpec((1, 3), seeds=(0, 2)),
                          resume=True)
    assert (summary.planned, summary.skipped, summary.written) == (4, 3, 1)
    assert pd.read_csv(out)[["index", "seed"]].equals(pd.read_csv(curve_build)[["index", "seed"]])
    before = out.read_bytes()
    with pytest.raises(UserError, match="different protocol"):
        build_table(space=TSS, protocol=TINY, out=out, limit=2, curves=CurveSpec((1, 3), seeds=(0, 1)), resume=True)
    with pytest.raises(UserError, match="last epoch"):
        build_table(space=TSS, protocol=TINY, out=tmp_path / "d.csv", curves=CurveSpec((1, 2)))
    assert out.read_bytes() == before


def test_reader_gives_an_epoch_of_a_seed_or_the_seed_mean(curve_build):
    frame = pd.read_csv(curve_build)
    table = CurveTable(frame)
    index = build_order(TSS)[1]
    assert table.epochs == (1, 3) and table.seeds == (0, 2) and len(table) == 2
    rows = frame[frame["index"] == index]
    one = table.metrics(index, 1, seed=2)
    assert one["acc"] == rows[rows["seed"] == 2]["e1_acc"].iloc[0]
    mean = table.metrics(TSS.arch(index), 3)
    assert mean["post_ECE_15"] == pytest.approx(rows["e3_post_ECE_15"].mean())
    assert set(mean) == set(POINT_COLUMNS)
    assert list(table.curve(index, seed=0).index) == [1, 3]
    assert table.column_at("val_NLL", 1).loc[index] == pytest.approx(rows["e1_val_NLL"].mean())
    for bad_epoch in (2, 0, "3", True):
        with pytest.raises(UserError, match="holds epochs 1, 3"):
            table.metrics(index, bad_epoch)
    with pytest.raises(UserError, match="holds seeds 0, 2"):
        table.metrics(index, 3, seed=1)
    with pytest.raises(UserError, match="not in"):
        table.metrics(build_order(TSS)[5], 3)


def test_final_view_is_an_ordinary_table_every_command_reads(curve_build, run_cli):
    from calnas.tables import load_csv

    frame = pd.read_csv(curve_build)
    table = load_csv(curve_build)
    index = build_order(TSS)[0]
    rows = frame[frame["index"] == index]
    assert table.row(index)["acc"] == pytest.approx(rows["acc"].mean())
    assert table.row(index)["acc_std"] == pytest.approx(rows["acc"].std(ddof=1))
    assert table.row(index)["seeds"] == 2
    view = seed_mean_frame(frame)
    assert len(view) == 2 and np.allclose(view["pre_ECE_15"], frame.groupby("index")["pre_ECE_15"].mean())
    result = run_cli("evaluate", str(index), "--benchmark", str(curve_build), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["metrics"]["acc"] == pytest.approx(rows["acc"].mean())


def test_cli_curve_options_are_checked_before_any_work(tmp_path, run_cli):
    out = tmp_path / "x.csv"
    for args, message in ((["--seeds", "0,1"], "add --curves"),
                          (["--curves", "--seeds", "0,x"], "--seeds"),
                          (["--curves", "--epochs", "4", "--curve-epochs", "1,2"], "last epoch")):
        result = run_cli("table", "build", "--space", "tss", "--dataset", "digits", "--out", str(out), *args)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
        assert not out.exists()


def test_noise_ceiling_is_one_for_identical_seeds_and_below_for_disagreeing_ones(curve_build):
    from calnas.noise_ceiling import noise_ceiling
    from calnas.objectives.spec import parse
    from calnas.tables import load_csv

    frame = pd.read_csv(curve_build)
    spec = parse("acc,ece", load_csv(curve_build))
    same = frame.copy()
    same.loc[same["seed"] == 2, ["acc", "pre_ECE_15"]] = same.loc[same["seed"] == 0, ["acc", "pre_ECE_15"]].to_numpy()
    ceiling = noise_ceiling(CurveTable(same), spec)
    assert ceiling["pairs"] == 2 and ceiling["median"] == ceiling["min"] == pytest.approx(1.0)
    # seed 2 ranks the two architectures the other way round on both objectives: each seed's
    # front is the architecture the other seed puts last, a ratio below one
    crossed = frame.copy()
    a, b = (crossed["seed"] == 0), (crossed["seed"] == 2)
    crossed.loc[a, ["acc", "pre_ECE_15"]] = [[0.9, 0.05], [0.5, 0.20]]
    crossed.loc[b, ["acc", "pre_ECE_15"]] = [[0.5, 0.20], [0.9, 0.05]]
    ceiling = noise_ceiling(CurveTable(crossed), spec)
    assert ceiling["max"] < 0.5
    assert noise_ceiling(CurveTable(frame[frame["seed"] == 0]), spec) is None


def test_spare_training_pool_images_join_the_test_split_only_when_asked():
    from calnas.live.datasets import DIGITS_POOL_SIZES, load_splits

    plain = load_splits("digits", seed=0, train_size=75)
    spare = load_splits("digits", seed=0, train_size=75, spare_to_test=True)
    assert len(plain.test_y) == 1097 and len(spare.test_y) == 1097 + DIGITS_POOL_SIZES["train"] - 75
    assert np.array_equal(spare.test_x[:1097], plain.test_x) and np.array_equal(spare.train_x, plain.train_x)
    # the added images are the unused pool images: none of them is trained on or validates
    train_rows = {r.tobytes() for r in spare.train_x}
    assert not any(r.tobytes() in train_rows for r in spare.test_x[1097:])
    with pytest.raises(UserError, match="digits"):
        load_splits("cifar10", data_root=".", spare_to_test=True)


def test_ship_keeps_every_seed_of_a_curve_build_and_never_writes_over_its_input(curve_build, tmp_path):
    import hashlib

    from calnas.live.ship import ship_table

    out = tmp_path / "curves.csv.gz"
    summary = ship_table(curve_build, out)
    shipped = pd.read_csv(out)
    assert summary["rows"] == len(shipped) == 4 and set(shipped["seed"]) == {0, 2}
    assert CurveTable(shipped).epochs == (1, 3)
    parts = ship_table(curve_build, tmp_path / "p.csv.gz", parts=3)
    assert [len(pd.read_csv(f)) for f in parts["files"]] == [2, 1, 1]  # no empty part
    copy = tmp_path / "same.csv"
    copy.write_bytes(curve_build.read_bytes())
    before = hashlib.sha256(copy.read_bytes()).hexdigest()
    with pytest.raises(UserError, match="build file itself"):
        ship_table(copy, copy)
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == before


def test_ship_refuses_a_truncated_or_fake_gzip_build_in_one_line(curve_build, tmp_path, run_cli):
    import gzip as gz

    truncated = tmp_path / "t.csv.gz"
    truncated.write_bytes(gz.compress(curve_build.read_bytes())[:-40])
    fake = tmp_path / "f.csv.gz"
    fake.write_bytes(b"not gzip at all\n1,2,3\n")
    for path in (truncated, fake):
        result = run_cli("table", "ship", str(path), str(tmp_path / "out.csv.gz"))
        assert result.returncode == 2, result.stderr
        assert "not a calnas build table" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.csv.gz").exists()
