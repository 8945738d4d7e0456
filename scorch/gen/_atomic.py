"""Atomic file writes: temp file in the target directory, fsync, rename."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable


def fsync_dir(directory: Path) -> None:
    """Persist a rename/creation in *directory* (best effort: some filesystems refuse)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_temp(directory: Path, writer: Callable[[IO[bytes]], None], suffix: str = ".tmp") -> Path:
    """Write a fully synced temp file in *directory* with *writer*; the caller renames it."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace *path* with *data*: readers see the old file or the new one, never half."""
    tmp = write_temp(path.parent, lambda f: f.write(data))
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_json(path: Path, value: Any) -> None:
    """``atomic_write_bytes`` of *value* as indented JSON."""
    atomic_write_bytes(path, (json.dumps(value, indent=1, sort_keys=True) + "\n").encode())


def create_json_once(path: Path, value: Any) -> bool:
    """Write *path* only if it does not exist (``os.link`` never overwrites); True if we did."""
    data = (json.dumps(value, indent=1, sort_keys=True) + "\n").encode()
    tmp = write_temp(path.parent, lambda f: f.write(data))
    try:
        os.link(tmp, path)
        fsync_dir(path.parent)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
