import json
import subprocess
import sys

import pytest

from tests.conftest import make_published_frame
from calnas.spaces import TSS

BEST_C10 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def _metrics(obj):
    return obj.get("metrics", obj)


def test_evaluate_real_natsbench_accuracy(run_cli):
    out = run_cli("evaluate", BEST_C10, "--benchmark", "nats-tss-cifar10", "--json")
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout)
    assert obj["arch"] == BEST_C10 and obj["index"] == 6111 and obj["benchmark"] == "nats-tss-cifar10"
    assert round(_metrics(obj)["acc"], 5) == 0.94373


def test_evaluate_index_prints_table_with_twins(run_cli):
    out = run_cli("evaluate", "0", "--benchmark", "nats-tss-cifar100")
    assert out.returncode == 0, out.stderr
    assert "isomorphic twins" in out.stdout and "3599" in out.stdout  # 3599 is a twin of index 0
    assert "acc" in out.stdout


def test_evaluate_published_csv_returns_values_exactly(run_cli, tmp_path):
    frame = make_published_frame(TSS, [0, 17, 6111, 15624], seed=3)
    path = tmp_path / "cifar10_tss.csv"
    frame.to_csv(path, index=False)
    out = run_cli("evaluate", BEST_C10, "--benchmark", path, "--json")
    assert out.returncode == 0, out.stderr
    got = _metrics(json.loads(out.stdout))
    expected = frame.set_index("config").loc[6111]
    for col in frame.columns[2:]:
        assert got[col] == expected[col], col


@pytest.mark.parametrize(
    "args",
    [
        ["evaluate", "|nor_conv_3x3~0|+|nor_conv_3x3~0|"],
        ["evaluate", "|conv7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|"],
        ["evaluate", "8:16:32:64:72", "--benchmark", "nats-tss-cifar10"],
        ["evaluate", "99999"],
        ["evaluate", "0", "--benchmark", "no-such-benchmark"],
        ["evaluate", "0", "--benchmark", "/nonexistent/cifar10_tss.csv"],
    ],
)
def test_user_errors_exit_2_with_one_line(run_cli, args):
    out = run_cli(*args)
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert "Traceback" not in out.stderr


def test_missing_required_column_exit_2(run_cli, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("acc,pre_ECE_15\n0.9,0.01\n")
    out = run_cli("evaluate", "0", "--benchmark", path)
    assert out.returncode == 2 and "arch" in out.stderr and "Traceback" not in out.stderr


def test_benchmarks_lists_embedded_and_data_dir(run_cli, tmp_path):
    make_published_frame(TSS, range(12)).to_csv(tmp_path / "cifar10_tss.csv", index=False)
    out = run_cli("benchmarks", "--json", "--data-dir", tmp_path)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["nats-tss-cifar10"]["rows"] == 15625
    assert rows["cifar10_tss"]["rows"] == 12 and "pre_ECE_15" in rows["cifar10_tss"]["metric_columns"]


def test_table_lookup_never_imports_torch():
    code = (
        "import sys, json; from calnas.cli import main\n"
        "try:\n    main(['evaluate', '6111', '--benchmark', 'nats-tss-cifar10', '--json'])\n"
        "except SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "pandas" in imported and not any(m == "torch" or m.startswith("torch.") for m in imported)


def test_help_works(run_cli):
    out = run_cli("--help")
    assert out.returncode == 0 and "evaluate" in out.stdout and "benchmarks" in out.stdout
