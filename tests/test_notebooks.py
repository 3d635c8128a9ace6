"""The example notebooks run top to bottom in a fresh kernel of this very Python, and ship
without outputs."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# Listed, not globbed: a notebook joins the test run when its author adds it here.
NOTEBOOKS = ["quickstart.ipynb", "study_questions.ipynb", "live_search.ipynb"]
KERNEL = "calnas-test-python"
TIME_LIMIT_S = 30
# live_search.ipynb trains 10 networks (about half a second each on an idle core) and imports torch.
TIME_LIMITS_S = {"live_search.ipynb": 90}


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory):
    # A kernel spec for sys.executable, found through JUPYTER_PATH: the notebooks run in the
    # environment under test whatever kernels the machine has registered.
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "calnas tests", "language": "python"}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(root))
        yield KERNEL


def execute(notebook, kernel: str):
    client = nbclient.NotebookClient(notebook, kernel_name=kernel, timeout=120,
                                     resources={"metadata": {"path": str(EXAMPLES)}})
    client.execute()  # raises CellExecutionError when a cell raises
    return notebook


def outputs(notebook, mime: str) -> list[str]:
    return [out["data"][mime] for cell in notebook.cells if cell.cell_type == "code"
            for out in cell.get("outputs", []) if mime in out.get("data", {})]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(name, kernel_name):
    start = time.monotonic()
    notebook = execute(nbformat.read(EXAMPLES / name, as_version=4), kernel_name)
    elapsed = time.monotonic() - start
    assert elapsed < TIME_LIMITS_S.get(name, TIME_LIMIT_S), f"{name} took {elapsed:.1f} s"
    assert outputs(notebook, "image/png") or any("data:image/png" in h for h in outputs(notebook, "text/html"))
    if name == "study_questions.ipynb":
        pages = outputs(notebook, "text/html")
        for number in range(1, 8):
            assert any(f"<h3>{number}. " in page for page in pages), number


def test_a_raising_cell_fails_the_run(kernel_name):
    cells = [nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"),
             nbformat.v4.new_code_cell("raise ValueError('boom')")]
    notebook = nbformat.v4.new_notebook(cells=cells)
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="boom"):
        execute(notebook, kernel_name)
    assert notebook.cells[0].outputs[0]["text"].strip() == sys.executable


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_ship_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear outputs before committing"


def test_published_csv_cells_run_when_the_data_dir_is_set(kernel_name, tmp_path, monkeypatch):
    """The study notebook's last part, on small CSVs in the published layout made up for the test."""
    from calnas.spaces import TSS
    from tests.conftest import make_published_frame

    for seed, name in enumerate(("cifar10_tss.csv", "cifar100_tss.csv")):
        make_published_frame(TSS, range(0, 15625, 97), seed=seed).to_csv(tmp_path / name, index=False)
    monkeypatch.setenv("CALNAS_DATA_DIR", str(tmp_path))
    notebook = nbformat.read(EXAMPLES / "study_questions.ipynb", as_version=4)
    start = next(i for i, c in enumerate(notebook.cells) if c.cell_type == "markdown" and "published" in c.source
                 and c.source.startswith("## "))
    first_code = next(c for c in notebook.cells if c.cell_type == "code")
    notebook.cells = [first_code] + notebook.cells[start:]
    execute(notebook, kernel_name)
    printed = "".join(out.get("text", "") for c in notebook.cells if c.cell_type == "code" for out in c.outputs)
    assert "skipped" not in printed and "published tables: cifar10_tss, cifar100_tss" in printed
    pages = outputs(notebook, "text/html")
    assert any("<h3>1. " in p and "cifar10_tss vs cifar100_tss" in p for p in pages)
