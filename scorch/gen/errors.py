"""Errors scorch-gen reports to users as one line (exit code 2 unless stated)."""
from __future__ import annotations


class GenError(Exception):
    """Bad input or a state the user must fix; the message is one line for stderr."""

    exit_code = 2


class NotEnoughSamples(GenError):
    """Fewer samples exist than were asked for; ``available`` says how many do."""

    def __init__(self, message: str, available: int) -> None:
        super().__init__(message)
        self.available = available


class MoveAborted(GenError):
    """A move was rolled back by recovery (it looked abandoned); nothing was moved."""

    exit_code = 1


class JobsFailed(GenError):
    """Generation jobs ran but some failed (exit code 1: not the user's input)."""

    exit_code = 1
