"""calnas.metrics against plain-loop implementations of the published formulas."""

from __future__ import annotations

import numpy as np
import pytest
from test_metrics_refs import (
    aurc_all_tie_orders,
    aurc_ordered,
    binned_ce,
    classwise,
    coverage_bruteforce,
    equal_mass_ce,
    kdece_direct,
    ksce_gupta,
    mmce_dense,
    random_predictions,
    softmax,
    top_label,
)

from calnas.metrics import (
    aurc,
    auroc,
    calibration_panel,
    classwise_ece,
    classwise_ece_em,
    coverage_at_accuracy,
    e_aurc,
    ece,
    ece_em,
    fit_temperature,
    kdece,
    ksce,
    mce,
    mmce,
)

CASES = [(11, 600, 10, 2.0), (12, 900, 100, 3.0), (13, 400, 2, 1.0), (14, 50, 7, 0.5)]


@pytest.fixture(params=CASES, ids=lambda c: f"seed{c[0]}-N{c[1]}-K{c[2]}")
def preds(request):
    seed, n, k, scale = request.param
    z, y = random_predictions(np.random.default_rng(seed), n, k, scale)
    return softmax(z), y


def quantised(p, step=0.05):
    """Probabilities rounded to a grid: many exact ties and many values exactly on bin edges."""
    q = np.round(p / step) * step
    q[np.arange(len(q)), q.argmax(axis=1)] += 1 - q.sum(axis=1)
    return np.clip(q, 0, 1)


@pytest.mark.parametrize("n_bins", [5, 15, 50, 500])
def test_binned_metrics_match_loop_reference(preds, n_bins):
    p, y = preds
    for probs in (p, quantised(p)):
        conf, correct = top_label(probs, y)
        want_ece, want_mce = binned_ce(conf, correct, n_bins)
        assert ece(probs, y, n_bins) == pytest.approx(want_ece, abs=1e-12)
        assert mce(probs, y, n_bins) == pytest.approx(want_mce, abs=1e-12)
        assert ece_em(probs, y, n_bins) == pytest.approx(equal_mass_ce(conf, correct, n_bins), abs=1e-12)
        cw = classwise(probs, y, lambda v, o, b: binned_ce(v, o, b)[0], n_bins)
        assert classwise_ece(probs, y, n_bins) == pytest.approx(cw, abs=1e-12)
        cw_em = classwise(probs, y, equal_mass_ce, n_bins)
        assert classwise_ece_em(probs, y, n_bins) == pytest.approx(cw_em, abs=1e-12)


def test_zero_probabilities_fall_in_no_equal_width_bin_but_count_in_n():
    p = np.array([[1.0, 0.0], [0.7, 0.3], [0.0, 1.0], [0.4, 0.6]])
    y = np.array([0, 1, 0, 1])
    # Class 0: values (1, .7, 0, .4) vs outcomes (1, 0, 1, 0); the 0 is binless but N stays 4.
    want0 = (abs(1 - 1) + abs(0.7 - 0) + abs(0.4 - 0)) / 4
    want1 = (abs(0.3 - 1) + abs(1 - 0) + abs(0.6 - 1)) / 4
    assert classwise_ece(p, y, 10) == pytest.approx((want0 + want1) / 2, abs=1e-12)


def test_ksce_equals_gupta_on_distinct_confidences(preds):
    p, y = preds
    conf, correct = top_label(p, y)
    assert len(np.unique(conf)) == len(conf)
    assert ksce(p, y) == pytest.approx(ksce_gupta(conf, correct), abs=1e-12)


def test_ksce_with_ties_reads_only_between_distinct_confidences():
    # Two samples share confidence 0.6, one right and one wrong: Gupta's running sum depends on
    # which comes first; calnas reads it after the tie only.
    p = np.array([[0.6, 0.4], [0.6, 0.4], [0.9, 0.1]])
    y = np.array([0, 1, 0])
    gap_after_tie = (0.6 + 0.6 - 1) / 3
    gap_at_end = (0.6 + 0.6 + 0.9 - 2) / 3
    assert ksce(p, y) == pytest.approx(max(abs(gap_after_tie), abs(gap_at_end)), abs=1e-12)
    assert ksce(p[[1, 0, 2]], y[[1, 0, 2]]) == ksce(p, y)


def test_mmce_matches_dense_kernel_sum(preds):
    p, y = preds
    for probs in (p, quantised(p)):
        conf, correct = top_label(probs, y)
        assert mmce(probs, y) == pytest.approx(mmce_dense(conf, correct), abs=1e-12)
        assert mmce(probs, y, width=0.05) == pytest.approx(mmce_dense(conf, correct, 0.05), abs=1e-12)


@pytest.mark.parametrize("seed,n,k,scale", [(21, 400, 10, 2.0), (22, 300, 100, 3.0), (23, 500, 5, 0.7)])
def test_kdece_matches_direct_kernel_evaluation(seed, n, k, scale):
    z, y = random_predictions(np.random.default_rng(seed), n, k, scale)
    p = softmax(z)
    conf, correct = top_label(p, y)
    # calnas bins onto the 2**14 grid and convolves (as KDEpy's FFTKDE); the direct sum differs
    # only by that discretisation.
    assert kdece(p, y) == pytest.approx(kdece_direct(conf, correct), abs=2e-4)


