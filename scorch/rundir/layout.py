"""The names of the files and directories of a run directory, and which checkpoint "best" and "last" mean.

This module is the only place that knows them; every other module asks it::

    RUN_ROOT/NAME/
        config.json      every resolved setting            meta.json   sessions, status, versions
        history.csv      one row per epoch                 log.txt     rank 0's log, appended
        tensorboard/     event files
        checkpoints/     last.pt, best.pt, step-NNNNNNNNN.pt (with --keep-checkpoints > 1)
                         or, sharded (--strategy fsdp/hsdp): step-NNNNNNNNN.dcp/ directories,
                         last.dcp and best.dcp links to them
        eval/            <split>-<checkpoint>.json, <split>-<checkpoint>-predictions.pt
        visuals/         epoch-NNN/<tag>.png and <tag>.txt: Socket.visualize's, per epoch

A checkpoint is one file (``.pt``) or, written by a sharded strategy, a directory (``.dcp``) of
every rank's shards (:mod:`scorch.rundir.shards`) and a small ``scorch.pt`` with the rest. A run
holds one kind at a time: writing one kind's ``last`` removes the other's.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ScorchError

log = logging.getLogger(__name__)

CONFIG = "config.json"
META = "meta.json"
HISTORY = "history.csv"
LOG = "log.txt"
RESERVE = ".meta.reserve"  # space set aside for meta.json while a session runs (RunDir.reserve)
TENSORBOARD = "tensorboard"
CHECKPOINTS = "checkpoints"
EVAL = "eval"
VISUALS = "visuals"  # Socket.visualize's files, per epoch (scorch.rundir.visuals)
SUFFIX = ".pt"
LAST = f"last{SUFFIX}"
BEST = f"best{SUFFIX}"
STEP_PREFIX = "step-"
SHARDED_SUFFIX = ".dcp"
LAST_SHARDED = f"last{SHARDED_SUFFIX}"
BEST_SHARDED = f"best{SHARDED_SUFFIX}"
REST = "scorch.pt"  # in a sharded checkpoint: everything but the model's and optimizer's tensors
DCP_METADATA = ".metadata"  # written last by torch.distributed.checkpoint
FAILURE_NOTES = ".rank-*.failed"  # a rank's note to rank 0 of how it failed (scorch.training.outcome)
CHOICES = ("best", "last")  # what --checkpoint / load_run(checkpoint=) take besides a file
_STEP = re.compile(rf"^{STEP_PREFIX}(\d+)(?:\.(\d+))?({re.escape(SUFFIX)}|{re.escape(SHARDED_SUFFIX)})$")


def is_sharded(path: Path) -> bool:
    """Whether ``path`` is a complete sharded checkpoint (a directory: its shards' metadata and the rest)."""
    return path.is_dir() and (path / DCP_METADATA).is_file() and (path / REST).is_file()


def is_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a checkpoint as this scorch writes them: a file, or a complete sharded directory."""
    return path.is_file() or is_sharded(path)


def step_name(step: int, sharded: bool = False, generation: int = 0) -> str:
    """The name of the checkpoint kept at optimizer step ``step``: ``step-000000176.pt`` (a sharded
    one ``step-000000176.dcp``; ``step-000000176.1.dcp`` when that step was saved again)."""
    return f"{STEP_PREFIX}{step:09d}{f'.{generation}' if generation else ''}{SHARDED_SUFFIX if sharded else SUFFIX}"


def _step_key(path: Path) -> tuple[int, int]:
    m = _STEP.match(path.name)
    return (int(m.group(1)), int(m.group(2) or 0)) if m else (-1, -1)


def label(path: Path) -> str:
    """What an evaluation of checkpoint ``path`` is called in eval/: its name without the suffix."""
    return path.name[:-len(path.suffix)] if path.suffix in (SUFFIX, SHARDED_SUFFIX) else path.name


def _newer(file: Path, sharded: Path) -> Path:
    """The one of a checkpoint file and a sharded checkpoint that exists (the newer of both; the file
    when neither does)."""
    found = [p for p in (file, sharded) if is_checkpoint(p)]
    if len(found) == 2:
        return max(found, key=lambda p: p.stat().st_mtime_ns)
    return found[0] if found else file


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

    @property
    def last_sharded(self) -> Path:
        return self.dir / LAST_SHARDED

    @property
    def best_sharded(self) -> Path:
        return self.dir / BEST_SHARDED

    def latest(self) -> Path:
        """``last``: last.pt, or last.dcp where the run is sharded (the newer where both are left)."""
        return _newer(self.last, self.last_sharded)

    def best_any(self) -> Path:
        """``best``: best.pt or best.dcp (the newer where both are left)."""
        return _newer(self.best, self.best_sharded)

    def step(self, step: int, sharded: bool = False) -> Path:
        """Where the checkpoint of step ``step`` goes (a sharded one: a name not taken yet)."""
        if not sharded:
            return self.dir / step_name(step)
        generation = 0
        while os.path.lexists(self.dir / step_name(step, True, generation)):
            generation += 1
        return self.dir / step_name(step, True, generation)

    def kept(self) -> list[Path]:
        """The kept ``step-*`` checkpoints (files and sharded directories), newest first."""
        found = [p for p in self.dir.glob(f"{STEP_PREFIX}*") if _STEP.match(p.name)]
        return sorted(found, key=_step_key, reverse=True)

    def has_any(self) -> bool:
        """Whether there is a checkpoint to resume from: last or a kept one."""
        return is_checkpoint(self.latest()) or any(is_checkpoint(p) for p in self.kept())


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
    def reserve(self) -> Path:
        return self.path / RESERVE

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

    def leftovers(self) -> list[Path]:
        """What an earlier session that died may have left: temporary files of writes it did not
        finish (``.NAME.*.tmp``: a checkpoint, meta.json, history.csv; ``.step-*.dcp.tmp``
        directories) and the failure notes of its ranks (``.rank-N.failed``)."""
        return sorted({*self.path.glob(FAILURE_NOTES), *self.path.glob(".*.tmp"), *self.checkpoint_dir.glob(".*.tmp")})

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
        path = files.best_any() if which == "best" else files.latest()
        if is_checkpoint(path):
            return Chosen(path, str(which))
        if which == "best" and is_checkpoint(files.latest()):
            log.warning("%s: %s has no %s (no epoch was ever the best by its monitor, e.g. a value that was always "
                        "NaN); using %s", who, layout.path, BEST, LAST)
            return Chosen(files.latest(), "last", fell_back=True)
        missing = f"neither {CHECKPOINTS}/{BEST} nor {LAST}" if which == "best" else f"no {CHECKPOINTS}/{LAST}"
        raise ScorchError(f"{who} {which}: {layout.path} has {missing} (has the run written a checkpoint yet?)")
    given = Path(which)
    for candidate in (given, layout.path / given, files.dir / given):
        if is_checkpoint(candidate):
            return Chosen(candidate, label(given))
    raise ScorchError(f"{who}: checkpoint {str(which)!r} not found (expected {', '.join(CHOICES)} or a checkpoint "
                      f"file, such as {files.dir / step_name(176)})")
