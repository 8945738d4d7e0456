"""Learning-rate schedules from the command line, as pure functions of the epoch.

Being stateless, they resume exactly: the rate of epoch e is recomputed, not restored.
"""
from __future__ import annotations

import math
from typing import Any

import torch


def lr_at(epoch: int, base_lr: float, schedule: Any, warmup_epochs: int, epochs: int) -> float:
    """The learning rate of ``epoch`` (1-based).

    ``[[E1, LR1], [E2, LR2], ...]``: LR1 up to epoch E1 (inclusive), then LR2 up to E2, ...; the
    last LR after that. ``"cosine"``: from ``base_lr`` down to 0 at the last epoch. A linear
    warm-up over ``warmup_epochs`` epochs scales any of them.
    """
    if isinstance(schedule, (list, tuple)):
        lr = next((float(rate) for until, rate in schedule if epoch <= until), float(schedule[-1][1]))
    elif schedule == "cosine":
        span = max(1, epochs - warmup_epochs)
        progress = min(1.0, max(0.0, (epoch - 1 - warmup_epochs) / span))
        lr = base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        lr = base_lr
    if warmup_epochs and epoch <= warmup_epochs:
        lr *= epoch / (warmup_epochs + 1)
    return lr


def apply(optimizer: torch.optim.Optimizer, lr: float, base_lr: float) -> None:
    """Set each parameter group to its initial rate scaled by ``lr / base_lr``."""
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
        group["lr"] = group["initial_lr"] * lr / base_lr
