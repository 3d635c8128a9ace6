"""Bad input, as a new user gives it (issue 12): one `error:` line and exit code 2, nothing of
the user's modified, nothing unbounded, nothing silently wrong. The CLI runs in-process here
(`calnas.cli.main`), which is what `python -m calnas` runs, so that the many cases stay fast."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calnas.cli import main
from calnas.spaces import TSS
from tests.conftest import make_published_frame

EMPTY_CELL = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def cli(capsys, *args, cwd: Path | None = None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `calnas ARGS`."""
    here = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    finally:
        os.chdir(here)
    out = capsys.readouterr()
    return code, out.out, out.err


def refused(capsys, *args, match: str = "", cwd: Path | None = None) -> str:
    code, _, err = cli(capsys, *args, cwd=cwd)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert match in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def table(tmp_path) -> Path:
    path = tmp_path / "cifar10_tss.csv"
    make_published_frame(TSS, range(40), seed=1).to_csv(path, index=False)
    return path


@pytest.fixture
def npz(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "p.npz"
    np.savez(path, logits=rng.normal(size=(60, 4)), labels=rng.integers(0, 4, 60))
    return path


# -- data loss: nothing calnas refuses is modified ------------------------------------------------

@pytest.mark.parametrize("content", [b"a,b\n1,2\n3,4", bytes(range(256)) * 4, b"index,config\n1,1\n2,"])
def test_resume_never_modifies_a_file_that_is_not_provably_its_build(capsys, tmp_path, content):
    out = tmp_path / "mydata.csv"
    out.write_bytes(content)
    refused(capsys, "table", "build", "--resume", "--out", out, "--limit", "1", match="mydata.csv")
    assert out.read_bytes() == content and not (tmp_path / "mydata.csv.protocol.json").exists()
    # With a protocol file that is empty, binary or another build's, still nothing changes.
    meta = tmp_path / "mydata.csv.protocol.json"
    for record in (b"", bytes(range(256)), b'{"space": "sss", "seed": 3, "protocol": {}}', b"[1, 2]"):
        meta.write_bytes(record)
        refused(capsys, "table", "build", "--resume", "--out", out, "--limit", "1")
        assert out.read_bytes() == content and meta.read_bytes() == record


def test_resume_refuses_folders_and_devices(capsys, tmp_path):
    refused(capsys, "table", "build", "--resume", "--out", tmp_path, "--limit", "1", match="not a regular file")
    refused(capsys, "table", "build", "--resume", "--out", "/dev/null", "--limit", "1", match="not a regular file")


@pytest.mark.parametrize("command", [["table", "build", "--out", "t.csv", "--limit", "1"],
                                     ["evaluate", "0", "--live", "--epochs", "1"]])
def test_negative_seeds(capsys, tmp_path, command):
    refused(capsys, *command, "--seed", "-1", match="seed", cwd=tmp_path)
    assert not (tmp_path / "t.csv").exists()


def test_table_ship_refuses_empty_binary_and_foreign_files(capsys, tmp_path):
    for name, content in (("empty.csv", b""), ("binary.csv", bytes(range(256)) * 8), ("header.csv", b"index,acc\n"),
                          ("text.csv", b"index,acc\n1,x\n")):
        (tmp_path / name).write_bytes(content)
        refused(capsys, "table", "ship", tmp_path / name, tmp_path / "o.gz")
    refused(capsys, "table", "ship", "/dev/zero", tmp_path / "o.gz", match="not a regular file")
    assert not (tmp_path / "o.gz").exists()


@pytest.mark.parametrize("space, bad", [("tss", {"index": 15625}), ("tss", {"index": 3}),
                                        ("sss", {"arch": "8:16:x:64:64"}), ("sss", {"arch": "8:16:24"})])
def test_table_ship_refuses_an_arch_outside_its_space_or_disagreeing_with_its_index(capsys, tmp_path, space, bad):
    from calnas.spaces import SSS

    table_space = TSS if space == "tss" else SSS
    rows = pd.DataFrame({"index": [0, 1, 2], "arch": [table_space.arch(i) for i in range(3)],
                         "acc": [0.5, 0.6, 0.7], "pre_ECE_15": [0.1, 0.2, 0.3]})
    for column, value in bad.items():
        rows.loc[1, column] = value
    build = tmp_path / "b.csv"
    rows.to_csv(build, index=False)
    before = build.read_bytes()
    refused(capsys, "table", "ship", build, tmp_path / "o.csv.gz", match="row 2")
    assert build.read_bytes() == before and not (tmp_path / "o.csv.gz").exists()


# -- tracebacks that were -------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["6²", "٣", "²", "|nor_conv_3x3~²|+|none~0|none~1|+|none~0|none~1|none~2|",
                                  "8:16:32:64:6²", "1" * 5000, "-5"])
def test_non_ascii_digits_and_odd_indices(capsys, arch):
    refused(capsys, "evaluate", "-b", "nats-tss-cifar10", "--", arch)


