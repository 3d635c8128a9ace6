"""The names of the metric panel's columns, defined once for the panel that computes them
(:mod:`calnas.metrics.panel`) and the objective catalogue that names them (``objectives/catalog``).

Standard library only: the catalogue is on the table-search path, which must not load the
metrics' numerical code to know a column's name.
"""

from __future__ import annotations

PREFIXES = ("pre", "post")                        # before / after temperature scaling
BINS: tuple[int, ...] = (5, 10, 15, 20, 25, 50, 100, 200, 500)   # the study's bin counts
BINNED_KINDS = ("ECE", "ECE_em", "cwCE", "cwCE_em", "MCE")
SCALAR_KINDS = ("KSCE", "KDECE", "MMCE", "NLL", "Brier", "Brier_sum")
CONFIDENCE = ("correct_confidence", "incorrect_confidence")
RANKING = ("AUROC", "AURC", "E_AURC")             # selective prediction, threshold-free
COVERAGE_TARGETS: tuple[float, ...] = (0.95, 0.99)


def coverage_column(target: float) -> str:
    return f"coverage_{round(100 * target)}"


SELECTIVE = (*RANKING, *(coverage_column(t) for t in COVERAGE_TARGETS))
