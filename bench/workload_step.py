"""MODEL_FILE of the bench's ``scorch-step`` variant: bench/workload.py's Network (the same
stamps), trained by a custom step (Socket.optimizers + Socket.training_step) that does what
scorch's standard loop does: one Adam over the trainable modules at the bench's rate (Work.lr's
default, 1e-3: a custom step's optimizers are the Socket's, --lr does not reach them), one
forward, the criterion, backward, update. The difference in time per step to the ``scorch``
variant is the custom step's own cost (its all-reduce is skipped on one rank, as DDP's is)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bench.workload import Network, accuracy, criterion

__all__ = ["Network", "Socket"]


class Socket:
    def __init__(self, model: Network):
        self.model = model
        self.trainable_modules = nn.ModuleList([model.body])

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": torch.optim.Adam(self.trainable_modules.parameters(), lr=1e-3)}

    def training_step(self, batch: Any, step: Any) -> list[torch.Tensor]:
        inputs, targets = batch
        preds = self.model(inputs)
        step.backward(criterion(preds, targets), "model")
        step.update("model")
        return preds

    def criterion(self, preds: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
        return criterion(preds, targets)

    def metrics(self, preds: list[torch.Tensor], targets: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"accuracy": accuracy(preds, targets)}
