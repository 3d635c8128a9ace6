"""Bad input to live search, live training and live tables (the hardening issue's live half): one
`error:` line and exit code 2, before any training or any file is written, and every refused file
left byte for byte as it was. The CLI runs in-process (`calnas.cli.main`) to keep the cases fast."""

from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("xautodl")

from calnas.errors import UserError  # noqa: E402
from tests.test_hardening import cli, refused  # noqa: E402
from tests.test_live_search import write_npz  # noqa: E402

TINY = ["--epochs", "1", "-C", "4", "-N", "1", "--no-plot", "--json"]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A live table of the TINY protocol (one row) and its protocol.json, built once."""
    import contextlib
    import os

    folder = tmp_path_factory.mktemp("built")
    from calnas.cli import main

    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        try:
            main(["search", "--live", *TINY, "--budget", "1", "--out", str(folder / "o")])
        except SystemExit as exc:
            assert not exc.code
    return folder / "o" / "table.csv"


def copy_table(built: Path, folder: Path, *, rows: bytes | None = None, protocol: bytes | None = None) -> Path:
    table = folder / "t.csv"
    shutil.copy(built, table)
    shutil.copy(built.with_name(built.name + ".protocol.json"), folder / "t.csv.protocol.json")
    if rows is not None:
        table.write_bytes(rows)
    if protocol is not None:
        (folder / "t.csv.protocol.json").write_bytes(protocol)
    return table


def _with_cell(built: Path, column: str, value: str) -> bytes:
    header, row = built.read_text().splitlines()[:2]
    names, cells = header.split(","), row.split(",")
    cells[names.index(column)] = value
    return f"{header}\n{','.join(cells)}\n".encode()


# -- 1. a live table's protocol.json and rows: one reader each, the same for --table-out and --cache ----

@pytest.mark.parametrize("flag", ["--table-out", "--cache"])
@pytest.mark.parametrize("record", [b'{"space": ', b"[1, 2]", b"\xff\xfe\x00{}", b""])
def test_a_live_tables_protocol_json_is_read_by_the_one_checked_reader(capsys, tmp_path, built, flag, record):
    table = copy_table(built, tmp_path, protocol=record)
    before = sha(table), sha(tmp_path / "t.csv.protocol.json")
    refused(capsys, "search", "--live", *TINY, "--budget", "1", "--out", tmp_path / "o", flag, table,
            match="protocol record")
    assert (sha(table), sha(tmp_path / "t.csv.protocol.json")) == before


@pytest.mark.parametrize("flag", ["--table-out", "--cache"])
@pytest.mark.parametrize("case,match", [("binary", "UTF-8"), ("index", "'abc'"), ("metric", "acc holds 'abc'"),
                                        ("short", "malformed row"), ("torn-and-bad", "acc holds"),
                                        ("range", "outside the space")])
def test_cache_rows_are_checked_as_the_table_outs_are(capsys, tmp_path, built, flag, case, match):
    rows = {"binary": bytes(range(256)) * 8,
            "index": _with_cell(built, "index", "abc"),
            "metric": _with_cell(built, "acc", "abc"),
            "short": built.read_bytes() + b"12,3\n",
            "range": _with_cell(built, "index", "15625"),  # TSS holds 0..15624
            # a torn last line would be cut from a table file, but not from one refused for a bad row
            "torn-and-bad": _with_cell(built, "acc", "abc") + b"17,x"}[case]
    table = copy_table(built, tmp_path, rows=rows)
    before = sha(table)
    refused(capsys, "search", "--live", *TINY, "--budget", "1", "--out", tmp_path / "o", flag, table,
            "--storage", f"sqlite:///{tmp_path}/s.db", match=match)
    assert sha(table) == before
    assert not (tmp_path / "o").exists() and not (tmp_path / "s.db").exists()  # refused before the study exists
    if flag == "--table-out":  # a joint search's recipe tables are held to the same rules
        recipe_table = tmp_path / "t.ce.csv"
        shutil.copy(table, recipe_table)
        shutil.copy(tmp_path / "t.csv.protocol.json", tmp_path / "t.ce.csv.protocol.json")
        refused(capsys, "search", "--live", *TINY, "--budget", "1", "--recipes", "ce,mixup", "--out", tmp_path / "o",
                flag, table, "--storage", f"sqlite:///{tmp_path}/s.db", match=match)
        assert sha(recipe_table) == before and not (tmp_path / "s.db").exists()


def test_a_table_out_in_a_folder_that_cannot_be_made_is_refused_before_the_study(capsys, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    refused(capsys, "search", "--live", *TINY, "--budget", "1", "--out", tmp_path / "o", "--table-out",
            tmp_path / "file" / "t.csv", "--storage", f"sqlite:///{tmp_path}/s.db", match="is not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize("flag,what", [("--cache", "cache table"), ("--table-out", "table file")])
def test_a_folder_or_a_device_as_a_live_table_says_what_it_is(capsys, tmp_path, flag, what):
    refused(capsys, "search", "--live", *TINY, "--budget", "1", "--out", tmp_path / "o", flag, tmp_path,
            match=f"{what} {str(tmp_path)!r} is a directory")
    refused(capsys, "search", "--live", *TINY, "--budget", "1", "--out", tmp_path / "o", flag, "/dev/zero",
            match="not a regular file")
    refused(capsys, "search", "--live", *TINY, "--budget", "1", "--out", tmp_path / "o", "--cache",
            tmp_path / "absent.csv", match="does not exist")


# -- 2. the user's own .npz data ----------------------------------------------------------------

def _declaring_npz(path: Path) -> Path:
    """x_train's header declares 10^12 float64s that the member does not hold."""
    write_npz(path)
    with np.load(path) as data:
        arrays = dict(data)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    with zipfile.ZipFile(path, "w") as archive:
        for key, value in arrays.items():
            member = io.BytesIO()
            np.save(member, value)
            archive.writestr(key + ".npy", header.getvalue() if key == "x_train" else member.getvalue())
    return path


