"""Parsed tables are cached on disk by file content and in memory by (path, size, mtime)."""

from __future__ import annotations

import os
import time

import pytest

from calnas import table_cache, tables
from calnas.spaces import TSS
from calnas.tables import load_csv
from conftest import make_published_frame


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(table_cache.CACHE_ENV, str(folder))
    table_cache._memory.clear()
    yield folder / "tables"
    table_cache._memory.clear()


def _forbid_parsing(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("parsed again")

    monkeypatch.setattr(tables, "_parse_csv", refuse)


def test_a_table_is_parsed_once_then_read_from_the_cache(tmp_path, cache, monkeypatch):
    path = tmp_path / "cifar10_tss.csv"
    make_published_frame(TSS, range(40)).to_csv(path, index=False)
    first = load_csv(path)
    assert len(list(cache.glob("*.pkl"))) == 1
    table_cache._memory.clear()  # a new process: only the disk cache is left
    with monkeypatch.context() as m:
        _forbid_parsing(m)
        again = load_csv(path)
        third = load_csv(path)  # from memory
    assert again.frame.equals(first.frame) and again.space is TSS and again.dataset == "cifar10"
    again.frame.loc[again.frame.index[0], "acc"] = -1.0  # every caller owns its copy
    assert third.frame["acc"].min() >= 0 and load_csv(path).frame["acc"].min() >= 0


def test_an_edited_file_is_parsed_again_and_a_broken_entry_is_ignored(tmp_path, cache):
    path = tmp_path / "cifar10_tss.csv"
    make_published_frame(TSS, range(40)).to_csv(path, index=False)
    load_csv(path)
    make_published_frame(TSS, range(30), seed=1).to_csv(path, index=False)
    os.utime(path, ns=(1, 1))  # even with the old mtime: the content decides
    table_cache._memory.clear()
    assert len(load_csv(path)) == 30 and len(list(cache.glob("*.pkl"))) == 2
    for entry in cache.glob("*.pkl"):
        entry.write_bytes(b"not a pickle")
    table_cache._memory.clear()
    assert len(load_csv(path)) == 30


def test_no_cache_when_off_or_unwritable(tmp_path, monkeypatch):
    path = tmp_path / "cifar10_tss.csv"
    make_published_frame(TSS, range(10)).to_csv(path, index=False)
    table_cache._memory.clear()
    monkeypatch.setenv(table_cache.CACHE_ENV, "off")
    assert table_cache.cache_dir() is None and len(load_csv(path)) == 10
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv(table_cache.CACHE_ENV, str(blocker))  # its "tables" folder cannot be made
    table_cache._memory.clear()
    assert len(load_csv(path)) == 10
    table_cache._memory.clear()


def test_a_bad_table_is_still_one_error_and_not_cached(tmp_path, cache):
    from calnas.errors import UserError

    path = tmp_path / "cifar10_tss.csv"
    path.write_text("config,arch,acc\n0,|bogus~0|,0.5\n")
    with pytest.raises(UserError, match="bogus"):
        load_csv(path)
    assert not cache.exists() or not list(cache.glob("*.pkl"))


@pytest.mark.parametrize("name", ["cifar10_tss.csv", "cifar100_sss.csv.gz", "imagenet_tss.csv"])
def test_benchmarks_are_listed_from_headers_as_loading_would_describe_them(tmp_path, cache, monkeypatch, name):
    from calnas.spaces import SSS
    from calnas.tables import describe, list_benchmarks, load_benchmark

    space = SSS if "sss" in name else TSS
    frame = make_published_frame(space, range(0, 3000, 7))
    frame.to_csv(tmp_path / name, index=False, compression="infer")
    key = name.split(".")[0]
    expected = describe(load_benchmark(key, data_dir_path=tmp_path))
    table_cache._memory.clear()
    with monkeypatch.context() as m:
        _forbid_parsing(m)
        listed = {row["name"]: row for row in list_benchmarks(tmp_path)}
    assert listed[key] == expected
    assert "digits-tss" in listed and listed["digits-tss"]["rows"] == TSS.size


@pytest.mark.parametrize("name", ["digits-tss", "nats-tss-cifar100"])
def test_shipped_tables_are_cached_too(name, cache, monkeypatch):
    def fresh_process():
        table_cache._memory.clear()
        tables._cached_embedded_calibration.cache_clear()
        tables._cached_embedded_accuracy.cache_clear()
        tables._nats_accuracy_frame.cache_clear()

    fresh_process()
    first = tables.load_benchmark(name)
    assert len(list(cache.glob("*.pkl"))) == 1
    fresh_process()
    with monkeypatch.context() as m:
        def refuse(*args, **kwargs):
            raise AssertionError("parsed again")

        m.setattr(tables.pd, "read_csv", refuse)
        again = tables.load_benchmark(name)
    assert again.frame.equals(first.frame) and again.space is first.space and again.name == name
    assert again.dataset == first.dataset and again.info == first.info


def _tables(tmp_path, n: int) -> list:
    paths = []
    for i in range(n):
        path = tmp_path / f"t{i}" / "cifar10_tss.csv"
        path.parent.mkdir()
        make_published_frame(TSS, range(40), seed=i).to_csv(path, index=False)
        paths.append(path)
    return paths


def _entries(cache) -> list:
    return sorted(p.name for p in cache.glob("*.pkl"))


def test_the_cache_is_bounded_and_evicts_the_least_recently_used_entry_first(tmp_path, cache, monkeypatch):
    a, b, c, d = _tables(tmp_path, 4)
    load_csv(a)
    (only,) = cache.glob("*.pkl")
    size = only.stat().st_size
    monkeypatch.setattr(table_cache, "MAX_BYTES", int(2.5 * size))  # room for two entries
    load_csv(b)
    first_two = set(_entries(cache))
    os.utime(only, ns=(1, 1))  # a's entry is the oldest, whatever the clock's resolution
    load_csv(c)
    assert len(_entries(cache)) == 2 and only.name not in _entries(cache)
    (b_entry,) = first_two - {only.name}
    os.utime(cache / b_entry, ns=(2, 2))
    table_cache._memory.clear()
    with monkeypatch.context() as m:
        _forbid_parsing(m)
        load_csv(b)  # read from the disk: b's entry is now the most recently used
    load_csv(d)
    assert b_entry in _entries(cache) and len(_entries(cache)) == 2
    assert sum(p.stat().st_size for p in cache.glob("*.pkl")) <= table_cache.MAX_BYTES


def test_an_entry_larger_than_the_bound_is_not_cached(tmp_path, cache, monkeypatch):
    (path,) = _tables(tmp_path, 1)
    monkeypatch.setattr(table_cache, "MAX_BYTES", 10_000)  # the entry pickles to more
    assert len(load_csv(path)) == 40
    assert not cache.exists() or not list(cache.iterdir())  # no entry, no partial file left


def test_the_bound_can_be_set_in_the_environment(tmp_path, cache, monkeypatch):
    from calnas.errors import UserError

    (path,) = _tables(tmp_path, 1)
    monkeypatch.setenv(table_cache.MAX_BYTES_ENV, "0")
    assert len(load_csv(path)) == 40
    assert not cache.exists() or not _entries(cache)
    table_cache._memory.clear()
    monkeypatch.setenv(table_cache.MAX_BYTES_ENV, "1_000_000")
    load_csv(path)
    assert len(_entries(cache)) == 1
    table_cache._memory.clear()
    for bad in ("lots", "-5", "1e9", "٣"):
        monkeypatch.setenv(table_cache.MAX_BYTES_ENV, bad)
        with pytest.raises(UserError, match=table_cache.MAX_BYTES_ENV):
            load_csv(path)


def test_a_table_read_in_chunks_is_the_table_read_at_once(tmp_path, monkeypatch):
    import pandas as pd

    from calnas import table_files
    from calnas.errors import UserError
    from calnas.table_frame import table_from_frame

    monkeypatch.setenv(table_cache.CACHE_ENV, "off")
    table_cache._memory.clear()
    path = tmp_path / "cifar10_tss.csv"
    frame = make_published_frame(TSS, range(0, 700, 3), seed=2)
    frame.to_csv(path, index=False)
    monkeypatch.setattr(table_files, "CSV_CHUNK_ROWS", 7)  # 234 rows: 34 chunks, the last one short
    read = load_csv(path)
    whole = table_from_frame(pd.read_csv(path), name=str(path), dataset="cifar10")
    pd.testing.assert_frame_equal(read.frame, whole.frame)
    header_only = tmp_path / "cifar100_tss.csv"
    header_only.write_text(",".join(frame.columns) + "\n")
    with pytest.raises(UserError, match="has no rows"):
        load_csv(header_only)


def test_columns_joined_chunk_by_chunk_keep_pandas_rules_for_a_dtype_that_changes(tmp_path, monkeypatch):
    # Each column is joined on its own now; a column read as int in one chunk and float, text
    # or nothing in another must come out as pandas' concatenation of the chunks made it.
    import numpy as np
    import pandas as pd

    from calnas import table_files

    monkeypatch.setattr(table_files, "CSV_CHUNK_ROWS", 50)
    n = 230
    frame = make_published_frame(TSS, range(n), seed=3)
    frame["int_then_nan"] = np.arange(n, dtype=float)
    frame.loc[120, "int_then_nan"] = np.nan
    frame["text_then_nan"] = "x"
    frame.loc[50:99, "text_then_nan"] = np.nan
    frame["int_then_text"] = [str(i) for i in range(n)]
    frame.loc[201, "int_then_text"] = "abc"
    frame["flag_then_nan"] = pd.Series([True] * n, dtype=object)
    frame.loc[160, "flag_then_nan"] = None
    for name in ("t.csv", "t.csv.gz"):
        path = tmp_path / name
        frame.to_csv(path, index=False)
        chunks = pd.concat(list(pd.read_csv(path, chunksize=50)), ignore_index=True)
        pd.testing.assert_frame_equal(table_files._read_csv(path), chunks, check_exact=True)


def test_parsing_a_table_peaks_near_the_parsed_tables_size(tmp_path, monkeypatch):
    """numpy's allocations (traced by tracemalloc: every column, every copy; not the tokenizer's
    own buffers) while a 31 MB CSV of the whole SSS space is parsed, next to the parsed frame's
    size. Joining chunks as frames held every chunk and the joined frame at once (2.0x here), and
    pandas without copy-on-write copied the frame for each rename, set_index and join; now 1.2x
    (the chunk in hand and one column being joined; less for a larger table)."""
    import tracemalloc

    from calnas import table_files
    from calnas.spaces import SSS
    from calnas.table_meta import sss_meta

    monkeypatch.setenv(table_cache.CACHE_ENV, "off")
    path = tmp_path / "cifar10_sss.csv"
    make_published_frame(SSS, range(SSS.size), seed=4).to_csv(path, index=False)
    sss_meta()  # loaded once per process, not part of parsing a table
    table_cache._memory.clear()
    tracemalloc.start()
    try:
        _, frame, _, _ = table_files._parse_csv(path, "cifar10")
        parsing = tracemalloc.get_traced_memory()[1]
        del frame
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        table = load_csv(path)  # parsed, kept in the in-memory cache, and the caller's copy of it
        loading = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
        table_cache._memory.clear()
    size = table.frame.memory_usage(deep=True).sum()
    assert parsing < 1.5 * size, f"parsing peaked at {parsing / size:.2f}x the {size / 1e6:.0f} MB frame"
    # Two frames by design (the cache's and the caller's); DataFrame.copy of the cached frame
    # copied each column and then merged them, three.
    assert loading < 2.5 * size, f"load_csv peaked at {loading / size:.2f}x the {size / 1e6:.0f} MB frame"


def test_the_callers_copy_of_a_cached_table_is_the_table_and_its_own(tmp_path, monkeypatch):
    import numpy as np
    import pandas as pd

    from calnas import table_files

    monkeypatch.setenv(table_cache.CACHE_ENV, "off")
    table_cache._memory.clear()
    path = tmp_path / "cifar10_tss.csv"
    make_published_frame(TSS, range(0, 3000, 2), seed=5).to_csv(path, index=False)
    first, second = load_csv(path), load_csv(path)
    cached = next(iter(table_cache._memory.values()))[1]
    pd.testing.assert_frame_equal(first.frame, cached.copy(), check_exact=True)
    assert list(first.frame.columns) == list(cached.columns) and first.frame.columns.name == cached.columns.name
    first.frame.iloc[0, first.frame.columns.get_loc("acc")] = -1.0
    first.frame.loc[first.frame.index[1], "arch"] = "edited"
    assert second.frame["acc"].iloc[0] != -1.0 and cached["acc"].iloc[0] != -1.0
    assert "edited" not in set(second.frame["arch"]) | set(cached["arch"])
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"], "a2": [3, 4]})
    frame.columns = ["a", "b", "a"]  # repeated names: pandas' own copy
    pd.testing.assert_frame_equal(table_files._own_copy(frame), frame)
    assert np.shares_memory(table_files._own_copy(frame).iloc[:, 0].to_numpy(), frame.iloc[:, 0].to_numpy()) is False
    table_cache._memory.clear()


def test_a_partial_entry_a_killed_writer_left_is_removed_and_a_fresh_one_kept(tmp_path, cache):
    a, b = _tables(tmp_path, 2)
    load_csv(a)
    stale, fresh = cache / ".partial-stale.pkl", cache / ".partial-fresh.pkl"
    stale.write_bytes(b"x" * 100)
    fresh.write_bytes(b"y" * 100)
    old = time.time() - 2 * table_cache.STALE_PARTIAL_S
    os.utime(stale, (old, old))
    load_csv(b)  # storing its entry sweeps the folder
    assert not stale.exists() and fresh.exists()
