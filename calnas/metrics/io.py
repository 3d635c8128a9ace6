"""Reading saved predictions (``.npz``) for ``calnas metrics``."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from calnas.errors import UserError

PREDICTION_KEYS = ("logits", "probs", "labels", "val_logits", "val_labels")
EXPECTED = "an .npz with 'labels' (N,) and 'logits' or 'probs' (N, K), optionally 'val_logits'/'val_labels'"


def load_predictions(path) -> dict[str, np.ndarray]:
    """The prediction arrays of an ``.npz`` file (as written by ``np.savez``): ``labels``, and
    ``logits`` and/or ``probs``, optionally ``val_logits`` with ``val_labels``.

    Only the names above are returned. Shapes are checked here so that the error names the file;
    the values (NaN, rows summing to 1, label range) are checked by the metrics themselves.
    """
    from calnas.files import check_input, check_npz_member

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file; expected {EXPECTED}")
    if path.is_dir():
        raise UserError(f"{path} is a directory; expected {EXPECTED}")
    check_input(path, "predictions file", "predictions")  # counts the archive's uncompressed members
    try:
        loaded = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise UserError(f"{path} is not a readable .npz archive ({exc}); expected {EXPECTED}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise UserError(f"{path} holds a single array, not an archive; expected {EXPECTED}")
    with loaded:
        found = list(loaded.files)
        try:
            for key in found:
                if key in PREDICTION_KEYS:
                    check_npz_member(path, loaded.zip, key, EXPECTED)
            arrays = {k: loaded[k] for k in found if k in PREDICTION_KEYS}
        except UserError:
            raise
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise UserError(f"{path} has an unreadable array ({exc}); expected {EXPECTED}") from None

    _check_shapes(path, arrays, found)
    return arrays


def _check_shapes(path: Path, arrays: dict[str, np.ndarray], found: list[str]) -> None:
    if "labels" not in arrays or not ({"logits", "probs"} & arrays.keys()):
        missing = "labels" if "labels" not in arrays else "logits or probs"
        listed = ", ".join(found) or "none"
        raise UserError(f"{path} has no {missing} array (found: {listed}); expected {EXPECTED}")
    for key in ("logits", "probs", "val_logits"):
        if key in arrays and arrays[key].ndim != 2:
            raise UserError(f"{path}: {key} must be 2-D (N, K), got shape {arrays[key].shape}")
    for key in ("labels", "val_labels"):
        if key in arrays and arrays[key].ndim != 1:
            raise UserError(f"{path}: {key} must be 1-D (N,), got shape {arrays[key].shape}")
    n = arrays["labels"].shape[0]
    for key in ("logits", "probs"):
        if key in arrays and arrays[key].shape[0] != n:
            raise UserError(f"{path}: {key} has {arrays[key].shape[0]} rows but labels has {n}")
    if "logits" in arrays and "probs" in arrays and arrays["logits"].shape != arrays["probs"].shape:
        shapes = f"logits {arrays['logits'].shape} and probs {arrays['probs'].shape}"
        raise UserError(f"{path}: {shapes} differ in shape")
    has_vl, has_vy = "val_logits" in arrays, "val_labels" in arrays
    if has_vl != has_vy:
        missing = "val_labels" if has_vl else "val_logits"
        raise UserError(f"{path} has no {missing} array; val_logits and val_labels go together")
    if has_vl:
        vl, vy = arrays["val_logits"], arrays["val_labels"]
        if vl.shape[0] != vy.shape[0]:
            raise UserError(f"{path}: val_logits has {vl.shape[0]} rows but val_labels has {vy.shape[0]}")
        k = (arrays.get("logits", arrays.get("probs"))).shape[1]
        if vl.shape[1] != k:
            raise UserError(f"{path}: val_logits has {vl.shape[1]} classes but the test predictions have {k}")
