"""Post-hoc calibrators: the interface, honest splits, agreement with independent implementations."""

from __future__ import annotations

import numpy as np
import pytest

from calnas.calibrator_columns import CALIBRATOR_COLUMNS, CALIBRATOR_NAMES, METRICS, column
from calnas.errors import UserError
from calnas.metrics import CALIBRATORS, calibration_panel, calibrator_columns, calibrator_results, make_calibrator
from calnas.metrics.calibrated import cross_validated_ece


def logit_set(seed: int, k: int, n_val: int = 400, n_test: int = 600):
    """Over-confident, not separable logits: a margin on the label plus noise, scaled up."""
    rng = np.random.default_rng(seed)

    def draw(n):
        y = rng.integers(0, k, n)
        z = rng.normal(size=(n, k)) * 2.0
        z[np.arange(n), y] += 3.0
        return z * 1.5, y

    (vz, vy), (z, y) = draw(n_val), draw(n_test)
    return vz, vy, z, y


RANDOM_SETS = {f"random-{seed}-K{k}": (seed, k) for seed, k in ((0, 5), (1, 10), (2, 20))}


def test_names_are_defined_once_and_every_calibrator_has_its_columns():
    assert tuple(CALIBRATORS) == CALIBRATOR_NAMES == (
        "temperature", "vector", "matrix", "dirichlet", "histogram", "isotonic", "ets")
    assert len(set(CALIBRATOR_COLUMNS)) == len(CALIBRATOR_COLUMNS) == len(CALIBRATOR_NAMES) * (len(METRICS) + 1)
    assert column("ECE_15", "dirichlet") == "post_ECE_15@dirichlet" and column("acc", "ets") == "acc@ets"
    assert column("ECE_15", "isotonic", "val") == "val_ECE_15@isotonic"
    with pytest.raises(UserError, match="unknown calibrator 'platt'"):
        make_calibrator("platt")


@pytest.mark.parametrize("name", CALIBRATOR_NAMES)
def test_fits_are_deterministic_and_give_distributions(name):
    vz, vy, z, _ = logit_set(3, 7)
    first = make_calibrator(name).fit(vz, vy).predict_proba(z)
    again = make_calibrator(name).fit(vz.copy(), vy.copy()).predict_proba(z)
    assert np.array_equal(first, again)
    assert np.all(first >= 0) and np.allclose(first.sum(axis=1), 1.0, atol=1e-12)
    cal = make_calibrator(name)
    if cal.keeps_top1:  # temperature and ets never change the prediction
        assert np.array_equal(cal.fit(vz, vy).predict_proba(z).argmax(axis=1), z.argmax(axis=1))


def test_changing_the_test_labels_changes_no_fitted_parameter():
    vz, vy, z, y = logit_set(4, 6)
    shuffled = np.random.default_rng(0).permutation(y)
    a = calibrator_results(z, y, vz, vy, keep_probs=True)
    b = calibrator_results(z, shuffled, vz, vy, keep_probs=True)
    for name in CALIBRATOR_NAMES:
        # The calibrated test predictions are a function of the fitted parameters and the test
        # logits alone: equal predictions mean equal fits; the validation value is equal too.
        assert np.array_equal(a[name].probs, b[name].probs), name
        assert a[name].val_ece == b[name].val_ece and a[name].params == b[name].params, name
        assert a[name].test["ECE_15"] != b[name].test["ECE_15"], name  # the labels did reach the metrics
    # ... while the validation labels do change the fit.
    other = calibrator_results(z, y, vz, np.random.default_rng(1).permutation(vy), keep_probs=True)
    assert not np.array_equal(other["dirichlet"].probs, a["dirichlet"].probs)


