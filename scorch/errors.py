"""Errors that reach the user as one line and an exit code."""
from __future__ import annotations


class ScorchError(Exception):
    """A problem the user can fix (bad file, bad flag, bad data): one line, exit code 2."""

    exit_code = 2


class TrainingError(ScorchError):
    """Training cannot go on (e.g. a NaN loss): one line, exit code 2."""


class DistributedError(Exception):
    """A rank failed or the launch environment is broken: exit code 1."""

    exit_code = 1
