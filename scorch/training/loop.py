"""One training epoch and one evaluation pass. No rank checks here; what writes files (checkpoints,
loggers) hangs off the callbacks this loop fires."""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch.utils.data import DataLoader

from .. import data
from ..callbacks.base import BatchEnd, Callbacks
from ..contract.userfiles import Socket
from ..distributed.backends.base import Backend
from ..errors import TrainingError
from ..evaluate.outputs import SplitOutputs, split_results
from ..strategies.base import Strategy
from .diagnostics import StepTimer
from .preempt import StopSignal
from .run import TRAIN, VALID, Run
from .state import MetricTotals


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
    strategy: Strategy
    model: torch.nn.Module  # wrapped for training (by the strategy)
    socket: Socket
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    autocast: Callable[[], ContextManager[Any]]
    clip_grad: float | None
    skip_nonfinite: bool = False
    before_step: Callable[[int], None] | None = None  # given the step's number (from 1) before the optimizer steps
    after_step: Callable[[int], None] | None = None  # after on_step_end (Socket.scheduler_interval = "step")
    timer: StepTimer = field(default_factory=StepTimer)  # data wait and step times (scorch/training/diagnostics.py)


class StepCheck:
    """Run before each optimizer step (after unscaling): clip; with --nan-policy skip, refuse a
    step whose gradients are not finite (they are averaged already, so every rank agrees)."""

    def __init__(self, strategy: Strategy, params: list[torch.nn.Parameter], clip_grad: float | None, skip_nonfinite: bool):
        self.strategy, self.params, self.clip_grad, self.skip_nonfinite = strategy, params, clip_grad, skip_nonfinite
        self.skipped = 0

    def __call__(self) -> bool:
        norm = None
        if self.clip_grad is not None:
            norm = self.strategy.clip_grad_norm(self.params, self.clip_grad)
        if not self.skip_nonfinite:
            return True
        if norm is None:
            norm = self.strategy.grad_norm(self.params)
        if bool(torch.isfinite(norm)):
            return True
        self.skipped += 1
        return False


@dataclass
class EpochResult:
    """Where a training epoch got to: all of its plan, or ``steps`` steps when ``at_step`` ended it."""

    step: int  # optimizer steps of the run so far
    steps: int  # steps of this plan done
    ended: bool
    skipped: int = 0


def train_epoch(
    ctx: StepContext,
    loader: DataLoader,
    plan: data.EpochPlan,
    run: Run,
    totals: MetricTotals,
    callbacks: Callbacks,
    guard: NanGuard,
    at_step: Callable[[int, int], bool],
) -> EpochResult:
    """This rank's micro-batches of ``plan``. ``run.step`` counts the optimizer steps; ``callbacks``
    hear of each micro-batch and each step. After every step but the plan's last, ``at_step(steps
    of the plan done, steps skipped so far)`` (called on every rank: it agrees on stops, validates,
    checkpoints) may end the epoch there by returning True."""
    device = ctx.backend.device
    non_blocking = device.type == "cuda"
    model, socket, optimizer, strategy = ctx.model, ctx.socket, ctx.optimizer, ctx.strategy
    strategy.zero_grad(optimizer)
    check = StepCheck(strategy, socket.trainable_params, ctx.clip_grad, ctx.skip_nonfinite)
    epoch, steps, micro = run.epoch, 0, 0
    batch_end = callbacks.wants("on_train_batch_end")
    timer = ctx.timer

    with timer.batches(loader) as batches:
        for slot, batch in zip(plan.slots, batches):
            timer.micro_batch(slot.count)
            inputs, targets = data.to_device(batch, device, non_blocking)
            run.batch(TRAIN, slot.count)  # what run.log weighs a value logged in this micro-batch
            # Gradients of a step's earlier micro-batches stay local until its last one. A stand-in
            # (a slot with no sample of its own) runs with the normalization layers' statistics held.
            with (strategy.no_sync(model) if not slot.last else contextlib.nullcontext()), \
                    (statistics_held(model) if not slot.count else contextlib.nullcontext()):
                with ctx.autocast():
                    preds = model(inputs)
                    loss = socket.criterion(preds, targets)
                if loss.dim():
                    loss = loss.reshape(())  # a one-element loss of shape (1,)
                guard.push(loss, epoch, run.step + 1)
                # The slot's share of its step's samples: the step's gradient is the mean over them.
                ctx.scaler.scale(loss * slot.weight if slot.weight != 1.0 else loss).backward()
            if slot.last:
                if ctx.before_step is not None:
                    ctx.before_step(run.step + 1)
                strategy.optimizer_step(optimizer, ctx.scaler, check)
                run.step += 1
                steps += 1
            metrics = None
            if slot.count:
                with torch.no_grad():
                    if not ctx.skip_nonfinite or bool(torch.isfinite(loss)):
                        metrics = socket.metrics(preds, targets)
                        totals.add(slot.count, loss.detach(), metrics)
            run.batch(TRAIN, None)
            if batch_end:
                callbacks.fire("on_train_batch_end", run, BatchEnd(slot.count, inputs, preds, targets, loss.detach(),
                                                                   metrics, micro))
            micro = 0 if slot.last else micro + 1
            if slot.last:
                callbacks.on_step_end(run)  # the step's gradients are still there (averaged, unscaled, clipped)
                if ctx.after_step is not None:  # after on_step_end: callbacks see the rate the step used
                    ctx.after_step(run.step)
                strategy.zero_grad(optimizer)
                timer.step_end()  # what at_step does next (a checkpoint, a validation) is no step's time
                # Stop only where no gradient is half accumulated, and not after the last step
                # (the end of the epoch has its own validation and checkpoint).
                if steps < plan.steps and at_step(steps, check.skipped):
                    guard.flush()
                    return EpochResult(run.step, steps, True, check.skipped)
    guard.flush()
    return EpochResult(run.step, steps, False, check.skipped)


