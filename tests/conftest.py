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
# Parsed tables go to a cache of this test run (inherited by the CLI subprocesses), never to the
# user's ~/.cache (calnas.table_cache).
os.environ.setdefault("CALNAS_CACHE_DIR", __import__("tempfile").mkdtemp(prefix="calnas-test-cache-"))
SCHEMA_BINS = (5, 10, 15, 20, 25, 50, 100, 200, 500)


# The machine the embedded digits tables were built on (calnas/data/README.md): CPU kernels of
# other instruction sets or cache sizes sum in another order, and the SGD steps of the digits
# protocols amplify the last bits, so their rows re-train exactly only there.
BUILD_CPU = ("AMD EPYC", "AVX512")


def on_build_machine() -> bool:
    import torch

    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        return False
    return (model, torch.backends.cpu.get_cpu_capability()) == BUILD_CPU


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


# --------------------------------------------------------------------------------------------
# a real, throwaway PostgreSQL server (the system's initdb/pg_ctl), for storage tests

PG_BIN_DIRS = [Path(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]


def _pg_tool(name: str) -> str | None:
    import shutil

    for folder in PG_BIN_DIRS:
        if (folder / name).is_file():
            return str(folder / name)
    return shutil.which(name)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server on loopback (socket folder and data in a temporary folder); its URL.

    initdb refuses to run as root, so as root the server runs as the `postgres` user that the
    Debian package creates. Skipped only where no PostgreSQL is installed (`.ci/run` installs it).
    """
    import pwd
    import shutil
    import tempfile

    initdb, pg_ctl, createdb = _pg_tool("initdb"), _pg_tool("pg_ctl"), _pg_tool("createdb")
    if initdb is None or pg_ctl is None or createdb is None:
        pytest.skip("PostgreSQL (initdb, pg_ctl, createdb) is not installed")
    base = Path(tempfile.mkdtemp(prefix="calnas-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (base, sock):
            os.chown(path, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]

    def run(*cmd):
        return subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL)

    port = _free_port()
    run(initdb, "-D", str(data), "--auth=trust", "-U", "postgres", "--no-sync")
    run(pg_ctl, "-D", str(data), "-l", str(base / "log"), "-w", "-o",
        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        run(createdb, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "calnas")
        yield f"postgresql://postgres@127.0.0.1:{port}/calnas"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True,
                       stdin=subprocess.DEVNULL)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def quiet_optuna():
    """Optuna's INFO line per trial off for the test, its level put back after."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    yield
    optuna.logging.set_verbosity(level)
