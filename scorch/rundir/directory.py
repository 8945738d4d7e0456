"""The run directory ``<run-root>/<name>/`` and the rank-0-only files in it.

Built on every rank; only rank 0 touches the disk.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from .. import __version__, _atomic
from ..errors import ScorchError
from .layout import CheckpointFiles, RunLayout, is_checkpoint

log = logging.getLogger(__name__)

RESERVE_BYTES = 1 << 20  # meta.json is a few KiB; its temp file and the old one both fit, many times


def check_target(path: Path, resume: bool, overwrite: bool, auto_resume: bool = False) -> str | None:
    """Why this run may not use ``path`` (a one-line message), or None when it may.

    ``auto_resume`` (set when there was no checkpoint to resume) accepts a non-empty directory:
    a SLURM job's own files live there, and a requeued job may have crashed before its first
    checkpoint."""
    if resume:
        checkpoints = RunLayout(path).checkpoints
        if not checkpoints.has_any():
            return f"--resume: no checkpoint to resume from at {checkpoints.last}"
        return None
    if path.exists() and not path.is_dir():
        return f"run directory {path} exists and is not a directory"
    if path.is_dir() and any(path.iterdir()) and not overwrite and not auto_resume:
        return f"run directory {path} already exists and is not empty; pass --resume to continue it or --overwrite to replace it"
    return None


def prepare_target(path: Path, resume: bool, overwrite: bool, auto_resume: bool = False) -> None:
    """Rank 0, before a run touches ``path``: finish an interrupted --overwrite, then refuse a
    target the run may not use (one line)."""
    recover(path)
    verdict = check_target(path, resume, overwrite, auto_resume)
    if verdict:
        raise ScorchError(verdict)


def replaced_path(path: Path) -> Path:
    """Where ``--overwrite`` keeps the run it replaces until the new run's first checkpoint."""
    return path.parent / f".{path.name}.replaced"


def recover(path: Path) -> None:
    """Finish what an interrupted ``--overwrite`` left (rank 0, before anything else looks at
    ``path``): a new run with a checkpoint has proven itself, and the old one goes; otherwise
    the old run comes back."""
    aside = replaced_path(path)
    if not aside.is_dir():
        return
    try:
        if is_checkpoint(RunLayout(path).checkpoints.latest()):
            shutil.rmtree(aside)
            return
        if path.exists():
            shutil.rmtree(path)
        os.rename(aside, path)
    except OSError as exc:
        raise ScorchError(f"cannot restore {path} from {aside} (left by an interrupted --overwrite): "
                          f"{exc.strerror or exc}; move it back by hand") from exc
    log.warning("restored %s, which an interrupted --overwrite had moved to %s", path, aside)


