"""TensorBoard: history rows' scalars (x axis: the epoch; the optimizer step with --val-every, whose
rows are validations inside epochs), --log-every step scalars in ``steps/`` (x axis: the global
step), Socket.visualize's images and texts, through tensorboardX.

On a resume, the events of what the resumed run redoes are dropped: epochs (or steps) after the
checkpoint's (``purge_step`` of the row writer) and steps after its step (of the step writer, by
step: a purge by epoch number must not reach them)."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ..rundir.layout import TENSORBOARD
from .base import Logger, Resume

STEPS = "steps"  # the subdirectory of the per-step scalars (--log-every)
SKIPPED = ("epoch", "step", "time")  # row keys that are axes, not scalars


class TensorBoardLogger(Logger):
    name = "tensorboard"

    def __init__(self) -> None:
        self.writer: Any = None
        self.step_writer: Any = None
        self.logdir = ""
        self.resume: Resume | None = None

    def open(self, run_dir: Path, resume: Resume | None) -> None:
        # tensorboardX is imported here, not at the top: most commands never write TensorBoard.
        from tensorboardX import SummaryWriter

        self.logdir, self.resume = str(run_dir / TENSORBOARD), resume
        self.by_step = False
        self._writer_class = SummaryWriter

    def log_hparams(self, params: dict[str, Any]) -> None:
        self.by_step = bool(params.get("val_every"))

    def _rows(self) -> Any:
        """The rows' writer, made at first use: log_hparams has said which axis they have."""
        if self.writer is None:
            resume = self.resume
            purge = None if resume is None else (resume.step if self.by_step else resume.epoch) + 1
            self.writer = self._writer_class(logdir=self.logdir, purge_step=purge, flush_secs=30,
                                             filename_suffix=_unique())
        return self.writer

    def log_step(self, step: int, values: dict[str, float]) -> None:
        if self.step_writer is None:
            from tensorboardX import SummaryWriter

            self.step_writer = SummaryWriter(logdir=os.path.join(self.logdir, STEPS),
                                             purge_step=self.resume.step + 1 if self.resume else None,
                                             flush_secs=30, filename_suffix=_unique())
        for key, value in values.items():
            self.step_writer.add_scalar(f"step/{key}", value, step)

    def log_epoch(self, row: dict[str, Any]) -> None:
        writer, x = self._rows(), int(row["step"] if self.by_step else row["epoch"])
        for key, value in row.items():
            if key not in SKIPPED and not isinstance(value, str):  # diag/slowest_host is a column, not a scalar
                writer.add_scalar(key, float(value), x)
        writer.flush()

    def log_visuals(self, epoch: int, visuals: Any) -> None:
        """Images (CHW or HW; floats in [0, 1] or uint8) and texts, at step ``epoch``."""
        writer = self._rows()
        for tag, image in visuals.images.items():
            writer.add_image(tag, image, epoch, dataformats="HW" if image.dim() == 2 else "CHW")
        for tag, text in visuals.texts.items():
            writer.add_text(tag, text, epoch)
        writer.flush()

    def close(self) -> None:
        for writer in (self.writer, self.step_writer):
            if writer is not None:
                writer.close()
        self.writer = self.step_writer = None


def _unique() -> str:
    """A suffix for the event file's name, which is otherwise the second and the host: a resume within
    the same second would overwrite the file of the session before."""
    return f".{time.time_ns()}"
