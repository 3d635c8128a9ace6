"""Storages calnas must not touch: show only reads, and no search adopts another program's database."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from tests.test_hardening import refused


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def foreign_db(tmp_path):
    path = tmp_path / "other_app.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE users (id INTEGER, name TEXT)")
    connection.execute("INSERT INTO users VALUES (1, 'a')")
    connection.commit()
    connection.close()
    return path


def test_show_never_creates_or_migrates_a_storage(tmp_path, foreign_db, run_cli):
    before = _sha(foreign_db)
    empty = tmp_path / "empty.db"
    empty.touch()
    cases = [(f"sqlite:///{foreign_db}", "not an Optuna storage"), (f"sqlite:///{empty}", "is empty"),
             (f"sqlite:///{tmp_path / 'missing.db'}", "does not exist"),
             (f"journal:///{tmp_path / 'missing.log'}", "not a journal a search wrote"),
             ("sqlite:///:memory:", "in memory")]
    for url, message in cases:
        result = run_cli("show", "--storage", url)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert _sha(foreign_db) == before
    assert empty.stat().st_size == 0
    assert not (tmp_path / "missing.db").exists() and not (tmp_path / "missing.log").exists()


def test_search_refuses_a_database_that_is_not_an_optuna_storage(tmp_path, foreign_db, run_cli):
    before = _sha(foreign_db)
    result = run_cli("search", "--budget", "3", "--storage", f"sqlite:///{foreign_db}", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "not an Optuna storage (it holds users)" in result.stderr
    assert _sha(foreign_db) == before


def test_show_reads_a_storage_a_search_wrote(tmp_path, run_cli):
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert run_cli("search", "--budget", "4", "--storage", url, "--out", str(tmp_path / "a")).returncode == 0
    before = _sha(tmp_path / "s.db")
    result = run_cli("show", "--storage", url, "--json")
    assert result.returncode == 0, result.stderr
    assert '"evaluations": 4' in result.stdout
    assert _sha(tmp_path / "s.db") == before


def test_live_search_refuses_a_training_seed_outside_the_documented_range(tmp_path, run_cli):
    for seed in ("4294967296", "-1"):
        result = run_cli("search", "--live", "--dataset", "digits", "--budget", "2", "--train-seed", seed,
                         "--out", str(tmp_path / f"o{seed}"))
        assert result.returncode == 2, result.stderr
        assert ("training seed" in result.stderr or "--train-seed" in result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1


def test_analyze_refuses_a_negative_seed_before_any_work(tmp_path, run_cli):
    result = run_cli("analyze", "7", "--seed", "-1", "--out", str(tmp_path / "a"))
    assert result.returncode == 2 and result.stderr.startswith("error: seed must be at least 0")
    assert "Traceback" not in result.stderr and not (tmp_path / "a").exists()


# -- every file a search writes in --out is checked before the storage is made --------------------

@pytest.mark.parametrize("name", ["front.csv", "trials.csv", "summary.json", "curves.csv", "pareto.png"])
def test_a_result_file_name_taken_by_a_folder_is_refused_before_the_storage_exists(capsys, tmp_path, name):
    # Before, the whole search ran and was stored, and only the save stopped (IsADirectoryError).
    out = tmp_path / "o"
    (out / name).mkdir(parents=True)
    (out / name / "keep.txt").write_text("the user's\n")
    digest = _sha(out / name / "keep.txt")
    refused(capsys, "search", "--budget", 4, "--out", out, "--storage", f"sqlite:///{tmp_path}/s.db",
            match=f"holds a {name} that is not a regular file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]  # no s.db, no lock left
    assert sorted(p.name for p in out.iterdir()) == [name]
    assert _sha(out / name / "keep.txt") == digest


def test_a_default_out_that_cannot_be_made_is_refused_before_the_storage_exists(capsys, tmp_path):
    (tmp_path / "runs").write_text("not a folder\n")
    refused(capsys, "search", "--budget", 4, "--storage", f"sqlite:///{tmp_path}/s.db", match="runs",
            cwd=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert (tmp_path / "runs").read_text() == "not a folder\n"
