"""Stopping on SIGUSR1 (SLURM's warning), SIGTERM or SIGINT at a step boundary all ranks agree on."""
from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import torch

from ..distributed.backends.base import Backend
from ..errors import STOP_SIGNALS


class StopSignal:
    """A context that records the first stop signal; :meth:`poll` and :meth:`settle` turn it into
    a decision every rank shares.

    Ranks may receive the signal at different moments, so with several ranks the flag is
    all-reduced (max). :meth:`poll`, called at every optimizer step boundary (and every
    evaluation batch every rank has), starts that all-reduce asynchronously and reads the one it
    started at the previous call: no step waits on a collective, and a stop is acted on one
    step after the signal reached the last rank. Every rank polls at the same points, so every
    rank issues the same collectives in the same order. :meth:`settle` is the blocking answer
    (at the end of an epoch)."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}
        self._pending: FlagReduce | None = None

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        self._pending = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.received = self.received or signal.Signals(signum).name

    def _flag(self) -> torch.Tensor:
        return torch.tensor([1.0 if self.received else 0.0])

    def poll(self, backend: Backend) -> bool:
        """Whether every rank stops now (the agreement started at the previous poll)."""
        if backend.world_size == 1:
            return self.received is not None
        agreed = self._pending is not None and self._pending.wait()
        self._pending = None if agreed else FlagReduce(backend, self._flag())
        return agreed

    def settle(self, backend: Backend) -> bool:
        """Whether every rank stops now, counting every signal received so far (blocking)."""
        if backend.world_size == 1:
            return self.received is not None
        pending, self._pending = self._pending, None
        if pending is not None and pending.wait():
            return True
        return FlagReduce(backend, self._flag()).wait()

    def describe(self) -> str:
        return self.received or "a signal on another rank"


class FlagReduce:
    """An all-reduce (max) of a stop flag, started now and read by :meth:`wait`."""

    def __init__(self, backend: Backend, flag: torch.Tensor):
        self.result = backend.all_reduce_async(flag, "max")

    def wait(self) -> bool:
        return bool(self.result().item())
