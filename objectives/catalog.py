"""Names calnas knows as objectives: the table schema's columns, their short aliases, directions.

The schema is that of the published calibration dataset plus calnas's own columns
(``docs/tables.md``). Columns are grouped into families; a family says which
direction is better and, when a table lacks one of its columns, which kind of table has it.

Short names (case-insensitive):

* calibration metrics without a ``pre_``/``post_`` prefix mean ``pre_`` (before temperature
  scaling, as the study reports them), and binned ones without a bin count mean 15 bins:
  ``ece`` -> ``pre_ECE_15``, ``ece_em_50`` -> ``pre_ECE_em_50``, ``post_mce`` -> ``post_MCE_15``,
  ``nll`` -> ``pre_NLL``;
* ``accuracy`` -> ``acc``, ``eaurc`` -> ``E_AURC``, ``cov95`` -> ``coverage_95``;
* a post-hoc calibrator's columns are ``NAME@CALIBRATOR`` (:mod:`calnas.calibrator_columns`): the
  name before ``@`` as above, a calibration metric always after calibration (``ece@dirichlet``
  and ``post_ece@dirichlet`` -> ``post_ECE_15@dirichlet``), ``val_`` for the validation split's
  value (``val_ece@isotonic`` -> ``val_ECE_15@isotonic``), ``acc@histogram``, ``aurc@ets``.
"""

from __future__ import annotations

import math
import re

from calnas.calibrator_columns import CALIBRATOR_COLUMNS, CALIBRATOR_NAMES, split_column

from calnas.columns import COST_COLUMNS
from calnas.metric_names import BINNED_KINDS, BINS, CONFIDENCE, PREFIXES, SCALAR_KINDS, SELECTIVE  # noqa: F401

HEADLINE_BINS = 15
# Cost columns: calnas's own (params, flops) and NATS-Bench benchmark files' latency.
COST = (*COST_COLUMNS, "latency")
# CIFAR-10-C corruptions: the published robustness copies carry one accuracy column per corruption.
CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "gaussian_blur", "snow", "frost", "fog", "spatter", "brightness",
    "contrast", "saturate", "elastic_transform", "pixelate", "jpeg_compression",
)
HEADLINE = f"pre_ECE_{HEADLINE_BINS}"

MAXIMISE, MINIMISE = "maximize", "minimize"  # Optuna's spelling, so they pass straight through

# family -> where to find a table that has it (completes "<column> is not in <table>; ...").
WHERE = {
    "accuracy": "every calnas table has acc; check the file's columns",
    "calibration": "use the embedded calibration table or a published calibration CSV (e.g. cifar10_tss.csv)",
    "confidence": "use the embedded calibration table or a published calibration CSV",
    "selective": "use a table calnas built (the embedded calibration table or `calnas table`)",
    "temperature": "use a table calnas built (the embedded calibration table or `calnas table`)",
    "cost": "calnas adds params and flops to TSS/SSS tables whose dataset it knows "
            "(embedded tables, or files named like cifar10_tss.csv)",
    "robustness": "use a published calibration CSV that carries the robustness columns",
    "calibrators": "tables built before the post-hoc calibrators lack their columns; build one with "
                   "`calnas table build` (or search --live, evaluate --live), which records them",
}

_BINNED_RE = re.compile(r"^(?:(pre|post)_)?(ece|ece_em|cwce|cwce_em|mce)(?:_(\d+))?$")
_SCALAR_RE = re.compile(r"^(?:(pre|post)_)?(ksce|kdece|mmce|nll|brier|brier_sum)$")
_ADVERSARIAL_RE = re.compile(r"^[a-z0-9_-]+_linf_acc\d+_\d+$")
_ALIASES = {"accuracy": "acc", "eaurc": "E_AURC", "cov95": "coverage_95", "cov99": "coverage_99"}


def schema_columns() -> list[str]:
    """Every column name of the schema (robustness columns aside), in the schema's order."""
    cols = ["acc", *CONFIDENCE]
    for prefix in PREFIXES:
        for kind in BINNED_KINDS:
            cols += [f"{prefix}_{kind}_{b}" for b in BINS]
        cols += [f"{prefix}_{kind}" for kind in SCALAR_KINDS]
    return cols + [*SELECTIVE, "temperature", *COST]


def short_names() -> list[str]:
    """The aliases users type most, for suggestions next to the schema's own names."""
    kinds = [k.lower() for k in BINNED_KINDS + SCALAR_KINDS]
    return ["acc", "accuracy", "hcs", "best_post_ece", *kinds, *(f"post_{k}" for k in kinds), "eaurc", "cov95",
            "cov99", *CALIBRATOR_COLUMNS]


_CANONICAL = {c.lower(): c for c in schema_columns()}


