"""Answers to the questions of the ICLR 2024 calibration benchmark study, from calibration tables.

Each function takes a table in the calibration layout (a :class:`~calnas.tables.Table`, a
benchmark name or path for :func:`calnas.load_benchmark`, or a DataFrame in the table layout) and
returns an :class:`AnalysisResult` with ``.frame``, ``.figure``, ``.summary`` (the finding in
numbers) and an HTML view for notebooks::

    import calnas.analysis as ca
    ca.generalization(["cifar10_tss", "cifar100_tss"], metric="ece")   # 1, two or more tables
    ca.robustness("cifar10_tss")                                      # 2
    ca.metric_agreement("digits-tss")                                 # 3
    ca.temperature_scaling("digits-tss")                              # 4
    ca.calibration_vs_accuracy("digits-tss", metric="ece")            # 5
    ca.bin_count("digits-tss")                                        # 6
    ca.architecture_design("digits-tss", metric="ece", seed=0)        # 7

Correlations use one row per distinct network (isomorphism class for TSS); estimators and
choices: docs/analysis.md. numpy, pandas, scipy and matplotlib (Figure + Agg canvas) only.
"""

from calnas.analysis._base import AnalysisResult, as_table, distinct, rank_matrix, resolve_metric, unit_keys
from calnas.analysis.bins import bin_count
from calnas.analysis.correlation import calibration_vs_accuracy, generalization, metric_agreement, robustness
from calnas.analysis.design import architecture_design
from calnas.analysis.report import QUESTIONS, Question, resolve_questions, run_questions, write_report
from calnas.analysis.temperature import temperature_scaling

__all__ = [
    "AnalysisResult",
    "QUESTIONS",
    "Question",
    "architecture_design",
    "as_table",
    "bin_count",
    "calibration_vs_accuracy",
    "distinct",
    "generalization",
    "metric_agreement",
    "rank_matrix",
    "resolve_metric",
    "resolve_questions",
    "robustness",
    "run_questions",
    "temperature_scaling",
    "unit_keys",
    "write_report",
]
