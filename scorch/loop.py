"""One training epoch and one evaluation pass. No file I/O and no rank checks here."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, ContextManager

import torch
from torch.utils.data import DataLoader

from . import data
from ._backends.base import Backend
from .errors import ScorchError, TrainingError
from .preempt import StopSignal
from .progress import Progress
from .userfiles import Socket


class Totals:
    """Sample-weighted sums of loss and metrics, kept on the device (no per-step sync)."""

    def __init__(self, names: list[str], device: torch.device, where: str):
        self.names, self.where = names, where
        self.tensor_sums = torch.zeros(1 + len(names), dtype=torch.float64, device=device)
        self.number_sums = [0.0] * (1 + len(names))
        self.count = 0

    def add(self, n: int, loss: torch.Tensor, metrics: dict[str, Any]) -> None:
        if list(metrics) != self.names:
            raise ScorchError(f"{self.where} returned {list(metrics)}, expected the same names as before: {self.names}")
        values = [loss, *metrics.values()]
        tensors = [v for v in values if isinstance(v, torch.Tensor)]
        if len(tensors) == len(values):
            self.tensor_sums.add_(torch.stack([t.to(torch.float64) for t in tensors]), alpha=n)
        else:
            for i, v in enumerate(values):
                if isinstance(v, torch.Tensor):
                    self.tensor_sums[i] += v.to(torch.float64) * n
                else:
                    self.number_sums[i] += float(v) * n
        self.count += n

    def state(self) -> dict[str, Any]:
        return {"tensor_sums": self.tensor_sums.cpu(), "number_sums": list(self.number_sums), "count": self.count}

    def load(self, state: dict[str, Any]) -> None:
        self.tensor_sums = state["tensor_sums"].to(self.tensor_sums.device, torch.float64)
        self.number_sums, self.count = list(state["number_sums"]), int(state["count"])

    def reduce(self, backend: Backend, prefix: str) -> dict[str, float]:
        """Means over every sample of every rank: one all-reduce, called by all ranks."""
        sums = self.tensor_sums + torch.tensor(self.number_sums, dtype=torch.float64, device=self.tensor_sums.device)
        packed = torch.cat([sums, torch.tensor([float(self.count)], dtype=torch.float64, device=sums.device)])
        packed = backend.all_reduce(packed, "sum").cpu().tolist()
        count = packed[-1]
        if count == 0:
            return {}
        return {f"{prefix}/{name}": value / count for name, value in zip(["loss", *self.names], packed[:-1])}


class NanGuard:
    """Stops on a non-finite loss. On CUDA the check lags one step so it does not stall the GPU queue.
    With ``skip`` it stops nothing: the step is skipped where the gradients are checked."""

    def __init__(self, lag: bool, skip: bool = False):
        self.lag, self.skip = lag, skip
        self.pending: tuple[torch.Tensor, int, int] | None = None

    def push(self, loss: torch.Tensor, epoch: int, step: int) -> None:
        if self.skip:
            return
        if self.lag:
            self.flush()
            self.pending = (loss.detach(), epoch, step)
        else:
            self._check(loss.detach(), epoch, step)

    def flush(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self._check(*pending)

    @staticmethod
    def _check(loss: torch.Tensor, epoch: int, step: int) -> None:
        if not math.isfinite(loss.item()):
            raise TrainingError(f"the loss is {loss.item()} at epoch {epoch}, step {step}; stopping (no checkpoint is written with these weights)")


@dataclass
class StepContext:
    """What a training epoch needs besides the data."""

    backend: Backend
    model: torch.nn.Module  # wrapped for training (DDP or plain)
    socket: Socket
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    autocast: Callable[[], ContextManager[Any]]
    accumulate: int
    clip_grad: float | None
    metric_names: list[str]
    metrics_where: str
    skip_nonfinite: bool = False


@dataclass
class EpochProgress:
    """Where a training epoch got to: finished, or stopped by a signal after ``batches`` batches."""

    totals: Totals
    step: int
    batches: int
    stopped: bool
    skipped: int = 0


def train_epoch(
    ctx: StepContext,
    loader: DataLoader,
    epoch: int,
    step: int,
    totals: Totals,
    progress: Progress,
    guard: NanGuard,
    stop: StopSignal,
    start_batch: int = 0,
) -> EpochProgress:
    """This rank's shard of one epoch (from batch ``start_batch`` on a mid-epoch resume)."""
    device = ctx.backend.device
    non_blocking = device.type == "cuda"
    model, socket, optimizer = ctx.model, ctx.socket, ctx.optimizer
    n_batches = start_batch + len(loader)
    model.train()
    ctx.backend.zero_grad(optimizer)

    skipped = 0

    def before_step() -> bool:
        """Clip; with --nan-policy skip, refuse a step whose (averaged, so same on every rank)
        gradients are not finite."""
        nonlocal skipped
        norm = None
        if ctx.clip_grad is not None:
            norm = torch.nn.utils.clip_grad_norm_(socket.trainable_params, ctx.clip_grad)
        if not ctx.skip_nonfinite:
            return True
        if norm is None:
            grads = [p.grad for p in socket.trainable_params if p.grad is not None]
            norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
        if bool(torch.isfinite(norm)):
            return True
        skipped += 1
        return False

    batches = start_batch
    for i, batch in enumerate(loader, start=start_batch):
        inputs, targets = data.to_device(batch, device, non_blocking)
        n = data.batch_len((inputs, targets))
        boundary = (i + 1) % ctx.accumulate == 0 or i + 1 == n_batches
        # Gradients of accumulation micro-steps stay local until the last one.
        with (ctx.backend.no_sync(model) if not boundary else _null):
            with ctx.autocast():
                preds = model(inputs)
                loss = socket.criterion(preds, targets)
            guard.push(loss, epoch, step + 1)
            ctx.scaler.scale(loss / ctx.accumulate if ctx.accumulate > 1 else loss).backward()
        if boundary:
            ctx.backend.optimizer_step(optimizer, ctx.scaler, before_step)
            ctx.backend.zero_grad(optimizer)
            step += 1
        with torch.no_grad():
            if not ctx.skip_nonfinite or bool(torch.isfinite(loss)):
                totals.add(n, loss.detach(), socket.metrics(preds, targets))
        progress.step(loss)
        batches = i + 1
        # Stop only where no gradient is half accumulated, and not after the last batch
        # (the end of the epoch has its own, complete checkpoint).
        if boundary and batches < n_batches and stop.agreed(ctx.backend, step):
            guard.flush()
            return EpochProgress(totals, step, batches, True, skipped)
    guard.flush()
    return EpochProgress(totals, step, batches, False, skipped)


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


_null = _Null()


@torch.no_grad()
def evaluate(
    backend: Backend,
    network: torch.nn.Module,
    socket: Socket,
    loader: DataLoader,
    autocast: Callable[[], ContextManager[Any]],
    metric_names: list[str],
    metrics_where: str,
    prefix: str = "valid",
) -> dict[str, float]:
    """Every sample of the split counted once over all ranks; sample-weighted means.

    Uses the unwrapped Network: a DDP forward would issue collectives, and ranks may
    hold different numbers of batches here.
    """
    device = backend.device
    totals = Totals(metric_names, device, metrics_where)
    was_training = network.training
    network.eval()
    for batch in loader:
        inputs, targets = data.to_device(batch, device, device.type == "cuda")
        with autocast():
            preds = network(inputs)
            loss = socket.criterion(preds, targets)
        totals.add(data.batch_len((inputs, targets)), loss.detach(), socket.metrics(preds, targets))
    network.train(was_training)
    return totals.reduce(backend, prefix)


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real)