def test_double_dash_index(capsys):
    refused(capsys, "evaluate", "-b", "nats-tss-cifar10", "--", "--5", match="malformed")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_needed_column_without_finite_values(capsys, tmp_path, bad):
    frame = make_published_frame(TSS, range(40), seed=2)
    frame["pre_ECE_15"] = bad
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    refused(capsys, "search", "-b", path, "--budget", "5", "--out", tmp_path / "o", "--no-plot", match="no row")
    assert not (tmp_path / "o").exists()  # a folder the failed run created is removed again
    code, out, err = cli(capsys, "evaluate", "0", "-b", path, "--json")
    assert code == 0 and json.loads(out)["metrics"]["pre_ECE_15"] is None  # +-inf reads as missing


def test_design_question_with_an_infinite_metric(capsys, tmp_path):
    frame = make_published_frame(TSS, range(40), seed=2)
    frame["pre_ECE_15"] = np.inf
    frame.to_csv(tmp_path / "t.csv", index=False)
    code, _, err = cli(capsys, "analyze", "design", "-b", tmp_path / "t.csv", "--out", tmp_path / "a")
    assert code == 0, err
    assert "has no values for pre_ECE_15" in (tmp_path / "a" / "index.html").read_text()


def test_out_is_checked_before_the_search(capsys, tmp_path, table):
    existing = tmp_path / "file"
    existing.write_text("mine")
    for out in (existing, "/dev/null", "/proc/calnas-test", "/sys/calnas-test"):
        refused(capsys, "search", "-b", table, "-o", "acc,ece", "--budget", "5", "--out", out, match="--out")
    assert existing.read_text() == "mine"


@pytest.mark.parametrize("plot,match", [("noext", ".png"), ("x.jpgx", ".png"), ("/proc/x.png", "not writable"),
                                        ("DIR/x.png", "is not a folder")])
def test_metrics_plot_is_checked_first(capsys, tmp_path, npz, plot, match):
    (tmp_path / "DIR").write_text("a file, not a folder")
    refused(capsys, "metrics", npz, "--plot", plot.replace("DIR", str(tmp_path / "DIR")), match=match)
    assert not (tmp_path / "noext.png").exists()


def test_evaluate_live_plot_is_checked_before_training(capsys, tmp_path):
    refused(capsys, "evaluate", "0", "--live", "--plot", tmp_path / "r.gif", match=".png")


@pytest.mark.parametrize("content,match", [
    (bytes(range(256)), "UTF-8"),
    (b"budget: [1, 2]\n", "integer"),
    (b"objective: 5\n", "string"),
    (b"searcher: 2024-12-01\n", "string"),
    (b"budget: 2024-13-45\n", "YAML"),
    (b"study_name: 2024\n", "string"),
    (b"devices: [0, x]\n", "devices"),
    (b"- a\n- b\n", "mapping"),
    (b"a: " + b"[" * 800 + b"]" * 800 + b"\n", "YAML"),
])
def test_config_files(capsys, tmp_path, content, match):
    (tmp_path / "c.yaml").write_bytes(content)
    refused(capsys, "search", "--config", tmp_path / "c.yaml", "--out", tmp_path / "o", match=match)
    refused(capsys, "search", "--config", "/dev/zero", match="not a regular file")
    refused(capsys, "search", "--config", tmp_path, match="directory")


# -- unbounded resources ----------------------------------------------------------------------------

def test_devices_and_pipes_are_not_read(capsys, tmp_path):
    refused(capsys, "evaluate", "0", "-b", "/dev/zero", match="not a regular file")
    os.mkfifo(tmp_path / "pipe.csv")
    refused(capsys, "evaluate", "0", "-b", tmp_path / "pipe.csv", match="not a regular file")
    refused(capsys, "metrics", "/dev/zero", match="not a regular file")


@pytest.mark.parametrize("bins,match", [("1000000000000", "at most 10000"), ("10^12", "--bins"), ("0", "positive")])
def test_absurd_bin_counts(capsys, npz, bins, match):
    refused(capsys, "metrics", npz, "--bins", bins, match=match)


def test_an_npz_that_declares_more_than_it_holds(capsys, tmp_path):
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    labels = io.BytesIO()
    np.save(labels, np.zeros(3, dtype=np.int64))
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("logits.npy", header.getvalue())
        archive.writestr("labels.npy", labels.getvalue())
    refused(capsys, "metrics", tmp_path / "huge.npz", match="declares shape")


# -- silently wrong results that were ---------------------------------------------------------------

def test_hcs_takes_only_calibration_errors_in_the_unit_interval(capsys, tmp_path, table):
    for ece in ("nll", "post_brier_sum", "acc"):
        refused(capsys, "search", "-b", table, "-o", f"hcs:ece={ece}", "--budget", "3", "--out", tmp_path / "o",
                match="calibration error in [0, 1]")
    frame = pd.read_csv(table)
    frame.loc[0, "pre_ECE_15"] = 5.0
    frame.to_csv(tmp_path / "t.csv", index=False)
    refused(capsys, "search", "-b", tmp_path / "t.csv", "-o", "hcs", "--budget", "3", "--out", tmp_path / "o",
            match="in [0, 1]")


