"""calnas.analysis and `calnas analyze`: each question on a small table with a known answer."""

from __future__ import annotations

import html
import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import calnas.analysis as ca
from calnas import metrics
from calnas.errors import UserError
from calnas.metrics._inputs import softmax
from calnas.spaces import SSS, TSS
from calnas.tables import table_from_frame, tss_meta
from tests.conftest import make_published_frame


def representatives(n: int) -> list[int]:
    """n TSS indices from n different isomorphism classes (each its class's smallest index)."""
    iso = tss_meta()["iso"]
    return [int(i) for i in iso.index[iso == iso.index][:n]]


def frame_of(indices, space=TSS, **columns) -> pd.DataFrame:
    return pd.DataFrame({"config": indices, "arch": [space.arch(i) for i in indices], **columns})


def one_line(text: str) -> bool:
    return "\n" not in text and len(text) < 300


# --------------------------------------------------------------------------------------------
# inputs


def test_tables_come_as_table_name_path_or_frame(tmp_path):
    frame = make_published_frame(TSS, representatives(12), seed=1)
    path = tmp_path / "cifar10_tss.csv"
    frame.to_csv(path, index=False)
    table = table_from_frame(frame, name="t")
    expected = frame.set_index("config")["pre_ECE_15"].sort_index()
    for source in (table, str(path), path, frame, table.frame):
        # table.frame carries iso == index on every row, which reads as one row per class and is
        # expanded to the classes' members: the analyses' units stay the same.
        got = ca.distinct(ca.as_table(source), ["pre_ECE_15"])["pre_ECE_15"]
        assert list(got.index) == list(expected.index) and np.allclose(got, expected)
    with pytest.raises(UserError, match="expected a Table"):
        ca.as_table(42)
    with pytest.raises(UserError, match="unknown metric"):
        ca.calibration_vs_accuracy(frame, metric="no_such_metric")


def test_units_are_isomorphism_classes_for_tss():
    reps = representatives(5)
    # One row per class with iso == index: the loader gives every member the class's row.
    per_class = table_from_frame(frame_of(reps, iso=reps, acc=np.linspace(0.1, 0.5, 5)), name="t")
    assert len(per_class) > 5
    distinct = ca.distinct(per_class, ["acc"])
    assert sorted(distinct.index) == sorted(reps) and np.allclose(distinct.loc[reps, "acc"], np.linspace(0.1, 0.5, 5))


# --------------------------------------------------------------------------------------------
# 1. generalisation


def test_generalization_needs_two_tables():
    result = ca.generalization(frame_of(representatives(10), acc=np.linspace(0.1, 0.9, 10)), metric="acc")
    assert not result.answered and result.figure is None
    assert one_line(result.summary) and "needs two tables" in result.summary
    assert "<img" not in result._repr_html_()


def test_generalization_rank_agreement_and_top_k_overlap():
    reps = representatives(40)
    values = np.linspace(0.01, 0.4, 40)
    a = frame_of(reps, iso=reps, pre_ECE_15=values)  # one row per class, expanded by the loader
    same = frame_of(reps[:30], pre_ECE_15=values[:30] * 2)  # same order, 30 shared classes
    reverse = frame_of(reps, pre_ECE_15=values[::-1])
    result = ca.generalization([a, same, reverse], metric="ece", top_k=5)
    assert result.answered and result.figure is not None
    rows = result.frame.set_index(["table_a", "table_b"]).sort_index()
    first, second, third = rows.iloc[0], rows.iloc[1], rows.iloc[2]
    assert first.shared == 30 and first.kendall == pytest.approx(1) and first.spearman == pytest.approx(1)
    assert first.top_k_overlap == 5 and first.overlap_fraction == 1.0
    assert second.shared == 40 and second.kendall == pytest.approx(-1) and second.top_k_overlap == 0
    assert third.shared == 30 and third.kendall == pytest.approx(-1)
    assert "tau 1.000" in result.summary


