"""Socket.visualize on the main rank's first validation batch of each epoch, to the loggers
(TensorBoard: images and texts at the epoch) and as files of the run directory (PNG images and
text files in ``visuals/epoch-NNN/``, see :mod:`scorch.rundir.visuals`). Once the pre-flight call
has passed (an error there stops the run), an error is one warning line naming the method: a
picture does not end a run."""
from __future__ import annotations

import logging
from typing import Any

from ..errors import ScorchError
from ..rundir.visuals import VisualFiles
from .base import BatchEnd, Callback

log = logging.getLogger(__name__)


class Visualize(Callback):
    name = "visualize"

    def __init__(self, socket: Any, loggers: Any):
        self.socket, self.loggers = socket, loggers
        self.files: VisualFiles | None = None

    def on_fit_start(self, run: Any) -> None:
        if not run.is_main or run.run_dir is None:
            return
        self.files = VisualFiles(run.run_dir, by_step=bool(getattr(run.config, "val_every", None)))
        self.files.forget_after(run.epoch, run.step)  # a resumed run writes what it redoes again

    def on_validation_batch_end(self, run: Any, batch: BatchEnd) -> None:
        if batch.index != 0 or not run.is_main:
            return
        try:
            visuals = self.socket.visualize(batch.inputs, batch.preds, batch.targets)
        except ScorchError as exc:
            log.warning("%s (epoch %d: no visualisation)", exc, run.epoch)
            return
        if self.files is not None:
            try:
                self.files.write(run.epoch, run.step, visuals)
            except (OSError, ValueError, TypeError) as exc:  # a full disk; an image Pillow cannot encode
                log.warning("%s: Socket.visualize's files for epoch %d could not be written (%s: %s)",
                            self.socket.path, run.epoch, type(exc).__name__, exc)
        try:
            self.loggers.log_visuals(run.epoch, visuals)
        except ScorchError as exc:
            log.warning("%s (epoch %d: no visualisation)", exc, run.epoch)
        except (ValueError, TypeError, RuntimeError) as exc:  # tensorboardX refused an image or a text
            log.warning("%s: Socket.visualize's images and texts could not be written to TensorBoard (%s: %s); "
                        "epoch %d has none", self.socket.path, type(exc).__name__, exc, run.epoch)
