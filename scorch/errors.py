"""Errors that reach the user as one line and an exit code."""
from __future__ import annotations


class ScorchError(Exception):
    """A problem the user can fix (bad file, bad flag, bad data): one line, exit code 2."""

    exit_code = 2


class TrainingError(ScorchError):
    """Training cannot go on (e.g. a NaN loss): one line, exit code 2."""


class RankFailed(ScorchError):
    """A rank started by scorch itself (--nproc-per-node) failed; exits with that rank's code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class DistributedError(Exception):
    """A rank failed or the launch environment is broken: exit code 1."""

    exit_code = 1


EXIT_PREEMPTED = 3
"""Exit code after a preemption signal (SIGUSR1/SIGTERM/SIGINT): a checkpoint was written; run again with
--resume (or --auto-resume) to continue exactly where it stopped."""


class Preempted(Exception):
    """Training stopped on a signal after writing a checkpoint."""

    exit_code = EXIT_PREEMPTED
