"""NATS-Bench trained weights through the ``nats_bench`` API (``--weights nats --nats-path DIR``).

The archive is NATS-Bench's "full" directory (``meta.pickle.pbz2`` plus one
``{index:06d}.pickle.pbz2`` per architecture, with weights); ``nats_bench.create(dir, space,
fast_mode=True)`` loads an architecture's file on first use. calnas takes the weights of the
full schedule NATS-Bench reports: hp ``"200"`` for the topology space, ``"90"`` for the size space.
"""

from __future__ import annotations

from pathlib import Path

from calnas.datasets import NATS_DATASETS as NATS_DATASET, NATS_EPOCHS, nats_hp
from calnas.errors import UserError
from calnas.spaces import Space

# NATS-Bench's "cifar10" key is the network trained on CIFAR-10's train+valid images.
NATS_HP = {space: nats_hp(space) for space in NATS_EPOCHS}


def check_nats_request(dataset: str, nats_path) -> Path:
    if dataset not in NATS_DATASET:
        raise UserError(f"NATS-Bench has no weights for {dataset}; --weights nats needs one of "
                        f"{', '.join(NATS_DATASET)}")
    if nats_path is None:
        raise UserError("--weights nats needs --nats-path (a NATS-Bench archive directory with weights)")
    path = Path(nats_path).expanduser()
    if not path.is_dir():
        raise UserError(f"NATS-Bench archive {str(path)!r} is not a directory")
    if not (path / "meta.pickle.pbz2").is_file():
        raise UserError(f"NATS-Bench archive {str(path)!r} has no meta.pickle.pbz2; expected the "
                        "full archive directory (e.g. NATS-tss-v1_0-3ffb9-full)")
    return path


def load_nats_network(space: Space, index: int, dataset: str, nats_path, seed: int | None = None):
    """The network with NATS-Bench's trained weights, and a record of where they came from."""
    import nats_bench

    from calnas.live.networks import build_network

    path = check_nats_request(dataset, nats_path)
    hp = NATS_HP[space.name]
    key = NATS_DATASET[dataset]
    try:
        api = nats_bench.create(str(path), space.name, fast_mode=True, verbose=False)
        config = api.get_net_config(index, key)
        params = api.get_net_param(index, key, seed=None, hp=hp)
    except (AssertionError, ValueError, KeyError, FileNotFoundError, OSError) as exc:
        raise UserError(f"NATS-Bench archive {str(path)!r} has no {space.name} weights for index {index} "
                        f"on {key} (hp {hp}): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if not params:
        raise UserError(f"NATS-Bench archive {str(path)!r} has no trials for index {index} on {key} (hp {hp})")
    nats_seed = seed if seed in params else min(params)
    state = params[nats_seed]
    if state is None:
        raise UserError(f"NATS-Bench archive {str(path)!r} holds no weights for index {index} "
                        "(a 'simple' archive without parameters?); expected the full archive")
    model = build_network(config)
    model.load_state_dict(state)
    info = {"nats_path": str(path), "nats_hp": hp, "nats_dataset": key, "nats_seed": int(nats_seed),
            "network": {k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in config.items()
                        if k not in ("arch_str", "genotype")}}
    return model, info
