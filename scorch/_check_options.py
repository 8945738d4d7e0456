"""scorch-check's options, apart from the checks themselves so that ``scorch-check --help`` does not
import torch."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .config import SEED_LIMIT
from .errors import ScorchError


@dataclass(frozen=True)
class CheckOptions:
    """How hard to look. Errors name the scorch-check flag to change."""

    batch_size: int = 8  # the one batch used by the model, training and checkpoint checks
    sample: int = 16  # items per mode compared by dataset.consistency
    steps: int = 200  # optimizer steps of the overfit check
    lr: float = 3e-3  # Adam's learning rate, unless Socket.optimizer is defined (higher than --lr's default: one batch)
    min_drop: float = 0.8  # the overfit check wants the loss to fall by at least this fraction
    frozen_steps: int = 3  # optimizer steps after which frozen parameters must be unchanged
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("batch_size", "sample", "steps", "frozen_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ScorchError(f"--{name.replace('_', '-')}: expected a whole number >= 1, got {value!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ScorchError(f"--lr: expected a finite number > 0, got {self.lr!r}")
        if not 0 < self.min_drop < 1:
            raise ScorchError(f"--min-drop: expected a fraction between 0 and 1, got {self.min_drop!r}")
        if not 0 <= self.seed < SEED_LIMIT:
            raise ScorchError(f"--seed: expected a whole number >= 0 and < 2**63, got {self.seed!r}")
