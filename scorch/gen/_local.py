"""Run generation jobs as local processes, a few at a time, with a time limit."""
from __future__ import annotations

import logging
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

log = logging.getLogger(__name__)
_KILL_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class LocalJob:
    """One local process: its command and where its output goes."""

    command: tuple[str, ...]
    log_path: Path


def run_local(jobs: Sequence[LocalJob], *, max_parallel: int, time_limit_s: float | None,
              poll: float = 0.05) -> list[int]:
    """Run *jobs*, at most *max_parallel* at once; return their exit codes in order.

    A job running longer than *time_limit_s* gets SIGTERM, then SIGKILL
    (like SLURM's time limit); its code is then negative (the signal).
    """
    codes: list[int | None] = [None] * len(jobs)
    running: dict[int, tuple[subprocess.Popen, float, bool]] = {}
    queue = list(range(len(jobs)))
    try:
        while queue or running:
            while queue and len(running) < max_parallel:
                i = queue.pop(0)
                with open(jobs[i].log_path, "ab") as out:
                    proc = subprocess.Popen(jobs[i].command, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
                running[i] = (proc, time.monotonic(), False)
            for i, (proc, started, termed) in list(running.items()):
                code = proc.poll()
                if code is not None:
                    codes[i] = code
                    del running[i]
                    continue
                elapsed = time.monotonic() - started
                if time_limit_s is not None and elapsed > time_limit_s and not termed:
                    log.warning("local job %d passed its time limit; terminating", i)
                    proc.send_signal(signal.SIGTERM)
                    running[i] = (proc, started, True)
                elif termed and elapsed > time_limit_s + _KILL_GRACE_SECONDS:  # type: ignore[operator]
                    proc.kill()
            time.sleep(poll)
    finally:
        for proc, _, _ in running.values():  # interrupted: leave no orphans
            proc.kill()
            proc.wait()
    return [c if c is not None else -9 for c in codes]