def canonical_column(token: str) -> str | None:
    """The schema column a (lower-case) name stands for, or None when it is not a schema name.

    A binned name with a bin count the schema lacks still resolves (``ece_30`` ->
    ``pre_ECE_30``): a calnas-built table may carry other bin counts.
    """
    token = token.lower()
    if token in _CANONICAL:
        return _CANONICAL[token]
    if token in _ALIASES:
        return _ALIASES[token]
    if split_column(token) is not None:
        return _calibrator_column(*split_column(token))
    match = _BINNED_RE.match(token)
    if match:
        prefix, kind, bins = match.groups()
        kind = next(k for k in BINNED_KINDS if k.lower() == kind)
        return f"{prefix or 'pre'}_{kind}_{bins or HEADLINE_BINS}"
    match = _SCALAR_RE.match(token)
    if match:
        prefix, kind = match.groups()
        kind = next(k for k in SCALAR_KINDS if k.lower() == kind)
        return f"{prefix or 'pre'}_{kind}"
    return None


def _calibrator_column(base: str, calibrator: str) -> str | None:
    """``post_ECE_15@dirichlet`` for ``ece@dirichlet``; ``val_ECE_15@dirichlet`` for
    ``val_ece@dirichlet``; None when ``calibrator`` is no calibrator or ``base`` no metric."""
    if calibrator not in CALIBRATOR_NAMES:
        return None
    split = "val_" if base.startswith("val_") else ""
    canonical = canonical_column(base[len(split):]) if split_column(base) is None else None
    if canonical is None:
        return None
    if split or family(canonical) == "calibration":
        canonical = canonical.split("_", 1)[1]  # the pre_/post_ prefix: a calibrator's value is "after"
        canonical = f"{split or 'post_'}{canonical}"
    return f"{canonical}@{calibrator}"


def _base(column: str) -> str:
    """The panel column a calibrator column is the "after" of (``post_ECE_15`` for
    ``post_ECE_15@dirichlet`` and ``val_ECE_15@dirichlet``); other columns as they are."""
    parts = split_column(column)
    if parts is None:
        return column
    base = parts[0]
    return "post_" + base[len("val_"):] if base.lower().startswith("val_") else base


def family(column: str) -> str | None:
    """Which family a column belongs to (None for a column calnas does not know)."""
    if split_column(column) is not None:
        return "calibrators" if family(_base(column)) is not None else None
    low = column.lower()
    if low == "acc":
        return "accuracy"
    if low in ("correct_confidence", "incorrect_confidence"):
        return "confidence"
    if low == "temperature":
        return "temperature"
    if column in SELECTIVE:
        return "selective"
    if low in COST:
        return "cost"
    if _BINNED_RE.match(low) or _SCALAR_RE.match(low):
        return "calibration"
    if low in CORRUPTIONS or _ADVERSARIAL_RE.match(low) or low.startswith("pre_auc_"):
        return "robustness"
    return None


def unit_calibration_error(column: str) -> bool:
    """Whether a column is a calibration error in [0, 1] (the binned errors, KSCE, KDECE, MMCE):
    what HCS may weigh against accuracy. NLL and Brier are scoring rules on other scales."""
    column = _base(column)
    return family(column) == "calibration" and not column.lower().endswith(("_nll", "_brier", "_brier_sum"))


def direction(column: str) -> str | None:
    """Which way is better for a column; None when calnas cannot tell (the user must say)."""
    column = _base(column)
    fam = family(column)
    low = column.lower()
    if fam in ("accuracy", "robustness"):
        return MAXIMISE
    if fam == "confidence":
        return MAXIMISE if low == "correct_confidence" else MINIMISE
    if fam == "selective":
        return MINIMISE if column in ("AURC", "E_AURC") else MAXIMISE
    if fam in ("cost", "calibration"):
        return MINIMISE
    # Column names from other sources: accuracies and AUCs are better high.
    if re.search(r"(^|_)(acc|accuracy|auc|auroc)(_|$|\d)", low):
        return MAXIMISE
    return None


def reference_range(column: str, num_classes: int) -> tuple[float, float] | None:
    """The interval a fixed hypervolume reference point is taken from, in the column's own units:
    its possible range where it is bounded; for NLL, up to a uniform prediction's value (ln K),
    as NLL has no upper bound. None where calnas knows none (cost columns depend on the space,
    ``temperature`` and unknown columns on nothing fixed).

    Bounds follow the definitions in docs/metrics.md: accuracies, confidences, coverages, AUROC,
    AURC / E-AURC and every calibration error lie in [0, 1]; ``Brier`` (squared error averaged
    over the N x K entries) in [0, 2/K]; ``Brier_sum`` in [0, 2]. A calibrator's column has its
    panel column's range.
    """
    column = _base(column)
    fam = family(column)
    low = column.lower()
    if fam in ("accuracy", "confidence", "selective"):
        return 0.0, 1.0
    if fam != "calibration":
        return None
    if low.endswith("_brier_sum"):
        return 0.0, 2.0
    if low.endswith("_brier"):
        return 0.0, 2.0 / num_classes
    if low.endswith("_nll"):
        return 0.0, math.log(num_classes)
    return 0.0, 1.0
