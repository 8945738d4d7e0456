"""A run directory moves (copied to another path or machine, read from another working directory):
--resume, scorch-test, load_run and scorch-report use its own copies of the model and dataset files,
and a relative --dataset-path relative to the run; load_run builds the run's dataset splits."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import scorch
from scorch.cli.report import main as report
from scorch.cli.test import main as scorch_test
from scorch.cli.train import main
from scorch.errors import ScorchError
from tests.helpers import MODEL

DATASET_TEXT = '''
import torch


class DataSetIndex:
    def __init__(self, path, scale=1.0):
        data = torch.load(path, weights_only=True)
        self.x, self.y, self.scale = data["x"] * scale, data["y"], scale
        self.classes = ["a", "b", "c"]


class DataSet:
    def __init__(self, index, mode="train"):
        self.index = index
        self.ids = {"train": range(0, 32), "valid": range(32, 44), "test": range(44, 50)}[mode]

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        j = self.ids[i]
        return [self.index.x[j]], [self.index.y[j]]
'''


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """project/{code/model.py, code/dataset.py, data/blobs.pt, runs/r}: trained from project/ with relative
    paths, then moved to moved/project and read from elsewhere/."""
    root = tmp_path / "project"
    (root / "code").mkdir(parents=True)
    (root / "data").mkdir()
    shutil.copy(MODEL, root / "code" / "model.py")
    (root / "code" / "dataset.py").write_text(DATASET_TEXT)
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (50,), generator=gen)
    x = torch.nn.functional.one_hot(y, 4).float() * 2 + torch.randn(50, 4, generator=gen)
    torch.save({"x": x, "y": y}, root / "data" / "blobs.pt")
    monkeypatch.chdir(root)
    assert main(["--model", "code/model.py", "--dataset", "code/dataset.py", "--dataset-path", "data/blobs.pt",
                 "--run-root", "runs", "--name", "r", "--epochs", "1", "--batch-size", "8", "--no-progress",
                 "--dataset.scale=2.0"]) == 0
    moved = tmp_path / "moved" / "project"
    moved.parent.mkdir()
    shutil.move(root, moved)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    return moved


def test_a_moved_run_resumes_tests_loads_and_reports(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = project / "runs" / "r"
    assert main(["--run-root", str(project / "runs"), "--name", "r", "--resume", "--epochs", "2", "--no-progress"]) == 0
    assert json.loads((run / "meta.json").read_text())["epochs_done"] == 2
    assert scorch_test([str(run)]) == 0
    assert json.loads((run / "eval" / "test-best.json").read_text())["samples"] == 6
    loaded = scorch.load_run(run, checkpoint="last")
    assert loaded.checkpoint.epoch == 2
    assert report([str(run), "--out", str(project / "r.png")]) == 0


def test_load_run_builds_the_runs_dataset_splits(project: Path) -> None:
    loaded = scorch.load_run(project / "runs" / "r")
    test = loaded.dataset("test")
    assert len(test) == 6 and len(loaded.dataset("train")) == 32
    index = loaded.dataset_index()
    assert index.scale == 2.0 and index.classes == ["a", "b", "c"]  # the run's dataset settings
    raw = torch.load(project / "data" / "blobs.pt", weights_only=True)
    (x,), (y,) = test[0]
    assert torch.equal(x, raw["x"][44] * 2.0) and int(y) == int(raw["y"][44])
    preds = loaded.network([x[None]])
    assert preds[0].shape == (1, 3)
    assert loaded.dataset_index() is index  # built once
    with pytest.raises(ScorchError, match="expected one of train, valid, test"):
        loaded.dataset("tset")
