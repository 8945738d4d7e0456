"""``scorch-test``: a run's checkpoint evaluated on a split, from what the run directory keeps.

The Network, Socket and DataSet are rebuilt from the copies of the model and dataset files in the
run directory and its ``config.json`` (settings, seed, batch size, workers, AMP); the split is
evaluated on every rank of the launch (single process, mpirun, torchrun, srun) with exact
distributed metrics, and rank 0 writes ``RUN_DIR/eval/<split>-<checkpoint>.json`` (and, with
``predictions``, ``<split>-<checkpoint>-predictions.pt``; the names: :mod:`scorch.rundir.layout`).
``--checkpoint`` is chosen as :func:`scorch.load_run` chooses (:func:`scorch.rundir.layout.choose_checkpoint`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import distributed as dist
from .._loading import from_checkpoint
from ..config import BACKENDS, DEVICES, TrainConfig, check_path
from ..contract.overrides import saved_config
from ..contract.userfiles import load_dataset_file, load_model_file
from ..errors import ScorchError
from ..rundir import moved
from ..rundir.directory import source_names
from ..rundir.layout import CHOICES, choose_checkpoint
from ..training.build import autocast_factory, seed_everything
from .evaluation import SPLITS, Evaluation, evaluate_checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TestOptions:
    """What scorch-test evaluates; None takes the run's own setting. Errors name the flag."""

    run_dir: str
    checkpoint: str = "best"  # best, last or a checkpoint file (scorch.rundir.layout.choose_checkpoint)
    split: str = "test"
    predictions: bool = False
    dataset_path: str | None = None
    batch_size: int | None = None
    workers: int | None = None
    backend: str = "auto"
    device: str = "auto"
    raw: bool = False  # the raw weights of a checkpoint that holds an --ema average (default: the average)

    def __post_init__(self) -> None:
        check_path(self.run_dir, "RUN_DIR")
        for flag, value, allowed in (("--split", self.split, SPLITS), ("--backend", self.backend, BACKENDS),
                                     ("--device", self.device, DEVICES)):
            if value not in allowed:
                raise ScorchError(f"{flag}: {value!r} is not one of {', '.join(allowed)}")
        for flag, number, least in (("--batch-size", self.batch_size, 1), ("--workers", self.workers, 0)):
            if number is not None and number < least:
                raise ScorchError(f"{flag}: expected a whole number >= {least}, got {number!r}")
        if not self.checkpoint:
            raise ScorchError(f"--checkpoint: expected {', '.join(CHOICES)} or a checkpoint file, got ''")


def dataset_path(config: TrainConfig, run_dir: Path, given: str | None) -> str | None:
    """``given``, else the run's --dataset-path; a relative one that is not here is found as
    :func:`scorch.rundir.moved.dataset_path` finds it (relative to the run, or to where it started)."""
    if given is not None:
        return given
    return moved.dataset_path(run_dir, config.dataset_path, "scorch-test")


def test_run(options: TestOptions) -> dict[str, Any]:
    """Evaluate the checkpoint on the split on every rank; rank 0 writes the files. Returns the
    results (``SPLIT/loss``, ``SPLIT/NAME``, checkpoint, epoch, ...), the same on every rank."""
    run_dir = Path(options.run_dir)
    config = saved_config(run_dir, "RUN_DIR")
    copies = [run_dir / name for name in source_names(config.model, config.dataset)]
    for role, copy in zip(("model", "dataset"), copies):
        if not copy.is_file():
            raise ScorchError(f"RUN_DIR: {run_dir} has no copy of the {role} file ({copy.name}); expected the copies "
                              "scorch-train keeps in the run directory")
    chosen = choose_checkpoint(run_dir, options.checkpoint, "--checkpoint")
    path = chosen.path
    backend = dist.init(options.backend, options.device, config.dist_timeout, config.join_timeout)
    model_file, dataset_file = load_model_file(str(copies[0])), load_dataset_file(str(copies[1]))
    index = dataset_file.build_index(dataset_path(config, run_dir, options.dataset_path),
                                     dataset_file.settings(config.dataset_settings))
    dataset = dataset_file.build(index, options.split)
    if len(dataset) == 0:
        raise ScorchError(f"--split {options.split}: {copies[1]}: DataSet(mode={options.split!r}) has no samples (len 0)")
    seed_everything(config.seed)
    with from_checkpoint():  # scorch.loading(): the checkpoint's weights replace any the Network loads itself
        network = model_file.build_network(model_file.settings(config.model_settings))
    network.to(backend.device)
    socket = model_file.build_socket(network)
    log.info("testing %s (%s) on the %s split: %d samples, %d rank(s), backend %s (%s)", run_dir, path.name,
             options.split, len(dataset), backend.world_size, backend.name, backend.reason)
    ev = Evaluation(backend, network, socket, dataset, options.split, str(copies[0]), str(copies[1]),
                    options.batch_size or config.batch_size,
                    config.workers if options.workers is None else options.workers, autocast_factory(config, backend.device))
    return evaluate_checkpoint(ev, chosen, run_dir, options.predictions, "raw" if options.raw else "ema")
