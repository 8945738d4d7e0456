"""Stop signals that arrive while scorch-train starts (imports, set-up), before the training loop's
own handler (:class:`scorch.training.preempt.StopSignal`) is in place.

``scorch-train`` installs :func:`install` first thing (:mod:`scorch._start`): the first SIGUSR1,
SIGTERM or SIGINT is recorded, not fatal (Python's defaults would kill the process with status 138
on a SIGUSR1, or print a KeyboardInterrupt traceback from inside an import), and the loop acts on
it at its first step boundary: a checkpoint, exit 3, like a signal that came later. A second
SIGINT interrupts (exit 130, one line). Nothing here imports torch.
"""
from __future__ import annotations

import os
import signal
from types import FrameType

from .errors import STOP_SIGNALS

_received: str | None = None

# the launchers' world-size variables
_SIZE_VARIABLES = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


def _alone() -> bool:
    """Whether this process is the job's only rank (or its launch agent): only then does it say at
    once that it got a signal while starting. In a job of several ranks the loop reports the stop
    when it acts on it, and a line from each rank would be noise: when one rank fails, mpirun
    SIGTERMs the others, whose line would stand beside the failure's as a second, misleading one."""
    for name in _SIZE_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 1:
            return False
    return True


def _record(signum: int, frame: FrameType | None) -> None:
    global _received
    if _received is not None and signum == signal.SIGINT:
        raise KeyboardInterrupt  # a second Ctrl-C: stop now
    if _received is None:
        _received = signal.Signals(signum).name
        if _alone():
            os.write(2, f"scorch-train: got {_received} while starting: training stops at its first step, with a "
                        "checkpoint (a second Ctrl-C interrupts now)\n".encode())


def install() -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, _record)


def received() -> str | None:
    """The first stop signal this process got before training started (None: none, or not installed)."""
    return _received


def take() -> str | None:
    """:func:`received`, once: whoever acts on it (the loop, the launch agent) clears it."""
    global _received
    first, _received = _received, None
    return first
