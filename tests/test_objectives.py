"""The objective language: names, aliases, directions, hcs, constraints, one-line errors.

The calibration table here is built by the test in the published layout; its values are made up
(uniform random, see tests/conftest.py), which is all a parser test needs.
"""

import random

import numpy as np
import pytest

from calnas import objectives
from calnas.errors import UserError
from calnas.spaces import TSS
from calnas.tables import load_benchmark, table_from_frame
from calnas.objectives import catalog
from tests.conftest import make_published_frame


@pytest.fixture(scope="module")
def calib():
    frame = make_published_frame(TSS, random.Random(0).sample(range(TSS.size), 50), seed=3)
    rng = np.random.default_rng(4)
    for col in ("AUROC", "AURC", "E_AURC", "coverage_95", "coverage_99", "temperature", "brightness",
                "fgsm_Linf_acc0_1"):
        frame[col] = rng.uniform(0.0, 1.0, len(frame))
    return table_from_frame(frame, name="cifar10_tss.csv", dataset="cifar10")


@pytest.mark.parametrize(
    "token, column, direction",
    [
        ("acc", "acc", "maximize"),
        ("ACCURACY", "acc", "maximize"),
        ("ece", "pre_ECE_15", "minimize"),
        ("post_ece_15", "post_ECE_15", "minimize"),
        ("ece_em_50", "pre_ECE_em_50", "minimize"),
        ("cwce_15", "pre_cwCE_15", "minimize"),
        ("post_cwce_em", "post_cwCE_em_15", "minimize"),
        ("mce_100", "pre_MCE_100", "minimize"),
        ("ksce", "pre_KSCE", "minimize"),
        ("kdece", "pre_KDECE", "minimize"),
        ("mmce", "pre_MMCE", "minimize"),
        ("nll", "pre_NLL", "minimize"),
        ("Post_NLL", "post_NLL", "minimize"),
        ("brier", "pre_Brier", "minimize"),
        ("pre_ECE_500", "pre_ECE_500", "minimize"),
        ("correct_confidence", "correct_confidence", "maximize"),
        ("incorrect_confidence", "incorrect_confidence", "minimize"),
        ("auroc", "AUROC", "maximize"),
        ("aurc", "AURC", "minimize"),
        ("e_aurc", "E_AURC", "minimize"),
        ("coverage_95", "coverage_95", "maximize"),
        ("params", "params", "minimize"),
        ("flops", "flops", "minimize"),
        ("brightness", "brightness", "maximize"),
        ("fgsm_linf_acc0_1", "fgsm_Linf_acc0_1", "maximize"),
        ("max:ece", "pre_ECE_15", "maximize"),
        ("min:acc", "acc", "minimize"),
    ],
)
def test_names_resolve_to_columns_and_directions(calib, token, column, direction):
    (obj,) = objectives.parse(token, calib).objectives
    assert (obj.column, obj.direction) == (column, direction)
    assert obj.name == token.lower().split(":")[-1]
    assert np.array_equal(obj.values(calib.frame), calib.frame[column].to_numpy(dtype=float))


def test_every_schema_column_is_a_valid_name(calib):
    checked = 0
    for column in catalog.schema_columns():
        if calib.has(column):
            token = column.lower() if catalog.direction(column) else f"min:{column.lower()}"
            assert objectives.parse(token, calib).objectives[0].column == column
            checked += 1
    assert checked >= 110


def test_comma_list_and_repeated_options(calib):
    spec = objectives.parse(["acc, ece", "hcs"], calib)
    assert spec.names == ["acc", "ece", "hcs"]
    assert spec.directions == ["maximize", "minimize", "maximize"]


