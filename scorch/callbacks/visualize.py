"""Socket.visualize on the main rank's first validation batch of each epoch, to the loggers
(TensorBoard: images and texts at the epoch). Once the pre-flight call has passed (an error there
stops the run), an error is one warning line naming the method: a picture does not end a run."""
from __future__ import annotations

import logging
from typing import Any

from ..errors import ScorchError
from .base import BatchEnd, Callback

log = logging.getLogger(__name__)


class Visualize(Callback):
    name = "visualize"

    def __init__(self, socket: Any, loggers: Any):
        self.socket, self.loggers = socket, loggers

    def on_validation_batch_end(self, run: Any, batch: BatchEnd) -> None:
        if batch.index != 0 or not run.is_main:
            return
        try:
            visuals = self.socket.visualize(batch.inputs, batch.preds, batch.targets)
            self.loggers.log_visuals(run.epoch, visuals)
        except ScorchError as exc:
            log.warning("%s (epoch %d: no visualisation)", exc, run.epoch)
        except (ValueError, TypeError, RuntimeError) as exc:  # tensorboardX refused an image or a text
            log.warning("%s: Socket.visualize's images and texts could not be written to TensorBoard (%s: %s); "
                        "epoch %d has none", self.socket.path, type(exc).__name__, exc, run.epoch)
