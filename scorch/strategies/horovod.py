"""Horovod's DistributedOptimizer: gradients averaged by hooks on the trainable parameters."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from ..distributed.backends.horovod import HorovodBackend
from .base import Strategy


class Horovod(Strategy):
    """Every rank holds the whole model; ``hvd.DistributedOptimizer`` over the trainable parameters
    averages their gradients every ``accumulate`` backward passes (its ``backward_passes_per_step``,
    so an accumulation window needs no ``no_sync``); rank 0's parameters (and, after a resume, its
    optimizer state) are broadcast before training."""

    name = "horovod"

    def __init__(self, backend: Any):
        assert isinstance(backend, HorovodBackend), "the Horovod strategy runs on the Horovod backend"
        super().__init__(backend)
        self.hvd = backend.hvd

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer, named_parameters: Iterable[tuple[str, torch.nn.Parameter]],
                       accumulate: int) -> torch.optim.Optimizer:
        # Wrapped before anything holds the optimizer: the wrapper is a new optimizer built from the
        # param_groups, so state loaded into (or a scheduler attached to) the original would be lost.
        wrapped: torch.optim.Optimizer = self.hvd.DistributedOptimizer(
            optimizer, named_parameters=list(named_parameters), backward_passes_per_step=accumulate, op=self.hvd.Average)
        return wrapped

    def broadcast_training_state(self, network: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.hvd.broadcast_parameters(network.state_dict(), root_rank=0)
        # Not hvd.broadcast_optimizer_state: on an empty state it "initialises" with a zero-gradient
        # step() (advancing Adam's step count), and it turns tensor scalars such as Adam's `step`
        # into numbers. A fresh optimizer is the same on every rank; a loaded one is sent whole.
        if any(optimizer.state.values()):
            state = self.backend.broadcast_object(optimizer.state_dict() if self.backend.rank == 0 else None)
            if self.backend.rank != 0:
                optimizer.load_state_dict(state)

    def zero_grad(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad()  # Horovod's wrapper takes no set_to_none (and sets None already)

    def optimizer_step(self, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                       before_step: Callable[[], bool]) -> None:
        hvd_optimizer: Any = optimizer  # hvd.DistributedOptimizer: synchronize() and skip_synchronize()
        hvd_optimizer.synchronize()
        scaler.unscale_(optimizer)
        if before_step():
            with hvd_optimizer.skip_synchronize():
                scaler.step(optimizer)
        scaler.update()

    def broadcast_buffers(self, network: torch.nn.Module) -> None:
        buffers = list(network.named_buffers())
        if buffers:
            self.hvd.broadcast_parameters(buffers, root_rank=0)
