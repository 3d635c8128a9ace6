"""`calnas metrics FILE`: JSON and table output, the reliability PNG, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_metrics_refs import random_predictions, softmax
from typer.testing import CliRunner

import calnas.cli
from calnas.errors import UserError
from calnas.metrics import PANEL_COLUMNS, calibration_panel


@pytest.fixture(scope="module")
def app():
    calnas.cli._register()
    return calnas.cli.app


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(42)
    z, y = random_predictions(rng, 800, 10, 2.5)
    vz, vy = random_predictions(rng, 300, 10, 2.5)
    return dict(logits=z, labels=y, val_logits=vz, val_labels=vy)


def test_json_output_is_the_panel(tmp_path, app, arrays):
    path = tmp_path / "preds.npz"
    np.savez(path, **arrays)
    png = tmp_path / "rel.png"
    result = CliRunner().invoke(app, ["metrics", str(path), "--json", "--plot", str(png)])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert png.read_bytes()[:4] == b"\x89PNG"
    want = calibration_panel(
        None, arrays["labels"], logits=arrays["logits"],
        val_logits=arrays["val_logits"], val_labels=arrays["val_labels"],
    )
    assert list(got) == list(PANEL_COLUMNS)
    assert got == pytest.approx(want, rel=1e-12)


def test_probs_only_file_with_plot_and_table(tmp_path, app, arrays):
    path = tmp_path / "probs.npz"
    np.savez(path, probs=softmax(arrays["logits"]), labels=arrays["labels"])
    png = tmp_path / "out" / "rel.png"
    result = CliRunner().invoke(app, ["metrics", str(path), "--plot", str(png), "--bins", "5,15"])
    assert result.exit_code == 0, result.output
    assert "ECE_15" in result.stdout and "KDECE" in result.stdout and "post" not in result.stdout
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_nan_becomes_json_null(tmp_path, app):
    path = tmp_path / "perfect.npz"
    np.savez(path, probs=np.array([[0.9, 0.1], [0.2, 0.8]]), labels=np.array([0, 1]))
    result = CliRunner().invoke(app, ["metrics", str(path), "--json"])
    got = json.loads(result.stdout)
    assert got["incorrect_confidence"] is None and got["AUROC"] is None and got["acc"] == 1.0


def bad_files(tmp_path, arrays):
    z, y = arrays["logits"], arrays["labels"]
    cases = {}
    cases["missing"] = (tmp_path / "nope.npz", "no such file")
    text = tmp_path / "text.npz"
    text.write_text("not an archive")
    cases["not npz"] = (text, "not a readable .npz")
    npy = tmp_path / "single.npy"
    np.save(npy, z)
    cases["npy"] = (npy, "single array")
    no_labels = tmp_path / "no_labels.npz"
    np.savez(no_labels, logits=z)
    cases["no labels"] = (no_labels, "no labels array")
    no_preds = tmp_path / "no_preds.npz"
    np.savez(no_preds, labels=y, scores=z)
    cases["no predictions"] = (no_preds, "no logits or probs")
    short = tmp_path / "short.npz"
    np.savez(short, logits=z, labels=y[:-3])
    cases["row mismatch"] = (short, "rows but labels has")
    val = tmp_path / "val.npz"
    np.savez(val, logits=z, labels=y, val_logits=z[:, :4], val_labels=y)
    cases["val classes"] = (val, "classes")
    half = tmp_path / "half.npz"
    np.savez(half, logits=z, labels=y, val_logits=z)
    cases["val labels missing"] = (half, "no val_labels")
    nan = tmp_path / "nan.npz"
    np.savez(nan, logits=np.where(np.arange(z.size).reshape(z.shape) == 5, np.nan, z), labels=y)
    cases["nan"] = (nan, "NaN")
    return cases


def test_bad_files_raise_user_errors(tmp_path, app, arrays):
    for name, (path, message) in bad_files(tmp_path, arrays).items():
        result = CliRunner().invoke(app, ["metrics", str(path)])
        assert isinstance(result.exception, UserError), name
        assert message in str(result.exception), (name, str(result.exception))
        assert "\n" not in str(result.exception)


def test_exit_code_two_and_one_line_on_stderr(tmp_path, run_cli, arrays):
    short = tmp_path / "short.npz"
    np.savez(short, logits=arrays["logits"], labels=arrays["labels"][:10])
    result = run_cli("metrics", short)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "labels" in result.stderr
