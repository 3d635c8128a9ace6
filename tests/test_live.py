"""Live evaluation: dataset readers on tiny files in the real formats, tiny networks, NATS weights."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("xautodl")

from calnas.errors import UserError  # noqa: E402
from calnas.live.datasets import load_splits, read_cifar, read_imagenet16  # noqa: E402
from calnas.live.evaluate import evaluate_live  # noqa: E402
from calnas.live.protocol import DIGITS_SSS, DIGITS_TSS, Protocol, default_protocol  # noqa: E402
from calnas.calibrator_columns import CALIBRATOR_COLUMNS  # noqa: E402
from calnas.metrics import PANEL_COLUMNS  # noqa: E402
from calnas.spaces import TSS  # noqa: E402

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"
ZERO_ARCH = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def tiny(dataset: str = "digits", **changes) -> Protocol:
    """A network and schedule small enough for a unit test (a fraction of a second)."""
    base = dict(dataset=dataset, channels=4, cells=1, epochs=1, batch_size=32, train_size=64,
                val_size=40, test_size=80, threads=1)
    base.update(changes)
    return Protocol(**base)


# -- files in the real formats -----------------------------------------------------------------

def _pickle(path, obj):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


def write_fake_cifar(root, classes: int, per_file: int = 12, test: int = 16, seed: int = 0):
    """CIFAR's python version: uint8 rows of 3072 (R plane, G plane, B plane) and label lists."""
    rng = np.random.default_rng(seed)
    if classes == 10:
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        names, key = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], "labels"
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True)
        names, key = ["train", "test"], "fine_labels"
    for name in names:
        n = test if "test" in name else per_file
        _pickle(folder / name, {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                                key: rng.integers(0, classes, n).tolist(), "batch_label": name})
    return folder


def write_fake_imagenet16(root, per_file: int = 10, val: int = 20, seed: int = 0):
    """Downsampled-ImageNet pickles: 'data' (N x 768) and 1-based 'labels' up to 1000."""
    rng = np.random.default_rng(seed)
    folder = root / "ImageNet16"
    folder.mkdir(parents=True)
    for name, n in [(f"train_data_batch_{i}", per_file) for i in range(1, 11)] + [("val_data", val)]:
        labels = rng.integers(1, 241, n)
        labels[:4] = [1, 120, 121, 1000]  # both edges of the kept range and two dropped labels
        _pickle(folder / name, {"data": rng.integers(0, 256, (n, 768), dtype=np.uint8),
                                "labels": labels.tolist(), "mean": np.zeros(768)})
    return folder


def test_cifar10_reader_keeps_the_channel_planes(tmp_path):
    folder = write_fake_cifar(tmp_path, 10)
    with open(folder / "data_batch_2", "rb") as fh:
        raw = pickle.load(fh, encoding="latin1")
    train_x, train_y, test_x, test_y = read_cifar(tmp_path, 10)
    assert train_x.shape == (60, 3, 32, 32) and test_x.shape == (16, 3, 32, 32)
    first = raw["data"][0]
    # The second file's first image: green plane starts at 1024, row 0 column 5 of it.
    assert train_x[12, 1, 0, 5] == first[1024 + 5]
    assert train_x[12, 2, 31, 31] == first[3071]
    assert train_y[12] == raw["labels"][0]


def test_cifar100_reader_uses_fine_labels(tmp_path):
    write_fake_cifar(tmp_path, 100)
    train_x, train_y, _, test_y = read_cifar(tmp_path / "cifar-100-python", 100)
    assert train_x.shape == (12, 3, 32, 32) and len(test_y) == 16
    assert train_y.max() < 100


def test_imagenet16_reader_keeps_labels_below_121_shifted_to_zero(tmp_path):
    write_fake_imagenet16(tmp_path)
    train_x, train_y, test_x, test_y = read_imagenet16(tmp_path)
    with open(tmp_path / "ImageNet16" / "val_data", "rb") as fh:
        raw = pickle.load(fh)
    kept = [label - 1 for label in raw["labels"] if label <= 120]
    assert test_y.tolist() == kept
    assert train_y.min() >= 0 and train_y.max() < 120
    assert train_x.shape[1:] == (3, 16, 16)
    assert test_x[0, 2, 15, 15] == raw["data"][0][767]


