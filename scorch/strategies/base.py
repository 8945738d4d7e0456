"""The interface of every strategy, and the single-process one."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager as ContextManager
from typing import Any

import torch

from ..distributed.backends.base import Backend
from ..rundir import shards
from . import optim_state

OptimizerFactory = Callable[[], torch.optim.Optimizer]


class Strategy:
    """How the model is placed on the ranks. Every method is called on every rank, at the same
    points, so an implementation may use collectives in any of them."""

    name = "single"
    sharded = False  # whether the checkpoint is a directory of every rank's shards (scorch.rundir.shards)

    def __init__(self, backend: Backend):
        self.backend = backend
        self.network: torch.nn.Module | None = None  # the Network placed by setup()

    # --- setup ------------------------------------------------------------
    def setup(self, network: torch.nn.Module, make_optimizer: OptimizerFactory,
              named_parameters: Callable[[], Iterable[tuple[str, torch.nn.Parameter]]], accumulate: int,
              find_unused: bool = False) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        """``(model, optimizer)``: the model to train with (the Network wrapped as this strategy
        needs), then the optimizer, built by ``make_optimizer`` over the wrapped model's
        parameters (``named_parameters``: the trainable ones, asked after the wrap) and wrapped
        in turn where the strategy needs it. ``accumulate``: micro-batches per optimizer step;
        ``find_unused``: some trainable parameters may get no gradient in a step."""
        model = self.wrap_model(network, find_unused)
        self.network = network
        return model, self.wrap_optimizer(make_optimizer(), named_parameters(), accumulate)

    def wrap_model(self, network: torch.nn.Module, find_unused: bool) -> torch.nn.Module:
        return network

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer, named_parameters: Iterable[tuple[str, torch.nn.Parameter]],
                       accumulate: int) -> torch.optim.Optimizer:
        return optimizer

    def broadcast_training_state(self, network: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Make every rank start from rank 0's weights and optimizer state (after a resume)."""

    # --- one training step -----------------------------------------------
    def no_sync(self, model: torch.nn.Module) -> ContextManager[Any]:
        """Context for an accumulation window's earlier micro-batches, whose gradients need no
        exchange yet."""
        return contextlib.nullcontext()

    def zero_grad(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)

    def optimizer_step(self, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                       before_step: Callable[[], bool]) -> None:
        """Unscale, run ``before_step`` (clipping, the non-finite check; False skips this step),
        step. Gradients are averaged over the ranks already, so every rank decides alike."""
        scaler.unscale_(optimizer)
        if before_step():
            scaler.step(optimizer)
        scaler.update()

    def clip_grad_norm(self, parameters: list[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
        """Clip the gradients to ``max_norm`` by their global norm (over every rank's share of
        them, where a strategy shards them); returns that norm before clipping."""
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm)

    def grad_norm(self, parameters: list[torch.nn.Parameter]) -> torch.Tensor:
        """The global norm of the gradients (0 without any)."""
        grads = [p.grad for p in parameters if p.grad is not None]
        return torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())

    # --- evaluation --------------------------------------------------------
    def eval_model(self, network: torch.nn.Module) -> torch.nn.Module:
        """The module validation runs (the unwrapped Network: a DDP forward would issue
        collectives, and ranks may hold different numbers of validation batches). Where the
        forward itself is collective (``sharded``), the loop keeps every rank in step."""
        return network

    def broadcast_buffers(self, network: torch.nn.Module) -> None:
        """Give every rank rank 0's buffers (BatchNorm's running statistics) before validation."""

    # --- checkpoints: called on every rank, rank 0 writes ------------------
    def model_state_dict(self, network: torch.nn.Module) -> dict[str, torch.Tensor] | None:
        """The Network's full state on rank 0 (on the CPU); other ranks may return None (a
        sharded strategy gathers here: every rank takes part)."""
        if self.backend.rank != 0:
            return None
        return {k: v.detach().cpu() for k, v in network.state_dict().items()}

    def load_model_state_dict(self, network: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
        """Load a full state (every rank has read the same checkpoint)."""
        network.load_state_dict(state)

    def optimizer_state_dict(self, optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
        return optimizer.state_dict() if self.backend.rank == 0 else None

    def load_optimizer_state_dict(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        """Load a full state: numbered as ``optimizer.state_dict()`` numbers it, or keyed by parameter
        name (a sharded checkpoint's)."""
        if optim_state.is_by_name(state):
            assert self.network is not None, "setup() first"
            state = optim_state.by_number(state, optim_state.parameter_names(self.network, optimizer))
        optimizer.load_state_dict(state)

    # --- sharded checkpoints (a directory of every rank's shards) -------------
    def save_sharded(self, network: torch.nn.Module, optimizer: torch.optim.Optimizer, path: Any) -> list[str]:
        """Every rank writes its shards of the model's and optimizer's state into ``path``; returns
        the names of weights that are not finite (then nothing is written). Only where ``sharded``."""
        raise NotImplementedError(f"the {self.name} strategy writes one-file checkpoints")

    def load_sharded(self, network: torch.nn.Module, optimizer: torch.optim.Optimizer, path: Any) -> None:
        """Load the model's and optimizer's state from the sharded checkpoint ``path`` (written on any
        number of ranks). A strategy that does not shard reads it whole on every rank."""
        whole = shards.read_whole(path)
        self.load_model_state_dict(network, whole["model"])
        if whole.get("optimizer") is not None:
            self.load_optimizer_state_dict(optimizer, whole["optimizer"])


class Single(Strategy):
    """One process: the Network trains as it is."""
