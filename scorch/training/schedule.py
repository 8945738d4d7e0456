"""Learning-rate schedules from the command line, as pure functions of the epoch or the optimizer step.

Being stateless, they resume exactly: the rate of epoch e (or step t) is recomputed, not restored.
``--schedule-by epoch`` (the default) sets the rate at each epoch's start; ``--schedule-by step``
and ``--warmup-steps`` set it before every optimizer step (:class:`StepRates`).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..config import TrainConfig
from ..errors import ScorchError


def shape(schedule: Any, at: int, base_lr: float, warmup: int, total: int) -> float:
    """The rate at ``at`` (an epoch or a step, from 1) of ``total``, before any warm-up factor.

    ``[[AT1, LR1], [AT2, LR2], ...]``: LR1 up to AT1 (inclusive), then LR2 up to AT2, ...; the last
    LR after that (absolute rates). ``"cosine"`` / ``"linear"``: ``base_lr`` at the first epoch
    (step) after the warm-up, down to 0 at the last one (``total``)."""
    if isinstance(schedule, (list, tuple)):
        return next((float(rate) for until, rate in schedule if at <= until), float(schedule[-1][1]))
    if schedule in ("cosine", "linear"):
        span = max(1, total - warmup - 1)
        progress = min(1.0, max(0.0, (at - 1 - warmup) / span))
        return base_lr * (0.5 * (1.0 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress)
    return base_lr


def warm(at: int, warmup: int) -> float:
    """The linear warm-up's factor: ``at`` <= ``warmup`` trains at at / (warmup + 1) of the rate."""
    return at / (warmup + 1) if warmup and at <= warmup else 1.0


def lr_at(epoch: int, base_lr: float, schedule: Any, warmup_epochs: int, epochs: int) -> float:
    """The learning rate of ``epoch`` (1-based): :func:`shape` over the epochs, times the warm-up over
    ``warmup_epochs`` epochs."""
    return shape(schedule, epoch, base_lr, warmup_epochs, epochs) * warm(epoch, warmup_epochs)


def _base(optimizer: torch.optim.Optimizer, base_lr: float | None) -> float:
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    return float(base_lr if base_lr is not None else optimizer.param_groups[0]["initial_lr"])


def _set(optimizer: torch.optim.Optimizer, lr: float, base: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * lr / base


def apply(optimizer: torch.optim.Optimizer, epoch: int, schedule: Any, warmup_epochs: int, epochs: int,
          base_lr: float | None) -> None:
    """Set every parameter group to its rate for ``epoch``.

    ``base_lr``: --lr when scorch built the optimizer; None for the model file's own optimizer,
    whose first group's initial rate is the base. A list schedule's rates are absolute (for the
    first group; other groups keep their ratio to it)."""
    base = _base(optimizer, base_lr)
    _set(optimizer, lr_at(epoch, base, schedule, warmup_epochs, epochs), base)


class StepRates:
    """The rate of every optimizer step (``--schedule-by step`` or ``--warmup-steps``), set just before
    the step: the step's :func:`shape` over ``total`` steps (by step), or its epoch's rate (by epoch),
    times the warm-up over ``--warmup-steps``."""

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrainConfig, base_lr: float | None, total: int):
        self.optimizer, self.config, self.total = optimizer, config, total
        self.base = _base(optimizer, base_lr)
        self.epoch = 1

    def __call__(self, step: int) -> None:
        c = self.config
        if c.schedule_by == "step":
            lr = shape(c.lr_schedule, step, self.base, c.warmup_steps, self.total)
        else:
            lr = lr_at(self.epoch, self.base, c.lr_schedule, c.warmup_epochs, c.epochs)
        _set(self.optimizer, lr * warm(step, c.warmup_steps), self.base)


def per_step(config: TrainConfig) -> bool:
    """Whether the rate is set before every optimizer step rather than at each epoch's start."""
    return config.schedule_by == "step" or config.warmup_steps > 0


def check_owner(config: TrainConfig, socket_scheduler: bool, source: str = "Socket.scheduler") -> None:
    """lr_schedule, warmup_epochs and warmup_steps set the rate: not together with the model file's
    scheduler(s). ``source`` says where they come from: ``"Socket.scheduler"``, or
    ``"Socket.optimizers()"`` (a custom step, whose optimizers may each come with a scheduler)."""
    if not socket_scheduler:
        return
    if source == "Socket.scheduler":
        owner, it, drop = "defines Socket.scheduler, which sets the rate itself", "it", "drop Socket.scheduler"
    else:
        owner = f"pairs its optimizers with schedulers in {source}, which set the rate themselves"
        it, drop = "them", f"return the optimizers without schedulers from {source}"
    if config.lr_schedule not in (None, "constant"):
        raise ScorchError(f"--set lr_schedule: {config.model} {owner}; use one of them")
    for name, flag in (("warmup_epochs", "--set warmup_epochs"), ("warmup_steps", "--warmup-steps")):
        if getattr(config, name):
            raise ScorchError(f"{flag}: {config.model} {owner}; put the warm-up there, or {drop}")
    if config.schedule_by == "step":
        raise ScorchError(f"--schedule-by step: {config.model} {owner}; to step {it} after every optimizer step "
                          "give the Socket scheduler_interval = \"step\"")
