"""Property-based tests (hypothesis) of three more boundaries: recipe specs, storage URLs (the
parser and `calnas show --storage`) and the live .npz dataset validator. Whatever the input, the
answer is a result or a one-line UserError, never another exception; a read never creates a
file (issue 24)."""

from __future__ import annotations

import os
import string
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from calnas.errors import UserError
from tests.test_properties import ODD_TEXT, result_or_user_error

QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- recipe specs ------------------------------------------------------------------------------

RECIPE_PIECES = ["ce", "focal", "label-smoothing", "mixup", "margin", ":", " ", "0", "1", "3", "0.1", "-1", "1e9",
                 "nan", "inf", "_", "1_0", "e", ".", "FOCAL", ",", "\x00", "٣", "1" * 50]
RECIPE_TEXT = st.one_of(ODD_TEXT, st.lists(st.sampled_from(RECIPE_PIECES), max_size=8).map("".join))


@QUICK
@given(RECIPE_TEXT)
def test_a_recipe_spec_is_a_recipe_or_a_user_error(text):
    from calnas.live.recipes import RECIPES, canonical_recipe, parse_recipe

    parsed = result_or_user_error(parse_recipe, text)
    if parsed is not None:
        name, value = parsed
        assert name in RECIPES and (value is None or np.isfinite(value))
        assert parse_recipe(canonical_recipe(text)) == parsed  # the recorded spelling reads back the same


@QUICK
@given(st.lists(RECIPE_TEXT, max_size=4))
def test_a_recipe_list_is_recipes_or_a_user_error(items):
    from calnas.live.recipes import expand_recipes

    expanded = result_or_user_error(expand_recipes, items)
    assert expanded is None or (len(expanded) >= 2 and len(set(expanded)) == len(expanded))


# -- storage URLs ------------------------------------------------------------------------------

URL_PIECES = ["sqlite:", "journal:", "///", "//", "/", "memory", ":memory:", "file::memory:", "?mode=memory", "?",
              "s.db", "s.log", ".log", "..", "x/", "~", " ", "%00", "\x00", "MEMORY", "SQLITE:///", "a" * 300, "://",
              "http://", "é"]
URL_TEXT = st.one_of(ODD_TEXT, st.lists(st.sampled_from(URL_PIECES), max_size=6).map("".join))


def _in_empty_folder(check):
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        try:
            check()
        finally:
            os.chdir(here)
        left = sorted(os.listdir(folder))
        assert left == [], left


@QUICK
@given(URL_TEXT)
@example("a" * 300 + ".log")  # a file name too long for the file system (found by this property)
@example("sqlite:///" + "b" * 300 + ".db")
def test_a_storage_url_is_read_or_refused_in_one_line_without_creating_a_file(url):
    from calnas.storage import is_persistent, open_storage

    def check():
        persistent = is_persistent(url)
        assert isinstance(persistent, bool)
        result_or_user_error(open_storage, url, read_only=True)

    _in_empty_folder(check)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(URL_TEXT.filter(lambda u: not u.startswith("-") and "\x00" not in u))
def test_calnas_show_refuses_any_storage_in_one_line_and_creates_nothing(url):
    from calnas.cli import main

    def check():
        import contextlib
        import io

        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                main(["show", "--storage", url])
                code = 0
            except SystemExit as exc:
                code = exc.code
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err.getvalue())

    _in_empty_folder(check)


# -- the live .npz dataset validator -------------------------------------------------------------

DTYPES = st.sampled_from([np.uint8, np.int8, np.int64, np.uint64, np.float16, np.float32, np.float64, np.bool_,
                          np.complex64])


def _array(dtype, shape):
    return hnp.arrays(dtype, shape, elements=None if np.dtype(dtype).kind in "iub" else
                      st.floats(allow_nan=True, allow_infinity=True, width=16 if np.dtype(dtype).itemsize == 2 else 32)
                      if np.dtype(dtype).kind == "f" else None)


IMAGE_SHAPES = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5),
    st.tuples(st.integers(0, 12), st.sampled_from([1, 3]), st.sampled_from([2, 4, 8]), st.sampled_from([4, 8])),
    st.tuples(st.integers(0, 12), st.sampled_from([4, 8]), st.sampled_from([4, 8])),
)
LABEL_SHAPES = st.one_of(st.tuples(st.integers(0, 12)), hnp.array_shapes(min_dims=0, max_dims=2, max_side=4))


@st.composite
def npz_members(draw):
    members = {}
    for key in draw(st.lists(st.sampled_from(["x_train", "y_train", "x_test", "y_test", "x_val", "y_val", "other"]),
                             unique=True, min_size=0, max_size=7)):
        shape = draw(LABEL_SHAPES if key.startswith("y") else IMAGE_SHAPES)
        dtype = draw(DTYPES)
        if draw(st.booleans()):
            members[key] = draw(_array(dtype, shape))
        else:  # mostly plausible values: labels 0..3, pixels in 0..255
            n = int(np.prod(shape)) if len(shape) else 1
            values = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, 4 if key[0] == "y" else 256, n)
            members[key] = values.reshape(shape).astype(dtype)
    return members


@st.composite
def sound_npz_members(draw):
    """A small dataset the validator should take (10 to 14 images per split, 4x4 or 8x4, labels
    0..3), with one member sometimes replaced by a random array, so both answers are reached."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    side = draw(st.sampled_from([(4, 4), (8, 4)]))
    layout = draw(st.sampled_from(["nhw", "nchw", "nhwc"]))
    dtype = draw(st.sampled_from([np.uint8, np.float32, np.float64]))
    members = {}
    for split in draw(st.sampled_from([("train", "test"), ("train", "val", "test")])):
        n = draw(st.integers(10, 14))
        shape = {"nhw": (n, *side), "nchw": (n, 3, *side), "nhwc": (n, *side, 1)}[layout]
        members[f"x_{split}"] = rng.integers(0, 256, shape).astype(dtype)
        members[f"y_{split}"] = rng.integers(0, 4, n).astype(draw(st.sampled_from([np.int64, np.uint8, np.int32])))
    if draw(st.booleans()):
        key = draw(st.sampled_from(sorted(members)))
        members[key] = draw(_array(draw(DTYPES), draw(LABEL_SHAPES if key[0] == "y" else IMAGE_SHAPES)))
    return members


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(npz_members(), sound_npz_members()))
def test_an_npz_dataset_is_splits_or_a_user_error(members):
    from calnas.live.datasets import read_npz

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "d.npz"
        np.savez(path, **members)
        data = result_or_user_error(read_npz, path)
    if data is not None:
        train = data["images"]["train"]
        assert train.dtype == np.float32 and train.ndim == 4 and train.shape[1] in (1, 3)
        assert np.isfinite(train).all() and data["classes"] >= 2
        for split, labels in data["labels"].items():
            assert labels.dtype == np.int64 and len(labels) == len(data["images"][split])
            assert labels.min() >= 0 and labels.max() < data["classes"]
