"""Errors of scorch-gen, part of :mod:`scorch.errors` (exit code 2 for bad input, 1 for failures)."""
from __future__ import annotations

from ..errors import Failure, ScorchError


class GenError(ScorchError):
    """Bad input or a state the user must fix; the message is one line for stderr (exit code 2)."""


class NotEnoughSamples(GenError):
    """Fewer samples exist than were asked for; ``available`` says how many do."""

    def __init__(self, message: str, available: int) -> None:
        super().__init__(message)
        self.available = available


class MoveAborted(Failure):
    """A move was rolled back by recovery (it looked abandoned); nothing was moved (exit code 1)."""


class JobsFailed(Failure):
    """Generation jobs ran but some failed (exit code 1: not the user's input)."""