# --------------------------------------------------------------------------------------------
# 2. robustness


def test_robustness_needs_robustness_columns():
    result = ca.robustness(make_published_frame(TSS, representatives(10)))
    assert not result.answered and result.figure is None
    assert one_line(result.summary) and "needs robustness columns" in result.summary


def test_robustness_correlations():
    reps = representatives(30)
    rng = np.random.default_rng(0)
    ece = rng.uniform(0.01, 0.3, 30)
    frame = frame_of(reps, acc=rng.uniform(0.5, 0.9, 30), pre_ECE_15=ece, brightness=1 - ece,
                     contrast=0.5 - ece, fgsm_Linf_acc0_1=ece ** 2)
    result = ca.robustness(frame)
    assert result.answered and result.figure is not None
    got = result.frame.set_index(["robustness", "versus"])["spearman"]
    assert got["brightness", "pre_ECE_15"] == pytest.approx(-1)
    assert got["mean corruption acc", "pre_ECE_15"] == pytest.approx(-1)
    assert got["fgsm_Linf_acc0_1", "pre_ECE_15"] == pytest.approx(1)
    assert "mean adversarial acc" not in result.frame["robustness"].values  # one adversarial column only
    assert "rho -1.000 with pre_ECE_15" in result.summary


# --------------------------------------------------------------------------------------------
# 3. metric reliability


@pytest.mark.parametrize("method", ["kendall", "spearman"])
def test_metric_agreement_matrix_is_symmetric_with_unit_diagonal(method):
    frame = make_published_frame(TSS, representatives(25), seed=4)
    frame["pre_NLL"] = 3 * frame["pre_ECE_15"] + 1  # same ranks as pre_ECE_15
    frame["post_KSCE"] = 0.5  # constant: no rank correlation, dropped
    result = ca.metric_agreement(frame, method=method)
    matrix = result.frame
    assert list(matrix.index) == list(matrix.columns) and "post_KSCE" not in matrix.columns
    assert len(matrix) == 19 and "pre_Brier_sum" not in matrix.columns
    values = matrix.to_numpy()
    assert np.array_equal(values, values.T)
    assert np.array_equal(np.diag(values), np.ones(len(values)))
    assert matrix.loc["pre_ECE_15", "pre_NLL"] == pytest.approx(1)
    expected = getattr(stats, "kendalltau" if method == "kendall" else "spearmanr")(frame["pre_ECE_15"], frame["post_NLL"])
    assert matrix.loc["pre_ECE_15", "post_NLL"] == pytest.approx(expected.statistic)


# --------------------------------------------------------------------------------------------
# 4. temperature scaling


def test_temperature_scaling_fraction_worse_and_temperature_trend():
    reps = representatives(40)
    acc = np.linspace(0.3, 0.9, 40)
    pre = np.full(40, 0.2)
    post = np.where(np.arange(40) < 10, 0.25, 0.05)  # the 10 least accurate get worse
    result = ca.temperature_scaling(frame_of(reps, acc=acc, pre_ECE_15=pre, post_ECE_15=post,
                                             temperature=np.linspace(3.0, 0.3, 40)), groups=4)
    rows = result.frame.set_index("acc_group")
    assert rows.loc["all", "fraction_worse"] == 0.25 and rows.loc["all", "n"] == 40
    assert rows.loc[1, "fraction_worse"] == 1.0 and rows.loc[4, "fraction_worse"] == 0.0
    assert rows.loc["all", "fraction_t_below_1"] == pytest.approx(np.mean(np.linspace(3.0, 0.3, 40) < 1))
    assert "raises it for 25.0%" in result.summary and "Spearman rho with accuracy -1.000" in result.summary
    assert len(result.details["per_architecture"]) == 40