def _labels(dtype, value):
    y = (np.arange(80) % 3).astype(dtype)
    y[5] = value
    return y


def _pixels(value):
    x = np.random.default_rng(0).uniform(0, 1, (80, 12, 12))
    x[0, 0, 0] = value
    return x


NPZ_CASES = {
    "declared-shape": (lambda p: _declaring_npz(p), "declares shape"),
    "zero-size-images": (lambda p: write_npz(p, x_train=np.zeros((80, 0, 0), np.uint8),
                                             x_test=np.zeros((40, 0, 0), np.uint8)), "at least 4 and divisible by 4"),
    "uint64-label": (lambda p: write_npz(p, y_train=_labels(np.uint64, 2**64 - 1)), "18446744073709551615"),
    "huge-label": (lambda p: write_npz(p, y_train=_labels(np.int64, 10**9)), "at most 10,000 classes"),
    "test-label-past-the-bound": (lambda p: write_npz(p, y_test=np.full(40, 10**5, np.uint32)), "label 100000"),
    "float32-max-pixel": (lambda p: write_npz(p, x_train=_pixels(3e38).astype(np.float32)), "3e+38"),
    "float64-pixel": (lambda p: write_npz(p, x_test=np.full((40, 12, 12), 1e300)), "1e+300"),
    "negative-pixel": (lambda p: write_npz(p, x_train=_pixels(-5e7).astype(np.float32)), "5e+07"),
}


@pytest.mark.parametrize("case", list(NPZ_CASES))
def test_npz_data_that_cannot_train_is_refused_before_training(capsys, tmp_path, case):
    make, match = NPZ_CASES[case]
    data = make(tmp_path / "d.npz")
    before = sha(data)
    refused(capsys, "search", "--live", *TINY, "--budget", "1", "--dataset", data, "--out", tmp_path / "o", match=match)
    refused(capsys, "evaluate", "0", "--live", *TINY[:6], "--dataset", data, match=match)
    assert sha(data) == before and not (tmp_path / "o").exists()


def test_a_folder_named_like_a_dataset_is_called_a_folder(capsys, tmp_path):
    (tmp_path / "x.npz").mkdir()
    refused(capsys, "evaluate", "0", "--live", "--dataset", tmp_path / "x.npz", match="is a directory")
    refused(capsys, "search", "--live", "--dataset", "/dev/zero.npz", "--out", tmp_path / "o", match="does not exist")


