"""The evaluation of a checkpoint on a split (``scorch-test``, ``scorch-train --test``): exact
metrics over every sample once on any number of ranks, ``Socket.split_metrics`` on the whole split
(its outputs gathered by :mod:`scorch.evaluate.outputs`), and rank 0's ``eval/`` files."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import data
from .._atomic import atomic_open, user_facing, write_json
from ..callbacks.ema import averaged_state, load_averaged
from ..contract.userfiles import Socket
from ..distributed.backends.base import Backend
from ..rundir import checkpoint
from ..rundir.layout import Chosen, RunLayout, choose_checkpoint
from ..training.build import eval_metric_names
from ..training.loop import evaluate
from ..training.preempt import StopSignal
from ..training.state import MetricTotals
from . import SPLITS  # noqa: F401  (what scorch-test evaluates; re-exported)
from .outputs import SplitOutputs

log = logging.getLogger(__name__)

# ---- a checkpoint on a split: scorch-test and scorch-train --test ---------------------------------

@dataclass
class Evaluation:
    """What evaluating a checkpoint on a split needs; the Network is on the backend's device."""

    backend: Backend
    network: torch.nn.Module
    socket: Socket
    dataset: Any
    split: str
    model_path: str
    dataset_path: str  # the dataset file, for error messages
    batch_size: int
    workers: int
    autocast: Callable[[], Any]


def evaluate_checkpoint(ev: Evaluation, chosen: Chosen, run_dir: Path, predictions: bool,
                        weights: str = "ema") -> dict[str, Any]:
    """Load the ``chosen`` checkpoint into the Network (its ``--ema`` average when it holds one,
    unless ``weights="raw"``; the raw weights of such a checkpoint are labelled ``<label>-raw``),
    evaluate the split on every rank (exact metrics:
    per-batch means over every sample once, and Socket.split_metrics on the whole split), and have
    rank 0 write ``RUN_DIR/eval/<split>-<label>.json`` (and, with ``predictions``,
    ``<split>-<label>-predictions.pt``)."""
    path, layout = chosen.path, RunLayout(run_dir)
    state = checkpoint.load(path, optimizer=False)
    checkpoint.check_fits(ev.network, state["model"], f"{ev.model_path}: Network (checkpoint {path})")
    ev.network.load_state_dict(state["model"])
    used = load_averaged(ev.network, state, weights, f"{ev.model_path}: checkpoint {path}")
    label = f"{chosen.label}-raw" if used == "raw" and averaged_state(state) is not None else chosen.label
    where = f"{ev.dataset_path}: DataSet.__getitem__ (mode={ev.split!r})"
    names = eval_metric_names(ev.network, ev.socket, ev.dataset, ev.batch_size, ev.backend.device, where, ev.split)
    loader = data.eval_loader(ev.dataset, ev.batch_size, ev.backend.rank, ev.backend.world_size, ev.workers,
                              ev.backend.device.type == "cuda", where)
    totals = MetricTotals(names, ev.backend.device, f"{ev.model_path}: Socket.metrics")
    outputs = SplitOutputs(targets=ev.socket.has_split_metrics) if predictions else None
    means = evaluate(ev.backend, ev.network, ev.socket, loader, ev.autocast, totals, StopSignal(), 0, ev.split,
                     outputs=outputs)
    assert means is not None  # nothing polls for a stop here
    result: dict[str, Any] = {"split": ev.split, "checkpoint": str(path), "epoch": int(state["epoch"]),
                              "step": int(state["step"]), "weights": used, "samples": len(ev.dataset),
                              "world_size": ev.backend.world_size, **means, "file": str(layout.eval_file(ev.split, label))}
    if outputs is not None:
        result["predictions"] = str(layout.predictions_file(ev.split, label))
    if ev.backend.rank == 0:
        with user_facing(layout.eval_dir):
            layout.eval_dir.mkdir(parents=True, exist_ok=True)
        if outputs is not None:
            _save_predictions(Path(result["predictions"]), outputs.preds)
        with user_facing(result["file"]):
            write_json(result["file"], result)
    return result


def _save_predictions(path: Path, preds: list[torch.Tensor]) -> None:
    """``{"outputs": [a tensor per Network output, a row per sample in dataset order], "index": LongTensor}``,
    loadable with ``torch.load(path, weights_only=True)``."""
    length = preds[0].shape[0] if preds else 0
    with user_facing(path), atomic_open(path, "wb") as f:
        torch.save({"outputs": preds, "index": torch.arange(length, dtype=torch.int64)}, f)


def test_after_training(ev: Evaluation, run_dir: Path) -> dict[str, Any]:
    """``scorch-train --test``: "best" on the test split, chosen as scorch-test and load_run choose it
    (:func:`scorch.rundir.layout.choose_checkpoint`: best.pt, or last.pt, saying so, if no epoch was ever the best)."""
    ev.backend.barrier()  # rank 0 has written the last checkpoints before any rank reads them
    chosen = choose_checkpoint(run_dir, "best", "--test")
    result = evaluate_checkpoint(ev, chosen, run_dir, predictions=False)
    log.info("test (%s, epoch %d, %d samples): %s", chosen.path.name, result["epoch"], result["samples"],
             "  ".join(f"{k} {v:.4g}" for k, v in result.items() if k.startswith("test/")))
    log.info("wrote %s", result["file"])
    return result
