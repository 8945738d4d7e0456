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
- :class:`~scorch.strategies.fsdp.FSDP` and :class:`~scorch.strategies.fsdp.HSDP`: FSDP2's
  ``fully_shard`` over all ranks, or within each node and replicated over the nodes.

Adding a strategy is one new module here, one entry in :func:`choose`, and its tests.
"""
from __future__ import annotations

import logging
from typing import Any

import torch

from ..distributed.backends.base import Backend
from ..errors import ScorchError
from .base import Single, Strategy
from .ddp import DDP
from .horovod import Horovod

log = logging.getLogger(__name__)
SHARDED = ("fsdp", "hsdp")
CHOICES = ("auto", "ddp", *SHARDED)


def choose(backend: Backend, requested: str = "auto", units: list[torch.nn.Module] | None = None, bf16: bool = False,
           activation_checkpointing: bool = False) -> Strategy:
    """The strategy of a run on ``backend``: ``auto`` (and ``ddp``) keep every weight on every rank
    (DDP on torch.distributed, Horovod's optimizer on Horovod); ``fsdp``/``hsdp`` shard. One rank
    has nothing to shard over: the Network trains as it is (and reads sharded checkpoints whole)."""
    if requested in SHARDED and backend.name == "horovod":
        raise ScorchError(f"--strategy {requested} shards over torch.distributed, which Horovod is not: pass "
                          "--backend torch (or leave --backend at auto)")
    if backend.world_size == 1:
        if requested in SHARDED:
            log.info("--strategy %s on one rank: nothing to shard over, the Network trains whole", requested)
        return Single(backend)
    if requested in SHARDED:
        from .fsdp import FSDP, HSDP  # torch.distributed.fsdp: only where a run shards
        kind: Any = FSDP if requested == "fsdp" else HSDP
        return kind(backend, units, bf16, activation_checkpointing)
    if backend.name == "horovod":
        return Horovod(backend)
    return DDP(backend)


def for_backend(backend: Backend) -> Strategy:
    """The default strategy of a run on ``backend``."""
    return choose(backend)


__all__ = ["CHOICES", "DDP", "SHARDED", "Horovod", "Single", "Strategy", "choose", "for_backend"]
