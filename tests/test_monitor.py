"""The default monitor is one rule (scorch.training.monitor.default_monitor): scorch-report and the sweep summary
name the epoch of training's best.pt, also for a model file whose 'main' metric (maximised, the original
scorch's convention) disagrees with valid/loss about the best epoch."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from scorch.cli.report import main as report_main
from scorch.cli.sweep import main as sweep_main
from scorch.cli.train import main
from scorch.training.monitor import default_monitor
from tests.helpers import FIXTURES, base_args

MODEL = str(FIXTURES / "main_model.py")  # 'main': the predictions' entropy, which falls while valid/loss falls
DATASET = str(FIXTURES / "original_dataset.py")
ARGS = ("--epochs", "3", "--batch-size", "32")


def test_the_default_rule() -> None:
    assert default_monitor(["train/loss", "train/main", "valid/loss", "valid/main"], has_valid=True) == "valid/main"
    assert default_monitor(["train/loss", "train/main"], has_valid=False) == "train/main"
    assert default_monitor(["train/loss", "valid/loss", "valid/accuracy", "train/main"], has_valid=True) == "valid/loss"
    assert default_monitor(["train/loss"], has_valid=False) == "train/loss"


def history(run: Path) -> list[dict[str, str]]:
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def best_epochs(run: Path) -> tuple[int, int, int]:
    """(best.pt's epoch, the best epoch by valid/main maximised, the best by valid/loss minimised)."""
    rows = history(run)
    by_main = max(rows, key=lambda r: float(r["valid/main"]))["epoch"]
    by_loss = min(rows, key=lambda r: float(r["valid/loss"]))["epoch"]
    return torch.load(run / "checkpoints" / "best.pt", weights_only=True)["epoch"], int(by_main), int(by_loss)


def report_cell(out: str, column: str, row: int = 1) -> str:
    """A cell of scorch-report's table (columns aligned, names may hold one space)."""
    lines = out.splitlines()
    start = lines[0].index(column)
    return lines[row][start:].split()[0]


def test_report_names_the_epoch_of_best_pt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(base_args(tmp_path, "r", *ARGS, model=MODEL, dataset=DATASET)) == 0
    run = tmp_path / "r"
    saved, by_main, by_loss = best_epochs(run)
    assert saved == by_main != by_loss  # the case that matters: training follows valid/main
    capsys.readouterr()
    assert report_main([str(run), "--out", str(tmp_path / "report.png")]) == 0
    out = capsys.readouterr().out
    assert report_cell(out, "monitor") == "valid/main"
    assert report_cell(out, "best epoch") == str(saved)


def test_the_sweep_summary_names_the_epoch_of_best_pt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--model", MODEL, "--dataset", DATASET, *ARGS, "--no-progress", "--grid", "seed=0,1",
            "--run-root", str(tmp_path), "--name", "s"]
    assert sweep_main(argv) == 0
    with open(tmp_path / "s" / "summary.csv", newline="") as f:
        summary = list(csv.DictReader(f))
    assert len(summary) == 2
    for row in summary:
        run = tmp_path / "s" / row["name"]
        saved, by_main, by_loss = best_epochs(run)
        assert saved == by_main != by_loss
        assert (row["monitor"], row["best_epoch"]) == ("valid/main", str(saved))
        assert float(row["best"]) == max(float(r["valid/main"]) for r in history(run))
    assert [float(r["best"]) for r in summary] == sorted((float(r["best"]) for r in summary), reverse=True)  # max first
