"""Shared fixtures: tables in the published layout, built by the tests themselves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_BINS = (5, 10, 15, 20, 25, 50, 100, 200, 500)


def published_columns() -> list[str]:
    """Every column the schema document lists (robustness columns aside)."""
    cols = ["config", "arch", "acc", "correct_confidence", "incorrect_confidence"]
    for prefix in ("pre", "post"):
        for kind in ("ECE", "ECE_em", "cwCE", "cwCE_em", "MCE"):
            cols += [f"{prefix}_{kind}_{b}" for b in SCHEMA_BINS]
        cols += [f"{prefix}_{m}" for m in ("KSCE", "KDECE", "MMCE", "NLL", "Brier")]
    return cols


def make_published_frame(space, indices, seed: int = 0) -> pd.DataFrame:
    """Rows in the published layout with values made up for the test (not benchmark data)."""
    rng = np.random.default_rng(seed)
    cols = published_columns()
    indices = [int(i) for i in indices]
    data = {"config": indices, "arch": [space.arch(i) for i in indices]}
    data.update({col: np.round(rng.uniform(0.001, 0.999, len(indices)), 6) for col in cols[2:]})
    return pd.DataFrame(data)[cols]


@pytest.fixture
def run_cli():
    """Run `python -m calnas ...` in a subprocess, as a user would."""

    def run(*args, env=None, cwd=None):
        full_env = {**os.environ, **(env or {})}
        return subprocess.run([sys.executable, "-m", "calnas", *map(str, args)], capture_output=True,
                              text=True, env=full_env, cwd=cwd or ROOT, stdin=subprocess.DEVNULL)

    return run
