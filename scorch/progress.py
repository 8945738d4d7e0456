"""A tqdm bar on rank 0 only, refreshed at most twice a second (no per-step sync)."""
from __future__ import annotations

import time
from typing import Any

import torch
from tqdm import tqdm


class Progress:
    def __init__(self, enabled: bool, total: int, desc: str, interval: float = 0.5):
        self.bar = tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True, mininterval=interval)
        self.enabled = enabled
        self.interval = interval
        self._next = time.monotonic() + interval

    def step(self, loss: torch.Tensor | None = None) -> None:
        if not self.enabled:
            return
        self.bar.update(1)
        now = time.monotonic()
        if loss is not None and now >= self._next:
            self._next = now + self.interval
            self.bar.set_postfix(loss=f"{loss.item():.4g}", refresh=False)

    def close(self, **postfix: Any) -> None:
        self.bar.close()