def test_auroc_matches_sklearn_with_ties(preds):
    from sklearn.metrics import roc_auc_score

    p, y = preds
    for probs in (p, quantised(p)):
        conf, correct = top_label(probs, y)
        if 0 < correct.sum() < len(correct):
            assert auroc(probs, y) == pytest.approx(roc_auc_score(correct, conf), abs=1e-12)


def test_aurc_and_e_aurc_on_distinct_confidences(preds):
    p, y = preds
    conf, correct = top_label(p, y)
    order = np.argsort(-conf)
    want = aurc_ordered(correct[order])
    assert aurc(p, y) == pytest.approx(want, abs=1e-12)
    perfect = aurc_ordered(np.sort(correct)[::-1])
    assert e_aurc(p, y) == pytest.approx(want - perfect, abs=1e-12)
    assert e_aurc(p, y) >= 0


def test_aurc_with_ties_is_the_mean_over_tie_orders():
    conf = np.array([0.9, 0.7, 0.7, 0.7, 0.6, 0.6, 0.5])
    correct = np.array([1, 1, 0, 0, 1, 0, 0], dtype=float)
    p = np.stack([conf, 1 - conf], axis=1)
    y = np.where(correct == 1, 0, 1)
    assert aurc(p, y) == pytest.approx(aurc_all_tie_orders(conf, correct), abs=1e-12)


@pytest.mark.parametrize("target", [0.5, 0.8, 0.95, 0.99, 1.0])
def test_coverage_matches_threshold_search(preds, target):
    p, y = preds
    for probs in (p, quantised(p)):
        conf, correct = top_label(probs, y)
        want = coverage_bruteforce(conf, correct, target)
        assert coverage_at_accuracy(probs, y, target) == pytest.approx(want, abs=1e-12)


def test_coverage_is_zero_when_the_target_is_never_reached():
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])
    y = np.array([1, 1, 0])  # the two most confident predictions are wrong
    assert coverage_at_accuracy(p, y, 0.95) == 0.0


def test_nll_and_brier_match_definitions(preds):
    p, y = preds
    z = np.log(p)
    panel = calibration_panel(p, y)
    n, k = p.shape
    onehot = np.eye(k)[y]
    assert panel["pre_NLL"] == pytest.approx(-np.mean(np.log(p[np.arange(n), y])), rel=1e-12)
    assert panel["pre_Brier"] == pytest.approx(np.mean((p - onehot) ** 2), abs=1e-12)
    assert panel["pre_Brier_sum"] == pytest.approx(np.mean(np.sum((p - onehot) ** 2, axis=1)), abs=1e-12)
    # With logits, the NLL comes from log-softmax (no clipping) and agrees.
    assert calibration_panel(None, y, logits=z)["pre_NLL"] == pytest.approx(panel["pre_NLL"], rel=1e-9)


def test_brier_matches_the_published_convention():
    # The schema document quotes Brier ~0.0226 for accuracy 0.8427 on CIFAR-10: the mean over
    # N x K entries, i.e. the summed multiclass Brier divided by K.
    z, y = random_predictions(np.random.default_rng(5), 2000, 10, 2.0, 6.0)
    panel = calibration_panel(None, y, logits=z)
    assert panel["pre_Brier"] == pytest.approx(panel["pre_Brier_sum"] / 10, rel=1e-12)


def test_ece_grid_temperature_is_the_argmin_of_15_bin_ece_over_the_grid():
    z, y = random_predictions(np.random.default_rng(31), 800, 10, 3.0)
    eces = [binned_ce(*top_label(softmax(z, t), y), 15)[0] for t in np.arange(1, 101) / 10]
    want = (np.arange(1, 101) / 10)[int(np.argmin(eces))]
    assert fit_temperature(z, y) == pytest.approx(want)
    assert fit_temperature(z, y, "ece_grid") == pytest.approx(want)


def test_nll_temperature_minimises_nll():
    z, y = random_predictions(np.random.default_rng(32), 800, 10, 3.0)

    def nll(t):
        p = softmax(z, t)
        return -np.mean(np.log(p[np.arange(len(y)), y]))

    t = fit_temperature(z, y, "nll")
    fine = np.exp(np.linspace(np.log(0.5), np.log(10), 4001))
    best = fine[int(np.argmin([nll(s) for s in fine]))]
    assert t == pytest.approx(best, rel=2e-3)
    assert nll(t) <= min(nll(t * 0.999), nll(t * 1.001)) + 1e-12


def test_post_columns_are_the_pre_metrics_of_the_scaled_probabilities():
    rng = np.random.default_rng(33)
    z, y = random_predictions(rng, 700, 10, 3.0)
    vz, vy = random_predictions(rng, 300, 10, 3.0)
    panel = calibration_panel(None, y, logits=z, val_logits=vz, val_labels=vy, temperature_method="nll")
    t = panel["temperature"]
    assert t == pytest.approx(fit_temperature(vz, vy, "nll"))
    again = calibration_panel(softmax(z, t), y)
    for name, value in again.items():
        if name.startswith("pre_"):
            assert panel["post_" + name[4:]] == pytest.approx(value, rel=1e-9, abs=1e-12), name
