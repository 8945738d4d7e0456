"""Which metric a run monitors when --monitor is not given (for best.pt, early stopping and the scheduler).

One rule for scorch-train (:func:`scorch.training.build.resolve_monitor`), scorch-report and the sweep summary,
so that they name the same best epoch; which way is better is :func:`scorch.config.monitor_direction`.
"""
from __future__ import annotations

from collections.abc import Collection


def default_monitor(metrics: Collection[str], has_valid: bool) -> str:
    """The monitor when --monitor is not given: ``valid/main`` when ``metrics`` (``split/NAME``)
    has it (a model file with a metric ``main``: the original scorch's convention, it drives the best
    model and the scheduler), else ``valid/loss``; ``train/...`` without a valid split."""
    split = "valid" if has_valid else "train"
    return f"{split}/main" if f"{split}/main" in metrics else f"{split}/loss"

