"""Evaluate one architecture live: build it, train it (or load NATS-Bench weights), compute the panel."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from calnas.errors import UserError
from calnas.live.datasets import Splits, load_splits, resolve_dataset
from calnas.live.protocol import Protocol, default_protocol
from calnas.spaces import SSS, TSS, Space, _as_index, infer_space

WEIGHT_SOURCES = ("train", "nats")


@dataclass
class LiveResult:
    record: dict            # JSON-serialisable: arch, index, space, dataset, device, settings, metrics, seconds
    probs: np.ndarray       # test-split softmax probabilities (N, K), before temperature scaling
    labels: np.ndarray      # test-split labels (N,)


def resolve_space(arch) -> Space:
    """TSS strings contain '~', SSS strings ':'; a bare index means TSS (pass --space for SSS)."""
    if _as_index(arch) is not None:
        return TSS
    return infer_space([arch])


def check_device(device) -> str:
    """``device`` as calnas spells it (auto, cpu, cuda, cuda:N), refused unless this machine has
    it: a CUDA device needs CUDA and, for cuda:N, at least N + 1 GPUs. torch is imported only
    for a CUDA name."""
    name = str(device).strip().lower()
    if name in ("auto", "cpu"):
        return name
    head, _, number = name.partition(":")
    if head != "cuda" or (_ and not (number.isascii() and number.isdigit())):
        raise UserError(f"unknown device {str(device)[:40]!r}; expected auto, cpu, cuda or cuda:N")
    import torch

    if not torch.cuda.is_available():
        raise UserError(f"device {str(device)!r} requested but CUDA is not available here; use --device cpu or auto")
    count = torch.cuda.device_count()
    if number and int(number) >= count:
        raise UserError(f"device {str(device)!r} requested but this machine has {count} GPU"
                        f"{'s' if count != 1 else ''} (cuda:0{f'..cuda:{count - 1}' if count > 1 else ''})")
    return name


def resolve_device(device: str):
    import torch

    name = check_device(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_protocol(space: Space, dataset: str, *, protocol: Protocol | None = None, epochs=None,
                  channels=None, cells=None, recipe=None, optimizer=None, lr=None) -> Protocol:
    """The dataset's default protocol (or ``protocol``) with the training options that are given."""
    base = protocol if protocol is not None else default_protocol(dataset, space.name)
    if space is SSS and (channels is not None or cells is not None):
        raise UserError("--channels/--cells apply to the topology space only; an SSS architecture fixes its channels")
    return base.with_overrides(epochs=epochs, channels=channels, cells=cells, recipe=recipe, optimizer=optimizer, lr=lr)


def load_protocol_splits(protocol: Protocol, *, data_root=None, seed: int = 0) -> Splits:
    return load_splits(protocol.dataset, data_root=data_root, seed=seed, train_size=protocol.train_size,
                       val_size=protocol.val_size, test_size=protocol.test_size, spare_to_test=protocol.spare_to_test)


def evaluate_live(arch, *, dataset: str = "digits", data_root=None, epochs: int | None = None,
                  device: str = "auto", seed: int = 0, weights: str = "train", nats_path=None,
                  channels: int | None = None, cells: int | None = None,
                  track: bool = False, certainty: bool = False,
                  protocol: Protocol | None = None, recipe: str | None = None, optimizer: str | None = None,
                  lr: float | None = None) -> LiveResult:
    """Train (or load) and evaluate one NATS-Bench architecture on a local dataset (a name, or
    the path of a .npz of your own images; see calnas.live.datasets.read_npz).

    ``arch`` is an architecture string or a TSS index. ``epochs``/``channels``/``cells``,
    ``recipe`` (``NAME[:PARAM]``, :mod:`calnas.live.recipes`), ``optimizer`` (sgd | adam) and ``lr``
    override the dataset's default protocol (``calnas.live.protocol.default_protocol``), or
    ``protocol`` when given. The validation split only fits the temperature of the ``post_*`` metrics.

    ``track`` adds ``record["trajectory"]`` (validation accuracy, ECE, NLL, mean margin and loss
    sharpness at initialisation and after every epoch, :mod:`calnas.live.trajectory`);
    ``certainty`` adds ``record["certainty"]`` (the trained network's neighbourhoods of certainty,
    :mod:`calnas.live.certainty`). Neither changes the training or the metrics.
    """
    if weights not in WEIGHT_SOURCES:
        raise UserError(f"unknown weights source {weights!r}; expected one of {', '.join(WEIGHT_SOURCES)}")
    from calnas.checks import SEED_RANGE, check_int

    seed = check_int("seed", seed, minimum=0, maximum=SEED_RANGE - 1)  # numpy's and torch's seeds
    space = resolve_space(arch)
    canonical = space.parse(arch)
    key, data_root = resolve_dataset(dataset, data_root)
    if protocol is not None and protocol.dataset != key:
        raise UserError(f"protocol is for {protocol.dataset} but dataset is {key}")
    proto = make_protocol(space, key, protocol=protocol, epochs=epochs, channels=channels, cells=cells,
                          recipe=recipe, optimizer=optimizer, lr=lr)
    _check_track(weights, track)
    if weights == "nats":
        from calnas.live.weights import check_nats_request

        for name, value in (("recipe", recipe), ("optimizer", optimizer), ("lr", lr)):
            if value is not None:
                raise UserError(f"{name} applies to training; NATS-Bench weights (--weights nats) are loaded, not trained")
        check_nats_request(key, nats_path)
    splits = load_protocol_splits(proto, data_root=data_root, seed=seed)  # before torch: data errors come fast
    torch_device = resolve_device(device)
    import torch

    # The protocol's thread count is part of what makes a row reproducible, but the caller's
    # process keeps its own setting afterwards.
    threads = torch.get_num_threads()
    try:
        return evaluate_prepared(canonical, space, proto, splits, device=torch_device, seed=seed,
                                 weights=weights, nats_path=nats_path, track=track, certainty=certainty)
    finally:
        torch.set_num_threads(threads)


