"""--init-from RUN_DIR[:best|last|CHECKPOINT]: a new run from another run's weights with a fresh optimizer,
schedule and loop; a --resume whose trainable set changed is one line suggesting it; scorch.loading()
spares a Network that loads pretrained weights itself the file, where a checkpoint holds them."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import ClassVar

import pytest
import torch

import scorch
from scorch.cli.test import main as scorch_test
from scorch.cli.train import main
from tests.helpers import base_args, scorch_train

MODEL_TEXT = '''
import torch
from torch import nn

import scorch


class Network(nn.Module):
    def __init__(self, unfreeze=False, classes=3, pretrained="", part=False):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Tanh())
        self.head = nn.Linear(8, classes)
        self.unfreeze, self.part = unfreeze, part
        if pretrained and not scorch.loading():  # the checkpoint holds them where scorch loads one
            self.backbone.load_state_dict(torch.load(pretrained, weights_only=True))

    def forward(self, inputs):
        return [self.head(self.backbone(inputs[0]))]


class Socket:
    def __init__(self, model):
        self.trainable_modules = nn.ModuleList([model.backbone, model.head] if model.unfreeze else [model.head])
        if model.part:
            self.init_from_modules = ["backbone"]

    def criterion(self, preds, targets):
        return nn.functional.cross_entropy(preds[0], targets[0])

    def metrics(self, preds, targets):
        return {"accuracy": (preds[0].argmax(1) == targets[0]).float().mean()}
'''


@pytest.fixture(scope="module")
def phase1(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 2-epoch run training the head alone over a backbone loaded from a pretrained file; returns
    (run dir, model file)."""
    tmp = tmp_path_factory.mktemp("init_from")
    model = tmp / "model.py"
    model.write_text(MODEL_TEXT)
    torch.manual_seed(5)
    pretrained = tmp / "pretrained.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Tanh()).state_dict(), pretrained)
    args = base_args(tmp / "runs", "phase1", "--epochs", "2", "--batch-size", "16", f"--model.pretrained={pretrained}",
                     model=str(model))
    assert main(args) == 0
    pretrained.unlink()  # the checkpoint holds the weights: nothing below needs the file again
    return tmp / "runs" / "phase1", model


def last_weights(run: Path, name: str = "last.pt") -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / name, weights_only=True)


def test_phase_two_starts_from_the_weights_with_a_fresh_optimizer_and_loop(phase1: tuple[Path, Path]) -> None:
    run, model = phase1
    root = run.parent
    source = last_weights(run)
    # Unfreeze the backbone, another seed, a rate so small that the weights stay where they started.
    args = base_args(root, "phase2", "--epochs", "1", "--batch-size", "16", "--seed", "7", "--lr", "1e-12",
                     "--model.unfreeze=True", "--init-from", f"{run}:last",
                     # gone: the whole Network comes from the checkpoint, and scorch.loading() spares the file
                     f"--model.pretrained={root.parent / 'pretrained.pt'}", model=str(model))
    assert main(args) == 0
    new = last_weights(root / "phase2")
    assert new["epoch"] == 1 and new["step"] == 4  # its own loop: 64 samples / 16, not phase 1's 8 steps
    for key, value in source["model"].items():
        if value.is_floating_point() and "running" not in key:
            assert torch.allclose(new["model"][key], value, atol=1e-6), key
    steps = {int(s["step"]) for s in new["optimizer"]["state"].values()}
    assert steps == {4}  # a fresh Adam: its step counts phase 2 only
    assert len(new["optimizer"]["state"]) == len(source["model"]) - 2 - 1  # backbone and head trained (no BN buffers)
    assert json.loads((root / "phase2" / "config.json").read_text())["init_from"] == f"{run}:last"
    meta = json.loads((root / "phase2" / "meta.json").read_text())["init_from"]
    assert meta["checkpoint"] == str((run / "checkpoints" / "last.pt").absolute()) and meta["epoch"] == 2
    assert meta["modules"] is None
    # The new run resumes from its own checkpoint, and keeps the record.
    assert main(base_args(root, "phase2", "--resume", "--epochs", "2", model=str(model))) == 0
    assert json.loads((root / "phase2" / "meta.json").read_text())["init_from"] == meta


