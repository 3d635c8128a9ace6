"""`calnas search` end to end, as a user runs it (subprocess), plus the Python API."""

import json
import random
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import calnas
from calnas import pareto
from calnas.spaces import TSS
from calnas.tables import load_benchmark
from tests.conftest import ROOT, make_published_frame

FILES = ("front.csv", "trials.csv", "summary.json", "pareto.png", "hypervolume.png")


def assert_non_dominated(front: pd.DataFrame, summary: dict):
    names = [o["name"] for o in summary["objectives"]]
    points = pareto.as_minimisation(front[names].to_numpy(), [o["direction"] for o in summary["objectives"]])
    assert pareto.nondominated_mask(points).all()


def test_budget_500_twice_gives_identical_files(run_cli, tmp_path):
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        proc = run_cli("search", "--benchmark", "nats-tss-cifar10", "--objective", "acc,params", "--budget", "500",
                       "--seed", "0", "--out", out)
        assert proc.returncode == 0, proc.stderr
    for name in FILES:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    trials = pd.read_csv(outs[0] / "trials.csv")
    front = pd.read_csv(outs[0] / "front.csv")
    summary = json.loads((outs[0] / "summary.json").read_text())
    assert len(trials) == 500 and trials["arch"].is_unique and trials["index"].is_unique
    assert list(trials.columns) == ["arch", "index", "trial", "acc", "params", "hypervolume"]
    assert list(front.columns) == ["arch", "index", "rank", "acc", "params"]
    assert_non_dominated(front, summary)
    assert summary["evaluations"] == 500 and summary["searcher_requested"] == "auto"
    assert 0.9 < summary["hypervolume_ratio"] <= 1.0 + 1e-12
    assert 0 <= summary["true_front_found"] <= summary["true_front_size"]
    # The front table printed on stdout lists every front member.
    assert all(arch in proc.stdout for arch in front["arch"])
    assert "hypervolume" in proc.stdout


def test_default_benchmark_acc_ece(run_cli, tmp_path):
    """On the embedded default: a search when it carries calibration, else a one-line exit 2."""
    table = load_benchmark(None)
    proc = run_cli("search", "--objective", "acc,ece", "--budget", "60", "--seed", "0", "--out", tmp_path / "d",
                   "--no-plot")
    if table.has("pre_ECE_15"):
        assert proc.returncode == 0, proc.stderr
        front = pd.read_csv(tmp_path / "d" / "front.csv")
        assert {"acc", "ece", "pre_ECE_15"} <= set(front.columns)
    else:
        assert proc.returncode == 2
        assert proc.stderr.strip() == (f"error: pre_ECE_15 is not in {table.name}; use the embedded calibration "
                                       "table or a published calibration CSV (e.g. cifar10_tss.csv)")


def test_calibration_csv_with_constraints_and_json(run_cli, tmp_path):
    # Made-up values in the published layout (tests/conftest.py); 400 TSS architectures.
    path = tmp_path / "cifar10_tss.csv"
    make_published_frame(TSS, random.Random(2).sample(range(TSS.size), 400), seed=9).to_csv(path, index=False)
    proc = run_cli("search", "-b", path, "-o", "acc,ece", "-o", "hcs:beta=2", "-c", "acc>=0.3", "-c", "ece<=0.6",
                   "-n", "40", "-s", "local", "--seed", "5", "--out", tmp_path / "out", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["searcher"] == "local" and summary["evaluations"] == 40
    assert [c["constraint"] for c in summary["constraints"]] == ["acc>=0.3", "ece<=0.6"]
    trials = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert list(trials.columns) == ["arch", "index", "trial", "acc", "ece", "pre_ECE_15", "hcs:beta=2", "feasible", "hypervolume"]
    assert trials["feasible"].equals((trials["acc"] >= 0.3) & (trials["ece"] <= 0.6))
    front = pd.read_csv(tmp_path / "out" / "front.csv")
    assert front["feasible"].all()
    assert_non_dominated(front, summary)
    assert set(summary["files"]) == {"front", "trials", "summary", "plot", "hypervolume_plot"}


def test_config_file_and_command_line_override(run_cli, tmp_path):
    proc = run_cli("search", "--config", ROOT / "configs" / "cifar10-acc-params.yaml", "--budget", "30",
                   "--searcher", "random", "--out", tmp_path / "c", "--json", "--no-plot")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["benchmark"], summary["budget"], summary["searcher"]) == ("nats-tss-cifar10", 30, "random")
    assert [o["name"] for o in summary["objectives"]] == ["acc", "params"]
    assert not (tmp_path / "c" / "pareto.png").exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["-b", "nats-tss-cifar10", "-o", "acc,eec"], "unknown objective 'eec'; closest valid names: ece"),
        (["-b", "nats-tss-cifar10", "-o", "acc,ece"], "pre_ECE_15 is not in nats-tss-cifar10"),
        (["-b", "nats-tss-cifar10", "-o", "acc,nll"], "pre_NLL is not in nats-tss-cifar10"),
        (["-b", "nats-tss-cifar10", "-o", "acc", "-c", "acc=>0.9"], "bad constraint 'acc=>0.9'"),
        (["-b", "nats-tss-cifar10", "-o", "acc", "-c", "acc>=90"], "did you mean 0.9"),
        (["-b", "nats-tss-cifar10", "-o", "acc", "-c", "ece<0.1"], "pre_ECE_15 is not in nats-tss-cifar10"),
        (["-b", "nats-tss-cifar10", "-o", "acc", "-s", "tpee"], "unknown searcher 'tpee'"),
        (["-b", "nats-tss-cifar10", "-o", "acc", "--dedupe", "cell"], "unknown dedupe mode 'cell'"),
        (["-b", "nats-tss-cifar10", "-o", "acc", "--budget", "0"], "budget must be at least 1"),
        (["-b", "nats-tss-cifar11", "-o", "acc"], "unknown benchmark"),
        (["--config", "missing.yaml"], "config file 'missing.yaml' does not exist"),
    ],
)
def test_user_errors_are_one_line_exit_2(run_cli, tmp_path, args, fragment):
    proc = run_cli("search", *args, "--out", tmp_path / "never")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "never").exists()