def test_temperature_scaling_without_temperature_or_post_columns():
    reps = representatives(10)
    no_t = ca.temperature_scaling(frame_of(reps, acc=np.linspace(0.3, 0.9, 10), pre_ECE_15=np.full(10, 0.2),
                                           post_ECE_15=np.full(10, 0.1)))
    assert no_t.answered and "no temperature column" in no_t.summary and len(no_t.figure.axes) == 2  # + colour bar
    no_post = ca.temperature_scaling(frame_of(reps, pre_ECE_15=np.full(10, 0.2)))
    assert not no_post.answered and one_line(no_post.summary) and "post_ECE_15" in no_post.summary


# --------------------------------------------------------------------------------------------
# 5. calibration vs accuracy


def test_calibration_vs_accuracy_subsets():
    reps = representatives(200)
    acc = np.linspace(0.2, 0.95, 200)
    ece = np.where(acc >= np.sort(acc)[-20], -acc, acc)  # rises with acc, falls within the top 10%
    result = ca.calibration_vs_accuracy(frame_of(reps, acc=acc, pre_ECE_15=ece), metric="pre_ECE_15")
    rows = result.frame.set_index("subset")
    assert list(rows["n"]) == [200, 20, 2]
    assert rows.loc["top 10%", "spearman"] == pytest.approx(-1) and rows.loc["top 10%", "kendall"] == pytest.approx(-1)
    assert math.isnan(rows.loc["top 1%", "spearman"])  # 2 networks: too few to correlate
    assert rows.loc["top 10%", "acc_min"] == pytest.approx(np.sort(acc)[-20])
    assert "too few to correlate" in result.summary


# --------------------------------------------------------------------------------------------
# 6. bin count


