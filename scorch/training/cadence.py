"""When a run checkpoints, validates and ends besides its epoch ends: ``--checkpoint-every``,
``--val-every``, ``--max-steps`` and ``--max-time``.

Step counts decide alike on every rank (every rank counts the same optimizer steps). Wall time is
rank 0's clock alone: its verdicts ride on the stop signal's flag (:class:`~scorch.training.preempt.StopSignal`),
so every rank acts on them at the same step boundary."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from ..config import TrainConfig, duration, every


@dataclass
class Cadence:
    checkpoint_steps: int | None = None
    checkpoint_seconds: float | None = None
    val_every: int | None = None
    max_steps: int | None = None
    max_seconds: float | None = None
    max_time: str = ""  # as given, for messages
    clock: bool = False  # this rank's clock decides (rank 0)
    started: float = field(default_factory=time.monotonic)
    last_save: float = field(default_factory=time.monotonic)

    @classmethod
    def of(cls, config: TrainConfig, rank: int, started: float | None = None) -> Cadence:
        """``started``: when --max-time starts counting (monotonic; default: when this process started)."""
        steps, seconds = every(config.checkpoint_every, "--checkpoint-every")
        now = time.monotonic()
        return cls(steps, seconds, config.val_every, config.max_steps,
                   duration(config.max_time, "--max-time") if config.max_time else None, config.max_time or "",
                   rank == 0, now - process_age() if started is None else started, now)

    def validates_at(self, step: int) -> bool:
        return self.val_every is not None and step % self.val_every == 0

    def checkpoints_at(self, step: int) -> bool:
        return self.checkpoint_steps is not None and step % self.checkpoint_steps == 0

    def done(self, step: int) -> bool:
        """--max-steps reached."""
        return self.max_steps is not None and step >= self.max_steps

    def save_due(self) -> bool:
        """This rank's clock says a --checkpoint-every DURATION has passed since the last save."""
        return self.clock and self.checkpoint_seconds is not None and \
            time.monotonic() - self.last_save >= self.checkpoint_seconds

    def out_of_time(self) -> bool:
        """This rank's clock says --max-time has passed since the session started."""
        return self.clock and self.max_seconds is not None and time.monotonic() - self.started >= self.max_seconds

    def saved(self) -> None:
        """A checkpoint was written (or agreed): the --checkpoint-every DURATION counts from now."""
        self.last_save = time.monotonic()

    @property
    def watches_time(self) -> bool:
        return self.checkpoint_seconds is not None or self.max_seconds is not None


def process_age() -> float:
    """Seconds since this process started (Linux: /proc), so --max-time counts the imports and the
    set-up too; 0 where that cannot be read."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0
