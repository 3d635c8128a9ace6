"""calnas.cost against xautodl's own networks and FLOP counter, the reference NATS-Bench used."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from calnas.cost import DATASET_INPUTS, SSS_GENOTYPE, sss_cost, tss_cost
from calnas.errors import UserError
from calnas.spaces import SSS, TSS, TSS_OPS

UNIFORM_TSS = [TSS._from_genes([op] * 6) for op in TSS_OPS]
_rng = random.Random(20240601)
TSS_SAMPLE = UNIFORM_TSS + [TSS.sample(_rng) for _ in range(15)]
SSS_SAMPLE = ["8:8:8:8:8", "64:64:64:64:64", "64:8:64:8:64"] + [SSS.sample(_rng) for _ in range(17)]
DATASETS = list(DATASET_INPUTS.items())


@pytest.fixture(scope="module")
def xautodl_infos():
    pytest.importorskip("torch")
    pytest.importorskip("xautodl")
    from xautodl.models import get_cell_based_tiny_net
    from xautodl.utils import get_model_infos

    def infos(config: dict, shape: tuple[int, int]) -> tuple[float, float]:
        net = get_cell_based_tiny_net(config)
        n_params = sum(p.numel() for p in net.parameters())
        flops, params = get_model_infos(net, (1, 3, *shape))
        assert params == n_params / 1e6
        return params, flops

    return infos


def tss_config(arch: str, num_classes: int, C: int = 16, N: int = 5) -> dict:
    return {"name": "infer.tiny", "C": C, "N": N, "arch_str": arch, "num_classes": num_classes}


def sss_config(channels: str, num_classes: int, genotype: str = SSS_GENOTYPE) -> dict:
    return {"name": "infer.shape.tiny", "channels": channels, "genotype": genotype, "num_classes": num_classes}


# Exact equality: both sides are integer counts divided by 1e6, so any difference is a real miscount.
@pytest.mark.parametrize("arch", TSS_SAMPLE)
def test_tss_matches_xautodl(xautodl_infos, arch):
    for _, (resolution, classes) in DATASETS:
        expected = xautodl_infos(tss_config(arch, classes), (resolution, resolution))
        assert tss_cost(arch, resolution=resolution, num_classes=classes) == expected, (arch, resolution)


@pytest.mark.parametrize("arch", SSS_SAMPLE)
def test_sss_matches_xautodl(xautodl_infos, arch):
    for _, (resolution, classes) in DATASETS:
        expected = xautodl_infos(sss_config(arch, classes), (resolution, resolution))
        assert sss_cost(arch, resolution=resolution, num_classes=classes) == expected, (arch, resolution)


@pytest.mark.parametrize(
    "C, N, shape, classes",
    [(8, 2, (8, 8), 10), (24, 1, (12, 12), 7), (16, 0, (32, 32), 10), (16, 5, (6, 8), 3), (4, 3, (3, 8), 2)],
)
def test_tss_other_widths_depths_and_inputs(xautodl_infos, C, N, shape, classes):
    # (6, 8) and (3, 8) have odd sides that xautodl's network still accepts by broadcasting a
    # 1-pixel shortcut; the count must follow it there too.
    for arch in TSS_SAMPLE[:5] + TSS_SAMPLE[-3:]:
        expected = xautodl_infos(tss_config(arch, classes, C, N), shape)
        assert tss_cost(arch, C=C, N=N, resolution=shape, num_classes=classes) == expected


@pytest.mark.parametrize("genotype", UNIFORM_TSS + TSS_SAMPLE[-3:])
def test_sss_cell_with_every_op_across_width_changes(xautodl_infos, genotype):
    # NATS-Bench's fixed SSS cell has no pooling; other cells exercise the width-changing
    # variants of skip, pooling and none (C_in != C_out on the edges out of the cell input).
    for channels in ("8:16:24:40:64", "64:8:56:16:48"):
        expected = xautodl_infos(sss_config(channels, 10, genotype), (8, 8))
        assert sss_cost(channels, resolution=8, num_classes=10, genotype=genotype) == expected


def test_inputs_that_break_the_network_are_refused(xautodl_infos):
    import torch
    from xautodl.models import get_cell_based_tiny_net

    arch = TSS_SAMPLE[-1]
    for shape in ((10, 10), (7, 7), (2, 2)):
        net = get_cell_based_tiny_net(tss_config(arch, 10)).eval()
        with pytest.raises(RuntimeError), torch.no_grad():
            net(torch.zeros(1, 3, *shape))
        with pytest.raises(UserError):
            tss_cost(arch, resolution=shape)


def test_published_nats_bench_figures():
    # D-X-Y/NATS-Bench issue #36 quotes the official API, get_cost_info(hp="12"), for this cell
    # on CIFAR-10: params 0.802426.
    params, _ = tss_cost("|skip_connect~0|+|none~0|nor_conv_3x3~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    assert params == 0.802426

    # Extremes of NATS-Bench's CIFAR-10 costs used as ideal/nadir points in
    # lamda-bbo/offline-moo, off_moo_bench/problem/mo_nas/mo_nas.py: C10MOP5 (TSS) params
    # 0.073306..1.531546, FLOPs 7.78305..220.11969; C10MOP3 (SSS) params 0.011714..0.713674,
    # FLOPs 4.481114..274.399882. The extremes are the all-conv3x3 / parameter-free cells and the
    # all-8 / all-64 widths.
    tss = [tss_cost(a) for a in TSS.all_archs()]
    assert min(p for p, _ in tss) == 0.073306 and max(p for p, _ in tss) == 1.531546
    assert min(f for _, f in tss) == 7.78305 and max(f for _, f in tss) == 220.11969
    assert sss_cost("8:8:8:8:8") == (0.011714, 4.481114)
    assert sss_cost("64:64:64:64:64") == (0.713674, 274.399882)


def test_indices_strings_and_dataset_inputs_agree():
    index = 6111
    assert tss_cost(index) == tss_cost(TSS.arch(index))
    assert sss_cost(SSS.size - 1) == sss_cost("64:64:64:64:64")
    resolution, classes = DATASET_INPUTS["imagenet16-120"]
    small = tss_cost(index, resolution=resolution, num_classes=classes)
    # A quarter of the pixels: FLOPs drop about 4x; params differ only by the classifier.
    assert small[1] < tss_cost(index)[1] / 3.9
    assert round(small[0] - tss_cost(index)[0], 6) == round(64 * 110 / 1e6 + 110 / 1e6, 6)


@pytest.mark.parametrize(
    "kwargs",
    [{"resolution": 0}, {"resolution": "32"}, {"resolution": (8,)}, {"num_classes": 0}, {"C": 0}, {"N": -1}],
)
def test_bad_arguments_are_user_errors(kwargs):
    with pytest.raises(UserError):
        tss_cost(0, **kwargs)


def test_module_does_not_import_torch():
    code = "import sys, calnas.cost; calnas.cost.tss_cost(0); sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
