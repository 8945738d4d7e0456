"""The errors of scorch, each with the exit code its command ends with.

Every command (``scorch-train``, ``-test``, ``-sweep``, ``-gen``, ``-check``, ``-init``, ``-report``) runs through
:mod:`scorch.cli._runner`, which prints an :class:`Error` as one line, ``PROG: error: MESSAGE``, and exits
with the class's code:

====  ==========================================================================================
code  meaning
====  ==========================================================================================
0     done
1     a failure that is not the user's input (:class:`Failure`: a rank, a job or a move failed),
      a failed check (scorch-check), a failed run of a sweep, a user's file calling
      ``sys.exit()`` while a command ran, or an unexpected exception (``PROG: failed: Type:
      message``; ``--debug`` shows the traceback)
2     bad input the user can fix: a file, flag, setting or piece of data (:class:`ScorchError`);
      nothing on disk was changed
3     stopped by SIGUSR1/SIGTERM/SIGINT after saving its work (:class:`Stopped`); run the same
      command again (``--resume``/``--auto-resume``) to continue exactly where it stopped
130   interrupted (KeyboardInterrupt) before anything could be saved
141   stdout was closed by its reader (``scorch-check ... | head -2``): the command left quietly
====  ==========================================================================================

A rank started by ``scorch-train --nproc-per-node`` that fails ends the job with that rank's own code
(:class:`RankFailed`).

With several ranks the job's error is printed once. An error every rank raised alike (the command
line, the user's files, the run directory, an agreed stop: :attr:`Error.shown_by`) is printed by
rank 0, or by the one rank that found it; the other ranks leave quietly with the same code. An error
only one rank raised is printed by the first rank that failed; the ranks whose collectives broke
with it leave quietly (see :func:`scorch.distributed.shown_error`).
"""
from __future__ import annotations

import signal
from typing import TypeVar

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_PREEMPTED = 3
"""Exit code after a preemption signal (SIGUSR1/SIGTERM/SIGINT): a checkpoint was written; run again with
--resume (or --auto-resume) to continue exactly where it stopped."""
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT)
"""The signals that stop a scorch command after it saves its work (exit code 3): SLURM's warning before a
time limit (SIGUSR1), ``scancel`` or a launcher's stop (SIGTERM), Ctrl-C (SIGINT). The one definition:
the training ranks' :class:`~scorch.training.preempt.StopSignal`, the DataLoader workers that must not see them
(:class:`~scorch.data.Loader`), the launch agent and the local job pool that forward them, and the
generator jobs all use it."""
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a program that a closed pipe ended


class Error(Exception):
    """The root of scorch's errors: a one-line message for the user and the command's exit code."""

    exit_code = EXIT_FAILURE
    label = "error"  # the runner prints "PROG: LABEL: MESSAGE" ("PROG: MESSAGE" when empty)
    shown_by: int | None = None
    """The rank that prints this error when every rank of the job raised it (the others leave
    quietly); None: the rank that raised it prints it."""


E = TypeVar("E", bound=Error)


def on_every_rank(exc: E, shown_by: int = 0) -> E:
    """Mark ``exc`` as raised alike by every rank of the job, to be printed by rank ``shown_by`` alone."""
    if exc.shown_by is None:
        exc.shown_by = shown_by
    return exc


class ScorchError(Error):
    """Bad input the user can fix (a file, flag, setting or piece of data): exit code 2."""

    exit_code = EXIT_BAD_INPUT


class TrainingError(ScorchError):
    """Training cannot go on with these settings (a NaN/inf loss or weights): exit code 2, as the fix is
    the user's (learning rate, data, ``--nan-policy skip``)."""


class NonFiniteWeights(TrainingError):
    """Weights that are not finite, found when a checkpoint was about to be written (the message: the
    first names, ``names``: all of them); scorch-train says at which epoch and step."""

    def __init__(self, names: list[str]):
        super().__init__(", ".join(names[:3]))
        self.names = names


class Failure(Error):
    """A failure that is not the user's input (a rank, a job, the launch environment): exit code 1."""

    exit_code = EXIT_FAILURE


class DistributedError(Failure):
    """A rank failed or the launch environment is broken: exit code 1."""


class RankFailed(Failure):
    """A rank started by scorch itself (--nproc-per-node) failed; exits with that rank's code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class Stopped(Error):
    """Stopped on a signal after saving the work done so far: exit code 3; the same command continues it."""

    exit_code = EXIT_PREEMPTED
    shown_by = 0  # every rank stops together
    label = ""  # the message says it: "stopped by SIGTERM at epoch 2, ...; continue with --resume"


class Preempted(Stopped):
    """Training stopped on a signal after writing a checkpoint."""