def _predictions(seed: int, n: int = 300, k: int = 4):
    """Synthetic predictions of one "architecture": sharpness and accuracy vary with the seed."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + (0.5 + seed % 5) * np.eye(k)[labels] * rng.uniform(0, 2, (n, 1))
    logits *= 0.5 + (seed % 7) / 3
    return softmax(logits), labels


def test_bin_count_reproduces_calnas_metrics():
    reps = representatives(15)
    predictions = [_predictions(seed) for seed in range(15)]
    panels = [metrics.calibration_panel(p, y) for p, y in predictions]
    frame = pd.concat([frame_of(reps), pd.DataFrame(panels)], axis=1)
    result = ca.bin_count(frame)
    direct = {
        "ECE": metrics.ece, "ECE_em": metrics.ece_em, "cwCE": metrics.classwise_ece,
        "cwCE_em": metrics.classwise_ece_em, "MCE": metrics.mce,
    }
    rows = result.frame.set_index(["kind", "bins"])
    assert sorted(rows.index.get_level_values(0).unique()) == sorted(direct)
    for kind, fn in direct.items():
        values = pd.DataFrame({b: [fn(p, y, n_bins=b) for p, y in predictions] for b in metrics.DEFAULT_BINS},
                              index=reps)
        for b in metrics.DEFAULT_BINS:
            assert rows.loc[(kind, b), "mean"] == pytest.approx(values[b].mean(), abs=1e-12)
            assert rows.loc[(kind, b), "median"] == pytest.approx(values[b].median(), abs=1e-12)
            for other in metrics.DEFAULT_BINS:
                tau = stats.kendalltau(values[b], values[other]).statistic if b != other else 1.0
                assert rows.loc[(kind, b), f"tau_{other}"] == pytest.approx(tau, abs=1e-12), (kind, b, other)
        spread = values.max(axis=1) - values.min(axis=1)
        assert np.allclose(result.details["spread"].loc[reps, kind], spread, atol=1e-12)
    assert result.figure is not None and "The spread of ECE across the bin counts" in result.summary


def test_bin_count_needs_binned_columns():
    result = ca.bin_count(frame_of(representatives(5), acc=np.linspace(0.2, 0.6, 5)))
    assert not result.answered and one_line(result.summary)


# --------------------------------------------------------------------------------------------
# 7. architecture design


def _sss_grid():
    """64 SSS configs: layers 0 and 1 take every width, the others stay at 8 (a full 8 x 8 design)."""
    archs = [f"{a}:{b}:8:8:8" for a in SSS.param_choices()["layer_0"] for b in SSS.param_choices()["layer_1"]]
    return pd.DataFrame({"arch": archs, "pre_ECE_15": [int(a.split(":")[0]) / 64 for a in archs]})


def test_architecture_design_effects_known_answer():
    result = ca.architecture_design(_sss_grid(), metric="ece", top_k=8, n_boot=200, seed=3)
    rows = result.frame.set_index(["position", "choice"])
    widths = np.array(SSS.param_choices()["layer_0"]) / 64
    for w in SSS.param_choices()["layer_0"]:
        expected = w / 64 - (widths.sum() - w / 64) / 7
        row = rows.loc[("layer_0", w)]
        assert row.effect == pytest.approx(expected, abs=1e-12)
        assert row.ci_low <= row.effect + 1e-12 and row.effect - 1e-12 <= row.ci_high
        assert row.n_with == 8
    assert np.allclose(rows.loc["layer_1", "effect"], 0, atol=1e-12)
    # layers 2-4 never vary: no "without" group, no effect
    assert rows.loc[("layer_2", 8), "n_with"] == 64 and math.isnan(rows.loc[("layer_2", 8), "effect"])
    # the 8 best (lowest) all have width 8 in layer 0
    assert rows.loc[("layer_0", 8), "top_k_frequency"] == 1.0
    assert rows.loc[("layer_0", 8), "all_frequency"] == pytest.approx(1 / 8)
    again = ca.architecture_design(_sss_grid(), metric="ece", top_k=8, n_boot=200, seed=3)
    pd.testing.assert_frame_equal(result.frame, again.frame)
    other = ca.architecture_design(_sss_grid(), metric="ece", top_k=8, n_boot=200, seed=4)
    assert not result.frame["ci_low"].equals(other.frame["ci_low"])


def test_architecture_design_tss_balanced_design_and_class_frequencies():
    archs = TSS.all_archs()
    genes = [TSS.to_params(a) for a in archs]
    metric = [1.0 if g["edge_0_1"] == "nor_conv_3x3" else 0.0 for g in genes]
    result = ca.architecture_design(pd.DataFrame({"arch": archs, "pre_ECE_15": metric}), metric="ece",
                                    n_boot=20, top_k=50)
    rows = result.frame.set_index(["position", "choice"])
    # Every op sits on every edge in 1/5 of the 15,625 cells, so each effect is a clean contrast.
    assert (rows["n_with"] == 3125).all()
    assert rows.loc[("edge_0_1", "nor_conv_3x3"), "effect"] == pytest.approx(1.0)
    others = rows.drop(index=("edge_0_1", "nor_conv_3x3"))
    assert np.allclose(others.loc[others.index.get_level_values(0) != "edge_0_1", "effect"], 0, atol=1e-12)
    assert "6,466 isomorphism classes" in result.summary
    assert rows.loc[("edge_0_1", "nor_conv_3x3"), "top_k_frequency"] == pytest.approx(0.0)  # the best have 0


# --------------------------------------------------------------------------------------------
# results, reports, CLI


def test_result_repr_and_html():
    result = ca.calibration_vs_accuracy(frame_of(representatives(30), acc=np.linspace(0.2, 0.9, 30),
                                                 pre_ECE_15=np.linspace(0.3, 0.1, 30)))
    text = repr(result)
    assert text.startswith("<5. accuracy:") and one_line(text)
    page = result._repr_html_()
    assert html.escape(result.summary) in page and "data:image/png;base64," in page and "<table" in page
    assert result.png()[:8] == b"\x89PNG\r\n\x1a\n"


def _study_csv(tmp_path, n: int = 40):
    """A small published-layout TSS table with a temperature column and made-up values."""
    frame = make_published_frame(TSS, representatives(n), seed=7)
    frame["temperature"] = np.round(np.linspace(0.2, 3.0, n), 1)
    path = tmp_path / "cifar10_tss.csv"
    frame.to_csv(path, index=False)
    return path


# Runs the CLI as `calnas` does, then fails if the run imported pyplot (global backend state) or torch.
_CLI_AND_MODULE_CHECK = """
import sys
from calnas.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    if exc.code:
        raise
