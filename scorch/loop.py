"""One training epoch and one evaluation pass. No file I/O and no rank checks here."""
from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader

from . import data
from ._backends.base import Backend
from .errors import TrainingError
from .evaluation import SplitOutputs, split_results
from .preempt import StopSignal
from .progress import Progress
from .state import MetricTotals
from .steplog import StepLog
from .userfiles import Socket


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
            raise TrainingError(f"the loss is {loss.item()} at epoch {epoch}, step {step}; stopping "
                                "(no checkpoint is written with these weights)")


@dataclass
class StepContext:
    """What a training epoch needs besides the data."""

    backend: Backend
    model: torch.nn.Module  # wrapped for training (DDP or plain)
    socket: Socket
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    autocast: Callable[[], ContextManager[Any]]
    clip_grad: float | None
    skip_nonfinite: bool = False
    step_log: StepLog | None = None  # --log-every


class StepCheck:
    """Run before each optimizer step (after unscaling): clip; with --nan-policy skip, refuse a
    step whose gradients are not finite (they are averaged already, so every rank agrees)."""

    def __init__(self, params: list[torch.nn.Parameter], clip_grad: float | None, skip_nonfinite: bool):
        self.params, self.clip_grad, self.skip_nonfinite = params, clip_grad, skip_nonfinite
        self.skipped = 0

    def __call__(self) -> bool:
        norm = None
        if self.clip_grad is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip_grad)
        if not self.skip_nonfinite:
            return True
        if norm is None:
            grads = [p.grad for p in self.params if p.grad is not None]
            norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
        if bool(torch.isfinite(norm)):
            return True
        self.skipped += 1
        return False


@dataclass
class EpochResult:
    """Where a training epoch got to: all of its plan, or ``steps`` steps when a signal stopped it."""

    step: int  # optimizer steps of the run so far
    steps: int  # steps of this plan done
    stopped: bool
    skipped: int = 0


def train_epoch(
    ctx: StepContext,
    loader: DataLoader,
    plan: data.EpochPlan,
    epoch: int,
    step: int,
    totals: MetricTotals,
    progress: Progress,
    guard: NanGuard,
    stop: StopSignal,
) -> EpochResult:
    """This rank's micro-batches of ``plan``; stops early at a step boundary all ranks agree on."""
    device = ctx.backend.device
    non_blocking = device.type == "cuda"
    model, socket, optimizer, backend = ctx.model, ctx.socket, ctx.optimizer, ctx.backend
    backend.zero_grad(optimizer)
    check = StepCheck(socket.trainable_params, ctx.clip_grad, ctx.skip_nonfinite)
    steps = 0

    step_log = ctx.step_log
    logged = step_log is not None and step_log.wants(step + 1)
    with data.batches(loader) as batches:
        for slot, batch in zip(plan.slots, batches):
            inputs, targets = data.to_device(batch, device, non_blocking)
            # Gradients of a step's earlier micro-batches stay local until its last one.
            with (backend.no_sync(model) if not slot.last else _null):
                with ctx.autocast():
                    preds = model(inputs)
                    loss = socket.criterion(preds, targets)
                if loss.dim():
                    loss = loss.reshape(())  # a one-element loss of shape (1,)
                guard.push(loss, epoch, step + 1)
                # The slot's share of its step's samples: the step's gradient is the mean over them.
                ctx.scaler.scale(loss * slot.weight if slot.weight != 1.0 else loss).backward()
            if slot.last:
                backend.optimizer_step(optimizer, ctx.scaler, check)
                backend.zero_grad(optimizer)
                step += 1
                steps += 1
            if slot.count:
                with torch.no_grad():
                    if not ctx.skip_nonfinite or bool(torch.isfinite(loss)):
                        metrics = socket.metrics(preds, targets)
                        totals.add(slot.count, loss.detach(), metrics)
                        if logged and step_log is not None:
                            step_log.add(slot.count, loss.detach(), metrics)
            if slot.last and step_log is not None:
                if logged:
                    step_log.stepped(step)
                logged = step_log.wants(step + 1)
            progress.step(loss)
            # Stop only where no gradient is half accumulated, and not after the last step
            # (the end of the epoch has its own, complete checkpoint).
            if slot.last and steps < plan.steps and stop.poll(backend):
                guard.flush()
                return EpochResult(step, steps, True, check.skipped)
    guard.flush()
    return EpochResult(step, steps, False, check.skipped)


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


_null = _Null()


def reduce_totals(backend: Backend, totals: MetricTotals, prefix: str) -> dict[str, float]:
    """Means over every sample of every rank: one all-reduce, called by all ranks."""
    return totals.means(backend.all_reduce(totals.packed(), "sum"), prefix)


@torch.no_grad()
def evaluate(
    backend: Backend,
    network: torch.nn.Module,
    socket: Socket,
    loader: DataLoader,
    autocast: Callable[[], ContextManager[Any]],
    totals: MetricTotals,
    stop: StopSignal,
    common: int,
    prefix: str = "valid",
    first_batch: Callable[[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]], None] | None = None,
    outputs: SplitOutputs | None = None,
) -> dict[str, float] | None:
    """Every sample of the split counted once over all ranks; sample-weighted means of the loss and
    Socket.metrics, and Socket.split_metrics of the whole split. None when a stop signal ended it
    (polled after each of the ``common`` batches every rank has).

    ``first_batch``: called with this rank's first batch (inputs, predictions, targets).
    ``outputs``: keeps every sample's outputs, on rank 0 in dataset order after the call (one is
    made when the Socket has split_metrics).

    Uses the unwrapped Network: a DDP forward would issue collectives, and ranks may
    hold different numbers of batches here.
    """
    device = backend.device
    if outputs is None and socket.has_split_metrics:
        outputs = SplitOutputs(targets=True)
    was_training = network.training
    network.eval()
    try:
        with data.batches(loader) as batches:
            for i, batch in enumerate(batches):
                inputs, targets = data.to_device(batch, device, device.type == "cuda")
                with autocast():
                    preds = network(inputs)
                    loss = socket.criterion(preds, targets)
                totals.add(data.batch_len((inputs, targets)), loss.detach().reshape(()), socket.metrics(preds, targets))
                if i == 0 and first_batch is not None:
                    first_batch(inputs, preds, targets)
                if outputs is not None:
                    outputs.add(preds, targets)
                if i < common and stop.poll(backend):
                    return None
    finally:
        network.train(was_training)
    means = reduce_totals(backend, totals, prefix)
    if outputs is not None:
        outputs.gather(backend, list(loader.sampler), len(loader.dataset), socket.path)  # type: ignore[arg-type]
        if socket.has_split_metrics:
            means.update(split_results(backend, socket, outputs, prefix, totals.names))
    return means
