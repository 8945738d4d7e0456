"""``load_run(RUN_DIR)``: a trained model in one call, for inference or analysis.

    run = scorch.load_run("runs/try1", checkpoint="best")
    run.network(inputs)           # the Network, built with the run's model settings, weights loaded, eval mode
    run.socket.metrics(preds, targets)
    run.config.epochs, run.checkpoint.epoch, run.checkpoint.path
    run.weights                   # "ema": the checkpoint's --ema average was loaded; "raw": its raw weights
    test = run.dataset("test")    # the DataSet of a split, built with the run's dataset settings
    run.dataset_index()           # its DataSetIndex (a vocabulary, normalisation constants ...)

The model and dataset files are the copies kept in the run directory (the code the weights were
trained with); the paths in ``config.json`` are used only when the run has no copy. A relative
``--dataset-path`` is found as :mod:`scorch.rundir.moved` finds it (the run may have moved). The
Network is built under :func:`scorch.loading` (True), so one that loads pretrained weights itself
in ``__init__`` can skip them: the checkpoint holds them. Nothing in the run directory is written.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._loading import from_checkpoint
from ..callbacks.ema import WEIGHTS, load_averaged
from ..config import TrainConfig
from ..contract.overrides import saved_config
from ..contract.userfiles import DatasetFile, ModelFile, Socket, load_dataset_file, load_model_file
from ..errors import ScorchError
from . import checkpoint as ckpt, moved
from .layout import choose_checkpoint

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class CheckpointInfo:
    """Which checkpoint was loaded: epochs completed and optimizer steps when it was written."""

    epoch: int
    step: int
    path: Path


@dataclass(frozen=True)
class LoadedRun:
    """A trained run: ``network`` (eval mode, weights loaded, on ``device``), its checked ``socket``, the
    run's ``config`` and the ``checkpoint`` it came from; :meth:`dataset` and :meth:`dataset_index`
    build its data."""

    path: Path
    network: torch.nn.Module
    socket: Socket
    config: TrainConfig
    checkpoint: CheckpointInfo
    model_file: ModelFile
    weights: str = "raw"  # what the Network holds: "ema" (the run's --ema average) or "raw"
    _data: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def dataset_file(self) -> DatasetFile:
        """The run's dataset file (its copy in the run directory), loaded."""
        if "file" not in self._data:
            self._data["file"] = load_dataset_file(_copy(self.path, self.config, "dataset"))
        file: DatasetFile = self._data["file"]
        return file

    def dataset_index(self, dataset_path: str | None = None) -> Any:
        """The run's DataSetIndex, built once with its dataset settings and ``--dataset-path`` (or
        ``dataset_path``); without a DataSetIndex, the dataset path."""
        key = ("index", dataset_path)
        if key not in self._data:
            file = self.dataset_file()
            path = dataset_path if dataset_path is not None else moved.dataset_path(self.path, self.config.dataset_path,
                                                                                     "load_run")
            self._data[key] = file.build_index(path, file.settings(self.config.dataset_settings))
        return self._data[key]

    def dataset(self, split: str = "test", dataset_path: str | None = None) -> Any:
        """The DataSet of ``split`` (train, valid or test) as the run built it: ``DataSet(index, split)``
        over :meth:`dataset_index`, the run's dataset settings. Items come as ``__getitem__`` gives them
        (no batching; a train split's augmentation draws from the global RNGs)."""
        if split not in SPLITS:
            raise ScorchError(f"load_run: dataset({split!r}): expected one of {', '.join(SPLITS)}")
        index = self.dataset_index(dataset_path)
        return self.dataset_file().build(index, split)


def load_run(run_dir: str | os.PathLike, checkpoint: str | os.PathLike = "best",
             device: str | torch.device | None = None, weights: str = "ema") -> LoadedRun:
    """Load run ``run_dir``'s Network with the weights of ``checkpoint``: ``"best"`` (best by the run's
    --monitor; ``last.pt``, with a warning, when no epoch improved), ``"last"``, or a checkpoint file
    (e.g. ``checkpoints/step-000000176.pt``; relative to the run directory when not found as given):
    :func:`scorch.rundir.layout.choose_checkpoint`, as scorch-test chooses. On the CPU unless ``device`` is
    given. ``weights``: ``"ema"`` loads the moving average of a run trained with ``--ema`` (the raw
    weights of a checkpoint without one), ``"raw"`` the raw weights. A problem is one
    :class:`ScorchError` line."""
    if weights not in WEIGHTS:
        raise ScorchError(f"load_run: weights={weights!r}; expected one of {', '.join(WEIGHTS)}")
    path = Path(run_dir)
    config = saved_config(path, "load_run")
    file = choose_checkpoint(path, checkpoint, "load_run").path
    state = ckpt.load(file, optimizer=False)
    model_file = load_model_file(_copy(path, config, "model"))
    with from_checkpoint():  # scorch.loading(): the checkpoint's weights replace any the Network loads itself
        network = model_file.build_network(config.model_settings)
    ckpt.check_fits(network, state["model"], f"{model_file.path}: Network")
    network.load_state_dict(state["model"])
    used = load_averaged(network, state, weights, f"load_run: {file}")
    network.to(torch.device(device) if device is not None else torch.device("cpu"))
    network.eval()
    socket = model_file.build_socket(network)
    info = CheckpointInfo(int(state["epoch"]), int(state["step"]), file)
    return LoadedRun(path, network, socket, config, info, model_file, used)


def _copy(path: Path, config: TrainConfig, role: str) -> str:
    """The copy of the model (or dataset) file that scorch-train kept in the run directory (see
    RunDir.copy_sources); the path in config.json where there is none."""
    copy = moved.copies(path, config.model, config.dataset)[0 if role == "model" else 1]
    configured = Path(config.model if role == "model" else config.dataset)
    if copy.is_file():
        return str(copy)
    if configured.is_file():
        return str(configured)
    raise ScorchError(f"load_run: {path} has no copy of the {role} file ({copy.name}) and {configured} does not exist")
