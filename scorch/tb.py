"""TensorBoard scalars, images and texts through tensorboardX, written by rank 0 only."""
from __future__ import annotations

import os
import time
from typing import Any

STEPS = "steps"  # the subdirectory of the per-step scalars (--log-every)


class TensorBoard:
    def __init__(self, logdir: str | os.PathLike, rank0: bool, purge_step: int | None = None,
                 step_purge: int | None = None):
        self.writer = None
        self.step_writer: Any = None
        self.logdir, self.step_purge = str(logdir), step_purge
        if rank0:
            from tensorboardX import SummaryWriter

            # purge_step drops events of epochs redone after a resume.
            self.writer = SummaryWriter(logdir=str(logdir), purge_step=purge_step, flush_secs=30,
                                        filename_suffix=_unique())

    def log_step(self, step: int, values: dict[str, float]) -> None:
        """Scalars of optimizer step ``step``, tagged ``step/NAME``, in ``STEPS/`` (a resume's purge of
        redone epochs, by epoch number, must not reach them; their own purge is by step)."""
        if self.writer is None:
            return
        if self.step_writer is None:
            from tensorboardX import SummaryWriter

            self.step_writer = SummaryWriter(logdir=os.path.join(self.logdir, STEPS), purge_step=self.step_purge,
                                             flush_secs=30, filename_suffix=_unique())
        for key, value in values.items():
            self.step_writer.add_scalar(f"step/{key}", value, step)

    def log_epoch(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        epoch = int(row["epoch"])
        for key, value in row.items():
            if key in ("epoch", "step", "time"):
                continue
            self.writer.add_scalar(key, float(value), epoch)
        self.writer.flush()

    def log_visuals(self, visuals: Any, step: int) -> None:
        """Socket.visualize's images (CHW or HW; floats in [0, 1] or uint8) and texts, at ``step``."""
        if self.writer is None:
            return
        for tag, image in visuals.images.items():
            self.writer.add_image(tag, image, step, dataformats="HW" if image.dim() == 2 else "CHW")
        for tag, text in visuals.texts.items():
            self.writer.add_text(tag, text, step)
        self.writer.flush()

    def close(self) -> None:
        for writer in (self.writer, self.step_writer):
            if writer is not None:
                writer.close()
        self.writer = self.step_writer = None


def _unique() -> str:
    """A suffix for the event file's name, which is otherwise the second and the host: a resume within
    the same second would overwrite the file of the session before."""
    return f".{time.time_ns()}"
