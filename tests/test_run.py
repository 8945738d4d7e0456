"""scorch.load_run: a trained run's Network in one call (settings, weights, eval mode, device), from the
run directory's own copy of the model file."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import scorch
from scorch.cli.train import main
from scorch.errors import ScorchError
from tests.helpers import DATASET, base_args

MODEL_TEXT = '''
import torch
from torch import nn


class Network(nn.Module):
    def __init__(self, hidden=4, dropout=0.5):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, hidden), nn.BatchNorm1d(hidden), nn.Tanh(), nn.Dropout(dropout),
                                  nn.Linear(hidden, 3))

    def forward(self, inputs):
        return [self.body(inputs[0])]


class Socket:
    def __init__(self, model):
        self.trainable_modules = nn.ModuleList([model.body])

    def criterion(self, preds, targets):
        return nn.functional.cross_entropy(preds[0], targets[0])

    def metrics(self, preds, targets):
        return {"accuracy": (preds[0].argmax(1) == targets[0]).float().mean()}
'''


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 3-epoch run with --model.hidden=7 keeping every checkpoint; returns (run dir, model file)."""
    tmp = tmp_path_factory.mktemp("load_run")
    model = tmp / "model.py"
    model.write_text(MODEL_TEXT)
    args = base_args(tmp / "runs", "r", "--epochs", "3", "--batch-size", "16", "--keep-checkpoints", "5",
                     "--monitor", "valid/accuracy", "--model.hidden=7", model=str(model))
    assert main(args) == 0
    return tmp / "runs" / "r", model


def test_best_checkpoint_with_the_runs_settings_in_eval_mode_on_the_cpu(trained: tuple[Path, Path]) -> None:
    run_dir, _ = trained
    run = scorch.load_run(run_dir)
    saved = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert run.checkpoint.path == run_dir / "checkpoints" / "best.pt"
    assert (run.checkpoint.epoch, run.checkpoint.step) == (saved["epoch"], saved["step"])
    assert run.network.body[0].out_features == 7  # --model.hidden=7, from config.json
    assert run.config.model_settings == {"hidden": 7, "dropout": 0.5} and run.config.epochs == 3
    state = run.network.state_dict()
    assert state.keys() == saved["model"].keys()
    assert all(torch.equal(state[k], saved["model"][k]) for k in state)
    assert not any(m.training for m in run.network.modules())  # dropout off, BatchNorm's running statistics
    assert {p.device.type for p in run.network.parameters()} == {"cpu"}
    # Inference: the same input gives the same output (eval mode), and the Socket scores it.
    x = torch.randn(5, 4)
    out = run.network([x])
    assert torch.equal(out[0], run.network([x])[0])
    assert set(run.socket.metrics(out, [torch.zeros(5, dtype=torch.long)])) == {"accuracy"}


def test_last_and_a_step_checkpoint(trained: tuple[Path, Path]) -> None:
    run_dir, _ = trained
    last = scorch.load_run(run_dir, checkpoint="last")
    assert last.checkpoint.epoch == 3 and last.checkpoint.path.name == "last.pt"
    kept = sorted((run_dir / "checkpoints").glob("step-*.pt"))
    assert len(kept) == 3
    first = scorch.load_run(run_dir, checkpoint=f"checkpoints/{kept[0].name}")  # relative to the run directory
    assert (first.checkpoint.epoch, first.checkpoint.path) == (1, run_dir / "checkpoints" / kept[0].name)
    assert scorch.load_run(run_dir, checkpoint=kept[0]).checkpoint.step == first.checkpoint.step
    assert not torch.equal(first.network.body[0].weight, last.network.body[0].weight)


def test_device_is_honoured(trained: tuple[Path, Path]) -> None:
    run = scorch.load_run(trained[0], device="meta")  # a device other than the CPU that exists everywhere
    assert {p.device.type for p in run.network.parameters()} == {"meta"}


def test_uses_the_run_directorys_copy_of_the_model_file(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, model = trained
    copy = tmp_path / "r"
    shutil.copytree(run_dir, copy)
    moved = model.with_name("moved.py")
    model.rename(moved)  # the original is gone: the copy kept in the run directory is what is loaded
    try:
        run = scorch.load_run(copy)
    finally:
        moved.rename(model)
    assert Path(run.model_file.path) == copy / "model.py"


@pytest.mark.parametrize("case, words", [
    ("no dir", "is not a directory"),
    ("no config", "has no config.json"),
    ("bad name", "checkpoint 'nope.pt' not found"),
])
def test_problems_are_one_line(case: str, words: str, trained: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir = trained[0]
    target, which = run_dir, "best"
    if case == "no dir":
        target = tmp_path / "missing"
    elif case == "no config":
        target = tmp_path / "empty"
        target.mkdir()
    else:
        which = "nope.pt"
    with pytest.raises(ScorchError, match=words) as info:
        scorch.load_run(target, checkpoint=which)
    assert "\n" not in str(info.value)


def test_a_run_of_the_bundled_dataset_fixture_loads_too(tmp_path: Path) -> None:
    """Without --keep-checkpoints and with the fixture model (no settings)."""
    from tests.helpers import MODEL

    assert main(base_args(tmp_path, "plain", "--epochs", "1", "--batch-size", "32", model=MODEL, dataset=DATASET)) == 0
    run = scorch.load_run(tmp_path / "plain")
    assert run.checkpoint.epoch == 1 and run.config.model_settings == {}
