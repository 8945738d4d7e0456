"""The one local process pool: jobs on this machine, a few at a time, as SLURM would run them.

:func:`run_local` starts each job's command in its own session (so a Ctrl-C reaches only the
pool, which passes it on once), its output appended to the job's log file. Options:

* ``max_parallel``: jobs at once.
* ``time_limit_s``: a job running longer gets SIGTERM (its whole process group, as SLURM's time
  limit does), then SIGKILL ``kill_grace_s`` later (SLURM's KillWait).
* SIGINT, SIGTERM and SIGUSR1 to this process start no new job and reach the running ones as
  SIGUSR1 (the stop signal scorch's jobs share: a training run checkpoints and exits 3, a
  generation job saves its finished samples); the pool then waits for them to end.
* ``parent_death_signal``: the signal each job gets when this process dies without a word
  (SIGKILL, out of memory; Linux): a pool killed outright leaves no job running without it.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._parent_death import parent_death_signal as die_with_parent
from ..errors import STOP_SIGNALS

log = logging.getLogger(__name__)
FORWARDED = signal.SIGUSR1  # what the running jobs get of any stop signal: a run checkpoints and exits 3


@dataclass(frozen=True)
class LocalJob:
    """One local process: a name for messages, its command, the file its output is appended to."""

    name: str
    command: tuple[str, ...]
    log_path: Path


@dataclass(frozen=True)
class PoolResult:
    """``codes[i]`` is job *i*'s exit code (negative: killed by that signal), None when it never
    started (a stop signal came first); ``timed_out`` holds the jobs stopped at their time limit;
    ``stopped_by`` is the first stop signal's name, if one came."""

    codes: tuple[int | None, ...]
    timed_out: frozenset[int] = frozenset()
    stopped_by: str | None = None

    def failed(self, ok: Sequence[int] = (0,)) -> list[int]:
        """Indices of the jobs that ran and ended with a code not in ``ok``."""
        return [i for i, c in enumerate(self.codes) if c is not None and c not in ok]


@dataclass
class _Running:
    proc: subprocess.Popen[bytes]
    started: float
    termed: bool = False


def _signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)


def run_local(jobs: Sequence[LocalJob], *, max_parallel: int, time_limit_s: float | None = None,
              kill_grace_s: float = 5.0, env: Mapping[str, str] | None = None, poll: float = 0.05,
              parent_death_signal: int | None = None) -> PoolResult:
    """Run ``jobs``, at most ``max_parallel`` at once, until all have ended (or, after a stop
    signal, until the running ones have). Call it from the main thread (it handles signals, and
    ``parent_death_signal`` comes when the thread that started a job ends)."""
    if max_parallel < 1:
        raise ValueError(f"max_parallel: expected a whole number >= 1, got {max_parallel!r}")
    codes: list[int | None] = [None] * len(jobs)
    timed_out: set[int] = set()
    running: dict[int, _Running] = {}
    stopping: list[str] = []

    def on_signal(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if not stopping:
            log.warning("%s: no new jobs; the running ones get %s and stop", name, FORWARDED.name)
        stopping.append(name)
        for r in running.values():
            with contextlib.suppress(ProcessLookupError):
                r.proc.send_signal(FORWARDED)

    hook = None if parent_death_signal is None else die_with_parent(parent_death_signal, os.getpid())
    previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    queue = list(range(len(jobs)))
    try:
        while running or (queue and not stopping):
            while queue and len(running) < max_parallel and not stopping:
                i = queue.pop(0)
                log.info("%s: starting", jobs[i].name)
                with open(jobs[i].log_path, "ab") as out:  # the child has its own copy of the descriptor
                    proc = subprocess.Popen(jobs[i].command, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=None if env is None else dict(env),
                                            start_new_session=True, preexec_fn=hook)
                running[i] = _Running(proc, time.monotonic())
                if stopping:  # the signal came while it was starting
                    proc.send_signal(FORWARDED)
            for i, r in list(running.items()):
                code = r.proc.poll()
                if code is not None:
                    del running[i]
                    codes[i] = code
                    log.info("%s: %s", jobs[i].name, "done" if code == 0 else f"exit code {code}")
                    continue
                elapsed = time.monotonic() - r.started
                if time_limit_s is not None and elapsed > time_limit_s and not r.termed:
                    log.warning("%s: past its time limit of %g s; terminating", jobs[i].name, time_limit_s)
                    timed_out.add(i)
                    r.termed = True
                    _signal_group(r.proc, signal.SIGTERM)
                elif r.termed and time_limit_s is not None and elapsed > time_limit_s + kill_grace_s:
                    _signal_group(r.proc, signal.SIGKILL)
            time.sleep(poll)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for r in running.values():  # an exception in this loop: leave no orphans
            _signal_group(r.proc, signal.SIGKILL)
            r.proc.wait()
    return PoolResult(tuple(codes), frozenset(timed_out), stopping[0] if stopping else None)