def test_temperature_columns_are_the_panels_post_columns():
    vz, vy, z, y = logit_set(5, 10)
    panel = calibration_panel(None, y, logits=z, val_logits=vz, val_labels=vy)
    row = calibrator_columns(z, y, vz, vy)
    assert list(row) == list(CALIBRATOR_COLUMNS)
    for metric, panel_column in (("ECE_15", "post_ECE_15"), ("cwCE_15", "post_cwCE_15"), ("NLL", "post_NLL"),
                                 ("Brier", "post_Brier"), ("acc", "acc")):
        assert row[column(metric, "temperature")] == pytest.approx(panel[panel_column], rel=1e-12, abs=1e-15)
    # The panel's AURC ranks the uncalibrated confidences; T changes how samples rank against each other.
    from calnas.metrics import aurc

    scaled = np.exp(z / panel["temperature"] - (z / panel["temperature"]).max(axis=1, keepdims=True))
    assert row["AURC@temperature"] == pytest.approx(aurc(scaled / scaled.sum(axis=1, keepdims=True), y), rel=1e-12)
    assert row["acc@ets"] == panel["acc"]  # accuracy-preserving
    assert row["acc@matrix"] != panel["acc"]  # matrix scaling may change the top-1 prediction


def test_validation_value_is_cross_validated_not_in_sample():
    vz, vy, _, _ = logit_set(6, 10)
    in_sample = make_calibrator("histogram").fit(vz, vy).predict_proba(vz)
    from calnas.metrics import ece

    # A histogram calibrator fits its own bins: in-sample its ECE is well below its held-out value
    # (0.068 against 0.119 here).
    assert ece(in_sample, vy) < 0.75 * cross_validated_ece("histogram", vz, vy)


def test_histogram_rows_mapped_to_zero_become_uniform():
    # Validation: class 0 always predicted and always right; a test row confident in class 1 lands
    # in bins where no class was ever observed... except class 0's low bin, whose frequency is 0.
    vz = np.array([[5.0, 0.0, 0.0]] * 20)
    vy = np.zeros(20, dtype=int)
    cal = make_calibrator("histogram").fit(vz, vy)
    probs = cal.predict_proba(np.array([[0.0, 5.0, 0.0], [5.0, 0.0, 0.0]]))
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert probs[1, 0] == pytest.approx(1.0)


def test_bad_input_is_refused():
    vz, vy, z, _ = logit_set(7, 4)
    with pytest.raises(UserError, match="not fitted"):
        make_calibrator("matrix").predict_proba(z)
    with pytest.raises(UserError, match="fitted on 4"):
        make_calibrator("vector").fit(vz, vy).predict_proba(z[:, :3])
    with pytest.raises(UserError, match="give val_logits and val_labels"):
        calibrator_results(z, vy[: len(z)] if len(vy) >= len(z) else np.zeros(len(z), int), None, None)
    with pytest.raises(UserError, match="lambda must be"):
        make_calibrator("dirichlet", lam=-1.0)


# -- agreement with independent implementations ---------------------------------------------

# Largest absolute difference between calnas's and the peer's calibrated test probabilities
# allowed (docs/metrics.md, "Post-hoc calibrators", gives the measured values). Matrix and
# Dirichlet: torch-uncertainty's L-BFGS without a line search stops about 1e-4 short of the
# optimum that calnas's Newton fit reaches; histogram: its outputs are clamped at 1e-6.
TOLERANCE = {"temperature": 1e-12, "vector": 1e-5, "matrix": 2e-3, "dirichlet": 2e-3, "histogram": 5e-5,
             "isotonic": 1e-12, "ets": 1e-5}


