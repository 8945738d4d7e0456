"""``load_run(RUN_DIR)``: a trained model in one call, for inference or analysis.

    run = scorch.load_run("runs/try1", checkpoint="best")
    run.network(inputs)           # the Network, built with the run's model settings, weights loaded, eval mode
    run.socket.metrics(preds, targets)
    run.config.epochs, run.checkpoint.epoch, run.checkpoint.path

The model file is the copy kept in the run directory (the code the weights were trained with);
the path in ``config.json`` is used only when the run has no copy. Nothing in the run directory
is written.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import checkpoint as ckpt
from .config import TrainConfig
from .errors import ScorchError
from .rundir import read_settings
from .userfiles import ModelFile, Socket, load_model_file


@dataclass(frozen=True)
class CheckpointInfo:
    """Which checkpoint was loaded: epochs completed and optimizer steps when it was written."""

    epoch: int
    step: int
    path: Path


@dataclass(frozen=True)
class LoadedRun:
    """A trained run: ``network`` (eval mode, weights loaded, on ``device``), its checked ``socket``, the
    run's ``config`` and the ``checkpoint`` it came from."""

    path: Path
    network: torch.nn.Module
    socket: Socket
    config: TrainConfig
    checkpoint: CheckpointInfo
    model_file: ModelFile


def load_run(run_dir: str | os.PathLike, checkpoint: str | os.PathLike = "best",
             device: str | torch.device | None = None) -> LoadedRun:
    """Load run ``run_dir``'s Network with the weights of ``checkpoint``: ``"best"`` (best by the run's
    --monitor; ``last.pt`` when no epoch improved), ``"last"``, or a checkpoint file (e.g.
    ``checkpoints/step-000000176.pt``; relative to the run directory when not found as given). On the
    CPU unless ``device`` is given. A problem is one :class:`ScorchError` line."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ScorchError(f"load_run: {path} is not a directory (expected a run directory written by scorch-train)")
    config = _config(path)
    file = _checkpoint_file(path, checkpoint)
    state = ckpt.load(file)
    model_file = load_model_file(str(_model_copy(path, config)))
    network = model_file.build_network(config.model_settings)
    ckpt.check_fits(network, state["model"], f"{model_file.path}: Network")
    network.load_state_dict(state["model"])
    network.to(torch.device(device) if device is not None else torch.device("cpu"))
    network.eval()
    socket = model_file.build_socket(network)
    info = CheckpointInfo(int(state["epoch"]), int(state["step"]), file)
    return LoadedRun(path, network, socket, config, info, model_file)


def _config(path: Path) -> TrainConfig:
    """The run's TrainConfig from config.json (keys a newer or older scorch wrote are left out)."""
    file = path / "config.json"
    if not file.is_file():
        raise ScorchError(f"load_run: {path} has no config.json; expected a run directory written by scorch-train")
    saved = read_settings(file)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    values: dict[str, Any] = {k: v for k, v in saved.items() if k in known}
    values.update(resume=False, auto_resume=False, overwrite=False)  # how that invocation ran, not the run
    try:
        return TrainConfig(**values)
    except TypeError as exc:
        raise ScorchError(f"{file}: not the settings scorch-train writes ({exc})") from exc


def _checkpoint_file(path: Path, which: str | os.PathLike) -> Path:
    checkpoints = path / "checkpoints"
    if which in ("best", "last"):
        file = checkpoints / f"{which}.pt"
        if which == "best" and not file.is_file() and (checkpoints / "last.pt").is_file():
            return checkpoints / "last.pt"  # no epoch was ever "best" (e.g. a run stopped in its first epoch)
        if not file.is_file():
            raise ScorchError(f"load_run: {path} has no {file.relative_to(path)} (has the run written a checkpoint yet?)")
        return file
    given = Path(which)
    for candidate in (given, path / given, checkpoints / given):
        if candidate.is_file():
            return candidate
    raise ScorchError(f"load_run: checkpoint {str(which)!r} not found (expected 'best', 'last' or a checkpoint file "
                      f"such as {checkpoints / 'step-000000176.pt'})")


def _model_copy(path: Path, config: TrainConfig) -> Path:
    """The copy of the model file that scorch-train kept in the run directory (see RunDir.copy_sources)."""
    model, dataset = Path(config.model), Path(config.dataset)
    name = model.name if model.name != dataset.name else f"{model.parent.name}_{model.name}"
    if (path / name).is_file():
        return path / name
    if model.is_file():
        return model
    raise ScorchError(f"load_run: {path} has no copy of the model file ({name}) and {config.model} does not exist")
