"""The joint architecture x recipe search (calnas search --live --recipes)."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest

from calnas.errors import UserError
from calnas.live.recipes import RECIPES, SEARCH_GRID, expand_recipes
from calnas.spaces import SSS, TSS, RecipeSpace, get_space

# --------------------------------------------------------------------------------------------
# the space and the recipe list (no torch)


def test_recipe_names_expand_to_their_grid_and_explicit_parameters_stand_alone():
    assert expand_recipes("ce,mixup") == ("ce", "mixup:0.1", "mixup:0.2", "mixup:0.4")
    assert expand_recipes(["ce", "focal:2", "focal:2", " label-smoothing:0.1 "]) == \
        ("ce", "focal:2", "label-smoothing:0.1")
    for name, grid in SEARCH_GRID.items():  # every grid holds the recipe's default
        assert RECIPES[name].default in grid
    with pytest.raises(UserError, match="at least two recipes"):
        expand_recipes("ce")
    with pytest.raises(UserError, match="at least two recipes"):
        expand_recipes("focal:0,focal:-0")  # one recipe, spelled twice
    with pytest.raises(UserError, match="at least two recipes"):
        expand_recipes(",,,")
    with pytest.raises(UserError, match="unknown recipe"):
        expand_recipes("ce,mixupp")
    with pytest.raises(UserError, match="alpha must satisfy"):
        expand_recipes("ce,mixup:-1")


@pytest.mark.parametrize("base", [TSS, SSS])
def test_the_joint_space_is_the_product_and_a_neighbour_may_change_the_recipe(base):
    space = RecipeSpace(base, ("ce", "mixup:0.2", "focal:3"))
    assert space.size == 3 * base.size and get_space(space.name) == space
    rng = random.Random(0)
    for index in rng.sample(range(space.size), 50):
        arch = space.arch(index)
        base_index, recipe = space.split(index)
        assert arch == f"{base.arch(base_index)}@{recipe}" and space.index(arch) == index
        assert space.join(base_index, recipe) == index
        assert space.from_params(space.to_params(arch)) == arch
        neighbours = space.neighbours(arch)
        recipe_moves = [n for n in neighbours if n.rpartition("@")[0] == arch.rpartition("@")[0]]
        assert len(recipe_moves) == 2  # the other two recipes, same architecture
        assert len(neighbours) == len(base.neighbours(base.arch(base_index))) + 2
    assert space.param_choices()["recipe"] == ("ce", "mixup:0.2", "focal:3")
    with pytest.raises(UserError, match="not searched here"):
        space.parse(f"{base.arch(0)}@focal:5")
    with pytest.raises(UserError, match="ARCH@RECIPE"):
        space.parse(base.arch(0))


def test_joint_isomorphism_classes_keep_the_recipe_apart():
    from calnas.searchers.domain import Domain

    space = RecipeSpace(TSS, ("ce", "focal:3"))
    domain = Domain.whole_space(space, "iso")
    base = Domain.whole_space(TSS, "iso")
    index = np.arange(space.size)
    np.testing.assert_array_equal(domain.classes, base.classes[index // 2] * 2 + index % 2)
    assert domain.n_keys == 2 * base.n_keys  # the budget counts (class, recipe) pairs


# --------------------------------------------------------------------------------------------
# live (torch)

TINY = dict(dataset="digits", epochs=1, channels=4, cells=1)


@pytest.fixture
def live():
    pytest.importorskip("torch")
    pytest.importorskip("xautodl")
    import calnas

    return calnas


def test_a_joint_search_trains_pairs_resumes_and_its_front_shows_recipes(tmp_path, live):
    from calnas.live.joint import recipe_table_path

    url = f"sqlite:///{tmp_path / 's.db'}"
    config = live.LiveConfig(**TINY, recipes="ce,mixup:0.2,focal:3", table_out=tmp_path / "t.csv")
    first = live.search(objectives="acc,ece", budget=4, seed=5, storage=url, study_name="j", live=config)
    assert first.evaluations == 4
    result = live.search(objectives="acc,ece", budget=7, seed=5, storage=url, study_name="j", live=config)
    assert result.evaluations == 7 and result.info["evaluation_time"]["trained"] == 7
    trials, front = result.trials, result.front
    assert {"arch", "index", "recipe"} <= set(trials.columns) and "recipe" in front.columns
    assert set(trials["recipe"]) <= {"ce", "mixup:0.2", "focal:3"}
    assert not trials.duplicated(["index", "recipe"]).any()  # no pair evaluated twice
    for arch, index in zip(trials["arch"], trials["index"]):
        assert TSS.index(arch) == index  # the architecture as every other command spells it
    # every training went to its recipe's table, a standard calnas table of one protocol
    rows = 0
    for recipe in ("ce", "mixup:0.2", "focal:3"):
        path = recipe_table_path(tmp_path / "t.csv", recipe)
        table = pd.read_csv(path)
        meta = json.loads(path.with_name(path.name + ".protocol.json").read_text())
        assert meta["protocol"]["recipe"] == recipe and (table["recipe"] == recipe).all()
        mine = trials[trials["recipe"] == recipe]
        assert sorted(table["index"]) == sorted(set(TSS_iso(i) for i in mine["index"]))
        rows += len(table)
    assert rows == 7
    # every front member was trained by this study: its reliability diagrams are there, by (arch, recipe)
    space = get_space(result.info["space"])
    keys = [space.join(i, r) for i, r in zip(front["index"], front["recipe"])]
    assert list(result.reliability_diagrams()) == keys
    assert result.plot_reliability() is not None
    assert result.info["recipe_tables"]["ce"] == str(recipe_table_path(tmp_path / "t.csv", "ce"))
    # the stored study alone rebuilds the same result (calnas show)
    import optuna

    again = live.searching.load_result(optuna.load_study(study_name="j", storage=url))
    pd.testing.assert_frame_equal(again.front, front)
    # the same study under other recipes is another search: refused in one line
    with pytest.raises(UserError):
        live.search(objectives="acc,ece", budget=8, seed=5, storage=url, study_name="j",
                    live=config.replace(recipes="ce,focal:3"))


def TSS_iso(index: int) -> int:
    from calnas.live.evaluate import tss_iso

    return tss_iso(int(index))


@pytest.mark.slow
def test_a_recipe_table_from_a_joint_search_answers_as_a_cache(tmp_path, live):
    from calnas.live.joint import recipe_table_path

    config = live.LiveConfig(**TINY, recipes="ce,focal:3", table_out=tmp_path / "a.csv")
    first = live.search(objectives="acc,ece", budget=4, seed=2, live=config)
    focal = recipe_table_path(tmp_path / "a.csv", "focal:3")
    trained_focal = len(pd.read_csv(focal))
    again = live.search(objectives="acc,ece", budget=4, seed=2,
                        live=config.replace(table_out=tmp_path / "b.csv", cache=(str(focal),)))
    assert again.info["evaluation_time"]["cached"] == trained_focal  # the same proposals: focal rows reused
    assert again.info["evaluation_time"]["trained"] == 4 - trained_focal
    pd.testing.assert_frame_equal(again.trials.drop(columns="hypervolume"), first.trials.drop(columns="hypervolume"))
    with pytest.raises(UserError, match="none of the searched recipes"):
        live.search(objectives="acc,ece", budget=2, live=live.LiveConfig(**TINY, recipes="ce,mixup:0.2",
                                                                             cache=(str(focal),)))


def test_recipe_and_recipes_exclude_each_other(live):
    with pytest.raises(UserError, match="exclude each other"):
        live.search(objectives="acc,ece", budget=2, live=live.LiveConfig(**TINY, recipe="focal", recipes="ce,focal"))


JOINT_FLAGS = ["--epochs", "1", "--channels", "4", "--cells", "1"]


@pytest.mark.slow  # a live CLI search (36 s); the library test above trains pairs in the default run
def test_cli_joint_search_writes_recipes_in_the_front(tmp_path, run_cli, live):
    flags = JOINT_FLAGS
    done = run_cli("search", "--live", "--recipes", "ce,label-smoothing:0.1", "--objective", "acc,ece", "--budget", "3",
                   "--seed", "1", *flags, "--out", tmp_path / "a", "--no-plot", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert sorted(summary["recipe_tables"]) == ["ce", "label-smoothing:0.1"]
    front = pd.read_csv(tmp_path / "a" / "front.csv")
    assert set(front["recipe"]) <= {"ce", "label-smoothing:0.1"} and len(front) >= 1
    assert (tmp_path / "a" / "table.ce.csv").exists() and (tmp_path / "a" / "table.label-smoothing-0.1.csv").exists()


def test_cli_joint_search_refuses_bad_combinations(tmp_path, run_cli, live):
    flags = JOINT_FLAGS
    for bad, message in ((["--live", "--recipes", "ce,focal", "--recipe", "focal"], "exclude each other"),
                         (["--recipes", "ce,focal"], "applies to live searches"),
                         (["--live", "--recipes", "ce,nope"], "unknown recipe"),
                         (["--live", "--recipes", "focal:3"], "at least two recipes"),
                         (["--live", "--recipes", ",,,"], "at least two recipes")):
        proc = run_cli("search", *bad, "--budget", "2", *flags, "--out", tmp_path / "x", "--no-plot")
        assert proc.returncode == 2 and proc.stderr.startswith("error:") and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
