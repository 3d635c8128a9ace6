"""benchmarks/moasha_comparison.py: skipped where syne-tune is absent (the project's .venv); run it in
the benchmark environment (its docstring): ``.venv-bench/bin/python -m pytest tests/test_moasha_comparison.py``."""

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("syne_tune")

from calnas.tables import EMBEDDED_CURVES, embedded_benchmarks  # noqa: E402

TABLE = "digits-tss-curves"
if TABLE not in EMBEDDED_CURVES or TABLE not in embedded_benchmarks():
    pytest.skip(f"{TABLE} is not in this install", allow_module_level=True)


def _module():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "moasha_comparison.py"
    spec = importlib.util.spec_from_file_location("moasha_comparison", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("moasha_comparison", module)
    spec.loader.exec_module(module)
    return module


def _bracket_decision(priority, recorded, new):
    from syne_tune.optimizer.schedulers.asha import Bracket

    bracket = Bracket(1, 16, 2, 0, priority)
    for trial_id, (a, b) in enumerate(recorded):
        bracket.on_result(trial_id, 1, {"a": a, "b": b})
    return bracket.on_result(len(recorded), 1, {"a": new[0], "b": new[1]})


def test_rank_priority_lets_the_best_trial_continue():
    from syne_tune.optimizer.schedulers.multiobjective.multiobjective_priority import NonDominatedPriority

    m = _module()
    recorded = [(1, 1), (2, 2), (3, 3), (9, 9)]
    assert _bracket_decision(m.rank_priority(), recorded, (0, 0)) == "CONTINUE"
    assert _bracket_decision(m.rank_priority(), recorded, (10, 10)) == "STOP"
    # syne-tune 0.16 as shipped stops it (the README section's note); if this fails, the note is stale
    assert _bracket_decision(NonDominatedPriority(), recorded, (0, 0)) == "STOP"


def test_one_short_seed_scores_both_methods():
    m = _module()
    rows, facts = m.compare(TABLE, [0], budget_epochs=60, fractions=(0.5, 1.0), log=lambda *a, **k: None)
    assert [r["fraction"] for r in rows] == [0.5, 1.0]
    for row in rows:
        for key in ("calnas_ratio", "shipped_ratio", "rank-fixed_ratio"):
            assert 0.0 <= row[key] <= 1.0
        assert row["difference_shipped"] == pytest.approx(row["calnas_ratio"] - row["shipped_ratio"])
    assert rows[1]["calnas_finished"] >= rows[0]["calnas_finished"]
    text = m.markdown(rows, facts, (0.5, 1.0), ("shipped", "rank-fixed"))
    assert "| 0.5 |" in text and "rank read as intended" in text
