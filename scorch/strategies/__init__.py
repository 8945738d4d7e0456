"""Parallel strategies: one class per way of placing the model on the ranks.

A strategy sets the model and its optimizer up together (the model is wrapped first, then the
optimizer is built over the wrapped model's parameters), and owns everything that depends on the
placement: gradient synchronisation (``no_sync`` of an accumulation window), the optimizer step,
clipping by the global gradient norm, and the model's and optimizer's state for a checkpoint
(called on every rank; rank 0 writes). The communication backend (:mod:`scorch.distributed.backends`) keeps
the collectives and the failure protocol only.

- :class:`~scorch.strategies.base.Single`: one process, the Network as it is.
- :class:`~scorch.strategies.ddp.DDP`: torch.distributed's DistributedDataParallel.
- :class:`~scorch.strategies.horovod.Horovod`: Horovod's DistributedOptimizer.

Adding a strategy is one new module here, one entry in :func:`for_backend`, and its tests.
"""
from __future__ import annotations

from ..distributed.backends.base import Backend
from .base import Single, Strategy
from .ddp import DDP
from .horovod import Horovod


def for_backend(backend: Backend) -> Strategy:
    """The strategy of a run on ``backend`` (the default placement of each backend)."""
    if backend.world_size == 1:
        return Single(backend)
    if backend.name == "horovod":
        return Horovod(backend)
    return DDP(backend)


__all__ = ["DDP", "Horovod", "Single", "Strategy", "for_backend"]
