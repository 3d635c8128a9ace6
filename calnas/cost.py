"""Parameter count and FLOPs of NATS-Bench networks, computed from the architecture alone.

The numbers are the ones NATS-Bench reports, i.e. what ``xautodl.utils.get_model_infos``
returns for the network xautodl builds (``infer.tiny`` for TSS, ``infer.shape.tiny`` for SSS)
on a ``(1, 3, H, W)`` input. No torch here: this module sits on the table-search path.

Units
-----
* params: millions of parameters (NATS-Bench's "MB" is 1e6 parameters, not bytes).
* FLOPs: millions (MFLOPs), where one multiply-accumulate counts as one FLOP.

Both are exact integers divided by 1e6, so six decimals lose nothing.

Counting convention (that of xautodl's counter, checked against it in ``tests/test_cost.py``)
----------------------------------------------------------------------------------------
* params are every ``nn.Parameter``: conv weights, linear weight and bias, and the affine
  weight and bias of every BatchNorm (running statistics are buffers and do not count).
* FLOPs are summed over ``Conv2d`` and ``Linear`` modules only, per image:
  ``k*k*C_in*C_out*H_out*W_out`` for a conv (no conv in these networks has a bias) and
  ``in*out + out`` for the classifier. Pooling is hooked by the counter but left out of its
  sum, and BatchNorm, ReLU, additions, the zero op and identity are not hooked at all, so all
  of those cost 0 FLOPs.
* Every edge of a cell runs, so a conv whose input is always zero (fed by a ``none`` edge)
  still counts.

Per edge of a cell with ``C_in -> C_out`` channels at ``H x W`` (edges out of the cell input
see ``C_in``; the others see ``C_out``):

=============  ===========================================  ===============================
op             params                                       FLOPs
=============  ===========================================  ===============================
none           0                                            0
skip_connect   0 if C_in == C_out, else 1x1 conv + BN:      0, else C_in*C_out*H*W
               C_in*C_out + 2*C_out (xautodl's stride-1
               FactorizedReduce)
nor_conv_1x1   C_in*C_out + 2*C_out                         C_in*C_out*H*W
nor_conv_3x3   9*C_in*C_out + 2*C_out                       9*C_in*C_out*H*W
avg_pool_3x3   0 if C_in == C_out, else a 1x1 conv + BN     0, else C_in*C_out*H*W
               first: C_in*C_out + 2*C_out
=============  ===========================================  ===============================

TSS cells always have ``C_in == C_out``; SSS cells may not, which is where the other branches
matter. The rest of the network:

* stem: 3x3 conv 3 -> C plus BN: ``27*C + 2*C`` params, ``27*C*H*W`` FLOPs;
* reduction block between stages (ResNet basic block, stride 2): two 3x3 ReLU-conv-BN
  (C_in -> C_out at stride 2, then C_out -> C_out) and a shortcut of 2x2 average pooling and a
  bias-free 1x1 conv without BN: ``9*C_in*C_out + 9*C_out**2 + C_in*C_out + 4*C_out`` params;
  FLOPs are the two 3x3 convs at the halved size plus the 1x1 conv at the pooled size;
* head: BN + ReLU, global average pooling, linear: ``2*C + C*K + K`` params, ``C*K + K`` FLOPs.

Input sizes: any (H, W) the xautodl network itself accepts. Sides divisible by 4 always work;
an odd side reaching a reduction block works only where the pooled shortcut is 1 pixel wide
(torch broadcasts it), and other sizes make xautodl's forward fail, so they raise
:class:`~calnas.errors.UserError` here.

API: :func:`tss_cost`, :func:`sss_cost`, :data:`DATASET_INPUTS` (NATS-Bench's (resolution,
classes) per dataset). ``calnas/data/tss_meta.csv.gz`` and ``sss_meta.csv.gz`` ship the
values for every index (see :mod:`calnas.build_meta`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

from calnas.datasets import NATS_INPUTS as DATASET_INPUTS
from calnas.errors import UserError
from calnas.spaces import SSS, SSS_GENOTYPE, TSS

# Source node of each of the 6 edges, in the order of an arch string.
_EDGE_SOURCES = (0, 0, 1, 0, 1, 2)
_KERNEL = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}


def _spatial(resolution) -> tuple[int, int]:
    if isinstance(resolution, bool):
        raise UserError(f"resolution must be a positive int or an (H, W) pair, got {resolution!r}")
    if isinstance(resolution, int):
        h = w = resolution
    else:
        try:
            h, w = (int(v) for v in resolution)
        except (TypeError, ValueError):
            raise UserError(f"resolution must be a positive int or an (H, W) pair, got {resolution!r}") from None
    if h < 1 or w < 1:
        raise UserError(f"resolution must be positive, got {resolution!r}")
    return h, w


def _check_classes(num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise UserError(f"num_classes must be a positive int, got {num_classes!r}")
    return num_classes


@lru_cache(maxsize=None)
def _edge_cost(op: str, c_in: int, c_out: int, hw: int) -> tuple[int, int]:
    """(params, FLOPs) of one stride-1 cell edge."""
    if op == "none":
        return 0, 0
    if op in ("skip_connect", "avg_pool_3x3"):
        if c_in == c_out:
            return 0, 0
        # Both become a channel-matching 1x1 conv + BN when the widths differ.
        return c_in * c_out + 2 * c_out, c_in * c_out * hw
    k = _KERNEL.get(op)
    if k is None:
        raise UserError(f"unknown operation {op!r}")
    weights = k * k * c_in * c_out
    return weights + 2 * c_out, weights * hw


@lru_cache(maxsize=None)
def _cell_cost(ops: tuple[str, ...], c_in: int, c_out: int, hw: int) -> tuple[int, int]:
    params = flops = 0
    for op, src in zip(ops, _EDGE_SOURCES):
        p, f = _edge_cost(op, c_in if src == 0 else c_out, c_out, hw)
        params += p
        flops += f
    return params, flops


def _reduction_cost(c_in: int, c_out: int, h: int, w: int) -> tuple[int, int, int, int]:
    """(params, FLOPs, H_out, W_out) of the stride-2 ResNet block between stages."""
    # The residual sum adds conv_a's output (3x3, stride 2, pad 1: ceil(x/2)) to the shortcut's
    # (2x2 pool, stride 2: floor(x/2)). Even sides agree. An odd side works in xautodl only when
    # the shortcut side is 1, by torch broadcasting (e.g. 3 -> 2 + 1); any other odd side makes
    # its forward fail, so it is refused here too.
    out, short = [], []
    for side in (h, w):
        main, pooled = (side - 1) // 2 + 1, side // 2
        if pooled != main and pooled != 1:
            raise UserError(
                f"a {h}x{w} feature map cannot go through a NATS-Bench reduction block "
                "(xautodl's network fails on it); use an input size divisible by 4"
            )
        out.append(main)
        short.append(pooled)
    conv_a = 9 * c_in * c_out
    conv_b = 9 * c_out * c_out
    shortcut = c_in * c_out
    params = conv_a + 2 * c_out + conv_b + 2 * c_out + shortcut
    flops = (conv_a + conv_b) * out[0] * out[1] + shortcut * short[0] * short[1]
    return params, flops, out[0], out[1]


def _net_cost(
    ops: tuple[str, ...], layers: Sequence[tuple[int, bool, int]], h: int, w: int, num_classes: int
) -> tuple[int, int]:
    """Integer (params, FLOPs) of xautodl's tiny-net skeleton (TinyNetwork / DynamicShapeTinyNet).

    ``layers`` are (channels, is_reduction, repeat): a run of ``repeat`` identical cells, or one
    reduction block. The stem has the first layer's width. Identical cells in a run cost the
    same, so a run is one or two cached cell costs times a count.
    """
    c_prev = layers[0][0]
    params = 27 * c_prev + 2 * c_prev  # stem: 3x3 conv from RGB + BN
    flops = 27 * c_prev * h * w
    for c, reduction, repeat in layers:
        if reduction:
            p, f, h, w = _reduction_cost(c_prev, c, h, w)
            params += p
            flops += f
        elif repeat:
            # Only the first cell of a run can change width (SSS); the rest map c -> c.
            p, f = _cell_cost(ops, c_prev, c, h * w)
            params += p
            flops += f
            if repeat > 1:
                p, f = _cell_cost(ops, c, c, h * w)
                params += (repeat - 1) * p
                flops += (repeat - 1) * f
        else:
            continue
        c_prev = c
    params += 2 * c_prev + c_prev * num_classes + num_classes  # last BN, classifier
    flops += c_prev * num_classes + num_classes
    return params, flops


@lru_cache(maxsize=None)
def _tss_ops(arch) -> tuple[str, ...]:
    return tuple(TSS.to_params(arch).values())


def tss_cost(arch, *, C: int = 16, N: int = 5, resolution=32, num_classes: int = 10) -> tuple[float, float]:
    """(params in millions, MFLOPs) of a TSS architecture (string or NATS-Bench index).

    ``C`` and ``N`` are xautodl's ``infer.tiny`` width and cells per stage; NATS-Bench uses 16
    and 5. ``resolution`` is an int or an (H, W) pair; see :data:`DATASET_INPUTS`.
    """
    if isinstance(C, bool) or not isinstance(C, int) or C < 1:
        raise UserError(f"C must be a positive int, got {C!r}")
    if isinstance(N, bool) or not isinstance(N, int) or N < 0:
        raise UserError(f"N must be a non-negative int, got {N!r}")
    h, w = _spatial(resolution)
    layers = ((C, False, N), (2 * C, True, 1), (2 * C, False, N), (4 * C, True, 1), (4 * C, False, N))
    # Only hashable inputs reach the cache; anything else gets parse()'s own error.
    ops = _tss_ops(arch if isinstance(arch, (str, int)) else TSS.parse(arch))
    params, flops = _net_cost(ops, layers, h, w, _check_classes(num_classes))
    return params / 1e6, flops / 1e6


def sss_cost(arch, *, resolution=32, num_classes: int = 10, genotype: str = SSS_GENOTYPE) -> tuple[float, float]:
    """(params in millions, MFLOPs) of an SSS architecture (``"8:16:32:64:64"`` or an index).

    xautodl's ``DynamicShapeTinyNet`` reads the five widths as cell, reduction block, cell,
    reduction block, cell (one cell per stage), with the stem at the first width. ``genotype``
    is the cell, a TSS arch string; NATS-Bench always uses :data:`SSS_GENOTYPE`.
    """
    c = [int(v) for v in SSS.parse(arch).split(":")]
    h, w = _spatial(resolution)
    layers = ((c[0], False, 1), (c[1], True, 1), (c[2], False, 1), (c[3], True, 1), (c[4], False, 1))
    params, flops = _net_cost(_tss_ops(genotype), layers, h, w, _check_classes(num_classes))
    return params / 1e6, flops / 1e6