# -- 3. size options ----------------------------------------------------------------------------------

SIZES = [("-C", "channels", "100000"), ("-N", "cells", "1000000"), ("--epochs", "epochs", "99999999999999999999")]


@pytest.mark.parametrize("flag,name,value", SIZES)
def test_size_options_have_an_upper_bound_in_every_training_command(capsys, tmp_path, flag, name, value):
    size = [flag, value]
    refused(capsys, "search", "--live", "--budget", "1", *size, "--out", tmp_path / "o", match=f"{name} must be")
    refused(capsys, "evaluate", "0", "--live", *size, match=f"{name} must be")
    refused(capsys, "table", "build", "--out", tmp_path / "t.csv", "--limit", "1", *size, match=f"{name} must be")
    (tmp_path / "c.yaml").write_text(f"live: true\n{name}: {value}\n")
    refused(capsys, "search", "--config", tmp_path / "c.yaml", "--out", tmp_path / "o", match=f"{name} must be")
    assert not (tmp_path / "o").exists() and not (tmp_path / "t.csv").exists()


def test_worker_counts_are_bounded(capsys, tmp_path, built):
    refused(capsys, "search", "--live", *TINY, "--workers", "1000000", "--storage", f"sqlite:///{tmp_path}/s.db",
            "--out", tmp_path / "o", match="at most 256")
    refused(capsys, "search", "-b", "nats-tss-cifar10", "--workers", "1000000", "--out", tmp_path / "o",
            match="--workers must be")
    refused(capsys, "table", "build", "--out", tmp_path / "t.csv", "--limit", "1", "--workers", "1000000",
            match="at most 256")
    assert not (tmp_path / "o").exists() and not (tmp_path / "s.db").exists() and not (tmp_path / "t.csv").exists()


def test_the_library_bounds_a_protocols_sizes(tmp_path):
    from calnas.live.protocol import MAX_SIZES, Protocol

    for key, most in MAX_SIZES.items():
        with pytest.raises(UserError, match=f"{key} must be at least 1 and at most {most}"):
            Protocol(dataset="digits", **{key: most + 1})
        assert getattr(Protocol(dataset="digits", **{key: most}), key) == most


# -- 4. settings that make every training fail --------------------------------------------------------

@pytest.mark.parametrize("option,match", [(["--device", "foo"], "unknown device 'foo'"),
                                          (["--device", "cuda:7"], "cuda:7"),
                                          (["--device", "cuda:x"], "unknown device"),
                                          (["--devices", "0,99"], "requested but"),
                                          (["--train-seed", str(2**32)], "at most 4294967295")])
def test_training_settings_are_checked_before_anything_is_written(capsys, tmp_path, option, match):
    refused(capsys, "search", "--live", *TINY, "--budget", "2", *option, "--storage", f"sqlite:///{tmp_path}/s.db",
            "--table-out", tmp_path / "t.csv", "--out", tmp_path / "o", match=match)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no table, protocol, study or result folder


def test_a_search_whose_first_trainings_all_fail_stops_with_the_reason(capsys, tmp_path):
    code, out, err = cli(capsys, "search", "--live", *TINY, "--budget", "20", "--lr", "1e9", "--out", tmp_path / "o")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: stopped: the first 3 evaluations all failed: training diverged at epoch 1")


def test_only_first_failures_of_one_kind_stop_a_search():
    from calnas.worker_loop import FIRST_FAILURES, _stop_on_first_failures

    nan = "UserError: training diverged at epoch 1 (non-finite loss); try a smaller learning rate"
    _stop_on_first_failures([nan] * (FIRST_FAILURES - 1))  # not yet: the run goes on
    _stop_on_first_failures([nan, None, nan], final=True)  # one training succeeded: the settings can train
    _stop_on_first_failures([nan, "RuntimeError: CUDA out of memory", nan])  # no one reason
    with pytest.raises(UserError, match="the first 3 evaluations all failed: training diverged"):
        _stop_on_first_failures([nan] * FIRST_FAILURES)
    with pytest.raises(UserError, match="the only evaluation failed: RuntimeError: boom"):
        _stop_on_first_failures(["RuntimeError: boom"], final=True)  # a budget of one