def test_a_part_named_by_the_socket_loads_into_a_network_with_another_head(phase1: tuple[Path, Path], capsys) -> None:
    run, model = phase1
    root = run.parent
    capsys.readouterr()
    args = base_args(root, "wide", "--epochs", "1", "--model.classes=5", "--init-from", str(run), model=str(model))
    assert main(args) == 2  # the whole Network does not fit: one line naming the head's shapes and the hook
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "'head.weight' (5, 8) here, (3, 8) in the checkpoint" in err[0], err
    assert "Socket.init_from_modules" in err[0] and not (root / "wide").exists()
    assert main([*args, "--model.part=True", "--lr", "1e-12"]) == 0
    new, best = last_weights(root / "wide")["model"], last_weights(run, "best.pt")["model"]
    assert torch.allclose(new["backbone.0.weight"], best["backbone.0.weight"], atol=1e-6)
    assert new["head.weight"].shape == (5, 8)
    assert json.loads((root / "wide" / "meta.json").read_text())["init_from"]["modules"] == {"backbone": "backbone"}


def test_a_resume_whose_trainable_set_changed_is_one_line_suggesting_init_from(phase1: tuple[Path, Path], tmp_path,
                                                                                capsys) -> None:
    import shutil

    run, model = phase1
    copy = tmp_path / "runs" / "phase1"
    shutil.copytree(run, copy)
    capsys.readouterr()
    code = main(base_args(copy.parent, "phase1", "--resume", "--epochs", "3", "--model.unfreeze=True", model=str(model)))
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("scorch-train")]
    assert code == 2 and len(err) == 1, err
    assert "trainable set" in err[0] and f"--init-from {copy}" in err[0], err


@pytest.mark.parametrize("spec, words", [
    ("nowhere", "--init-from nowhere: nowhere is not a directory"),
    ("{run}:nope.pt", "--init-from: checkpoint 'nope.pt' not found"),
])
def test_a_bad_init_from_is_one_line(spec: str, words: str, phase1: tuple[Path, Path], tmp_path, capsys) -> None:
    run, model = phase1
    capsys.readouterr()
    assert main(base_args(tmp_path, "x", "--epochs", "1", "--init-from", spec.format(run=run), model=str(model))) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and words in err[0], err
    assert not (tmp_path / "x").exists()


def test_resume_with_another_init_from_is_refused(phase1: tuple[Path, Path], tmp_path, capsys) -> None:
    import shutil

    run, model = phase1
    shutil.copytree(run, tmp_path / "phase1")
    capsys.readouterr()
    assert main(base_args(tmp_path, "phase1", "--resume", "--init-from", str(run), model=str(model))) == 2
    assert "--resume continues" in capsys.readouterr().err


def test_load_run_scorch_test_and_resume_do_not_need_the_pretrained_file(phase1: tuple[Path, Path], tmp_path) -> None:
    import shutil

    run, model = phase1
    assert not scorch.loading()
    loaded = scorch.load_run(run)
    saved = last_weights(run, "best.pt")["model"]
    assert torch.equal(loaded.network.backbone[0].weight, saved["backbone.0.weight"])
    assert scorch_test([str(run), "--split", "valid"]) == 0
    shutil.copytree(run, tmp_path / "phase1")
    assert main(base_args(tmp_path, "phase1", "--resume", "--epochs", "3", model=str(model))) == 0