def test_fractional_configs_are_not_truncated(capsys, tmp_path):
    frame = make_published_frame(TSS, range(10)).drop(columns="arch")
    frame["config"] = [0.5, 1.5, 2, 3, 4, 5, 6, 7, 8, 9]
    frame.to_csv(tmp_path / "t.csv", index=False)
    refused(capsys, "evaluate", "1", "-b", tmp_path / "t.csv", match="'0.5'")


def test_no_plot_removes_an_earlier_runs_figures(capsys, tmp_path, table):
    out = tmp_path / "o"
    args = ("search", "-b", table, "-o", "acc,ece", "--budget", "5", "--out", out)
    assert cli(capsys, *args)[0] == 0 and (out / "pareto.png").exists() and (out / "hypervolume.png").exists()
    assert cli(capsys, *args, "--no-plot")[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["front.csv", "summary.json", "trials.csv"]


def test_a_folder_another_run_is_writing_is_refused(capsys, tmp_path, table):
    from calnas.files import claim_folder

    out = tmp_path / "o"
    with claim_folder(out):  # what a running search holds
        refused(capsys, "search", "-b", table, "-o", "acc,ece", "--budget", "5", "--out", out, match="in use")
        assert [p.name for p in out.iterdir()] == [".calnas.lock"]
    assert not list(out.iterdir())  # the claim ends with the run; so does its lock file
    assert cli(capsys, "search", "-b", table, "-o", "acc,ece", "--budget", "5", "--out", out)[0] == 0


def test_complex_logits_are_refused(capsys, tmp_path):
    np.savez(tmp_path / "c.npz", logits=np.ones((20, 3)) + 1j, labels=np.arange(20) % 3)
    refused(capsys, "metrics", tmp_path / "c.npz", match="real numbers")


def test_messages_say_what_was_found(capsys, tmp_path):
    frame = make_published_frame(TSS, range(10))
    frame.loc[3, "acc"] = -0.25
    frame.to_csv(tmp_path / "t.csv", index=False)
    line = refused(capsys, "evaluate", "0", "-b", tmp_path / "t.csv")
    assert "-0.25" in line and "architecture 3" in line
    line = refused(capsys, "search", "-b", "nats-tss-cifar10", "-o", "acc,params", "-c", "acc>=-0.1", "--budget", "3",
                   "--out", tmp_path / "o")
    assert "did you mean" not in line
    assert "did you mean 0.9" in refused(capsys, "search", "-b", "nats-tss-cifar10", "-o", "acc,params", "-c",
                                         "acc>=90", "--budget", "3", "--out", tmp_path / "o")


def test_usage_errors_are_one_line(capsys):
    refused(capsys, "search", "--bugdet", "5", match="No such option")
    refused(capsys, "search", "--budget", "abc", match="--budget")
    refused(capsys, "evaluate", match="Missing argument")


def test_names_the_system_refuses(capsys, tmp_path):
    refused(capsys, "evaluate", "0", "-b", "x" * 300, match="File name too long")
    (tmp_path / "c.yaml").write_text('benchmark: "a\\0b"\n')
    refused(capsys, "search", "--config", tmp_path / "c.yaml", match="NUL")


def test_default_result_folder(capsys, tmp_path, table):
    (tmp_path / "runs").write_text("a file where the default result folder goes")
    refused(capsys, "search", "-b", table, "-o", "acc,ece", "--budget", "3", match="'runs' exists", cwd=tmp_path)
    (tmp_path / "runs").unlink()
    assert cli(capsys, "search", "-b", table, "-o", "acc,ece", "--budget", "3", "--no-plot", cwd=tmp_path)[0] == 0
    assert cli(capsys, "search", "-b", table, "-o", "acc,ece", "--budget", "3", "--no-plot", cwd=tmp_path)[0] == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["search-001", "search-002"]


def test_the_installed_entry_point_behaves_the_same(run_cli, tmp_path):
    """The cases above run in-process; the real `python -m calnas` gives the same one line."""
    for args in (["evaluate", "-b", "nats-tss-cifar10", "--", "6²"],
                 ["table", "build", "--out", tmp_path / "t.csv", "--seed", "-1", "--limit", "1"]):
        proc = run_cli(*args)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr


def test_a_gzip_table_is_measured_by_decompressing_not_by_its_wrapping_trailer(tmp_path, monkeypatch):
    """The trailer holds the size modulo 4 GiB (and only the last member's): count instead."""
    import gzip

    from calnas import files
    from calnas.errors import UserError

    path = tmp_path / "cifar10_tss.csv.gz"
    member = gzip.compress(b"config,arch,acc\n" + b"0," * 200_000)
    path.write_bytes(member + member)  # two members, each under the limit, together over it
    monkeypatch.setitem(files.MAX_BYTES, "table", 600_000)
    with pytest.raises(UserError, match="calnas reads at most"):
        files.check_input(path, "table file", "table")
    monkeypatch.setitem(files.MAX_BYTES, "table", 900_000)
    assert files.check_input(path, "table file", "table") == path
