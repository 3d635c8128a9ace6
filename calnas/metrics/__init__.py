"""Calibration metrics: the study's calibration panel, selective prediction, post-hoc calibrators.

numpy only (scipy for FFT convolution and the NLL temperature fit); torch tensors are accepted by
duck typing and torch is never imported. Definitions and documented choices: docs/metrics.md.

    from calnas.metrics import calibration_panel, PANEL_COLUMNS
    panel = calibration_panel(probs, labels)                                # pre_* only
    panel = calibration_panel(None, labels, logits=z, val_logits=vz, val_labels=vy)  # + post_*
    results = calibrator_results(z, labels, vz, vy)   # every calibrator, fitted on (vz, vy)
"""

from calnas.metrics.binning import (
    DEFAULT_BINS,
    MAX_BINS,
    binned_errors,
    classwise_ece,
    classwise_ece_em,
    ece,
    ece_em,
    mce,
)
from calnas.metrics.calibrated import CalibratorResult, calibrator_columns, calibrator_results
from calnas.metrics.calibrators import CALIBRATORS, Calibrator, make_calibrator
from calnas.metrics.io import load_predictions
from calnas.metrics.kernel import kdece, ksce, mmce
from calnas.metrics.panel import NLL_CLIPS, PANEL_COLUMNS, calibration_panel, panel_columns, study_split_indices
from calnas.metrics.reliability import ReliabilityDiagram, reliability_diagram
from calnas.metrics.selective import (
    DEFAULT_COVERAGE_TARGETS,
    aurc,
    auroc,
    coverage_at_accuracy,
    e_aurc,
)
from calnas.metrics.temperature import STUDY_GRID, TEMPERATURE_METHODS, fit_temperature

__all__ = [
    "calibration_panel",
    "PANEL_COLUMNS",
    "panel_columns",
    "NLL_CLIPS",
    "study_split_indices",
    "DEFAULT_BINS",
    "MAX_BINS",
    "binned_errors",
    "DEFAULT_COVERAGE_TARGETS",
    "reliability_diagram",
    "ReliabilityDiagram",
    "fit_temperature",
    "TEMPERATURE_METHODS",
    "STUDY_GRID",
    "load_predictions",
    "CALIBRATORS",
    "Calibrator",
    "make_calibrator",
    "calibrator_results",
    "calibrator_columns",
    "CalibratorResult",
    "ece",
    "ece_em",
    "mce",
    "classwise_ece",
    "classwise_ece_em",
    "ksce",
    "kdece",
    "mmce",
    "auroc",
    "aurc",
    "e_aurc",
    "coverage_at_accuracy",
]
