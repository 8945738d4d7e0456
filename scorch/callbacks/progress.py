"""The progress bar: a tqdm bar on rank 0 only, refreshed at most twice a second (no per-step sync)."""
from __future__ import annotations

import time
from typing import Any

import torch
from tqdm import tqdm

from .base import BatchEnd, Callback


class _Bar(tqdm):
    # No monitor thread: it starts with a bar and exits when the bar closes, which is exactly
    # when validation forks its DataLoader workers; a fork while that thread is being torn down
    # can leave the worker deadlocked in CPython's after-fork clean-up (seen on 3.11).
    monitor_interval = 0


class Progress:
    def __init__(self, enabled: bool, total: int, desc: str, interval: float = 0.5):
        self.enabled, self.total, self.count = enabled, total, 0
        self.interval = interval
        self._next = time.monotonic() + interval
        self.bar = _Bar(total=total, desc=desc, leave=False, dynamic_ncols=True, mininterval=interval) if enabled else None

    @property
    def done(self) -> bool:
        return self.count >= self.total

    def step(self, loss: torch.Tensor | None = None) -> None:
        self.count += 1
        if self.bar is None:
            return
        self.bar.update(1)
        now = time.monotonic()
        if loss is not None and now >= self._next:
            self._next = now + self.interval
            self.bar.set_postfix(loss=f"{loss.item():.4g}", refresh=False)

    def close(self, **postfix: Any) -> None:
        if self.bar is not None:
            self.bar.close()


class ProgressBar(Callback):
    """scorch's progress bar (``--no-progress`` turns it off): one bar per training epoch on the
    main rank, a tick per micro-batch, the loss shown at most twice a second."""

    name = "progress"

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar: Progress | None = None

    def on_train_epoch_start(self, run: Any) -> None:
        config = run.config
        self.bar = Progress(self.enabled and run.is_main, len(run.plan.slots), f"epoch {run.epoch}/{config.epochs}")

    def on_train_batch_end(self, run: Any, batch: BatchEnd) -> None:
        if self.bar is not None:
            self.bar.step(batch.loss)
            if self.bar.done:  # the epoch's last micro-batch: the bar goes before validation starts
                self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_exception(self, run: Any, exc: BaseException) -> None:
        self.close()