class RunDir:
    """The run directory. ``--overwrite`` moves the old run aside (:func:`replaced_path`) rather
    than deleting it: it is deleted once the new run has written its first checkpoint
    (:meth:`proven`), and put back when the new run fails before that (:meth:`restore`)."""

    def __init__(self, path: str | os.PathLike, rank0: bool):
        self.path = Path(path)
        self.layout = RunLayout(self.path)
        self.rank0 = rank0
        self._log_handler: logging.Handler | None = None
        self._replaced: Path | None = None
        self._opened = time.time()  # what is older than this, a session before left
        self._swept = False

    @property
    def checkpoints(self) -> CheckpointFiles:
        return self.layout.checkpoints

    @property
    def last_checkpoint(self) -> Path:
        return self.layout.checkpoints.latest()

    def create(self, overwrite: bool) -> None:
        if not self.rank0:
            return
        try:
            if overwrite and self.path.is_dir() and any(self.path.iterdir()):
                os.rename(self.path, replaced_path(self.path))
                self._replaced = replaced_path(self.path)
            self.layout.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.restore()
            raise ScorchError(f"cannot create run directory {self.path}: {exc.strerror or exc}") from exc

    def proven(self) -> None:
        """This session has a complete checkpoint: the run it replaced goes, and so does what an
        earlier session that died left (:meth:`RunLayout.leftovers` from before this session began:
        kept until now as the evidence of how it ended)."""
        if self._replaced is not None:
            shutil.rmtree(self._replaced, ignore_errors=True)
            self._replaced = None
        if not self._swept:
            self._swept = True
            for path in self.layout.leftovers():
                try:
                    if path.lstat().st_mtime >= self._opened:
                        continue  # this session's own (a rank's note, a write in progress)
                    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
                except OSError as exc:
                    log.warning("cannot remove %s, left by an earlier session: %s", path, exc.strerror or exc)
                    continue
                log.info("removed %s, left by an earlier session that did not finish", path)

    def restore(self) -> None:
        """The new run failed before its first checkpoint: the run it replaced comes back."""
        if self._replaced is not None:
            self.detach_log()
            shutil.rmtree(self.path, ignore_errors=True)
            os.rename(self._replaced, self.path)
            self._replaced = None

    def write_config(self, config: dict[str, Any]) -> None:
        if self.rank0:
            with _atomic.user_facing(self.layout.config):
                _atomic.write_json(self.layout.config, config)

    def copy_sources(self, *files: str) -> None:
        """Keep copies of the model and dataset files; on resume keep the first copies."""
        if not self.rank0:
            return
        for f, name in zip(files, source_names(*files)):
            target = self.path / name
            text = Path(f).read_bytes()
            if target.exists():
                if target.read_bytes() != text:
                    log.warning("%s differs from the copy kept in the run directory (%s)", f, target)
                continue
            with _atomic.user_facing(target):
                _atomic.write_bytes(target, text)

    def write_meta(self, meta: dict[str, Any]) -> None:
        """meta.json, atomically. A full disk does not keep a session's ending out of it: the run
        directory holds a reserve (:meth:`reserve`) given up to write meta.json when nothing else
        is left, so its status stays true (a run that failed on a full disk says "failed")."""
        if not self.rank0:
            return
        try:
            with _atomic.user_facing(self.layout.meta):
                _atomic.write_json(self.layout.meta, meta)
        except ScorchError:
            if not self._release_reserve():
                raise
            with _atomic.user_facing(self.layout.meta):
                _atomic.write_json(self.layout.meta, meta)

    def reserve(self) -> None:
        """Set aside :data:`RESERVE_BYTES` in the run directory for meta.json (rank 0, at the start
        of a session; best effort: a disk already full gets none)."""
        if not self.rank0:
            return
        try:
            with open(self.layout.reserve, "wb") as f:
                os.posix_fallocate(f.fileno(), 0, RESERVE_BYTES)
        except (OSError, AttributeError):
            self.layout.reserve.unlink(missing_ok=True)

    def _release_reserve(self) -> bool:
        try:
            self.layout.reserve.unlink()
        except OSError:
            return False
        log.debug("the disk is full: the reserve in %s was given up for meta.json", self.path)
        return True

    def end_session(self) -> None:
        """The session's last file is written: its reserve goes (rank 0)."""
        if self.rank0:
            self.layout.reserve.unlink(missing_ok=True)

    def read_meta(self) -> dict[str, Any]:
        """The saved meta.json ({} when there is none); a damaged one is one line naming it."""
        path = self.layout.meta
        if not path.is_file():
            return {}
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ScorchError(f"{path} is damaged ({exc}); expected the JSON object scorch wrote") from exc
        if not isinstance(meta, dict) or not isinstance(meta.get("sessions", []), list):
            raise ScorchError(f"{path} is damaged: expected a JSON object with a list of sessions")
        return meta

    def attach_log(self) -> None:
        """Rank 0's console log also goes to ``log.txt`` (appended on resume)."""
        if not self.rank0:
            return
        with _atomic.user_facing(self.layout.log):
            handler = _LogFile(self.layout.log, mode="a", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger("scorch").addHandler(handler)
        self._log_handler = handler

    def note_in_log(self, message: str) -> None:
        """A line in ``log.txt`` only (rank 0), e.g. the error the console prints in its own words."""
        if self._log_handler is not None:
            self._log_handler.handle(logging.LogRecord("scorch.training.trainer", logging.ERROR, __file__, 0, message, None, None))

    def detach_log(self) -> None:
        if self._log_handler is not None:
            logging.getLogger("scorch").removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None


class _LogFile(logging.FileHandler):
    """log.txt: a write that fails (a full disk, the run directory removed) ends it quietly;
    logging's default prints a traceback per record, on a console where the error that matters is
    one line."""

    def handleError(self, record: logging.LogRecord) -> None:
        self.close()
        logging.getLogger("scorch").removeHandler(self)


def source_names(*files: str) -> list[str]:
    """The names of the copies of ``files`` in a run directory: their base names, prefixed with their
    folder's name where two base names are the same."""
    names = [os.path.basename(f) for f in files]
    return [f"{Path(f).parent.name}_{name}" if names.count(name) > 1 else name for f, name in zip(files, names)]


def default_name() -> str:
    """A run's name when --name is not given: the start time, e.g. 20261202-211530."""
    return time.strftime("%Y%m%d-%H%M%S")


def session_meta(world_size: int, backend: str, device: str, launcher: str, placements: list[dict[str, Any]]) -> dict[str, Any]:
    """``placements``: every rank's ``dist.placement()`` (rank, host, node, local rank), in rank order."""
    # numpy and torch here, not at the top: scorch-report and --slurm import this module without torch.
    import numpy
    import torch

    return {
        "command": sys.argv,
        "cwd": os.getcwd(),
        "start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "end_time": None,
        "status": "running",
        "hostnames": [p["host"] for p in placements],
        "ranks": placements,
        "nodes": len({(p["host"], p["node"]) for p in placements}),
        "world_size": world_size,
        "backend": backend,
        "device": device,
        "launcher": launcher,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            "scorch": __version__,
        },
    }
