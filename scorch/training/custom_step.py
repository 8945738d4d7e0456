"""A custom step: a Socket with several named optimizers and its own ``training_step``.

The model file's Socket defines::

    def optimizers(self):            # name -> optimizer, or name -> (optimizer, scheduler or None)
        return {"generator": torch.optim.Adam(self.model.generator.parameters(), 2e-4),
                "discriminator": (torch.optim.Adam(self.model.discriminator.parameters(), 2e-4), None)}

    def training_step(self, batch, step):   # one micro-batch: batch = (inputs, targets)
        ...
        step.backward(d_loss, "discriminator")   # only into that optimizer's parameters
        step.backward(g_loss, "generator")
        step.update("discriminator")
        step.update("generator")
        return preds                             # as Network.forward returns them: for the metrics

scorch keeps the standard loop's guarantees. Each micro-batch's losses are weighted by its share of
the optimizer step's samples (the :class:`scorch.data.EpochPlan` slot weights), so the gradient at
``update`` is the mean over the global step's samples on any world size. ``update`` of an
accumulation window's earlier micro-batches only accumulates; at the window's last micro-batch it
averages that optimizer's gradients over the ranks (one all-reduce, :func:`scorch.distributed.
average_gradients`; no DDP and no Horovod optimizer wrap the model), then unscales (its own AMP
GradScaler), clips (``--clip-grad``, by that optimizer's norm), skips a non-finite step
(``--nan-policy skip``) and steps. Losses computed after an ``update`` see the new weights only in
the window's last micro-batch: call every ``backward`` before the first ``update`` for results that
do not depend on how the samples fall into micro-batches. Every optimizer, scheduler and scaler is
saved in checkpoints and restored; the metrics are Socket.criterion/Socket.metrics of the returned
predictions, weighted by samples as in the standard loop.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader

from .. import data, distributed as dist
from ..callbacks.base import BatchEnd, Callbacks
from ..contract.userfiles import Socket, call_user, check_preds
from ..errors import ScorchError
from ..strategies.base import Single
from .loop import EpochResult, NanGuard, StepCheck, StepContext, statistics_held
from .run import TRAIN, Run
from .state import MetricTotals


class Replicated(Single):
    """Every rank holds the whole Network, as it is (no DDP, no Horovod optimizer): the custom step
    averages each optimizer's gradients itself (:meth:`Step.update`). Every rank starts from the
    same weights (built from the same seed, or read from the same checkpoint)."""

    name = "custom-step"

    def broadcast_buffers(self, network: torch.nn.Module) -> None:
        for buffer in network.buffers():
            self.backend.broadcast_tensor(buffer)


def refuse_sharded(requested: str, model: str) -> None:
    if requested in ("fsdp", "hsdp"):
        raise ScorchError(f"--strategy {requested}: {model} defines Socket.training_step (a custom step), which "
                          "trains every weight on every rank; leave --strategy at auto (or ddp)")


class Schedulers:
    """The optimizers' schedulers, by name, stepped together (a ReduceLROnPlateau with the monitored value)."""

    def __init__(self, schedulers: dict[str, Any]):
        self.schedulers = schedulers

    def step(self, monitored: float = math.nan) -> None:
        for scheduler in self.schedulers.values():
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(monitored)
            else:
                scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return {name: s.state_dict() for name, s in self.schedulers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, scheduler in self.schedulers.items():
            if name in state:
                scheduler.load_state_dict(state[name])


class Scalers:
    """One AMP GradScaler per optimizer (a skipped fp16 step of one does not lower the other's scale)."""

    def __init__(self, names: list[str], make: Callable[[], torch.amp.GradScaler]):
        self.scalers = {name: make() for name in names}

    def __getitem__(self, name: str) -> torch.amp.GradScaler:
        return self.scalers[name]

    def state_dict(self) -> dict[str, Any]:
        return {name: s.state_dict() for name, s in self.scalers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, scaler in self.scalers.items():
            if state.get(name):
                scaler.load_state_dict(state[name])


class Optimizers:
    """The Socket's named optimizers, as one object for what holds "the optimizer" (checkpoints,
    ``run.optimizer``, the learning-rate settings: ``param_groups`` is every optimizer's groups)."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer], schedulers: dict[str, Any], where: str):
        self.optimizers, self.where = optimizers, where
        self.schedulers = Schedulers(schedulers) if schedulers else None

    def __getitem__(self, name: str) -> torch.optim.Optimizer:
        return self.optimizers[name]

    @property
    def names(self) -> list[str]:
        return list(self.optimizers)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [group for opt in self.optimizers.values() for group in opt.param_groups]

    def params(self, name: str) -> list[torch.nn.Parameter]:
        return [p for group in self.optimizers[name].param_groups for p in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("optimizers") if isinstance(state, dict) else None
        if not isinstance(saved, dict) or sorted(saved) != sorted(self.optimizers):
            found = sorted(saved) if isinstance(saved, dict) else "one optimizer (a standard run)"
            raise ScorchError(f"checkpoint does not fit {self.where}: it holds optimizers {found}, Socket.optimizers() "
                              f"returns {sorted(self.optimizers)}; start a new run with --init-from to keep the weights")
        for name, opt in self.optimizers.items():
            try:
                opt.load_state_dict(saved[name])
            except ValueError as exc:
                raise ScorchError(f"checkpoint does not fit {self.where}: optimizer {name!r}: {exc}") from exc

    @property
    def state(self) -> dict[Any, Any]:
        return {k: v for opt in self.optimizers.values() for k, v in opt.state.items()}

    def describe(self) -> str:
        parts = []
        for name, opt in self.optimizers.items():
            n = sum(p.numel() for p in self.params(name))
            lrs = sorted({str(g.get("lr")) for g in opt.param_groups})
            parts.append(f"{name}: {type(opt).__name__} over {n:,} parameters, lr {', '.join(lrs)}")
        return "; ".join(parts)


def build(socket: Socket) -> Optimizers:
    """Socket.optimizers(), checked: a non-empty dict of names to optimizers (or (optimizer, scheduler)
    pairs) over trainable parameters, no parameter in two of them."""
    where = f"{socket.path}: Socket.optimizers()"
    value = call_user(where, socket.raw.optimizers)
    expected = "expected a dict of names to torch.optim.Optimizer (or to (optimizer, scheduler or None))"
    if not isinstance(value, dict) or not value:
        raise ScorchError(f"{where} returned {'an empty dict' if isinstance(value, dict) else type(value).__name__}, {expected}")
    optimizers: dict[str, torch.optim.Optimizer] = {}
    schedulers: dict[str, Any] = {}
    owner: dict[int, str] = {}
    for name, entry in value.items():
        if not isinstance(name, str) or not name or not name.isprintable():
            raise ScorchError(f"{where} has the key {name!r}, expected non-empty printable names")
        opt, sched = entry if isinstance(entry, tuple) and len(entry) == 2 else (entry, None)
        if not isinstance(opt, torch.optim.Optimizer):
            raise ScorchError(f"{where}[{name!r}] is {type(opt).__name__}, {expected}")
        if sched is not None and not (hasattr(sched, "step") and hasattr(sched, "state_dict")):
            raise ScorchError(f"{where}[{name!r}] has the scheduler {type(sched).__name__}, expected an LR scheduler or None")
        socket.check_optimizer(opt, f"{where}[{name!r}]")
        for group in opt.param_groups:
            for p in group["params"]:
                if id(p) in owner and owner[id(p)] != name:
                    raise ScorchError(f"{where}: optimizers {owner[id(p)]!r} and {name!r} hold the same parameter; "
                                      "expected each parameter in one optimizer")
                owner[id(p)] = name
        optimizers[name] = opt
        if sched is not None:
            schedulers[name] = sched
    return Optimizers(optimizers, schedulers, f"{socket.path}: Socket.optimizers()")


class Step:
    """What ``training_step(batch, step)`` gets: ``backward(loss, name)`` and ``update(name)``, and
    ``number`` (the optimizer step this micro-batch belongs to, from 1) and ``last`` (the window's
    last micro-batch: an ``update`` here changes the weights)."""

    def __init__(self, ctx: StepContext, optimizers: Optimizers, scalers: Scalers, guard: NanGuard,
                 checks: dict[str, StepCheck], where: str):
        self.ctx, self.optimizers, self.scalers, self.guard, self.checks, self.where = \
            ctx, optimizers, scalers, guard, checks, where
        self.number, self.last, self.weight, self.epoch = 0, False, 1.0, 0
        self.updated: list[str] = []
        self.params = {name: optimizers.params(name) for name in optimizers.names}

    def begin(self, number: int, last: bool, weight: float, epoch: int) -> None:
        self.number, self.last, self.weight, self.epoch = number, last, weight, epoch
        self.updated = []

    def _known(self, name: Any, method: str) -> str:
        if name not in self.params:
            raise ScorchError(f"{self.where}: step.{method}({name!r}): no such optimizer; Socket.optimizers() "
                              f"returns {self.optimizers.names}")
        return str(name)

    def backward(self, loss: torch.Tensor, name: str) -> None:
        """Accumulate the gradient of ``loss`` (this micro-batch's mean) into optimizer ``name``'s
        parameters only, weighted by the micro-batch's share of the step's samples."""
        name = self._known(name, "backward")
        if name in self.updated:
            raise ScorchError(f"{self.where}: step.backward(..., {name!r}) after step.update({name!r}) in the same "
                              "training_step; expected every backward of an optimizer before its update")
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.requires_grad:
            raise ScorchError(f"{self.where}: step.backward(loss, {name!r}) got {type(loss).__name__} "
                              f"{tuple(loss.shape) if isinstance(loss, torch.Tensor) else ''}, expected a one-element "
                              "tensor with a gradient")
        loss = loss.reshape(())
        self.guard.push(loss, self.epoch, self.number)
        scaled = self.scalers[name].scale(loss * self.weight if self.weight != 1.0 else loss)
        scaled.backward(inputs=self.params[name])

    def update(self, name: str) -> None:
        """Optimizer ``name`` steps (at the accumulation window's last micro-batch; before it the
        gradients only accumulate): its gradients averaged over the ranks, unscaled, clipped,
        checked, then the step."""
        name = self._known(name, "update")
        if name in self.updated:
            raise ScorchError(f"{self.where}: step.update({name!r}) twice in one training_step")
        self.updated.append(name)
        if not self.last:
            return
        params = self.params[name]
        dist.average_gradients(params)
        self.ctx.strategy.optimizer_step(self.optimizers[name], self.scalers[name], self.checks[name])


def _preds(value: Any, where: str) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ScorchError(f"{where} returned {type(value).__name__}, expected the predictions (a list of tensors, as "
                          "Network.forward returns them) for Socket.criterion and Socket.metrics")
    return check_preds(list(value), where)


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
    """:func:`scorch.training.loop.train_epoch` for a Socket with its own training_step: the same
    plan, callbacks, stops and results; the Socket's step runs each micro-batch."""
    device = ctx.backend.device
    non_blocking = device.type == "cuda"
    socket, optimizers, scalers = ctx.socket, ctx.optimizer, ctx.scaler
    assert isinstance(optimizers, Optimizers) and isinstance(scalers, Scalers)
    where = f"{socket.path}: Socket.training_step"
    checks = {name: StepCheck(ctx.strategy, optimizers.params(name), ctx.clip_grad, ctx.skip_nonfinite)
              for name in optimizers.names}
    step = Step(ctx, optimizers, scalers, guard, checks, where)
    optimizers.zero_grad()
    epoch, steps, micro = run.epoch, 0, 0
    batch_end = callbacks.wants("on_train_batch_end")
    timer = ctx.timer

    def skipped() -> int:
        return sum(c.skipped for c in checks.values())

    with timer.batches(loader) as batches:
        for slot, batch in zip(plan.slots, batches):
            timer.micro_batch(slot.count)
            inputs, targets = data.to_device(batch, device, non_blocking)
            run.batch(TRAIN, slot.count)
            if slot.last and ctx.before_step is not None:
                ctx.before_step(run.step + 1)
            step.begin(run.step + 1, slot.last, slot.weight, epoch)
            with (statistics_held(ctx.model) if not slot.count else contextlib.nullcontext()), ctx.autocast():
                out = socket.raw.training_step((inputs, targets), step)
            if not step.updated:
                raise ScorchError(f"{where} returned without calling step.update(name) for any optimizer; expected "
                                  f"step.backward(loss, name) and step.update(name) for each of {optimizers.names}")
            preds = _preds(out, where)
            if slot.last:  # as in the standard loop: the step is done before its batch's callbacks
                run.step += 1
                steps += 1
            metrics, loss = None, None
            with torch.no_grad():
                with ctx.autocast():
                    loss = socket.criterion(preds, targets)
                loss = loss.detach().reshape(())
                if slot.count and (not ctx.skip_nonfinite or bool(torch.isfinite(loss))):
                    metrics = socket.metrics(preds, targets)
                    totals.add(slot.count, loss, metrics)
            run.batch(TRAIN, None)
            if batch_end:
                callbacks.fire("on_train_batch_end", run, BatchEnd(slot.count, inputs, preds, targets, loss, metrics, micro))
            micro = 0 if slot.last else micro + 1
            if slot.last:
                callbacks.on_step_end(run)
                if ctx.after_step is not None:
                    ctx.after_step(run.step)
                optimizers.zero_grad()
                timer.step_end()
                if steps < plan.steps and at_step(steps, skipped()):
                    guard.flush()
                    return EpochResult(run.step, steps, True, skipped())
    guard.flush()
    return EpochResult(run.step, steps, False, skipped())