def _check_track(weights: str, track: bool) -> None:
    if track and weights == "nats":
        raise UserError("--track follows a training; NATS-Bench weights (--weights nats) are loaded, not trained")


def evaluate_prepared(arch: str, space: Space, protocol: Protocol, splits: Splits, *, device, seed: int,
                      weights: str = "train", nats_path=None, track: bool = False,
                      certainty: bool = False, curve_epochs=None, monitor=None) -> LiveResult:
    """The inner path shared with table building: inputs already checked and data loaded.

    ``curve_epochs`` (epochs of the training) adds ``record["curve"]``, one point per epoch
    (:mod:`calnas.live.curves`); it does not change the training or the metrics.

    ``monitor`` (early stopping) has ``epochs``, recorded as curve points besides ``curve_epochs``,
    and is called ``monitor(epoch, point)`` with each point at those epochs; ``True`` stops the
    training there. A stopped training has no final panel: its record holds ``stopped_at`` (the
    epoch), the curve so far and empty ``metrics``, and its ``probs``/``labels`` are empty."""
    _check_track(weights, track)
    if monitor is not None:
        curve_epochs = sorted({*(curve_epochs or ()), *(int(e) for e in monitor.epochs)})
    import torch
    from scipy.special import softmax

    from calnas.live.networks import build_network, network_config
    from calnas.live.train import predict_logits, seed_everything, train
    from calnas.metrics import calibration_panel, calibrator_columns

    start = time.perf_counter()
    if protocol.threads is not None and device.type == "cpu":
        torch.set_num_threads(protocol.threads)
    index = space.index(arch)
    settings = {**protocol.settings(), "seed": seed, **splits.sizes(), "weights": weights,
                "dataset_info": dict(splits.info)}
    recorder = None
    if weights == "nats":
        from calnas.live.weights import load_nats_network

        model, nats_info = load_nats_network(space, index, splits.name, nats_path)
        settings.update(nats_info)
        # Nothing is trained: the protocol's training settings do not apply.
        for key in ("epochs", "batch_size", "optimizer", "lr", "momentum", "nesterov", "weight_decay",
                    "schedule", "recipe", "train_size", "drop_last"):
            settings.pop(key, None)
        train_stats = {"train_seconds": 0.0}
    else:
        config = network_config(space.name, arch, splits.num_classes, protocol.channels, protocol.cells)
        if space is SSS:
            settings.pop("channels", None)
            settings.pop("cells", None)
        settings["network"] = {k: v for k, v in config.items() if k != "arch_str"}
        seed_everything(seed)
        model = build_network(config)
        tracker = None
        if track:
            from calnas.live.trajectory import TrajectoryTracker

            tracker = TrajectoryTracker(splits, device=device, eval_batch_size=protocol.eval_batch_size)
            tracker(0, model.to(device))  # at initialisation
        if curve_epochs is not None:
            from calnas.live.curves import CurveRecorder

            recorder = CurveRecorder(splits, curve_epochs, device=device, eval_batch_size=protocol.eval_batch_size)
        train_stats = train(model, splits, protocol, device=device, seed=seed,
                            on_epoch=_hooks(tracker, recorder, _rung_hook(recorder, monitor)))
        history = train_stats.pop("history")
        if tracker is not None:  # train_seconds leaves the hooks out: the training alone, as without tracking
            train_stats["track_seconds"] = round(sum(e["seconds"] for e in tracker.epochs), 4)
        if recorder is not None:
            from calnas.live.curves import merge_history

            curve = merge_history(recorder.points, history)
            train_stats["cpu_seconds"] = history[-1]["cpu_seconds"] if history else 0.0
        if len(history) < protocol.epochs:  # the monitor stopped it at a rung
            return _stopped(arch, index, space, splits, device, settings, train_stats, curve,
                            time.perf_counter() - start)
    if recorder is not None and recorder.final_logits is not None:
        val_logits, test_logits = recorder.final_logits  # the last epoch was recorded: same network
    else:
        val_logits = predict_logits(model, splits.val_x, device=device, batch_size=protocol.eval_batch_size)
        test_logits = predict_logits(model, splits.test_x, device=device, batch_size=protocol.eval_batch_size)
    if not (np.isfinite(val_logits).all() and np.isfinite(test_logits).all()):
        from calnas.live.train import diverged

        raise diverged(protocol.epochs, "outputs")
    metrics = calibration_panel(None, splits.test_y, logits=test_logits, val_logits=val_logits,
                                val_labels=splits.val_y)
    metrics.update(calibrator_columns(test_logits, splits.test_y, val_logits, splits.val_y))  # post_ECE_15@dirichlet ...
    record = {
        "arch": arch, "index": index, "space": space.name, "dataset": splits.name,
        "device": str(device), "settings": settings, "metrics": metrics,
        "reliability": reliability_record(test_logits, splits.test_y, metrics.get("temperature")),
        "training": train_stats, "seconds": time.perf_counter() - start,
    }
    if space is TSS:
        record["iso"] = tss_iso(index)
    if track:
        record["trajectory"] = tracker.record()
    if curve_epochs is not None and weights != "nats":
        record["curve"] = curve
    if certainty:
        from calnas.live.certainty import certainty_neighbourhoods

        record["certainty"] = certainty_neighbourhoods(model, splits.train_x, device=device,
                                                       batch_size=protocol.eval_batch_size)
    return LiveResult(record=record, probs=softmax(test_logits, axis=1), labels=splits.test_y.copy())


