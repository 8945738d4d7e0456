"""``--patience N``: stop when the monitored value has not improved for N epochs."""
from __future__ import annotations

import logging
from typing import Any

from .base import Callback

log = logging.getLogger(__name__)


class EarlyStopping(Callback):
    """Reads the run's record of the monitored value (``run.loop``: best, epochs without improvement,
    saved in every checkpoint), so it needs no state of its own; every rank decides alike."""

    name = "early_stopping"

    def __init__(self, patience: int):
        self.patience = patience

    def on_epoch_end(self, run: Any, row: dict[str, Any]) -> None:
        loop = run.loop
        if loop.bad_epochs >= self.patience:
            best = f"{loop.best:.6g}" if loop.best is not None else "none"
            run.stop(f"early stop: {run.monitor} has not improved for {loop.bad_epochs} epochs (best {best} at epoch "
                     f"{loop.best_epoch})")
