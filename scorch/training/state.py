"""The loop's own saved state, as small objects with ``state_dict()``/``load_state_dict()``.

:class:`scorch.rundir.checkpoint.TrainingState` saves and restores them, with the model, optimizer,
scheduler and scaler, in one place.

- :class:`LoopState`: what best.pt and early stopping need, and the count of skipped steps.
- :class:`Cursor`: where the run is: epochs done, optimizer steps, samples of the current epoch
  already trained, the global batch and the world size that trained them.
- :class:`MetricTotals`: sample-weighted sums of the loss and the metrics of an epoch.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..errors import ScorchError

log = logging.getLogger(__name__)


@dataclass
class LoopState:
    """The best monitored value and when it was seen, epochs without improvement, skipped steps."""

    best: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0  # validations since the best (one per epoch without --val-every)
    skipped_steps: int = 0
    best_step: int = 0
    monitor: str = ""  # what best and bad_epochs are of: the metric and its mode ("min"/"max")
    mode: str = ""

    def record(self, value: float, epoch: int, mode: str, name: str = "the monitored value", step: int = 0) -> bool:
        """Note a validation's monitored value (at the end of ``epoch``, or at ``step`` in it); True
        when it is the best so far.

        A non-finite value is never the best and counts as no improvement."""
        if not math.isfinite(value):
            log.warning("%s is %s at epoch %d, step %d: not counted as an improvement", name, value, epoch, step)
            self.bad_epochs += 1
            return False
        improved = self.best is None or (value < self.best if mode == "min" else value > self.best)
        if improved:
            self.best, self.best_epoch, self.bad_epochs, self.best_step = value, epoch, 0, step
        else:
            self.bad_epochs += 1
        return improved

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")
        self.best_epoch = int(state.get("best_epoch", 0))
        self.bad_epochs = int(state.get("bad_epochs", 0))
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.best_step = int(state.get("best_step", 0))
        self.monitor, self.mode = str(state.get("monitor", "")), str(state.get("mode", ""))


@dataclass
class Cursor:
    """Where the run is.

    ``epoch``: epochs completed (trained, validated and recorded). ``step``: optimizer steps in
    all. ``samples``: samples of epoch ``epoch + 1`` already trained (0 at an epoch boundary;
    the epoch's order does not depend on the world size, so any world size can go on from
    there). ``trained``: epoch ``epoch + 1`` is trained but not yet validated (a stop during
    validation); ``validating``: the validation at ``step`` inside the epoch (--val-every,
    --max-steps) is still to run (a stop during it, or at its step). ``global_batch``: samples per
    optimizer step over all ranks; ``world_size``: how many ranks trained them; ``length``: samples
    in the training split."""

    epoch: int = 0
    step: int = 0
    samples: int = 0
    trained: bool = False
    global_batch: int = 0
    validating: bool = False
    world_size: int = 1
    length: int = 0

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.samples, self.trained = int(state.get("samples", 0)), bool(state.get("trained", False))
        self.global_batch, self.world_size = int(state.get("global_batch", 0)), int(state.get("world_size", 1))
        self.length = int(state.get("length", 0))
        self.validating = bool(state.get("validating", False))


class MetricTotals:
    """Sample-weighted sums of the loss and the metrics, kept on the device (no per-step sync)."""

    def __init__(self, names: list[str], device: torch.device, where: str):
        self.names, self.where = names, where
        self.tensor_sums = torch.zeros(1 + len(names), dtype=torch.float64, device=device)
        self.number_sums = [0.0] * (1 + len(names))
        self.count = 0

    def add(self, n: int, loss: torch.Tensor, metrics: dict[str, Any]) -> None:
        """``loss`` and tensor metrics are 0-d (the loop and :func:`normalize_metrics` see to it)."""
        if list(metrics) != self.names:
            raise ScorchError(f"{self.where} returned {list(metrics)}, expected the same names as before: {self.names}")
        values = [loss, *metrics.values()]
        if all(isinstance(v, torch.Tensor) for v in values):
            self.tensor_sums.add_(torch.stack([v.to(torch.float64) for v in values]), alpha=n)
        else:
            for i, v in enumerate(values):
                if isinstance(v, torch.Tensor):
                    self.tensor_sums[i] += v.to(torch.float64) * n
                else:
                    self.number_sums[i] += float(v) * n
        self.count += n

    def reset(self) -> None:
        """Start the sums again (after a history row inside an epoch)."""
        self.tensor_sums.zero_()
        self.number_sums = [0.0] * len(self.number_sums)
        self.count = 0

    def packed(self) -> torch.Tensor:
        """Sums then count, as one float64 tensor on the device."""
        sums = self.tensor_sums + torch.tensor(self.number_sums, dtype=torch.float64, device=self.tensor_sums.device)
        return torch.cat([sums, torch.tensor([float(self.count)], dtype=torch.float64, device=sums.device)])

    def means(self, packed: torch.Tensor, prefix: str) -> dict[str, float]:
        """``prefix/NAME`` -> mean, from (all-reduced) :meth:`packed` sums."""
        values = packed.cpu().tolist()
        count = values[-1]
        if count == 0:
            return {}
        return {f"{prefix}/{name}": value / count for name, value in zip(["loss", *self.names], values[:-1])}

    def state_dict(self) -> dict[str, Any]:
        return {"tensor_sums": self.tensor_sums.cpu(), "number_sums": list(self.number_sums), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tensor_sums = state["tensor_sums"].to(self.tensor_sums.device, torch.float64)
        self.number_sums, self.count = [float(x) for x in state["number_sums"]], int(state["count"])

    def absorb(self, states: list[dict[str, Any]]) -> None:
        """Take the sums of several (other ranks') states into this one."""
        for state in states:
            self.tensor_sums += state["tensor_sums"].to(self.tensor_sums.device, torch.float64)
            self.number_sums = [a + float(b) for a, b in zip(self.number_sums, state["number_sums"])]
            self.count += int(state["count"])