bad = [m for m in ("matplotlib.pyplot", "torch") if m in sys.modules]
sys.exit(f"imported {bad}" if bad else 0)
"""


def test_cli_writes_seven_sections_and_index(tmp_path):
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "-c", _CLI_AND_MODULE_CHECK, "analyze", "--benchmark",
                           str(_study_csv(tmp_path)), "--out", str(out), "--json"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert [q["number"] for q in summary["questions"]] == list(range(1, 8))
    answered = {q["number"]: q["answered"] for q in summary["questions"]}
    assert answered == {1: False, 2: False, 3: True, 4: True, 5: True, 6: True, 7: True}
    for q in ca.QUESTIONS:
        assert (out / f"{q.stem}.csv").is_file()
        assert (out / f"{q.stem}.png").is_file() == answered[q.number]
    page = (out / "index.html").read_text()
    assert page.count("<section") == 7 and page.count("<img") == 5
    assert "needs two tables" in page and "needs robustness columns" in page


def test_cli_questions_by_number_and_name(run_cli, tmp_path):
    out = tmp_path / "two"
    done = run_cli("analyze", "accuracy", "1", "--benchmark", _study_csv(tmp_path), "--out", out)
    assert done.returncode == 0, done.stderr
    assert done.stdout.index("5. Calibration vs accuracy") < done.stdout.index("1. Cross-dataset")
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "q1-generalization.csv", "q5-accuracy.csv",
                                                     "q5-accuracy.png"]

    # A later report of other questions keeps no stale answer beside its index, and no user file is touched.
    (out / "notes.csv").write_text("mine")
    again = run_cli("analyze", "4", "--benchmark", _study_csv(tmp_path), "--out", out)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "notes.csv", "q4-temperature-per_architecture.csv",
                                                     "q4-temperature.csv", "q4-temperature.png"]


def test_cli_refuses_a_report_folder_another_run_holds(tmp_path, run_cli):
    from calnas.files import claim_folder

    out = tmp_path / "held"
    with claim_folder(out):
        done = run_cli("analyze", "5", "--benchmark", _study_csv(tmp_path), "--out", out)
        assert done.returncode == 2 and "in use" in done.stderr, done.stderr
        assert [p.name for p in out.iterdir()] == [".calnas.lock"]


@pytest.mark.parametrize("args", [
    ["analyze", "8", "--out", "{tmp}/a"],
    ["analyze", "--metric", "no_such_metric", "--out", "{tmp}/a"],
    ["analyze", "--benchmark", "no-such-benchmark", "--out", "{tmp}/a"],
    ["analyze", "--out", "{tmp}/file.txt/sub"],
])
def test_cli_bad_input_exits_2_with_one_line(run_cli, tmp_path, args):
    (tmp_path / "file.txt").write_text("not a folder")
    done = run_cli(*[a.format(tmp=tmp_path) for a in args])
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr


def _chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


@pytest.mark.skipif(_chromium() is None, reason="no Chromium installed (apt-get install chromium)")
def test_index_page_renders_in_headless_chromium(tmp_path):
    frame = pd.read_csv(_study_csv(tmp_path))
    results = ca.run_questions([ca.as_table(frame)], ["metrics", "accuracy", "robustness"])
    paths = ca.write_report(results, tmp_path / "r")
    shot = tmp_path / "page.png"
    done = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--window-size=1200,2400", f"--screenshot={shot}", paths["index.html"].as_uri()],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert shot.is_file(), done.stderr[-2000:]
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(header[16:20], "big") == 1200
    # A blank page compresses to a few KB; the heatmap and scatter plots make it far larger.
    assert shot.stat().st_size > 50_000


# --------------------------------------------------------------------------------------------
# wording on tables where a question has nothing to find (issue 24)


@pytest.mark.parametrize("metric", ["temperature", "params"])
def test_calibration_vs_accuracy_judges_calibration_only_for_calibration_metrics(metric):
    reps = representatives(60)
    acc = np.linspace(0.3, 0.9, 60)
    result = ca.calibration_vs_accuracy(frame_of(reps, acc=acc, **{metric: 2 - acc}), metric=metric)
    assert f"have lower {metric}" in result.summary and "calibration)" not in result.summary
    judged = ca.calibration_vs_accuracy(frame_of(reps, acc=acc, pre_ECE_15=1 - acc), metric="pre_ECE_15")
    assert "lower pre_ECE_15 (better calibration)" in judged.summary


def test_architecture_design_on_a_constant_metric_names_no_choice_over_or_under_represented():
    reps = representatives(80)
    result = ca.architecture_design(frame_of(reps, pre_ECE_15=np.full(80, 0.05)), metric="ece", top_k=8, n_boot=50)
    assert "over-represented" not in result.summary
    assert "constant" in result.summary


def test_every_question_answers_a_table_with_missing_accuracies():
    reps = representatives(80)
    rng = np.random.default_rng(0)
    acc = rng.uniform(0.3, 0.9, 80)
    acc[::3] = np.nan
    frame = frame_of(reps, acc=acc, pre_ECE_15=rng.uniform(0, 0.2, 80), post_ECE_15=rng.uniform(0, 0.1, 80),
                     temperature=rng.uniform(0.5, 2, 80))
    for result in ca.run_questions([frame]):
        assert "nan" not in result.summary.lower(), result.summary


def test_every_question_words_a_constant_table_without_nan():
    reps = representatives(80)
    frame = frame_of(reps, acc=np.full(80, 0.5), pre_ECE_15=np.full(80, 0.05), post_ECE_15=np.full(80, 0.04),
                     temperature=np.full(80, 1.2))
    for result in ca.run_questions([frame]):
        assert "nan" not in result.summary.lower(), result.summary


def test_metric_agreement_beyond_seed_noise_on_a_curve_table(tmp_path):
    """Two metrics measuring one quantity under independent seed noise agree fully once the noise
    is corrected for; a metric measuring something else does not; a single-seed table has no view."""
    reps = representatives(400)
    rng = np.random.default_rng(5)
    truth, other = rng.random(400), rng.random(400)
    rows = []
    for s in (0, 1, 2):
        rows.append(pd.DataFrame({"index": reps, "arch": [TSS.arch(i) for i in reps], "seed": s,
                                  "acc": rng.uniform(0.5, 0.9, 400), "e1_acc": rng.uniform(0.1, 0.5, 400),
                                  "pre_ECE_15": truth + 0.3 * rng.standard_normal(400),
                                  "pre_NLL": truth + 0.3 * rng.standard_normal(400),
                                  "pre_Brier": other + 0.3 * rng.standard_normal(400)}))
    path = tmp_path / "curves.csv"
    pd.concat(rows).to_csv(path, index=False)
    result = ca.metric_agreement(str(path))
    pairs = result.details["seeds"].set_index(["metric_a", "metric_b"])
    same = pairs.loc[("pre_ECE_15", "pre_NLL")]
    assert same.same_seed_rho < 0.6 and same.corrected_rho == pytest.approx(1, abs=0.1)
    assert abs(pairs.loc[("pre_ECE_15", "pre_Brier"), "corrected_rho"]) < 0.15
    assert same.reliability_a == pytest.approx(same.same_seed_rho, abs=0.1)  # the noise is the same size
    assert "Beyond seed noise (3 training seeds" in result.summary
    single = ca.metric_agreement(pd.concat(rows).query("seed == 0").drop(columns=["seed", "e1_acc"]))
    assert "seeds" not in single.details
