"""Where a run's code came from, for meta.json: the git commit of the model file's repository and the
versions of what trains it (torch, Horovod, MPI, scorch).

Nothing here imports Horovod or initializes MPI: versions come from the installed packages'
metadata, and the MPI library's own version only from an MPI the process has loaded already
(mpi4py.MPI, or the libmpi Horovod loaded; importing ``mpi4py.MPI`` would initialize MPI). git runs as a subprocess with a short
timeout and without taking the index lock (``GIT_OPTIONAL_LOCKS=0``); no git, no repository, or a
git that does not answer in time leaves ``git`` out.
"""
from __future__ import annotations

import importlib.metadata
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

GIT_TIMEOUT_S = 3.0


def _git(directory: Path, *args: str) -> str | None:
    """``git -C directory ARGS``'s output, or None when git is absent, fails or takes too long."""
    try:
        proc = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("git %s in %s: %s", " ".join(args), directory, exc)
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_state(path: str | os.PathLike) -> dict[str, Any] | None:
    """``{"root", "commit", "dirty"}`` of the git repository holding the file ``path``, or None.

    ``dirty``: a tracked file differs from the commit, or ``path`` itself is not in the commit
    (untracked files elsewhere do not count, as for ``git describe --dirty``); None when git could
    not tell in time."""
    file = Path(path).resolve()
    head = _git(file.parent, "rev-parse", "--show-toplevel", "HEAD")
    lines = head.split("\n") if head else []
    if len(lines) < 2 or not lines[1]:
        return None  # not in a repository, or one without a commit yet
    root, commit = lines[0], lines[1]
    status = _git(file.parent, "status", "--porcelain", "--untracked-files=no")
    tracked = _git(file.parent, "ls-files", "--error-unmatch", "--", file.name)
    dirty = None if status is None else bool(status.strip()) or tracked is None
    return {"root": root, "commit": commit, "dirty": dirty}


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def mpi_version() -> str | None:
    """The first line of the MPI library's version (e.g. "Open MPI v4.1.4, ..."), when this process has
    loaded MPI already (mpi4py.MPI, or Horovod's libmpi: MPI_Get_library_version may be called in any
    state of MPI, before MPI_Init too); else None."""
    mpi = sys.modules.get("mpi4py.MPI")
    try:
        text = str(mpi.Get_library_version()) if mpi is not None else _loaded_libmpi_version()
    except Exception as exc:  # an MPI that cannot say
        log.debug("MPI_Get_library_version: %s", exc)
        return None
    lines = (text or "").strip().splitlines()
    return lines[0].strip() if lines else None


def _loaded_libmpi_version() -> str | None:
    """MPI_Get_library_version of a libmpi this process has mapped (Linux), through ctypes, or None."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    paths = sorted({line.split()[-1] for line in maps.splitlines() if "/libmpi.so" in line})
    if not paths:
        return None
    import ctypes

    lib = ctypes.CDLL(paths[0], mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_GLOBAL)
    buffer, length = ctypes.create_string_buffer(8192), ctypes.c_int(0)  # MPICH's maximum is 8192, Open MPI's 256
    if lib.MPI_Get_library_version(buffer, ctypes.byref(length)) != 0:
        return None
    return buffer.value.decode(errors="replace")


def versions() -> dict[str, str | None]:
    """The versions meta.json adds to python, torch, numpy and scorch's (None: not installed, or
    for ``mpi``, not loaded by this run)."""
    return {"horovod": _version("horovod"), "mpi4py": _version("mpi4py"), "mpi": mpi_version()}


def record(meta: dict[str, Any], model_file: str | os.PathLike, rank0: bool) -> None:
    """Add the provenance to ``meta`` (on rank 0, which writes meta.json: no other rank runs git):
    the versions, and ``git`` when the model file is in a repository (top level, and in this
    session's entry of ``sessions``, as a resumed run may train other code)."""
    if not rank0:
        return
    meta.setdefault("versions", {}).update(versions())
    state = git_state(model_file)
    if state is None:
        return
    meta["git"] = state
    if meta.get("sessions"):
        meta["sessions"][-1]["git"] = {k: state[k] for k in ("commit", "dirty")}