def test_missing_or_unknown_data_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="needs --data-root"):
        load_splits("cifar10")
    with pytest.raises(UserError, match="not a directory"):
        load_splits("cifar100", data_root=tmp_path / "nope")
    with pytest.raises(UserError, match="missing data_batch_1"):
        load_splits("cifar10", data_root=tmp_path)
    with pytest.raises(UserError, match="unknown dataset 'mnist'"):
        evaluate_live(ARCH, dataset="mnist")
    with pytest.raises(UserError, match="unknown device"):
        evaluate_live(ARCH, device="tpu", protocol=tiny())


def test_digits_split_is_fixed_by_the_seed_and_disjoint():
    a = load_splits("digits", seed=3)
    b = load_splits("digits", seed=3)
    assert a.sizes() == {"train_size": 400, "val_size": 300, "test_size": 1097}
    assert np.array_equal(a.test_x, b.test_x) and np.array_equal(a.train_y, b.train_y)
    assert a.train_x.shape[1:] == (3, 8, 8)
    rows = lambda x: {r.tobytes() for r in x[:, 0]}  # noqa: E731
    assert len(rows(a.train_x)) == 400  # distinct images
    assert not rows(a.test_x) & rows(a.train_x) and not rows(a.val_x) & rows(a.train_x)
    assert not np.array_equal(load_splits("digits", seed=4).test_y, a.test_y)


# -- live evaluation ---------------------------------------------------------------------------

def test_evaluate_live_on_digits_gives_the_full_panel_and_records_settings():
    result = evaluate_live(ARCH, dataset="digits", device="cpu", seed=1, protocol=tiny(epochs=2))
    record = result.record
    assert record["arch"] == ARCH and record["index"] == TSS.index(ARCH) and record["space"] == "tss"
    assert list(record["metrics"]) == [*PANEL_COLUMNS, *CALIBRATOR_COLUMNS]
    assert 0.0 <= record["metrics"]["acc"] <= 1.0 and record["metrics"]["temperature"] > 0
    settings = record["settings"]
    for key in ("epochs", "lr", "momentum", "nesterov", "weight_decay", "schedule", "batch_size", "seed",
                "train_size", "val_size", "test_size", "channels", "cells"):
        assert key in settings
    assert settings["network"] == {"name": "infer.tiny", "C": 4, "N": 1, "num_classes": 10}
    assert record["training"]["steps"] == 2 * 2  # 64 images, batch 32, 2 epochs
    assert result.probs.shape == (80, 10) and np.allclose(result.probs.sum(1), 1.0)
    accuracy = float((result.probs.argmax(1) == result.labels).mean())
    assert accuracy == pytest.approx(record["metrics"]["acc"])
    json.dumps(record)  # the CLI prints it as JSON


def test_same_seed_same_metrics_and_the_seed_matters():
    first = evaluate_live(ARCH, device="cpu", seed=0, protocol=tiny())
    again = evaluate_live(ARCH, device="cpu", seed=0, protocol=tiny())
    other = evaluate_live(ARCH, device="cpu", seed=1, protocol=tiny())
    assert first.record["metrics"] == again.record["metrics"]
    assert first.record["metrics"] != other.record["metrics"]


def test_an_all_none_cell_cannot_learn():
    # With every edge 'none' the cells output zeros: no information reaches the classifier.
    result = evaluate_live(ZERO_ARCH, device="cpu", protocol=tiny(epochs=2))
    assert result.record["metrics"]["acc"] < 0.35


def test_overrides_and_default_protocols():
    result = evaluate_live(str(TSS.index(ARCH)), device="cpu", protocol=tiny(), epochs=2, channels=6)
    assert result.record["settings"]["epochs"] == 2 and result.record["settings"]["network"]["C"] == 6
    assert default_protocol("digits") == DIGITS_TSS
    assert default_protocol("digits", "sss") == DIGITS_SSS and DIGITS_SSS.space == "sss"
    assert (DIGITS_SSS.val_size, DIGITS_SSS.test_size, DIGITS_SSS.threads) == (300, 1097, 1)  # digits-tss's splits
    nats = default_protocol("cifar10", "tss")
    assert (nats.channels, nats.cells, nats.epochs, nats.batch_size, nats.lr) == (16, 5, 200, 256, 0.1)
    assert default_protocol("imagenet16-120", "sss").epochs == 90
    with pytest.raises(UserError, match="epochs must be at least 1"):
        evaluate_live(ARCH, protocol=tiny(), epochs=0)


