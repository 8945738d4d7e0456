"""How a run ended, in words: the one line a command prints for the exception that ended it, the rank
and the exit code, for ``meta.json`` (``ended_by``) and ``log.txt``.

Rank 0 writes both. A rank that fails while rank 0 is alive leaves a note, ``.rank-N.failed`` in the
run directory (the one file a rank other than 0 writes), before it exits; rank 0, whose own error is
then only a broken collective, waits a moment for such notes, records the first one as the cause and
removes them. When rank 0 itself is killed (SIGKILL, a node lost) nothing is recorded: meta.json keeps
``status: running`` and the launcher's output is the record.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from .. import _atomic
from ..errors import EXIT_FAILURE, EXIT_INTERRUPTED, Error
from ..rundir.layout import FAILURE_NOTES

NOTE_GLOB = FAILURE_NOTES


def one_line(text: str) -> str:
    """``text`` as one line (as :func:`scorch.cli._runner.one_line` prints it)."""
    return text.strip().replace("\r", "\\r").replace("\n", "\\n")


def describe(exc: BaseException) -> tuple[str, int]:
    """The command runner's line for ``exc`` without the ``PROG: `` prefix, and the exit code."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", EXIT_INTERRUPTED
    if isinstance(exc, Error):
        label = f"{exc.label}: " if exc.label else ""
        return f"{label}{one_line(str(exc))}", exc.exit_code
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"failed: {type(exc).__name__}: {one_line(first)}", EXIT_FAILURE


def ending(exc: BaseException, rank: int) -> dict[str, Any]:
    message, code = describe(exc)
    return {"message": message, "rank": rank, "exit_code": code, "host": socket.gethostname(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "t": time.time()}


def leave_note(run_dir: Path, exc: BaseException, rank: int) -> None:
    """On a rank other than 0 that fails: tell rank 0 why (best effort: a note is no reason to fail again)."""
    try:
        _atomic.write_json(run_dir / f".rank-{rank}.failed", ending(exc, rank))
    except (OSError, ValueError):
        pass


def broken_collective(exc: BaseException) -> bool:
    """Whether ``exc`` looks like a collective that another rank's exit broke (not scorch's own error)."""
    return isinstance(exc, RuntimeError) and not isinstance(exc, Error)


def collect_notes(run_dir: Path, wait: float) -> list[dict[str, Any]]:
    """Notes other ranks left, oldest first, waiting up to ``wait`` seconds for the first; removed once read."""
    deadline = time.monotonic() + wait
    while True:
        files = sorted(run_dir.glob(NOTE_GLOB))
        if files or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    notes = []
    for path in files:
        try:
            note = json.loads(path.read_text())
            os.unlink(path)
        except (OSError, ValueError):
            continue
        if isinstance(note, dict):
            notes.append(note)
    return sorted(notes, key=lambda n: float(n.get("t") or 0))