@pytest.fixture(scope="module")
def digits_predictions():
    """Validation and test logits of a digits-tss network (TSS 6111, the digits protocol)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("xautodl")
    from calnas.live.evaluate import load_protocol_splits
    from calnas.live.networks import build_network, network_config
    from calnas.live.protocol import DIGITS_TSS
    from calnas.live.train import predict_logits, seed_everything, train
    from calnas.spaces import TSS

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        splits = load_protocol_splits(DIGITS_TSS, seed=0)
        config = network_config("tss", TSS.arch(6111), splits.num_classes, DIGITS_TSS.channels, DIGITS_TSS.cells)
        seed_everything(0)
        model = build_network(config)
        train(model, splits, DIGITS_TSS, device=torch.device("cpu"), seed=0)
        cpu = torch.device("cpu")
        vz = predict_logits(model, splits.val_x, device=cpu, batch_size=1100)
        z = predict_logits(model, splits.test_x, device=cpu, batch_size=1100)
    finally:
        torch.set_num_threads(threads)
    return vz.astype(np.float64), splits.val_y, z.astype(np.float64), splits.test_y


def needs_torch_uncertainty():
    import importlib.util
    import sys

    # Not imported: its root needs lightning (calibrator_peers.tu loads only its calibration code).
    if "torch_uncertainty" not in sys.modules and importlib.util.find_spec("torch_uncertainty") is None:
        pytest.skip("torch-uncertainty is not installed (pip install -e '.[dev]')")


def _sets(digits):
    out = {name: logit_set(*args) for name, args in RANDOM_SETS.items()}
    out["digits-6111"] = digits
    return out


@pytest.mark.parametrize("name", CALIBRATOR_NAMES)
def test_each_calibrator_agrees_with_an_independent_implementation(name, digits_predictions):
    needs_torch_uncertainty()
    import calibrator_peers

    for label, (vz, vy, z, _) in _sets(digits_predictions).items():
        ours = make_calibrator(name).fit(vz, vy).predict_proba(z)
        theirs = calibrator_peers.PEERS[name](vz, vy, z)
        assert np.abs(ours - theirs).max() <= TOLERANCE[name], (name, label, np.abs(ours - theirs).max())


@pytest.mark.slow
def test_nll_temperature_agrees_with_torch_uncertainty(digits_predictions):
    needs_torch_uncertainty()
    import calibrator_peers

    for label, (vz, vy, z, _) in _sets(digits_predictions).items():
        ours = make_calibrator("temperature", method="nll").fit(vz, vy).predict_proba(z)
        assert np.abs(ours - calibrator_peers.temperature_nll(vz, vy, z)).max() <= 2e-4, label


@pytest.mark.parametrize("name", ["matrix", "dirichlet"])
def test_the_large_fit_reaches_the_full_newton_optimum(name, monkeypatch):
    # The preconditioned Newton-CG path (taken above NEWTON_MAX_PARAMS) forced on a small problem
    # whose full-Hessian Newton fit is the reference.
    import calnas.metrics.calibrators as calibrators

    rng = np.random.default_rng(3)
    y = rng.integers(0, 10, 400)
    vz = rng.normal(size=(400, 10)) * 2.0
    vz[np.arange(400), y] += 2.5
    z = rng.normal(size=(300, 10)) * 2.0
    full = make_calibrator(name).fit(vz, y).predict_proba(z)
    monkeypatch.setattr(calibrators, "NEWTON_MAX_PARAMS", 0)
    monkeypatch.setattr(calibrators, "_newton", None)  # must not be reached
    large = make_calibrator(name).fit(vz, y).predict_proba(z)
    assert np.abs(large - full).max() <= 1e-3


def test_a_fit_with_no_finite_optimum_stops_before_the_iteration_cap(monkeypatch):
    # 24 validation rows, 110 Dirichlet parameters: a class's diagonal weight grows without bound
    # and the decrement shrinks slowly; the fit must stop once it is below NEWTON_FLAT_TOL.
    import calnas.metrics.calibrators as calibrators

    steps = []
    hessian = calibrators._AffineProblem.hessian
    monkeypatch.setattr(calibrators._AffineProblem, "hessian",
                        lambda self, v, f: steps.append(1) or hessian(self, v, f))
    rng = np.random.default_rng(0)
    vz, vy = rng.normal(size=(24, 10)) * 3, rng.integers(0, 10, 24)
    make_calibrator("dirichlet").fit(vz, vy)
    assert len(steps) < calibrators.NEWTON_MAXITER // 2
    monkeypatch.setattr(calibrators, "NEWTON_FLAT_TOL", 0.0)  # the rule off: runs to the cap
    steps.clear()
    make_calibrator("dirichlet").fit(vz, vy)
    assert len(steps) == calibrators.NEWTON_MAXITER
