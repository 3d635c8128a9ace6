"""Datasets for live evaluation, as float tensors split into train / validation / test.

* ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download).
* ``cifar10`` / ``cifar100``: the standard python-pickle batches under ``--data-root``
  (``cifar-10-batches-py/``, ``cifar-100-python/``), read with pickle + numpy so that no
  torchvision is needed (there is no CPU torchvision build for calnas's torch pin).
* ``imagenet16-120``: NATS-Bench's downsampled ImageNet 16x16 pickles (``train_data_batch_1..10``,
  ``val_data``) with labels 1..1000 kept when below 121, as NATS-Bench does (120 classes).
* ``PATH.npz``: the user's own images (:func:`read_npz`); in a protocol the dataset is
  ``npz:<first 16 hex digits of the file's SHA-256>``, so a table or study names the data by
  content, wherever the file lies.

The validation split only fits the temperature for temperature scaling; it is never trained on.
For the CIFAR/ImageNet16 sets it is a seeded half of the official test set (the other half is
the test split), the way NATS-Bench evaluates CIFAR-100 and ImageNet16-120 (x-valid / x-test).
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calnas.datasets import DATASET_ALIASES as _ALIASES, DATASETS
from calnas.errors import UserError

# Per-channel statistics NATS-Bench normalises with (xautodl's get_datasets), in [0, 1] units.
_CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
_CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
_IMAGENET16_STATS = ((0.4811, 0.4575, 0.4078), (0.2505, 0.2437, 0.2616))


@dataclass
class Splits:
    """Images as float32 NCHW arrays (already normalised) and int64 labels."""

    name: str
    num_classes: int
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    # Random crop padding and horizontal flip used for training augmentation (0 / False: none).
    crop_padding: int = 0
    flip: bool = False
    info: dict = field(default_factory=dict)

    def sizes(self) -> dict:
        return {"train_size": len(self.train_y), "val_size": len(self.val_y), "test_size": len(self.test_y)}


def canonical_dataset(name: str) -> str:
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if is_npz_key(key):
        return key
    if key not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)} or a PATH.npz")
    return key


def resolve_dataset(dataset: str, data_root=None) -> tuple[str, str | None]:
    """(the dataset's key in a protocol, the folder or file holding its data): a ``.npz`` path
    becomes ``npz:<hash>`` with the file as its data; a name stays itself with ``data_root``."""
    text = str(dataset).strip()
    if text.lower().endswith(".npz"):
        from calnas.files import check_input

        path = check_input(Path(text).expanduser(), "dataset file", "dataset")  # a folder x.npz says it is one
        if data_root is not None:
            raise UserError("--data-root does not apply to a .npz dataset (the file holds the data); leave it out")
        return NPZ_PREFIX + file_digest(path), str(path.resolve())
    return canonical_dataset(dataset), None if data_root is None else str(data_root)


def is_npz_key(key: str) -> bool:
    return str(key).startswith(NPZ_PREFIX)


def file_digest(path) -> str:
    """The first 16 hex digits of a file's SHA-256 (what names a .npz dataset in a protocol)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def load_splits(name: str, *, data_root=None, seed: int = 0, train_size: int | None = None,
                val_size: int | None = None, test_size: int | None = None, spare_to_test: bool = False) -> Splits:
    """The dataset's train / validation / test splits; sizes cap each split (None: all).
    ``spare_to_test`` (digits only): the training-pool images beyond ``train_size`` join the
    test split (before ``test_size`` caps it)."""
    key = canonical_dataset(name)
    if key == "digits":
        return _digits(seed=seed, train_size=train_size, val_size=val_size, test_size=test_size,
                       spare_to_test=spare_to_test)
    if spare_to_test:
        raise UserError(f"spare_to_test applies to digits (its fixed training pool), not to {key}")
    if is_npz_key(key):
        return _npz(key, data_root, seed=seed, train_size=train_size, val_size=val_size, test_size=test_size)
    root = require_root(key, data_root)
    if key == "cifar10":
        train_x, train_y, test_x, test_y = read_cifar(root, 10)
        stats, classes, padding = _CIFAR10_STATS, 10, 4
    elif key == "cifar100":
        train_x, train_y, test_x, test_y = read_cifar(root, 100)
        stats, classes, padding = _CIFAR100_STATS, 100, 4
    else:
        train_x, train_y, test_x, test_y = read_imagenet16(root, 120)
        stats, classes, padding = _IMAGENET16_STATS, 120, 2
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(test_y))
    half = len(order) // 2
    val_idx, test_idx = np.sort(order[:half]), np.sort(order[half:])
    train_idx = np.arange(len(train_y))
    if train_size is not None and train_size < len(train_idx):
        train_idx = np.sort(rng.permutation(len(train_idx))[:train_size])
    val_idx = val_idx[:val_size] if val_size is not None else val_idx
    test_idx = test_idx[:test_size] if test_size is not None else test_idx
    mean = np.asarray(stats[0], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(stats[1], np.float32).reshape(1, 3, 1, 1)

    def prep(images):
        return (images.astype(np.float32) / 255.0 - mean) / std

    return Splits(
        name=key, num_classes=classes,
        train_x=prep(train_x[train_idx]), train_y=train_y[train_idx],
        val_x=prep(test_x[val_idx]), val_y=test_y[val_idx],
        test_x=prep(test_x[test_idx]), test_y=test_y[test_idx],
        crop_padding=padding, flip=True,
        info={"root": str(root), "normalisation": "per-channel mean/std (NATS-Bench's)",
              "val_split": "seeded half of the official test set", "test_split": "the other half"},
    )


def require_root(key: str, data_root) -> Path:
    if data_root is None:
        raise UserError(f"dataset {key} needs --data-root (a folder holding its files); calnas never downloads")
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise UserError(f"data root {str(root)!r} for {key} is not a directory")
    return root


# -- digits -------------------------------------------------------------------------------

DIGITS_POOL_SIZES = {"train": 400, "val": 300, "test": 1097}


def _digits(*, seed: int, train_size, val_size, test_size, spare_to_test: bool = False) -> Splits:
    """Digits split once, with a fixed seed: 400 train pool / 300 validation / 1,097 test.

    The split depends on the seed only, so every architecture of a table sees the same images.
    The test split takes everything the other two leave, so ECE on it is as stable as digits
    allows; the protocol trains on only the first ``train_size`` images of the pool.
    Pixels (0..16) are scaled to [0, 1], standardised with the training pool's mean and std,
    and the grey channel is repeated three times so xautodl's 3-channel stem takes it as is.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0
    labels = bunch.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    n_train, n_val = DIGITS_POOL_SIZES["train"], DIGITS_POOL_SIZES["val"]
    train_idx = order[:n_train]
    val_idx = order[n_train:n_train + n_val]
    test_idx = order[n_train + n_val:]
    for requested, pool, what in ((train_size, train_idx, "train"), (val_size, val_idx, "val"),
                                  (test_size, test_idx, "test")):
        if requested is not None and requested > len(pool):
            raise UserError(f"digits has {len(pool)} {what} images; {what}_size={requested} is too large")
    if spare_to_test and train_size is not None:
        # A short training set leaves pool images unused; on the test split they make ECE less
        # noisy (the curve protocol trains on 75 of the 400).
        test_idx = np.concatenate([test_idx, train_idx[train_size:]])
    train_idx = train_idx[:train_size] if train_size is not None else train_idx
    val_idx = val_idx[:val_size] if val_size is not None else val_idx
    test_idx = test_idx[:test_size] if test_size is not None else test_idx
    mean, std = float(images[order[:n_train]].mean()), float(images[order[:n_train]].std())

    def prep(idx):
        x = (images[idx] - mean) / std
        return np.repeat(x[:, None, :, :], 3, axis=1)

    return Splits(
        name="digits", num_classes=10,
        train_x=prep(train_idx), train_y=labels[train_idx],
        val_x=prep(val_idx), val_y=labels[val_idx],
        test_x=prep(test_idx), test_y=labels[test_idx],
        info={"source": "sklearn.datasets.load_digits (1,797 8x8 images)",
              "split": "seeded permutation: 400 train pool / 300 val / 1,097 test",
              "normalisation": "pixels/16, standardised with the train pool's mean/std, grey repeated to 3 channels"},
    )


# -- the user's own images (.npz) ---------------------------------------------------------------

NPZ_PREFIX = "npz:"
NPZ_REQUIRED = ("x_train", "y_train", "x_test", "y_test")
NPZ_OPTIONAL = ("x_val", "y_val")
MIN_SPLIT_IMAGES = 10  # fewer cannot fit a temperature or estimate a calibration error at all
NPZ_VAL_FRACTION = 0.1  # of the training images, held out for temperature scaling when no x_val
# NATS-Bench's networks halve the image twice (two residual reduction blocks whose strided conv
# and pooled shortcut only agree on even sizes), so height and width must be multiples of 4.
NPZ_SIDE_MULTIPLE = 4
# Labels are 0..K-1 with K = 1 + the largest; K sizes the classifier layer and the metrics'
# N x K arrays, so it is bounded (ImageNet has 1,000 classes).
MAX_CLASSES = 10_000
# Float pixels are taken as given, then standardised in float32; values beyond this (3e38 fits a
# float32 but its square does not) are no image, and would train on NaN.
MAX_PIXEL = 1e6
NPZ_EXPECTED = "a .npz with x_train, y_train, x_test, y_test"


def read_npz(path) -> dict:
    """The checked arrays of a user's .npz: images as float32 N x C x H x W (C = 1 or 3, uint8
    scaled to [0, 1], floats as given), labels int64 in 0..K-1 (K = 1 + the largest training
    label). Every problem is a one-line UserError naming the key."""
    from calnas.files import check_npz_member

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = [key for key in data.files if key in NPZ_REQUIRED + NPZ_OPTIONAL]
            for key in keys:
                check_npz_member(path.name, data.zip, key, NPZ_EXPECTED)  # before numpy allocates its shape
            arrays = {key: data[key] for key in keys}
    except UserError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, AttributeError) as exc:  # AttributeError: one .npy
        raise UserError(f"cannot read {str(path)!r} as .npz ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    missing = [key for key in NPZ_REQUIRED if key not in arrays]
    if missing:
        raise UserError(f"{path.name}: no {missing[0]}; expected arrays {', '.join(NPZ_REQUIRED)} "
                        f"(optional {', '.join(NPZ_OPTIONAL)})")
    if ("x_val" in arrays) != ("y_val" in arrays):
        given, absent = ("x_val", "y_val") if "x_val" in arrays else ("y_val", "x_val")
        raise UserError(f"{path.name}: {given} without {absent}; give both or neither")
    splits = ("train", "val", "test") if "x_val" in arrays else ("train", "test")
    images = {s: _npz_images(path.name, f"x_{s}", arrays[f"x_{s}"]) for s in splits}
    labels = {s: _npz_labels(path.name, f"y_{s}", arrays[f"y_{s}"], len(images[s])) for s in splits}
    shape = images["train"].shape[1:]
    if min(shape[1:]) < NPZ_SIDE_MULTIPLE or shape[1] % NPZ_SIDE_MULTIPLE or shape[2] % NPZ_SIDE_MULTIPLE:
        raise UserError(f"{path.name}: x_train images are {_size(shape)}; expected height and width of at least "
                        f"{NPZ_SIDE_MULTIPLE} and divisible by {NPZ_SIDE_MULTIPLE} (the networks halve them twice; pad or crop the images)")
    for split in splits:
        if images[split].shape[1:] != shape:
            raise UserError(f"{path.name}: x_{split} images are {_size(images[split].shape[1:])}, x_train's "
                            f"{_size(shape)}; expected one image size")
        if len(images[split]) < MIN_SPLIT_IMAGES:
            raise UserError(f"{path.name}: x_{split} has {len(images[split])} images; expected at least "
                            f"{MIN_SPLIT_IMAGES} per split")
    classes = int(labels["train"].max()) + 1
    if len(np.unique(labels["train"])) < 2:
        raise UserError(f"{path.name}: y_train has a single class; expected at least 2")
    for split in splits:
        if labels[split].max() >= classes:
            raise UserError(f"{path.name}: y_{split} has label {int(labels[split].max())}, but y_train's labels "
                            f"are 0..{classes - 1}")
    return {"images": images, "labels": labels, "classes": classes}


def _size(shape) -> str:
    c, h, w = shape
    return f"{h}x{w}x{c}"


def _npz_images(name: str, key: str, x: np.ndarray) -> np.ndarray:
    if x.dtype != np.uint8 and x.dtype.kind != "f":
        raise UserError(f"{name}: {key} has dtype {x.dtype}; expected uint8 or float images")
    if x.ndim == 3:
        x = x[:, None, :, :]
    elif x.ndim == 4 and x.shape[3] in (1, 3):
        x = np.transpose(x, (0, 3, 1, 2))  # N x H x W x C; a 3 x 3 image with 3 channels reads so too
    elif x.ndim != 4 or x.shape[1] not in (1, 3):
        raise UserError(f"{name}: {key} has shape {tuple(x.shape)}; expected N x H x W, N x H x W x C or "
                        "N x C x H x W with C = 1 or 3")
    if x.dtype.kind == "f" and x.size:
        if not np.isfinite(x).all():
            raise UserError(f"{name}: {key} holds NaN or infinite values")
        largest = float(np.abs(x).max())
        if largest > MAX_PIXEL:
            raise UserError(f"{name}: {key} holds the value {largest:.3g}; expected pixel values of at most "
                            f"{MAX_PIXEL:.0e} in size (e.g. 0..1 or 0..255)")
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)


def _npz_labels(name: str, key: str, y: np.ndarray, n: int) -> np.ndarray:
    if y.dtype.kind not in "iu":
        raise UserError(f"{name}: {key} has dtype {y.dtype}; expected integer labels")
    if y.ndim != 1 or len(y) != n:
        raise UserError(f"{name}: {key} has shape {tuple(y.shape)}; expected one label per image ({n},)")
    # Checked in the file's own dtype: a uint64 2^64-1 would wrap to -1 as int64.
    if len(y) and y.min() < 0:
        raise UserError(f"{name}: {key} has negative labels (min {int(y.min())}); expected 0..K-1")
    if len(y) and y.max() >= MAX_CLASSES:
        raise UserError(f"{name}: {key} has label {int(y.max())}; expected labels 0..K-1 with at most "
                        f"{MAX_CLASSES:,} classes")
    return y.astype(np.int64)


def _npz(key: str, path, *, seed: int, train_size, val_size, test_size) -> Splits:
    """A .npz's splits: its validation split, or a seeded NPZ_VAL_FRACTION of the training images;
    standardised per channel with the training split's mean and std; grey repeated to 3 channels
    (xautodl's stem takes 3); no augmentation (flips and crops are not right for every image)."""
    if path is None:
        raise UserError(f"dataset {key} needs its .npz file (give --dataset PATH.npz)")
    if NPZ_PREFIX + file_digest(path) != key:
        raise UserError(f"{path} is not the file this protocol was made with (its content changed: {key} expected)")
    data = read_npz(path)
    images, labels = data["images"], data["labels"]
    rng = np.random.default_rng(seed)
    if "val" in images:
        train_x, train_y, val_x, val_y = images["train"], labels["train"], images["val"], labels["val"]
        val_source = "x_val, y_val"
    else:
        n = len(labels["train"])
        n_val = max(MIN_SPLIT_IMAGES, int(round(n * NPZ_VAL_FRACTION)))
        if n - n_val < MIN_SPLIT_IMAGES:
            raise UserError(f"{Path(path).name}: x_train has {n} images, too few to hold out {n_val} for temperature "
                            "scaling; give x_val, y_val")
        order = rng.permutation(n)
        val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
        train_x, train_y = images["train"][train_idx], labels["train"][train_idx]
        val_x, val_y = images["train"][val_idx], labels["train"][val_idx]
        val_source = f"seeded {NPZ_VAL_FRACTION:.0%} of the training images"
    test_x, test_y = images["test"], labels["test"]
    for requested, x, what in ((train_size, train_x, "train"), (val_size, val_x, "val"), (test_size, test_x, "test")):
        if requested is not None and requested > len(x):
            raise UserError(f"{Path(path).name} has {len(x)} {what} images; {what}_size={requested} is too large")
    train_x, train_y = train_x[:train_size], train_y[:train_size]
    val_x, val_y = val_x[:val_size], val_y[:val_size]
    test_x, test_y = test_x[:test_size], test_y[:test_size]
    mean = train_x.mean(axis=(0, 2, 3), keepdims=True)
    std = train_x.std(axis=(0, 2, 3), keepdims=True)
    std = np.where(std > 0, std, 1.0).astype(np.float32)

    def prep(x):
        x = (x - mean) / std
        return np.ascontiguousarray(np.repeat(x, 3, axis=1) if x.shape[1] == 1 else x, dtype=np.float32)

    return Splits(
        name=key, num_classes=data["classes"],
        train_x=prep(train_x), train_y=train_y, val_x=prep(val_x), val_y=val_y, test_x=prep(test_x), test_y=test_y,
        info={"source": str(path), "image_size": _size(images["train"].shape[1:]), "validation": val_source,
              "normalisation": "uint8/255 (floats as given), standardised per channel with the training split's "
                               "mean/std; grey repeated to 3 channels"},
    )


# -- CIFAR ----------------------------------------------------------------------------------

def _unpickle(path: Path):
    with open(path, "rb") as fh:
        return pickle.load(fh, encoding="latin1")


def _read_batches(files, label_key: str, *, side: int, label_offset: int = 0, classes: int | None = None):
    """Concatenate pickled batches of ``data`` (N x 3*side*side uint8) and labels.

    ``classes`` keeps only labels below it (ImageNet16-120 is a 120-class subset of 1,000).
    """
    xs, ys = [], []
    for f in files:
        batch = _unpickle(f)
        labels = np.asarray(batch[label_key], dtype=np.int64) - label_offset
        data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, side, side)
        if classes is not None:
            keep = (labels >= 0) & (labels < classes)
            data, labels = data[keep], labels[keep]
        xs.append(data)
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)


