import random

import pytest

from calnas.errors import UserError
from calnas.spaces import SSS, TSS, get_space, infer_space

BEST_C10 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_tss_index_order_is_natsbench():
    # Index 6111 is NATS-Bench's best CIFAR-10 cell (its README and the shipped file agree).
    assert TSS.index(BEST_C10) == 6111
    assert TSS.arch(6111) == BEST_C10
    archs = TSS.all_archs()
    assert len(archs) == len(set(archs)) == 15625
    assert all(TSS.index(a) == i for i, a in enumerate(archs[:200]))


def test_tss_parse_accepts_index_and_reordered_edges():
    assert TSS.parse(6111) == TSS.parse("6111") == BEST_C10
    shuffled = "|nor_conv_3x3~0|+|nor_conv_3x3~1|nor_conv_3x3~0|+|nor_conv_1x1~2|skip_connect~0|nor_conv_3x3~1|"
    assert TSS.parse(shuffled) == BEST_C10
    assert TSS.parse("  " + BEST_C10 + " ") == BEST_C10


def test_sss_order_is_natsbench_product():
    # NATS-Bench's traverse_net: first layer most significant.
    assert SSS.arch(0) == "8:8:8:8:8"
    assert SSS.arch(1) == "8:8:8:8:16"
    assert SSS.arch(8) == "8:8:8:16:8"
    assert SSS.arch(32767) == "64:64:64:64:64"
    for i in random.Random(1).sample(range(SSS.size), 300):
        assert SSS.index(SSS.arch(i)) == i


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("|nor_conv_3x3~0|+|none~0|", "3 nodes"),
        ("|conv5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown operation"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "cannot take input"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "missing edges"),
        ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "op~input"),
        ("15625", "out of range"),
        ("-1", "out of range"),
    ],
)
def test_tss_bad_input(bad, fragment):
    with pytest.raises(UserError, match=fragment):
        TSS.parse(bad)


@pytest.mark.parametrize("bad", ["8:16:32:64", "8:16:32:64:72", "8:16:x:64:64", "0:8:8:8:8", "32768"])
def test_sss_bad_input(bad):
    with pytest.raises(UserError):
        SSS.parse(bad)


def test_isomorphism_classes_match_nasbench201():
    keys = {TSS.iso_key(a) for a in TSS.all_archs()}
    assert len(keys) == 6466
    # Swapping which input a skip-connection leaves from, when the node it would skip is a pure copy,
    # changes nothing: node1 = x (skip) makes skip~1 and skip~0 into node 2 the same function.
    a = "|skip_connect~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"
    b = "|skip_connect~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|"
    assert TSS.iso_key(a) == TSS.iso_key(b)
    assert TSS.iso_key(BEST_C10) != TSS.iso_key(a)


def test_optuna_encoding_round_trip():
    rng = random.Random(0)
    for space in (TSS, SSS):
        for _ in range(50):
            arch = space.sample(rng)
            params = space.to_params(arch)
            assert set(params) == set(space.param_choices())
            assert space.from_params(params) == arch
    with pytest.raises(UserError):
        TSS.from_params({"edge_0_1": "none"})


def test_neighbours_and_mutation_change_exactly_one_gene():
    rng = random.Random(0)
    for space, count in ((TSS, 6 * 4), (SSS, 5 * 7)):
        arch = space.sample(rng)
        neighbours = space.neighbours(arch)
        assert len(neighbours) == len(set(neighbours)) == count
        genes = space._genes(arch)
        for n in neighbours:
            assert sum(x != y for x, y in zip(genes, space._genes(n))) == 1
        for _ in range(20):
            assert space.mutate(arch, rng) in neighbours


def test_space_lookup_and_inference():
    assert get_space("TSS") is TSS and get_space("sss") is SSS
    with pytest.raises(UserError):
        get_space("nasbench101")
    assert infer_space([BEST_C10]) is TSS
    assert infer_space(["8:8:8:8:8"]) is SSS
    with pytest.raises(UserError):
        infer_space(["resnet"])