def test_size_space_network_on_fake_imagenet16(tmp_path):
    write_fake_imagenet16(tmp_path)
    result = evaluate_live("8:8:16:8:16", dataset="imagenet16-120", data_root=tmp_path, device="cpu",
                           protocol=tiny("imagenet16-120", train_size=None, val_size=None, test_size=None))
    record = result.record
    assert record["space"] == "sss" and record["settings"]["network"]["name"] == "infer.shape.tiny"
    assert result.probs.shape[1] == 120
    with open(tmp_path / "ImageNet16" / "val_data", "rb") as fh:
        kept = sum(label <= 120 for label in pickle.load(fh)["labels"])
    # The validation and test halves together are the kept official validation images.
    assert len(result.labels) + record["settings"]["val_size"] == kept


def test_cifar_training_with_augmentation(tmp_path):
    write_fake_cifar(tmp_path, 10)
    result = evaluate_live(ARCH, dataset="cifar10", data_root=tmp_path, device="cpu",
                           protocol=tiny("cifar10", train_size=40, val_size=None, test_size=None))
    assert result.record["settings"]["train_size"] == 40
    assert result.record["settings"]["val_size"] == 8 and result.record["settings"]["test_size"] == 8


def test_augmentation_is_crop_and_flip_of_the_same_image():
    from calnas.live.train import _augment

    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6) + 1
    out = _augment(x, 2, True, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for i in range(2):
        # Every non-padding value comes from the same image (possibly mirrored).
        values = set(out[i][out[i] != 0].tolist())
        assert values <= set(x[i].flatten().tolist()) and len(values) >= 3 * 4 * 4


# -- NATS-Bench weights ------------------------------------------------------------------------

def build_nats_archive(folder, index: int, dataset: str = "cifar10", seed: int = 777):
    """A fast-mode NATS-Bench archive with one architecture, made with nats_bench's own classes."""
    from nats_bench.api_utils import ArchResults, ResultsCount, pickle_save

    from calnas.live.networks import build_network, network_config

    folder.mkdir()
    pickle_save({"meta_archs": TSS.all_archs(), "arch2infos": {}, "evaluated_indexes": []},
                str(folder / "meta.pickle"))
    arch = TSS.arch(index)
    torch.manual_seed(5)
    net = build_network(network_config("tss", arch, 10, channels=4, cells=1))
    with torch.no_grad():  # non-default BN statistics, so a load that skipped buffers would show
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    arch_config = {"channel": 4, "num_cells": 1, "arch_str": arch, "class_num": 10}
    trial = ResultsCount(dataset, net.state_dict(), {199: 90.0}, {199: 0.3}, 0.1, 10.0, arch_config,
                         seed, 200, [0.01])
    results = ArchResults(index, arch)
    results.update(dataset, seed, trial)
    pickle_save({"200": results.state_dict()}, str(folder / f"{index:06d}.pickle"))
    return net


def test_nats_weights_are_loaded_and_evaluated_not_trained(tmp_path):
    write_fake_cifar(tmp_path / "data", 10, test=24)
    index = TSS.index(ARCH)
    net = build_nats_archive(tmp_path / "nats", index)
    result = evaluate_live(ARCH, dataset="cifar10", data_root=tmp_path / "data", device="cpu",
                           weights="nats", nats_path=tmp_path / "nats", seed=0)
    settings = result.record["settings"]
    assert settings["nats_hp"] == "200" and settings["nats_seed"] == 777 and settings["nats_dataset"] == "cifar10"
    assert settings["network"] == {"name": "infer.tiny", "C": 4, "N": 1, "num_classes": 10}
    assert "epochs" not in settings and result.record["training"]["train_seconds"] == 0.0
    # The archive's network, run directly on the same test split, gives the same predictions.
    splits = load_splits("cifar10", data_root=tmp_path / "data", seed=0)
    net.eval()
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(splits.test_x))[1], 1).numpy()
    assert np.allclose(result.probs, expected, atol=1e-5)


def test_nats_weights_errors(tmp_path):
    write_fake_cifar(tmp_path / "data", 10)
    build_nats_archive(tmp_path / "nats", TSS.index(ARCH))
    common = dict(dataset="cifar10", data_root=tmp_path / "data", device="cpu", weights="nats")
    with pytest.raises(UserError, match="needs --nats-path"):
        evaluate_live(ARCH, **common)
    with pytest.raises(UserError, match="no meta.pickle.pbz2"):
        evaluate_live(ARCH, nats_path=tmp_path / "data", **common)
    with pytest.raises(UserError, match="no tss weights for index 0"):
        evaluate_live(0, nats_path=tmp_path / "nats", **common)
    with pytest.raises(UserError, match="NATS-Bench has no weights for digits"):
        evaluate_live(ARCH, weights="nats", nats_path=tmp_path / "nats")
