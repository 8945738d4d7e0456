"""Callbacks: the run's hooks, and scorch's own features built on them.

:mod:`scorch.callbacks.base` has ``Callback`` (the hooks, their order, state in checkpoints).
scorch installs, in firing order: the progress bar (:mod:`.progress`), Socket.visualize
(:mod:`.visualize`), then the model file's ``Socket.callbacks()``, the ``--ema`` moving average
(:mod:`.ema`), the ``--log-every`` step log
(:mod:`.steplog`), early stopping (:mod:`.early_stopping`) and the checkpoint policy
(:mod:`.checkpointing`).
"""
from __future__ import annotations

from .base import BatchEnd, Callback, Callbacks

__all__ = ["BatchEnd", "Callback", "Callbacks"]