# -- 5. messages ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [[], ["--track"]])
def test_a_diverged_training_says_so_and_when(capsys, extra):
    refused(capsys, "evaluate", "0", "--live", *TINY[:6], "--lr", "1e9", *extra,
            match="training diverged at epoch 1 (non-finite loss)")


def test_a_full_disk_while_appending_a_live_row_is_one_line_and_the_search_resumes(capsys, tmp_path, monkeypatch):
    """The row torn by the full disk is cut when the search resumes; the resumed search ends with
    exactly its budget of rows, each once."""
    import errno
    import os

    import pandas as pd

    import calnas.live.table_file as table_file

    url, table = f"sqlite:///{tmp_path / 's.db'}", tmp_path / "t.csv"
    args = ("search", "--live", *TINY, "--budget", 3, "--storage", url, "--table-out", table)
    writes = {"n": 0}

    def write(fd, data):
        writes["n"] += 1
        if writes["n"] == 1:
            return os.write(fd, bytes(data))
        os.write(fd, bytes(data[: len(data) // 2]))  # half the row reaches the disk, then it is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr(table_file, "_os_write", write)
        refused(capsys, *args, "--out", tmp_path / "o1", match="No space left on device")
    assert not table.read_bytes().endswith(b"\n")  # the torn row is there
    code, _, err = cli(capsys, *args, "--out", tmp_path / "o2")
    assert code == 0, err
    rows = pd.read_csv(table)
    assert len(rows) == 3 and rows["index"].is_unique and table.read_bytes().endswith(b"\n")


# -- the default table (OUT/table.csv) is checked as --table-out is: before a storage exists ----------

def _snapshot(folder: Path) -> dict:
    """Every file and folder under ``folder``: its path and, for a file, the sha256 of its bytes."""
    return {str(p.relative_to(folder)): sha(p) if p.is_file() else "folder" for p in sorted(folder.rglob("*"))}


def _foreign_table(out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_text("a,b\n1,2\n")  # another program's CSV: no protocol.json beside it


def _folder_named(out: Path, name: str) -> None:
    (out / name).mkdir(parents=True)
    (out / name / "keep.txt").write_text("the user's\n")


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
@pytest.mark.parametrize("make,name,match", [(_folder_named, "table.csv", "is a directory"),
                                             (_foreign_table, "table.csv", "has no table.csv.protocol.json"),
                                             (_folder_named, "table.ce.csv", "is a directory")])
def test_the_default_live_table_is_checked_before_the_storage_is_created(capsys, tmp_path, storage, make, name,
                                                                          match):
    # Before, OUT/table.csv (unlike --table-out) was first looked at when the study was attached:
    # the refusal came after the storage file and the study had been created.
    out = tmp_path / "o"
    make(out, name)
    url = f"sqlite:///{tmp_path}/s.db" if storage == "sqlite" else f"journal:///{tmp_path}/s.log"
    before = _snapshot(tmp_path)
    recipes = ["--recipes", "ce,mixup"] if name == "table.ce.csv" else []
    refused(capsys, "search", "--live", *TINY, "--budget", "1", *recipes, "--out", out, "--storage", url,
            match=match)
    assert _snapshot(tmp_path) == before  # no storage, no lock, nothing changed in --out


def test_a_resumed_study_keeps_its_own_table_whatever_the_new_out_holds(capsys, tmp_path):
    # The default is only checked where the run would write it: a study that already has its
    # table appends there, and a table.csv folder in another --out is none of its business.
    url = f"sqlite:///{tmp_path}/s.db"
    code, _, err = cli(capsys, "search", "--live", *TINY, "--budget", "1", "--out", tmp_path / "o1", "--storage", url)
    assert code == 0, err
    _folder_named(tmp_path / "o2", "table.csv")
    code, out, err = cli(capsys, "search", "--live", *TINY, "--budget", "1", "--out", tmp_path / "o2",
                         "--storage", url)
    assert code == 0, err
    assert (tmp_path / "o1" / "table.csv").is_file() and (tmp_path / "o2" / "table.csv" / "keep.txt").is_file()
