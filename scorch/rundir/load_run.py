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

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import TrainConfig
from ..contract.overrides import saved_config
from ..contract.userfiles import ModelFile, Socket, load_model_file
from ..errors import ScorchError
from . import checkpoint as ckpt
from .directory import source_names
from .layout import choose_checkpoint


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
    --monitor; ``last.pt``, with a warning, when no epoch improved), ``"last"``, or a checkpoint file
    (e.g. ``checkpoints/step-000000176.pt``; relative to the run directory when not found as given):
    :func:`scorch.rundir.layout.choose_checkpoint`, as scorch-test chooses. On the CPU unless ``device`` is
    given. A problem is one :class:`ScorchError` line."""
    path = Path(run_dir)
    config = saved_config(path, "load_run")
    file = choose_checkpoint(path, checkpoint, "load_run").path
    state = ckpt.load(file, optimizer=False)
    model_file = load_model_file(str(_model_copy(path, config)))
    network = model_file.build_network(config.model_settings)
    ckpt.check_fits(network, state["model"], f"{model_file.path}: Network")
    network.load_state_dict(state["model"])
    network.to(torch.device(device) if device is not None else torch.device("cpu"))
    network.eval()
    socket = model_file.build_socket(network)
    info = CheckpointInfo(int(state["epoch"]), int(state["step"]), file)
    return LoadedRun(path, network, socket, config, info, model_file)


def _model_copy(path: Path, config: TrainConfig) -> Path:
    """The copy of the model file that scorch-train kept in the run directory (see RunDir.copy_sources)."""
    model, name = Path(config.model), source_names(config.model, config.dataset)[0]
    if (path / name).is_file():
        return path / name
    if model.is_file():
        return model
    raise ScorchError(f"load_run: {path} has no copy of the model file ({name}) and {config.model} does not exist")
