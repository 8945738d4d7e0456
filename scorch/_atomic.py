"""Atomic file writes: a crash leaves the old file or the new one, never half of one."""
from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .errors import Error, Failure, ScorchError


def umask() -> int:
    """The process's umask, read without changing it (Linux), else by setting it back at once."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_file(directory: str | os.PathLike, prefix: str, suffix: str) -> tuple[int, str]:
    """mkstemp, with the permissions any other new file would get (mkstemp makes them 0600, so
    teammates on a cluster could not read a checkpoint)."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~umask())
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    return fd, tmp


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; on success fsync it and rename it over ``path``."""
    path = Path(path)
    fd, tmp = _temp_file(path.parent, f".{path.name}.", ".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Persist a rename or creation in ``directory`` (best effort: some filesystems refuse)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def user_facing(path: str | os.PathLike) -> Iterator[None]:
    """Turn an OSError while writing ``path`` (full disk, read-only file system) into one clear line."""
    try:
        yield
    except OSError as exc:
        raise write_error(path, exc) from exc


def write_error(path: str | os.PathLike, exc: OSError, what: str = "") -> Error:
    """The one-line error of a failed write of ``path``: bad input the user fixes (a full or
    read-only disk: exit 2), or, when a directory it was in was removed while it was written (a
    run directory deleted under a live run), a failure (exit 1) naming that directory."""
    gone = vanished(Path(path).parent) if exc.errno == errno.ENOENT else None
    if gone is not None:
        return Failure(f"{gone} was removed while {Path(path).name} was written in it "
                       f"({exc.strerror or exc}); nothing can be saved there any more")
    return ScorchError(f"cannot write {what or path}: {exc.strerror or exc}")


def vanished(directory: Path) -> Path | None:
    """The highest directory of ``directory``'s path that no longer exists (None: it exists)."""
    if directory.exists():
        return None
    gone = directory
    while not gone.parent.exists() and gone.parent != gone:
        gone = gone.parent
    return gone


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_temp(directory: Path, writer: Callable[[IO[bytes]], None], suffix: str = ".tmp") -> Path:
    """A fully written and synced temp file in ``directory``; the caller renames or links it."""
    fd, tmp = _temp_file(directory, ".", suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return Path(tmp)


def create_json_once(path: Path, value: Any) -> bool:
    """Write ``path`` only if it does not exist yet (``os.link`` never overwrites); True if this call did."""
    data = (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()

    def write(f: IO[bytes]) -> None:
        f.write(data)

    tmp = write_temp(path.parent, write)
    try:
        os.link(tmp, path)
        fsync_dir(path.parent)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
