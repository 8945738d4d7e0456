"""A child process that gets a signal when its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``), so
that a parent killed outright (SIGKILL, out of memory) leaves no child running without it.

Used by the launch agent (its ranks get SIGKILL) and by local sweeps' pool (each scorch-train gets
SIGTERM: it checkpoints and exits 3, and the same sweep resumes it). The signal comes when the
*thread* that started the child ends, so start children from a thread that lives as long as the
parent: the main thread. Elsewhere than Linux there is no such hook (None).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def _find_prctl() -> Callable[..., int] | None:
    name = ctypes.util.find_library("c")
    if not sys.platform.startswith("linux") or not name:
        return None
    return ctypes.CDLL(name, use_errno=True).prctl


_prctl = _find_prctl()  # resolved at import, before any fork


def parent_death_signal(signum: int, parent: int | None = None) -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen` that makes the child get ``signum`` when its
    parent dies; None where there is no prctl.

    ``parent``: the pid of the process that will call Popen (``os.getpid()``, taken before it
    forks). Given, the hook also covers a parent that died between the fork and the prctl (the
    signal would never come): the child then exits at once, before its command starts.
    """
    prctl = _prctl
    if prctl is None:
        return None

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signum))
        if parent is not None and os.getppid() != parent:
            os._exit(1)  # not a Python signal handler: the parent's are still installed in this child
    return hook


def follow_parent(signum: int) -> bool:
    """Make this process get ``signum`` when its parent dies (its launcher: a torchrun agent, or
    scorch's own); True when set. A parent that is already gone (this process was re-parented to
    init or a subreaper between its start and now) sends it at once. Nothing where there is no
    prctl, and nothing for a process whose parent is init (pid 1: nothing to follow)."""
    prctl = _prctl
    parent = os.getppid()
    if prctl is None or parent == 1:
        return False
    prctl(_PR_SET_PDEATHSIG, int(signum))
    if os.getppid() != parent:
        os.kill(os.getpid(), signum)
    return True
