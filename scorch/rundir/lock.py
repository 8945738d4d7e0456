"""One writer per run directory: ``RUN_ROOT/.NAME.lock``, created atomically (``O_EXCL``) by rank 0
before it looks at the run directory, removed when the run ends.

It sits beside the run directory, not in it: ``--overwrite`` moves the whole directory aside, and an
interrupted one is put back, so a lock inside would move with it. The file holds the host, pid (and
the pid's start time, against a reused pid), SLURM job id and restart count, and start time of the
holder. A second scorch-train on the same run refuses with one line naming the holder. The lock is
taken over when its holder is gone: a dead pid on this host, or the same SLURM job requeued (a higher
``SLURM_RESTART_COUNT``, on whatever node it lands). A holder on another host cannot be checked from
here: that is refused unless ``--break-lock`` is given.

Taking over a stale lock renames it to a unique name, checks that it is still the stale one, deletes
it and creates the new one with ``O_EXCL``: of two processes taking over at once, one wins. (Three at
once could, in a window of microseconds, both end up holding it.)
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from .. import _atomic
from ..errors import ScorchError

log = logging.getLogger(__name__)


def lock_path(run_dir: Path) -> Path:
    """``.NAME.lock`` beside ``run_dir`` (a hash of the name when that would be too long a file name)."""
    name = f".{run_dir.name}.lock"
    if len(os.fsencode(name)) > 255:
        name = f".{hashlib.sha256(os.fsencode(run_dir.name)).hexdigest()[:24]}.lock"
    return run_dir.parent / name


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _pid_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), to tell a reused pid apart."""
    fields = _stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def me() -> dict[str, Any]:
    """This process, as a lock records it."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_start": _pid_start(os.getpid()),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_restart": int(os.environ.get("SLURM_RESTART_COUNT") or 0),
        "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _alive(holder: dict[str, Any]) -> bool:
    """Whether a holder on this host is still running (the same pid, started at the same time)."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    fields = _stat(pid)
    if fields and fields[0] in ("Z", "X"):
        return False  # it has ended; only its exit status waits for a parent (a rank whose mpirun is gone)
    started = _pid_start(pid)
    return started is None or holder.get("pid_start") in (None, started)


def describe(holder: dict[str, Any]) -> str:
    job = f", SLURM job {holder['slurm_job_id']}" if holder.get("slurm_job_id") else ""
    return f"pid {holder.get('pid')} on host {holder.get('host')}{job}, since {holder.get('since')}"


class RunLock:
    """Rank 0's hold on a run directory. :meth:`acquire` raises ScorchError (one line) when another
    process holds it; :meth:`release` removes the file if it is still this process's."""

    def __init__(self, run_dir: str | os.PathLike, break_lock: bool = False):
        self.run_dir = Path(run_dir)
        self.path = lock_path(self.run_dir)
        self.break_lock = break_lock
        self.mine: dict[str, Any] | None = None
        self.created_root = False

    def acquire(self) -> None:
        if self.run_dir.parent.exists() and not self.run_dir.parent.is_dir():
            raise ScorchError(f"run root {self.run_dir.parent} is not a directory (expected a directory to hold run directories)")
        if not self.run_dir.parent.is_dir():
            try:
                self.run_dir.parent.mkdir(parents=True)
                self.created_root = True
            except FileExistsError:
                pass
            except OSError as exc:
                raise ScorchError(f"cannot create run root {self.run_dir.parent}: {exc.strerror or exc}") from exc
        record = me()
        for _ in range(5):
            if self._create(record):
                self.mine = record
                return
            holder = self._read(self.path)
            if holder is None:
                continue  # released (or being taken over) meanwhile: try again
            why = self._takeover(holder, record)
            if why is None:
                raise ScorchError(self._refusal(holder, record))
            if self._remove_if(holder):
                log.warning("took over the lock of %s from %s (%s)", self.run_dir, describe(holder), why)
        raise ScorchError(f"{self.run_dir}: could not take the lock {self.path}, which other processes keep changing")

    def release(self) -> None:
        """Remove the lock if it is still ours (a --break-lock elsewhere may have taken it); keeps the run root."""
        if self.mine is None:
            return
        if self._read(self.path) == self.mine:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        self.mine = None

    def abandon(self) -> None:
        """Release after a refusal: also remove the run root made for the lock, if it is still empty."""
        self.release()
        if self.created_root:
            try:
                self.run_dir.parent.rmdir()
            except OSError:
                pass

    def _create(self, record: dict[str, Any]) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return False
        except OSError as exc:
            raise ScorchError(f"cannot create the lock {self.path} of run {self.run_dir}: {exc.strerror or exc}") from exc
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(record, f)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:  # a full disk: no empty lock left behind to refuse the next run
            self.path.unlink(missing_ok=True)
            raise _atomic.write_error(self.path, exc, f"the lock {self.path} of run {self.run_dir}") from exc
        return True

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        """The holder a lock file names; None when it is gone. A lock that is not JSON (half written by a
        process killed at that moment, or not ours) names nobody alive."""
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError:
            return {}
        try:
            holder = json.loads(text)
        except ValueError:
            return {"unreadable": text[:100]}
        return holder if isinstance(holder, dict) else {"unreadable": text[:100]}

    def _takeover(self, holder: dict[str, Any], record: dict[str, Any]) -> str | None:
        """Why ``holder``'s lock may be taken over (None: it may not)."""
        if "unreadable" in holder or not holder:
            age = time.time() - self.path.stat().st_mtime if self.path.exists() else 0.0
            return "an unreadable lock older than a minute" if age > 60 else None
        job = record["slurm_job_id"]
        if job is not None and holder.get("slurm_job_id") == job and record["slurm_restart"] > int(holder.get("slurm_restart") or 0):
            return f"the same SLURM job {job}, requeued"
        if holder.get("host") == record["host"]:
            return "its process is gone" if not _alive(holder) else None
        return "--break-lock" if self.break_lock else None

    def _refusal(self, holder: dict[str, Any], record: dict[str, Any]) -> str:
        if "unreadable" in holder or not holder:
            return (f"{self.run_dir} is locked by {self.path}, which is not a lock scorch wrote (or is being "
                    "written); remove it if no scorch-train uses this run")
        if holder.get("host") == record["host"]:
            return (f"{self.run_dir} is in use by another scorch-train ({describe(holder)}); wait for it to end "
                    f"or stop it (lock: {self.path})")
        return (f"{self.run_dir} is in use by a scorch-train on another host ({describe(holder)}), which cannot "
                "be checked from here; if that process is gone, pass --break-lock")

    def _remove_if(self, holder: dict[str, Any]) -> bool:
        """Remove the lock file if it still names ``holder``; False when it changed meanwhile."""
        aside = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        if self._read(aside) == holder:
            aside.unlink()
            return True
        try:  # another process took it over first: put its lock back
            os.link(aside, self.path)
        except FileExistsError:
            pass
        aside.unlink()
        return False
