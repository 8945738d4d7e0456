"""The names of the files and directories of a run directory, and which checkpoint "best" and "last" mean.

This module is the only place that knows them; every other module asks it::

    RUN_ROOT/NAME/
        config.json      every resolved setting            meta.json   sessions, status, versions
        history.csv      one row per epoch                 log.txt     rank 0's log, appended
        tensorboard/     event files
        checkpoints/     last.pt, best.pt, step-NNNNNNNNN.pt (with --keep-checkpoints > 1)
        eval/            <split>-<checkpoint>.json, <split>-<checkpoint>-predictions.pt

A checkpoint is one file today (:data:`CHECKPOINT_IS_DIRECTORY`); a sharded checkpoint that is a
directory plugs in at :func:`is_checkpoint`.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ScorchError

log = logging.getLogger(__name__)

CONFIG = "config.json"
META = "meta.json"
HISTORY = "history.csv"
LOG = "log.txt"
TENSORBOARD = "tensorboard"
CHECKPOINTS = "checkpoints"
EVAL = "eval"
SUFFIX = ".pt"
LAST = f"last{SUFFIX}"
BEST = f"best{SUFFIX}"
STEP_PREFIX = "step-"
STEP_GLOB = f"{STEP_PREFIX}*{SUFFIX}"
CHOICES = ("best", "last")  # what --checkpoint / load_run(checkpoint=) take besides a file
CHECKPOINT_IS_DIRECTORY = False
"""Whether a checkpoint is a directory (a future sharded checkpoint) rather than one file."""


def is_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a checkpoint as this scorch writes them (one file today)."""
    return path.is_dir() if CHECKPOINT_IS_DIRECTORY else path.is_file()


def step_name(step: int) -> str:
    """The name of the checkpoint kept at optimizer step ``step``: ``step-000000176.pt``."""
    return f"{STEP_PREFIX}{step:09d}{SUFFIX}"


@dataclass(frozen=True)
class CheckpointFiles:
    """The files of a ``checkpoints/`` directory."""

    dir: Path

    @property
    def last(self) -> Path:
        return self.dir / LAST

    @property
    def best(self) -> Path:
        return self.dir / BEST

    def step(self, step: int) -> Path:
        return self.dir / step_name(step)

    def kept(self) -> list[Path]:
        """The kept ``step-*.pt`` checkpoints, newest first."""
        return sorted(self.dir.glob(STEP_GLOB), reverse=True)

    def has_any(self) -> bool:
        """Whether there is a checkpoint to resume from: last.pt or a kept one."""
        return is_checkpoint(self.last) or any(is_checkpoint(p) for p in self.kept())


@dataclass(frozen=True)
class RunLayout:
    """The paths of the run directory ``path``."""

    path: Path

    def __init__(self, path: str | os.PathLike):
        object.__setattr__(self, "path", Path(path))

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def meta(self) -> Path:
        return self.path / META

    @property
    def history(self) -> Path:
        return self.path / HISTORY

    @property
    def log(self) -> Path:
        return self.path / LOG

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def checkpoints(self) -> CheckpointFiles:
        return CheckpointFiles(self.checkpoint_dir)

    @property
    def eval_dir(self) -> Path:
        return self.path / EVAL

    def eval_file(self, split: str, label: str) -> Path:
        """``eval/<split>-<label>.json``: the results of a checkpoint on a split."""
        return self.eval_dir / f"{split}-{label}.json"

    def predictions_file(self, split: str, label: str) -> Path:
        """``eval/<split>-<label>-predictions.pt``: every output of the Network on the split."""
        return self.eval_dir / f"{split}-{label}-predictions{SUFFIX}"


@dataclass(frozen=True)
class Chosen:
    """The checkpoint a choice named: its ``path``, the ``label`` of the files an evaluation of it
    writes (``best``, ``last`` or the file's stem), and whether "best" fell back to last.pt."""

    path: Path
    label: str
    fell_back: bool = False


def choose_checkpoint(run_dir: str | os.PathLike, which: str | os.PathLike, who: str) -> Chosen:
    """The one rule for ``best`` / ``last`` / a checkpoint file of run ``run_dir`` (load_run,
    scorch-test, scorch-train --test):

    - ``best``: ``checkpoints/best.pt``; when there is none (no epoch ever improved the monitor,
      e.g. it was always NaN) ``checkpoints/last.pt``, with a warning in the log and
      :attr:`Chosen.fell_back` set;
    - ``last``: ``checkpoints/last.pt``;
    - anything else is a checkpoint file: as given, else relative to the run directory, else
      relative to its ``checkpoints/``.

    ``who`` (``load_run``, ``--checkpoint``) starts the one-line ScorchError when there is none."""
    layout = RunLayout(run_dir)
    files = layout.checkpoints
    if which in CHOICES:
        path = files.best if which == "best" else files.last
        if is_checkpoint(path):
            return Chosen(path, str(which))
        if which == "best" and is_checkpoint(files.last):
            log.warning("%s: %s has no %s (no epoch was ever the best by its monitor, e.g. a value that was always "
                        "NaN); using %s", who, layout.path, BEST, LAST)
            return Chosen(files.last, "last", fell_back=True)
        missing = f"neither {CHECKPOINTS}/{BEST} nor {LAST}" if which == "best" else f"no {CHECKPOINTS}/{LAST}"
        raise ScorchError(f"{who} {which}: {layout.path} has {missing} (has the run written a checkpoint yet?)")
    given = Path(which)
    for candidate in (given, layout.path / given, files.dir / given):
        if is_checkpoint(candidate):
            return Chosen(candidate, given.stem if given.suffix == SUFFIX else given.name)
    raise ScorchError(f"{who}: checkpoint {str(which)!r} not found (expected {', '.join(CHOICES)} or a checkpoint "
                      f"file, such as {files.dir / step_name(176)})")
