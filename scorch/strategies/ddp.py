"""DistributedDataParallel over torch.distributed (gloo on CPU, NCCL on GPU)."""
from __future__ import annotations

from contextlib import AbstractContextManager as ContextManager
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from .base import Strategy


class DDP(Strategy):
    """Every rank holds the whole model; DDP averages the gradients during the backward pass of
    each window's last micro-batch and broadcasts rank 0's parameters and buffers when it wraps."""

    name = "ddp"

    def wrap_model(self, network: torch.nn.Module, find_unused: bool) -> torch.nn.Module:
        device = self.backend.device
        device_ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(network, device_ids=device_ids, find_unused_parameters=find_unused)

    def no_sync(self, model: torch.nn.Module) -> ContextManager[Any]:
        assert isinstance(model, DistributedDataParallel), "DDP.no_sync takes the model DDP.setup returned"
        return model.no_sync()

    def broadcast_buffers(self, network: torch.nn.Module) -> None:
        for buffer in network.buffers():
            self.backend.broadcast_tensor(buffer)