def test_two_ranks_init_from_a_sharded_checkpoint(tmp_path: Path) -> None:
    """torch.distributed, 2 ranks: a run sharded by fsdp (a .dcp checkpoint), and a new run of 2 ranks
    (ddp) started from it: every rank starts from the same weights, phase 1's."""
    model = tmp_path / "model.py"
    model.write_text(MODEL_TEXT)
    first = scorch_train(base_args(tmp_path, "a", "--epochs", "1", "--batch-size", "8", "--nproc-per-node", "2",
                                   "--strategy", "fsdp", "--model.unfreeze=True", model=str(model)), timeout=240)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (tmp_path / "a" / "checkpoints" / "last.dcp").is_dir()
    second = scorch_train(base_args(tmp_path, "b", "--epochs", "1", "--batch-size", "8", "--nproc-per-node", "2",
                                    "--lr", "1e-12", "--seed", "3", "--model.unfreeze=True", "--init-from",
                                    str(tmp_path / "a"), model=str(model)), timeout=240)
    assert second.returncode == 0, second.stderr[-3000:]
    # A resume of the sharded run with fewer trainable parameters: its optimizer state cannot carry over.
    third = scorch_train(base_args(tmp_path, "a", "--resume", "--epochs", "2", "--nproc-per-node", "2",
                                   "--model.unfreeze=False", model=str(model)), timeout=240)
    lines = [line for line in third.stderr.splitlines() if "error: --resume" in line]
    assert third.returncode == 2 and len(lines) == 1, third.stderr[-3000:]  # (the launch's summary line follows)
    assert "'backbone.0." in lines[0] and "was trained and is not now" in lines[0] and "--init-from" in lines[0], lines
    from scorch.rundir import checkpoint

    source = checkpoint.load(tmp_path / "a" / "checkpoints" / "last.dcp", optimizer=False)["model"]
    new = last_weights(tmp_path / "b")["model"]
    for key, value in source.items():
        if value.is_floating_point() and "running" not in key:
            assert torch.allclose(new[key], value, atol=1e-6), key



def test_a_resume_with_as_many_but_other_trainable_parameters_is_refused_too() -> None:
    """The same number of parameter tensors, other ones: the saved state's shapes tell."""
    from scorch.config import TrainConfig
    from scorch.errors import ScorchError
    from scorch.training import resume

    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 3))
    before = torch.optim.Adam(net[1].parameters())
    net(torch.randn(2, 4)).sum().backward()
    before.step()
    config = TrainConfig(model="m.py", dataset="d.py", name="r")
    resume.check_optimizer_fits(torch.optim.Adam(net[1].parameters()), net, {"optimizer": before.state_dict()}, config)
    with pytest.raises(ScorchError, match=r"'0.weight' has shape \(8, 4\) now, its saved optimizer state \(3, 8\)"):
        resume.check_optimizer_fits(torch.optim.Adam(net[0].parameters()), net, {"optimizer": before.state_dict()}, config)


def test_a_module_of_the_source_loads_into_a_module_of_another_name(phase1: tuple[Path, Path]) -> None:
    """Socket.init_from_modules = {"encoder": "backbone"}: the source's backbone into this Network's encoder."""
    from scorch.errors import ScorchError
    from scorch.training import init_from

    run, _ = phase1

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Tanh())
            self.decoder = torch.nn.Linear(8, 4)

    class Raw:
        init_from_modules: ClassVar[dict[str, str]] = {"encoder": "backbone"}

    net = Net()
    decoder = net.decoder.weight.detach().clone()
    info = init_from.apply(f"{run}:best", net, Raw(), "m.py")
    best = last_weights(run, "best.pt")["model"]
    assert torch.equal(net.encoder[0].weight, best["backbone.0.weight"])
    assert torch.equal(net.encoder[1].running_mean, best["backbone.1.running_mean"])  # buffers too
    assert torch.equal(net.decoder.weight, decoder) and info["modules"] == {"encoder": "backbone"}
    Raw.init_from_modules = {"decoder": "backbone"}  # type: ignore[assignment]
    with pytest.raises(ScorchError, match=re.escape("missing from the checkpoint: 'backbone.weight'")) as caught:
        init_from.apply(str(run), net, Raw(), "m.py")
    assert "in the checkpoint but not here: 'backbone.0.weight'" in str(caught.value)
    Raw.init_from_modules = ["nope"]  # type: ignore[assignment]
    with pytest.raises(ScorchError, match="names 'nope', which is no submodule of the Network"):
        init_from.apply(str(run), net, Raw(), "m.py")
