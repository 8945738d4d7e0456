"""TensorBoard scalars, images and texts through tensorboardX, written by rank 0 only."""
from __future__ import annotations

import os
from typing import Any


class TensorBoard:
    def __init__(self, logdir: str | os.PathLike, rank0: bool, purge_step: int | None = None):
        self.writer = None
        if rank0:
            from tensorboardX import SummaryWriter

            # purge_step drops events of epochs redone after a resume.
            self.writer = SummaryWriter(logdir=str(logdir), purge_step=purge_step, flush_secs=30)

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
        if self.writer is not None:
            self.writer.close()
            self.writer = None
