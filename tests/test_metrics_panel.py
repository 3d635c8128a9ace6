"""calibration_panel: its columns, when post_* exist, input handling and degenerate inputs."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import published_columns
from test_metrics_refs import random_predictions, softmax

from calnas.errors import UserError
from calnas.metrics import (
    PANEL_COLUMNS,
    calibration_panel,
    ece,
    fit_temperature,
    kdece,
    panel_columns,
    reliability_diagram,
)

SELECTIVE = ["AUROC", "AURC", "E_AURC", "coverage_95", "coverage_99"]


@pytest.fixture(scope="module")
def split():
    rng = np.random.default_rng(7)
    z, y = random_predictions(rng, 1500, 10, 2.5)
    vz, vy = random_predictions(rng, 600, 10, 2.5)
    return z, y, vz, vy


def test_panel_has_every_schema_column_plus_selective_and_temperature(split):
    z, y, vz, vy = split
    panel = calibration_panel(None, y, logits=z, val_logits=vz, val_labels=vy)
    schema = [c for c in published_columns() if c not in ("config", "arch")]
    assert len(schema) == 103
    extra = ["pre_Brier_sum", "post_Brier_sum", *SELECTIVE, "temperature"]
    assert set(panel) == set(schema) | set(extra)
    assert list(panel) == list(PANEL_COLUMNS)
    assert all(isinstance(v, float) and np.isfinite(v) for v in panel.values())


def test_without_logits_or_validation_there_are_no_post_columns(split):
    z, y, _, _ = split
    for panel in (calibration_panel(softmax(z), y), calibration_panel(None, y, logits=z)):
        assert not any(c.startswith("post_") for c in panel)
        assert "temperature" not in panel
        assert list(panel) == list(panel_columns(post=False))


def test_post_columns_from_test_split_only_when_asked(split):
    z, y, _, _ = split
    panel = calibration_panel(None, y, logits=z, fit_on_test=True)
    assert panel["temperature"] == fit_temperature(z, y)
    given = calibration_panel(None, y, logits=z, temperature=1.7)
    assert given["temperature"] == 1.7
    assert given["post_ECE_15"] == pytest.approx(ece(softmax(z, 1.7), y, 15), abs=1e-12)


def test_panel_columns_for_other_bins_and_targets():
    cols = PANEL_COLUMNS(bins=(3, 7), coverage_targets=(0.9,))
    assert cols == panel_columns((3, 7), (0.9,))
    assert "pre_cwCE_em_7" in cols and "post_MCE_3" in cols and "coverage_90" in cols
    assert "pre_ECE_15" not in cols
    assert len(cols) == 3 + 2 * (5 * 2 + 6) + 4 + 1
    z, y = random_predictions(np.random.default_rng(1), 300, 5)
    panel = calibration_panel(None, y, logits=z, bins=(3, 7), coverage_targets=(0.9,), temperature=2.0)
    assert tuple(panel) == cols


def test_torch_tensors_and_lists_give_the_same_panel(split):
    torch = pytest.importorskip("torch")
    z, y, vz, vy = split
    want = calibration_panel(None, y, logits=z, val_logits=vz, val_labels=vy)
    got = calibration_panel(
        None, torch.from_numpy(y), logits=torch.from_numpy(z).requires_grad_(),
        val_logits=torch.from_numpy(vz), val_labels=torch.from_numpy(vy),
    )
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
    small = calibration_panel(softmax(z[:50]).tolist(), y[:50].tolist())
    assert small == calibration_panel(softmax(z[:50]), y[:50])


def test_metrics_never_import_torch():
    code = (
        "import sys, numpy as np\n"
        "from calnas.metrics import calibration_panel, reliability_diagram\n"
        "z = np.random.default_rng(0).normal(size=(200, 5)); y = np.arange(200) % 5\n"
        "calibration_panel(None, y, logits=z, val_logits=z, val_labels=y)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(probs=np.full((4, 3), 0.3), labels=[0, 1, 2, 0]), "sum to 1"),
        (dict(probs=np.array([[0.5, np.nan], [0.5, 0.5]]), labels=[0, 1]), "NaN"),
        (dict(probs=np.array([[1.5, -0.5], [0.5, 0.5]]), labels=[0, 1]), "outside [0, 1]"),
        (dict(probs=np.full((3, 2), 0.5), labels=[0, 1]), "3 rows"),
        (dict(probs=np.full((3, 2), 0.5), labels=[0, 1, 2]), "[0, 1]"),
        (dict(probs=np.full((3, 2), 0.5), labels=[0, 1, -1]), "[0, 1]"),
        (dict(probs=np.full((3, 2), 0.5), labels=[0, 1, 0.5]), "integer"),
        (dict(probs=np.ones((3, 1)), labels=[0, 0, 0]), "at least 2 needed"),
        (dict(probs=np.full((1, 2), 0.5), labels=[0]), "at least 2 needed"),
        (dict(probs=np.full(4, 0.5), labels=[0, 1, 0, 1]), "2-D"),
        (dict(probs=None, labels=[0, 1]), "probs or logits"),
        (dict(probs=np.full((2, 2), 0.5), labels=None), "labels"),
        (dict(probs=[["a", "b"], ["c", "d"]], labels=[0, 1]), "numeric"),
    ],
)
def test_bad_inputs_raise_user_errors(kwargs, message):
    with pytest.raises(UserError, match=re.escape(message)):
        calibration_panel(kwargs.pop("probs"), kwargs.pop("labels"), **kwargs)


def test_bad_temperature_inputs_raise_user_errors(split):
    z, y, vz, vy = split
    p = softmax(z)
    with pytest.raises(UserError, match="test logits"):
        calibration_panel(p, y, val_logits=vz, val_labels=vy)
    with pytest.raises(UserError, match="val_labels is missing"):
        calibration_panel(None, y, logits=z, val_logits=vz)
    with pytest.raises(UserError, match="classes"):
        calibration_panel(None, y, logits=z, val_logits=vz[:, :5], val_labels=vy % 5)
    with pytest.raises(UserError, match="only one of"):
        calibration_panel(None, y, logits=z, val_logits=vz, val_labels=vy, temperature=2.0)
    with pytest.raises(UserError, match="positive"):
        calibration_panel(None, y, logits=z, temperature=-1.0)
    with pytest.raises(UserError, match="unknown temperature method"):
        calibration_panel(None, y, logits=z, temperature_method="brier")
    with pytest.raises(UserError, match="softmax"):
        calibration_panel(softmax(z, 2.0), y, logits=z)
    with pytest.raises(UserError, match="distinct"):
        calibration_panel(p, y, bins=(5, 5))
    with pytest.raises(UserError, match="positive integers"):
        calibration_panel(p, y, bins=(0,))
    with pytest.raises(UserError, match="duplicate"):
        calibration_panel(p, y, coverage_targets=(0.951, 0.953))


def test_all_correct_predictions():
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([0, 1, 0, 1])
    panel = calibration_panel(p, y)
    assert panel["acc"] == 1.0
    assert np.isnan(panel["incorrect_confidence"]) and np.isnan(panel["AUROC"])
    assert panel["AURC"] == 0.0 and panel["E_AURC"] == 0.0
    assert panel["coverage_95"] == panel["coverage_99"] == 1.0
    assert panel["pre_ECE_15"] == pytest.approx(1 - np.mean([0.9, 0.8, 0.6, 0.7]))


def test_all_wrong_predictions():
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    y = np.array([1, 0, 1])
    panel = calibration_panel(p, y)
    assert panel["acc"] == 0.0
    assert np.isnan(panel["correct_confidence"]) and np.isnan(panel["AUROC"])
    assert panel["AURC"] == 1.0 and panel["E_AURC"] == 0.0
    assert panel["coverage_95"] == 0.0
    # No correct sample to estimate its density from: accuracy curve 0, bandwidth from all.
    assert panel["pre_KDECE"] == pytest.approx(np.mean([0.9, 0.8, 0.6]), abs=0.02)


def test_constant_confidence_network():
    # A NATS-Bench cell with no path to the output predicts the same distribution for every
    # image: every estimator reduces to |c - acc|.
    k, n = 10, 1000
    p = np.full((n, k), 1 / k)
    y = np.arange(n) % k
    panel = calibration_panel(p, y)
    assert panel["acc"] == pytest.approx(0.1)
    for name in ("pre_ECE_15", "pre_ECE_em_15", "pre_MCE_15", "pre_KSCE", "pre_KDECE"):
        assert panel[name] == pytest.approx(0.0, abs=1e-12), name
    assert panel["AUROC"] == 0.5
    assert kdece(p[:, [0, 1]] * 5, y % 2) == pytest.approx(abs(0.5 - 0.5))


def test_one_class_present_in_labels():
    z, _ = random_predictions(np.random.default_rng(3), 200, 4)
    y = np.zeros(200, dtype=int)
    panel = calibration_panel(None, y, logits=z)
    assert np.isfinite(panel["pre_cwCE_15"]) and np.isfinite(panel["pre_KDECE"])


def test_reliability_diagram_data_and_png(tmp_path, split):
    z, y, _, _ = split
    p = softmax(z)
    diagram = reliability_diagram(p, y, 15, path=tmp_path / "rel.png")
    assert diagram.ece == pytest.approx(ece(p, y, 15), abs=1e-12)
    assert diagram.count.sum() == len(y)
    filled = diagram.count > 0
    np.testing.assert_allclose(
        (np.abs(diagram.gap[filled]) * diagram.count[filled]).sum() / len(y), diagram.ece, atol=1e-12
    )
    assert (tmp_path / "rel.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    mass = reliability_diagram(p, y, 15, equal_mass=True)
    panel = calibration_panel(p, y, bins=(15,))
    assert mass.ece == pytest.approx(panel["pre_ECE_em_15"], abs=1e-12)
    assert mass.to_dict()["count"] == [int(c) for c in mass.count]
