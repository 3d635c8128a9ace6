"""Live evaluations keep their reliability-diagram data; a live search draws its front's diagrams."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("xautodl")

import calnas  # noqa: E402
from calnas import record as rec  # noqa: E402
from calnas.metrics import ReliabilityDiagram, reliability_diagram  # noqa: E402

TINY_FLAGS = ["--epochs", "1", "--channels", "4", "--cells", "1"]


def tiny_live(**kw):
    return calnas.LiveConfig(dataset="digits", epochs=1, channels=4, cells=1, **kw)


def test_a_live_evaluation_keeps_the_diagram_of_its_test_predictions():
    from calnas.live.evaluate import evaluate_live

    result = evaluate_live(5041, epochs=1, channels=4, cells=1, device="cpu", seed=0)
    stored = result.record["reliability"]
    direct = reliability_diagram(result.probs, result.labels)
    pre = ReliabilityDiagram.from_dict(stored["pre"])
    assert pre.n_samples == len(result.labels) == direct.n_samples
    np.testing.assert_array_equal(pre.count, direct.count)
    np.testing.assert_allclose(pre.accuracy, direct.accuracy, equal_nan=True)
    np.testing.assert_allclose(pre.confidence, direct.confidence, rtol=1e-9, equal_nan=True)
    assert pre.ece == pytest.approx(result.record["metrics"]["pre_ECE_15"], abs=1e-9)
    # after scaling: the diagram of the temperature-scaled probabilities, with the panel's post ECE
    temperature = result.record["metrics"]["temperature"]
    from scipy.special import softmax

    scaled = softmax(np.log(result.probs) / temperature, axis=1)
    post = ReliabilityDiagram.from_dict(stored["post"])
    np.testing.assert_array_equal(post.count, reliability_diagram(scaled, result.labels).count)
    assert post.ece == pytest.approx(result.record["metrics"]["post_ECE_15"], abs=1e-9)
    assert ReliabilityDiagram.from_dict(pre.to_dict()).to_dict() == pre.to_dict()  # round trip


def test_live_search_writes_the_front_members_reliability_grid(tmp_path):
    from PIL import Image

    url = f"sqlite:///{tmp_path / 's.db'}"
    result = calnas.search(objectives="acc,ece", budget=4, seed=2, storage=url, study_name="r",
                           live=tiny_live(table_out=tmp_path / "t.csv"))
    diagrams = result.reliability_diagrams()
    assert list(diagrams) == [int(i) for i in result.front["index"]]  # every trained member, front order
    stored = {t.user_attrs[rec.INDEX]: t.user_attrs[rec.RELIABILITY] for t in result.study.trials
              if rec.RELIABILITY in t.user_attrs}
    assert len(stored) == 4  # every evaluation, not only the front
    for index, pair in diagrams.items():
        assert set(pair) == {"pre", "post"} and pair["pre"].to_dict() == stored[index]["pre"]
    paths = result.save(tmp_path / "out")
    assert paths["reliability_plot"].name == "reliability.png"
    width, height = Image.open(paths["reliability_plot"]).size
    assert width > 300 and height > 300
    # rebuilt from the stored study alone (calnas show): the same diagrams
    again = calnas.searching.load_result(__import__("optuna").load_study(study_name="r", storage=url))
    assert {i: d["pre"].to_dict() for i, d in again.reliability_diagrams().items()} == \
        {i: d["pre"].to_dict() for i, d in diagrams.items()}


def test_a_table_search_draws_no_reliability_grid_and_no_stale_one_survives(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "reliability.png").write_bytes(b"an earlier run's figure")
    result = calnas.search(objectives="acc,ece", budget=20, seed=0)
    assert result.reliability_diagrams() == {} and result.plot_reliability() is None
    paths = result.save(out)
    assert "reliability_plot" not in paths and not (out / "reliability.png").exists()
    assert (out / "pareto.png").exists()


@pytest.mark.slow  # two live CLI searches; the library test above covers the figure in the default run
def test_cli_live_search_lists_the_reliability_figure(tmp_path, run_cli):
    import json

    done = run_cli("search", "--live", "--objective", "acc,ece", "--budget", "3", "--seed", "4", *TINY_FLAGS,
                   "--out", tmp_path / "a", "--json")
    assert done.returncode == 0, done.stderr
    files = json.loads(done.stdout)["files"]
    assert files["reliability_plot"].endswith("reliability.png") and (tmp_path / "a" / "reliability.png").exists()
    again = run_cli("search", "--live", "--objective", "acc,ece", "--budget", "3", "--seed", "4", *TINY_FLAGS,
                    "--out", tmp_path / "a", "--no-plot", "--json")
    assert again.returncode == 0, again.stderr
    assert not (tmp_path / "a" / "reliability.png").exists()