def read_cifar(root, classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CIFAR-10/100 from the official python-pickle batches: uint8 NCHW images and labels.

    ``root`` may be the batch folder itself or its parent.
    """
    root = Path(root)
    folder_name = "cifar-10-batches-py" if classes == 10 else "cifar-100-python"
    folder = root / folder_name if (root / folder_name).is_dir() else root
    if classes == 10:
        train_files = [folder / f"data_batch_{i}" for i in range(1, 6)]
        test_files = [folder / "test_batch"]
        label_key = "labels"
    else:
        train_files, test_files, label_key = [folder / "train"], [folder / "test"], "fine_labels"
    missing = [f.name for f in train_files + test_files if not f.is_file()]
    if missing:
        raise UserError(
            f"CIFAR-{classes} files not found under {str(root)!r} (missing {', '.join(missing)}); "
            f"expected the python version's {folder_name}/ folder"
        )

    train_x, train_y = _read_batches(train_files, label_key, side=32)
    test_x, test_y = _read_batches(test_files, label_key, side=32)
    return train_x, train_y, test_x, test_y


# -- ImageNet16-120 ---------------------------------------------------------------------------

def read_imagenet16(root, classes: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Downsampled ImageNet 16x16 (NATS-Bench's ImageNet16 folder), labels < ``classes`` kept.

    Files hold ``data`` (N x 768 uint8, channel-major) and ``labels`` (1-based); NATS-Bench keeps
    labels 1..120 and shifts them to 0..119.
    """
    root = Path(root)
    folder = root / "ImageNet16" if (root / "ImageNet16").is_dir() else root
    train_files = [folder / f"train_data_batch_{i}" for i in range(1, 11)]
    val_file = folder / "val_data"
    missing = [f.name for f in train_files + [val_file] if not f.is_file()]
    if missing:
        raise UserError(
            f"ImageNet16-120 files not found under {str(root)!r} (missing {', '.join(missing[:3])}"
            f"{'...' if len(missing) > 3 else ''}); expected NATS-Bench's ImageNet16/ folder"
        )

    # Labels are 1-based in these files.
    train_x, train_y = _read_batches(train_files, "labels", side=16, label_offset=1, classes=classes)
    test_x, test_y = _read_batches([val_file], "labels", side=16, label_offset=1, classes=classes)
    return train_x, train_y, test_x, test_y
