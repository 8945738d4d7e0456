"""Stopping on SIGUSR1 (SLURM's warning), SIGTERM or SIGINT at a step boundary all ranks agree on,
and rank 0's wall-clock verdicts (``--max-time``, ``--checkpoint-every DURATION``) agreed the same way."""
from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import torch

from .. import _signals
from ..distributed.backends.base import Backend
from ..errors import STOP_SIGNALS
from .cadence import Cadence

OUT_OF_TIME = "--max-time"


class StopSignal:
    """A context that records the first stop signal; :meth:`poll` and :meth:`settle` turn it into
    a decision every rank shares.

    Ranks may receive the signal at different moments, so with several ranks the flag is
    all-reduced (max). :meth:`poll`, called at every optimizer step boundary (and every
    evaluation batch every rank has), starts that all-reduce asynchronously and reads the one it
    started at the previous call: no step waits on a collective, and a stop is acted on one
    step after the signal reached the last rank. Every rank polls at the same points, so every
    rank issues the same collectives in the same order. :meth:`settle` is the blocking answer
    (at the end of an epoch).

    The flag carries rank 0's clock too (``cadence``): out of --max-time stops like a signal;
    a --checkpoint-every DURATION that has passed sets :attr:`save_due` after a :meth:`poll` that
    is asked to act on it (``saves=True``; validation's polls leave it for the next step)."""

    def __init__(self, cadence: Cadence | None = None) -> None:
        self.received: str | None = _signals.take()  # one that came while scorch-train started
        self.cadence = cadence or Cadence()
        self.save_due = False
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

    def _flags(self) -> list[float]:
        """[a signal, a save due, out of time], as this rank sees them."""
        return [1.0 if self.received else 0.0, 1.0 if self.cadence.save_due() else 0.0,
                1.0 if self.cadence.out_of_time() else 0.0]

    def _agree(self, flags: list[float], saves: bool) -> bool:
        if flags[2] and not self.received:
            self.received = OUT_OF_TIME
        if saves and flags[1]:
            self.save_due = True
            self.cadence.saved()  # counted from the agreement: the flag started next says no
        return bool(flags[0] or flags[2])

    def poll(self, backend: Backend, saves: bool = False) -> bool:
        """Whether every rank stops now (the agreement started at the previous poll); with ``saves``,
        :attr:`save_due` says whether every rank checkpoints at this step."""
        self.save_due = False
        if backend.world_size == 1:
            return self._agree(self._flags(), saves)
        agreed = self._pending is not None and self._agree(self._pending.wait(), saves)
        self._pending = None if agreed else FlagReduce(backend, self._flags())
        return agreed

    def settle(self, backend: Backend) -> bool:
        """Whether every rank stops now, counting every signal received so far (blocking)."""
        self.save_due = False
        if backend.world_size == 1:
            return self._agree(self._flags(), False)
        pending, self._pending = self._pending, None
        if pending is not None and self._agree(pending.wait(), False):
            return True
        return self._agree(FlagReduce(backend, self._flags()).wait(), False)

    def describe(self) -> str:
        if self.received == OUT_OF_TIME:
            return f"--max-time {self.cadence.max_time}"
        return self.received or "a signal on another rank"


class FlagReduce:
    """An all-reduce (max) of the stop flags, started now and read by :meth:`wait`."""

    def __init__(self, backend: Backend, flags: list[float]):
        self.result = backend.all_reduce_async(torch.tensor(flags), "max")

    def wait(self) -> list[float]:
        return [float(x) for x in self.result().tolist()]
