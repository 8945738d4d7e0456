"""Learning-rate schedules from the command line, as pure functions of the epoch.

Being stateless, they resume exactly: the rate of epoch e is recomputed, not restored.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..config import TrainConfig
from ..errors import ScorchError


def lr_at(epoch: int, base_lr: float, schedule: Any, warmup_epochs: int, epochs: int) -> float:
    """The learning rate of ``epoch`` (1-based).

    ``[[E1, LR1], [E2, LR2], ...]``: LR1 up to epoch E1 (inclusive), then LR2 up to E2, ...; the
    last LR after that (absolute rates). ``"cosine"``: ``base_lr`` at the first epoch after the
    warm-up, down to 0 at the last epoch (``epochs``). A linear warm-up over ``warmup_epochs``
    epochs scales any of them: epoch e <= W trains at e / (W + 1) of the rate.
    """
    if isinstance(schedule, (list, tuple)):
        lr = next((float(rate) for until, rate in schedule if epoch <= until), float(schedule[-1][1]))
    elif schedule == "cosine":
        span = max(1, epochs - warmup_epochs - 1)
        progress = min(1.0, max(0.0, (epoch - 1 - warmup_epochs) / span))
        lr = base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        lr = base_lr
    if warmup_epochs and epoch <= warmup_epochs:
        lr *= epoch / (warmup_epochs + 1)
    return lr


def apply(optimizer: torch.optim.Optimizer, epoch: int, schedule: Any, warmup_epochs: int, epochs: int,
          base_lr: float | None) -> None:
    """Set every parameter group to its rate for ``epoch``.

    ``base_lr``: --lr when scorch built the optimizer; None for the model file's own optimizer,
    whose first group's initial rate is the base. A list schedule's rates are absolute (for the
    first group; other groups keep their ratio to it)."""
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    base = float(base_lr if base_lr is not None else optimizer.param_groups[0]["initial_lr"])
    lr = lr_at(epoch, base, schedule, warmup_epochs, epochs)
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * lr / base


def check_owner(config: TrainConfig, socket_scheduler: bool) -> None:
    """lr_schedule and warmup_epochs set the rate per epoch: not together with Socket.scheduler."""
    if not socket_scheduler:
        return
    if config.lr_schedule not in (None, "constant"):
        raise ScorchError(f"--set lr_schedule: {config.model} defines Socket.scheduler too; use one of them")
    if config.warmup_epochs:
        raise ScorchError(f"--set warmup_epochs: {config.model} defines Socket.scheduler, which sets the rate "
                          "itself; put the warm-up there, or drop Socket.scheduler")