def _rung_hook(recorder, monitor):
    """The early-stopping hook: after the recorder (called first) took a point at one of the
    monitor's epochs, the monitor's verdict on it."""
    if monitor is None:
        return None
    epochs = {int(e) for e in monitor.epochs}

    def hook(epoch, model):
        if epoch in epochs and recorder.points and recorder.points[-1]["epoch"] == epoch:
            return monitor(epoch, dict(recorder.points[-1])) is True
        return False
    return hook


def _stopped(arch, index, space, splits, device, settings, train_stats, curve, seconds) -> LiveResult:
    record = {"arch": arch, "index": index, "space": space.name, "dataset": splits.name, "device": str(device),
              "settings": settings, "metrics": {}, "training": train_stats, "seconds": seconds,
              "stopped_at": int(curve[-1]["epoch"]), "curve": curve}
    if space is TSS:
        record["iso"] = tss_iso(index)
    return LiveResult(record, np.empty((0, splits.num_classes)), np.empty(0, dtype=np.int64))


def _hooks(*hooks):
    """One ``on_epoch`` hook calling each given one in turn (None when there are none)."""
    live = [h for h in hooks if h is not None]
    if not live:
        return None
    if len(live) == 1:
        return live[0]

    def call(epoch, model):
        stops = [hook(epoch, model) is True for hook in live]  # every hook sees every epoch it runs
        return any(stops)
    return call


def reliability_record(logits: np.ndarray, labels: np.ndarray, temperature) -> dict:
    """The test split's reliability-diagram data (the panel's default binning), before and, when a
    temperature was fitted, after temperature scaling: small enough to keep with every evaluation."""
    from calnas.metrics import reliability_diagram

    out = {"pre": reliability_diagram(None, labels, logits=logits).to_dict()}
    if temperature is not None and np.isfinite(temperature):
        out["post"] = reliability_diagram(None, labels, logits=logits / float(temperature)).to_dict()
    return out


def tss_iso(index: int) -> int:
    """The smallest NATS-Bench index of the architecture's isomorphism class (tss_meta's ``iso``)."""
    return _tss_iso_column()[index]


_ISO: list[int] = []


def _tss_iso_column() -> list[int]:
    if not _ISO:
        from calnas.embedded import TSS_META_FILE, read_rows

        rows = read_rows(TSS_META_FILE)
        iso = [0] * len(rows)
        for row in rows:
            iso[int(row["index"])] = int(row["iso"])
        _ISO.extend(iso)
    return _ISO
