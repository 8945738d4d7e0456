"""Stopping on SIGUSR1 (SLURM's warning), SIGTERM or SIGINT at a step boundary all ranks agree on."""
from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import torch

from ._backends.base import Backend

SIGNALS = (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT)


class StopSignal:
    """A context that records the first stop signal; :meth:`agreed` turns it into a decision
    every rank shares. Ranks may receive the signal at different steps, so with several ranks
    the flag is all-reduced (max) every ``check_every`` optimizer steps: every rank counts the
    same steps, so every rank issues that collective at the same point."""

    def __init__(self, check_every: int = 10):
        self.check_every = check_every
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignal":
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.received = self.received or signal.Signals(signum).name

    def agreed(self, backend: Backend, step: int, force: bool = False) -> bool:
        """Whether all ranks stop now. A collective every ``check_every`` steps (or when ``force``)."""
        if backend.world_size == 1:
            return self.received is not None
        if not force and step % self.check_every != 0:
            return False
        flag = torch.tensor([1.0 if self.received else 0.0], device=backend.device)
        return bool(backend.all_reduce(flag, "max").item())
