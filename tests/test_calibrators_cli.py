"""`calnas metrics --calibrator`, the calibrator columns in the objective language, best_post_ece,
and older table layouts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from calnas.calibrator_columns import CALIBRATOR_COLUMNS, CALIBRATOR_NAMES, column
from calnas.errors import UserError
from calnas.objectives import catalog, parse
from calnas.tables import table_from_frame
from test_calibrators import logit_set


@pytest.fixture()
def predictions(tmp_path):
    vz, vy, z, y = logit_set(11, 6)
    path = tmp_path / "p.npz"
    np.savez(path, logits=z, labels=y, val_logits=vz, val_labels=vy)
    return path


def test_metrics_calibrator_all_json_table_and_grid(predictions, tmp_path, run_cli):
    out = run_cli("metrics", predictions, "--calibrator", "all", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert list(got) == list(CALIBRATOR_NAMES)
    for name, entry in got.items():
        assert {"ECE_15", "cwCE_15", "NLL", "Brier", "acc", "AURC", "val_ECE_15"} <= set(entry), name
    assert got["temperature"]["temperature"] in np.arange(1, 101) / 10.0
    assert sum(got["ets"]["weights"]) == pytest.approx(1.0) and got["ets"]["acc"] == got["temperature"]["acc"]
    figure = tmp_path / "grid.png"
    shown = run_cli("metrics", predictions, "--calibrator", "dirichlet,isotonic", "--plot", figure)
    assert shown.returncode == 0, shown.stderr
    assert "dirichlet" in shown.stdout and "isotonic" in shown.stdout and "vector" not in shown.stdout
    assert figure.stat().st_size > 10_000
    bad = run_cli("metrics", predictions, "--calibrator", "platt")
    assert bad.returncode == 2 and "expected all or names among temperature" in bad.stderr


def test_metrics_calibrator_needs_a_fitting_split(tmp_path, run_cli):
    vz, vy, z, y = logit_set(12, 4)
    path = tmp_path / "test_only.npz"
    np.savez(path, logits=z, labels=y)
    refused = run_cli("metrics", path, "--calibrator", "all")
    assert refused.returncode == 2 and "val_logits/val_labels" in refused.stderr
    split = run_cli("metrics", path, "--calibrator", "temperature", "--study-split", "--json")
    assert split.returncode == 0, split.stderr
    from calnas.metrics import calibration_panel

    panel = calibration_panel(None, y, logits=z, study_split=True)
    assert json.loads(split.stdout)["temperature"]["ECE_15"] == pytest.approx(panel["post_ECE_15"], rel=1e-12)


def test_calibrator_names_resolve_in_the_objective_language():
    assert catalog.canonical_column("ece@dirichlet") == "post_ECE_15@dirichlet"
    assert catalog.canonical_column("post_nll@vector") == "post_NLL@vector"
    assert catalog.canonical_column("val_ece@isotonic") == "val_ECE_15@isotonic"
    assert catalog.canonical_column("accuracy@histogram") == "acc@histogram"
    assert catalog.canonical_column("ece@platt") is None
    assert catalog.direction("acc@matrix") == "maximize" and catalog.direction("post_ECE_15@ets") == "minimize"
    assert catalog.reference_range("post_NLL@vector", 10) == catalog.reference_range("post_NLL", 10)
    assert set(CALIBRATOR_COLUMNS) <= {catalog.canonical_column(c.lower()) for c in CALIBRATOR_COLUMNS}


def _table(rows: int = 40, seed: int = 0):
    from calnas.spaces import TSS

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"arch": [TSS.arch(i) for i in range(rows)], "acc": rng.uniform(0.5, 0.9, rows),
                          "pre_ECE_15": rng.uniform(0.05, 0.3, rows)})
    for name in CALIBRATOR_NAMES:
        for metric in ("ECE_15", "cwCE_15", "NLL", "Brier", "acc", "AURC"):
            frame[column(metric, name)] = rng.uniform(0.01, 0.2, rows)
        frame[column("ECE_15", name, "val")] = rng.uniform(0.01, 0.2, rows)
    return table_from_frame(frame, name="calibrated", dataset="digits")


def test_best_post_ece_takes_the_validation_choice_and_reports_its_test_value():
    from objectives import best_post

    table = _table()
    frame = table.frame
    spec = parse("acc,best_post_ece", table)
    values = spec.objectives[1].values(frame)
    val = frame[[column("ECE_15", c, "val") for c in CALIBRATOR_NAMES]].to_numpy()
    test = frame[[column("ECE_15", c) for c in CALIBRATOR_NAMES]].to_numpy()
    chosen = val.argmin(axis=1)
    assert np.array_equal(values, test[np.arange(len(frame)), chosen])
    assert best_post.chosen_names(frame) == [CALIBRATOR_NAMES[i] for i in chosen]
    # The test values never decide the choice.
    changed = frame.copy()
    changed[[column("ECE_15", c) for c in CALIBRATOR_NAMES]] = test[:, ::-1]
    assert best_post.chosen_names(changed) == best_post.chosen_names(frame)
    assert spec.objectives[1].direction == "minimize"


def test_objectives_on_a_table_without_the_columns_name_them():
    from calnas.tables import load_benchmark

    old = load_benchmark("digits-tss")
    with pytest.raises(UserError) as err:
        parse("acc,best_post_ece", old)
    message = str(err.value)
    assert "\n" not in message and "val_ECE_15@temperature" in message and "post_ECE_15@ets" in message
    with pytest.raises(UserError, match=r"post_ECE_15@dirichlet is not in digits-tss; tables built before"):
        parse("acc,ece@dirichlet", old)
    assert parse("acc,post_ece", old).objectives[1].column == "post_ECE_15"  # the old columns still work


def test_search_front_shows_each_members_calibrator(tmp_path):
    import calnas

    table = _table(60, seed=1)
    path = tmp_path / "calibrated_tss.csv"
    table.frame.reset_index().to_csv(path, index=False)
    result = calnas.search(str(path), "acc,best_post_ece", budget=60, seed=0)
    front = result.front
    assert "calibrator" in front.columns and set(front["calibrator"]) <= set(CALIBRATOR_NAMES)
    from objectives import best_post

    assert list(front["calibrator"]) == best_post.chosen_names(table.frame.loc[front["index"]])
    plain = calnas.search(str(path), "acc,post_ece@dirichlet", budget=10, seed=0)
    assert "calibrator" not in plain.front.columns and "post_ECE_15@dirichlet" in plain.front.columns


def test_file_columns_reads_every_older_layout(tmp_path):
    from calnas.live.build import NEWER_COLUMNS, file_columns, table_columns
    from calnas.metrics import PANEL_COLUMNS

    columns = table_columns(PANEL_COLUMNS)
    for dropped in ((), ("recipe",), CALIBRATOR_COLUMNS, NEWER_COLUMNS):
        layout = [c for c in columns if c not in dropped]
        path = tmp_path / "t.csv"
        path.write_text(",".join(layout) + "\n")
        assert file_columns(path, columns) == layout, dropped
    path.write_text(",".join(columns[:-1]) + "\n")  # a calibrator column missing alone: no layout of ours
    assert file_columns(path, columns) == columns


def test_a_build_started_before_the_calibrator_columns_resumes_in_its_own_layout(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("xautodl")
    import csv
    import io

    from calnas.live.build import build_table
    from calnas.live.protocol import Protocol
    from calnas.spaces import TSS

    tiny = Protocol(dataset="digits", channels=4, cells=1, epochs=1, batch_size=32, train_size=48, val_size=30,
                    test_size=60, threads=1)
    out = tmp_path / "older.csv"
    build_table(space=TSS, protocol=tiny, out=out, limit=2)
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert set(CALIBRATOR_COLUMNS) <= set(rows[0])
    keep = [i for i, c in enumerate(rows[0]) if c not in CALIBRATOR_COLUMNS]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([[r[i] for i in keep] for r in rows])
    out.write_text(buf.getvalue())  # what a build started before this change has written
    before = out.read_bytes()
    summary = build_table(space=TSS, protocol=tiny, out=out, limit=3, resume=True)
    assert (summary.skipped, summary.written) == (2, 1)
    after = out.read_bytes()
    assert after.startswith(before)
    lines = list(csv.reader(io.StringIO(after.decode())))
    assert len(lines) == 4 and all(len(r) == len(keep) for r in lines)
    assert not set(CALIBRATOR_COLUMNS) & set(lines[0])
