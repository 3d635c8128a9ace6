"""NATS-Bench networks built by xautodl, exactly as NATS-Bench builds them."""

from __future__ import annotations

import torch

from calnas.spaces import SSS_GENOTYPE


def network_config(space: str, arch: str, num_classes: int, channels: int = 16, cells: int = 5) -> dict:
    """The xautodl config dict (the same keys NATS-Bench's get_net_config returns)."""
    if space == "tss":
        return {"name": "infer.tiny", "C": int(channels), "N": int(cells), "arch_str": arch,
                "num_classes": int(num_classes)}
    return {"name": "infer.shape.tiny", "channels": arch, "genotype": SSS_GENOTYPE,
            "num_classes": int(num_classes)}


def build_network(config: dict) -> torch.nn.Module:
    from xautodl.models import get_cell_based_tiny_net

    return get_cell_based_tiny_net(dict(config))


def logits_of(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """xautodl's tiny networks return (features, logits)."""
    out = model(x)
    return out[1] if isinstance(out, (tuple, list)) else out
