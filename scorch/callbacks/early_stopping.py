"""``--patience N``: stop when the monitored value has not improved for N epochs (N validations
with ``--val-every``)."""
from __future__ import annotations

import logging
from typing import Any

from .base import Callback

log = logging.getLogger(__name__)


class EarlyStopping(Callback):
    """Reads the run's record of the monitored value (``run.loop``: best, epochs without improvement,
    saved in every checkpoint), so it needs no state of its own; every rank decides alike."""

    name = "early_stopping"

    def __init__(self, patience: int, unit: str = "epochs"):
        self.patience, self.unit = patience, unit

    def on_validation_end(self, run: Any, metrics: dict[str, float]) -> None:
        """After the validation is recorded against the best (run.loop), before its checkpoint."""
        loop = run.loop
        if loop.bad_epochs >= self.patience:
            best = f"{loop.best:.6g}" if loop.best is not None else "none"
            at = f"epoch {loop.best_epoch}" + (f", step {loop.best_step}" if self.unit == "validations" else "")
            run.stop(f"early stop: {run.monitor} has not improved for {loop.bad_epochs} {self.unit} (best {best} at {at})")