def test_bad_config_key_is_one_line(run_cli, tmp_path):
    config = tmp_path / "x.yaml"
    config.write_text("objectives: acc,params\nbudgett: 5\n")
    proc = run_cli("search", "--config", config)
    assert proc.returncode == 2 and "unknown key 'budgett'" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_help_states_the_budget_and_duplicate_rule(run_cli):
    proc = run_cli("search", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "DISTINCT architectures" in text and "answered from a cache at no cost" in text
    assert "--dedupe" in text and "isomorphic twin" in text


def test_search_path_never_imports_torch(tmp_path):
    code = (
        "import sys\n"
        "from calnas.cli import main\n"
        "try:\n"
        f"    main(['search', '-b', 'nats-tss-cifar10', '-o', 'acc,params', '-n', '50', '--out', {str(tmp_path)!r}])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "print('torch' in sys.modules, 'xautodl' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False False"


def test_python_api_result_and_plot(tmp_path):
    result = calnas.search(benchmark="nats-tss-cifar10", objectives="acc,flops", budget=80, searcher="auto", seed=1)
    again = calnas.search(benchmark="nats-tss-cifar10", objectives="acc,flops", budget=80, seed=1)
    assert result.trials.equals(again.trials)
    assert isinstance(result.trials, pd.DataFrame) and isinstance(result.front, pd.DataFrame)
    assert result.hypervolume > 0 and len(result.true_front) > 0
    assert result.hypervolume_ratio == pytest.approx(result.hypervolume / result.true_hypervolume)
    figure = result.plot(tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000 and len(figure.axes) == 1
    # The true front is the table's non-dominated set, found by enumeration.
    frame = load_benchmark("nats-tss-cifar10").frame
    points = pareto.as_minimisation(frame[["acc", "flops"]].to_numpy(), ["maximize", "minimize"])
    assert set(result.true_front["index"]) == set(frame.index[pareto.nondominated_mask(points)])
    assert np.isfinite(result.summary()["hypervolume"])


def test_anytime_hypervolume_column_and_plot(run_cli, tmp_path):
    proc = run_cli("search", "--objective", "acc,ece", "--budget", "60", "--seed", "2", "--out", tmp_path / "h", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    trials = pd.read_csv(tmp_path / "h" / "trials.csv")
    curve = trials["hypervolume"].to_numpy()
    assert np.all(np.diff(curve) >= 0) and curve[0] >= 0
    assert curve[-1] == pytest.approx(summary["hypervolume"], rel=1e-9)
    # Each value is the hypervolume of the front found so far, computed afresh for a few prefixes.
    names = [o["name"] for o in summary["objectives"]]
    directions = [o["direction"] for o in summary["objectives"]]
    bounds = summary["normalisation"]
    lower = [-bounds[n]["best"] if d == "maximize" else bounds[n]["best"] for n, d in zip(names, directions)]
    upper = [-bounds[n]["worst"] if d == "maximize" else bounds[n]["worst"] for n, d in zip(names, directions)]
    for i in (0, 9, 30):
        points = pareto.normalise(pareto.as_minimisation(trials[names].to_numpy()[: i + 1], directions), lower, upper)
        assert curve[i] == pytest.approx(pareto.hypervolume(points, [pareto.REFERENCE] * 2), rel=1e-10)  # CSV keeps 12 digits
    assert (tmp_path / "h" / "hypervolume.png").stat().st_size > 1000


def test_result_reprs_for_notebooks():
    result = calnas.search(None, "acc,ece", budget=20, seed=0)
    assert repr(result).startswith(f"<SearchResult guided on {calnas.tables.default_benchmark()} (acc,ece): 20 evaluations")
    page = result._repr_html_()
    assert "<table" in page and "data:image/png;base64," in page