@contextlib.contextmanager
def statistics_held(model: torch.nn.Module) -> Iterator[None]:
    """The BatchNorm (and InstanceNorm with running statistics) layers of ``model`` that train, in
    eval mode for the block: a stand-in sample of weight 0 must not move their running statistics
    nor count in ``num_batches_tracked``, and one sample is not enough for a BatchNorm to train
    on. (SyncBatchNorm is left as it is: its peers' forward passes wait for its statistics.)"""
    held = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._NormBase) and m.training
            and m.track_running_stats and not isinstance(m, torch.nn.SyncBatchNorm)]
    for m in held:
        m.eval()
    try:
        yield
    finally:
        for m in held:
            m.train()


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
    outputs: SplitOutputs | None = None,
    run: Run | None = None,
    callbacks: Callbacks | None = None,
    keep_step: int | None = None,
) -> dict[str, float] | None:
    """Every sample of the split counted once over all ranks; sample-weighted means of the loss and
    Socket.metrics, and Socket.split_metrics of the whole split. None when a stop signal ended it
    (polled after each of the ``common`` batches every rank has).

    ``run``: a training run, whose ``run.log`` values logged meanwhile weigh the batch's samples;
    ``callbacks``: fired ``on_validation_batch_end`` after each of this rank's batches.
    ``outputs``: keeps every sample's outputs, on rank 0 in dataset order after the call (one is
    made when the Socket has split_metrics). ``keep_step``: a sharded Network's forward gathers
    its parameters from every rank, so each rank runs this many forward passes (the most batches
    any rank has): one with fewer runs the rest on a stand-in sample and counts nothing of them.

    Uses the unwrapped Network: a DDP forward would issue collectives, and ranks may
    hold different numbers of batches here.
    """
    device = backend.device
    if outputs is None and socket.has_split_metrics:
        outputs = SplitOutputs(targets=True)
    batch_end = callbacks is not None and run is not None and callbacks.wants("on_validation_batch_end")
    was_training = network.training
    network.eval()
    done, inputs = 0, None
    try:
        with data.batches(loader) as batches:
            for i, batch in enumerate(batches):
                done = i + 1
                inputs, targets = data.to_device(batch, device, device.type == "cuda")
                n = data.batch_len((inputs, targets))
                if run is not None:
                    run.batch(VALID, n)
                with autocast():
                    preds = network(inputs)
                    loss = socket.criterion(preds, targets)
                metrics = socket.metrics(preds, targets)
                totals.add(n, loss.detach().reshape(()), metrics)
                if run is not None:
                    run.batch(VALID, None)
                if batch_end:
                    assert callbacks is not None and run is not None
                    callbacks.fire("on_validation_batch_end", run, BatchEnd(n, inputs, preds, targets,
                                                                            loss.detach().reshape(()), metrics, i))
                if outputs is not None:
                    outputs.add(preds, targets)
                if i < common and stop.poll(backend):
                    return None
        if keep_step is not None and done < keep_step:
            stand_in = [t[:1] if isinstance(t, torch.Tensor) else t for t in inputs] if inputs is not None else \
                data.to_device(data.stand_in_batch(loader), device, False)[0]
            for _ in range(keep_step - done):
                with autocast():
                    network(stand_in)
    finally:
        network.train(was_training)
    means = reduce_totals(backend, totals, prefix)
    if outputs is not None:
        # A map-style dataset with a sampler of indices: what scorch's evaluation loaders are built over.
        length = len(cast(Sized, loader.dataset))
        outputs.gather(backend, list(cast(Iterable[int], loader.sampler)), length, socket.path)
        if socket.has_split_metrics:
            means.update(split_results(backend, socket, outputs, prefix, totals.names))
    return means