def test_hcs_is_computed_with_beta_and_chosen_ece(calib):
    frame = calib.frame
    acc, ece, post = frame["acc"].to_numpy(), frame["pre_ECE_15"].to_numpy(), frame["post_ECE_15"].to_numpy()
    hcs1, hcs2, hcs_post = objectives.parse("hcs,hcs:beta=2,hcs:ece=post_ece_15", calib).objectives
    assert hcs1.column is None and hcs1.direction == "maximize"
    assert np.allclose(hcs1.values(frame), 2 * acc * (1 - ece) / (acc + 1 - ece))
    assert np.allclose(hcs2.values(frame), 3 * acc * (1 - ece) / (2 * acc + 1 - ece))
    assert np.allclose(hcs_post.values(frame), 2 * acc * (1 - post) / (acc + 1 - post))


def test_temperature_needs_a_direction(calib):
    with pytest.raises(UserError, match="max:temperature or min:temperature"):
        objectives.parse("temperature", calib)
    assert objectives.parse("min:temperature", calib).directions == ["minimize"]
    # A bound needs no direction.
    (con,) = objectives.parse("acc", calib, ["temperature<=2"]).constraints
    assert con.objective.column == "temperature"


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("acc,eec", "unknown objective 'eec'; closest valid names: ece"),
        ("acc,nlll", "closest valid names: nll"),
        ("acc,zzz", "unknown objective 'zzz'"),
        ("acc,acc", "acc is given twice"),
        ("ece,pre_ece_15", "both mean pre_ECE_15"),
        ("acc,arch", "not a metric"),
        ("", "no objective given"),
        ("max:", "has no name"),
        ("acc:beta=2", "only hcs takes options"),
        ("hcs:gamma=2", "hcs option"),
        ("hcs:beta=-1", "positive"),
        ("hcs:ece=acc", "not a calibration error in \\[0, 1\\]"),
    ],
)
def test_bad_objectives_say_what_is_wrong(calib, spec, fragment):
    with pytest.raises(UserError, match=fragment.replace("(", r"\(")) as info:
        objectives.parse(spec, calib)
    assert "\n" not in str(info.value)


def test_missing_column_names_the_table_that_has_it():
    table = load_benchmark("nats-tss-cifar10")
    with pytest.raises(UserError) as info:
        objectives.parse("acc,ece", table)
    assert str(info.value).startswith("pre_ECE_15 is not in nats-tss-cifar10; use the embedded calibration table")
    with pytest.raises(UserError, match="hcs needs pre_ECE_15"):
        objectives.parse("hcs", table)
    with pytest.raises(UserError, match="AUROC is not in nats-tss-cifar10; use a table calnas built"):
        objectives.parse("auroc", table)


def test_constraints_parse_and_measure_violation(calib):
    spec = objectives.parse("acc,ece", calib, ["acc>=0.5", "ece < 0.2, params<=1.5"])
    ge, lt, le = spec.constraints
    assert (ge.op, ge.bound, ge.objective.column) == (">=", 0.5, "acc")
    assert (lt.op, lt.bound, lt.objective.column) == ("<", 0.2, "pre_ECE_15")
    assert le.objective.column == "params"
    values = np.array([0.4, 0.5, 0.7])
    assert np.allclose(ge.violation(values), [0.1, 0.0, 0.0])
    assert list(ge.satisfied(values)) == [False, True, True]
    strict = objectives.parse("acc", calib, ["acc>0.5"]).constraints[0]
    assert strict.violation([0.5])[0] > 0  # equality misses a strict bound


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("acc=0.9", "expected NAME OP VALUE"),
        ("acc==0.9", "expected NAME OP VALUE"),
        ("acc=>0.9", "expected NAME OP VALUE"),
        ("acc<>0.9", "expected NAME OP VALUE"),
        ("acc>=high", "'high' is not a number"),
        ("acc>=90", "fraction in \\[0, 1\\] \\(did you mean 0.9\\?\\)"),
        ("acc>=nan", "finite"),
        ("acx>=0.9", "unknown constraint 'acx'; closest valid names: acc"),
        (">=0.9", "expected NAME OP VALUE"),
    ],
)
def test_bad_constraints_say_what_is_wrong(calib, text, fragment):
    with pytest.raises(UserError, match=fragment) as info:
        objectives.parse("acc", calib, [text])
    assert "\n" not in str(info.value)
