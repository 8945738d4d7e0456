"""notebooks/: committed without outputs, and every cell runs on the digits example in a real kernel."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers import DATASET, REPO

NOTEBOOKS = ["1_dataset_check.ipynb", "2_model_check.ipynb", "3_training_check.ipynb"]
KERNEL = "scorch-test-venv"


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernelspec for this very interpreter (the venv's), whatever else Jupyter finds on the machine."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "scorch venv", "language": "python"}))
    return root


def run_notebook(name: str, kernel_dir: Path, monkeypatch: pytest.MonkeyPatch, params: str | None = None) -> nbformat.NotebookNode:
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel's torch, as in conftest.py
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend: figures come back as PNG outputs
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    if params is not None:  # as papermill would: a cell after the parameters cell
        at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
        nb.cells.insert(at + 1, nbformat.v4.new_code_cell(params))
    # Cell errors raise CellExecutionError, failing the test with the cell's traceback.
    NotebookClient(nb, timeout=300, kernel_name=KERNEL, resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    return nb


def text_of(nb: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def images_in(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_without_outputs_and_with_a_parameters_cell(name: str) -> None:
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    assert 'MODEL = "examples/digits/model.py"' in params[0].source
    assert 'DATASET = "examples/digits/dataset.py"' in params[0].source


def test_dataset_notebook(kernel_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = run_notebook("1_dataset_check.ipynb", kernel_dir, monkeypatch)
    out = text_of(nb)
    assert "PASS  dataset.collate" in out and "train: 1437 items" in out
    assert out.rstrip().endswith("8 passed, 0 failed, 0 skipped")
    assert images_in(nb) == 2  # the sample digits and the target histogram


def test_dataset_notebook_prints_values_of_non_image_items(kernel_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = run_notebook("1_dataset_check.ipynb", kernel_dir, monkeypatch, params=f"DATASET = {DATASET!r}")
    out = text_of(nb)
    assert "train: 64 items" in out and "train[0] [[" in out
    assert out.rstrip().endswith("8 passed, 0 failed, 0 skipped")


def test_model_notebook(kernel_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = run_notebook("2_model_check.ipynb", kernel_dir, monkeypatch)
    out = text_of(nb)
    assert "PASS  model.gradients" in out and "float32 (8, 10)" in out and "head.3.weight" in out
    assert "split_metrics on a sample of the valid split: {'macro_f1': " in out and "text 'target:guess': " in out
    assert out.rstrip().endswith("20 passed, 0 failed, 0 skipped")  # with model.split_metrics and model.visualize
    assert images_in(nb) == 2  # visualize's digits, gradient norms


def test_training_notebook(kernel_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = run_notebook("3_training_check.ipynb", kernel_dir, monkeypatch)
    out = text_of(nb)
    assert "PASS  train.overfit" in out and "PASS  checkpoint.roundtrip" in out
    assert "metrics on the batch: {'accuracy': 1.0}" in out
    assert "split_metrics on the batch: {'macro_f1': " in out
    assert out.rstrip().endswith("22 passed, 0 failed, 0 skipped")  # with model.split_metrics and model.visualize
    assert images_in(nb) == 1  # the loss curve
