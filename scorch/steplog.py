"""``--log-every N``: the training loss, learning rate and metrics of every N-th optimizer step, to
TensorBoard (x axis: the global step).

Only the logged steps cost anything: their micro-batches' loss and metrics are summed on the device
like the epoch's (:class:`~scorch.state.MetricTotals`), and after the step one all-reduce over the
ranks (every rank runs every step, so every rank takes part) turns them into the means over exactly
that step's samples; reading that result is the one device sync. Rank 0 writes (the
:class:`~scorch.tb.TensorBoard` object checks the rank itself).
"""
from __future__ import annotations

from typing import Any

import torch

from ._backends.base import Backend
from .state import MetricTotals
from .tb import TensorBoard


class StepLog:
    """Built on every rank. The loop asks :meth:`wants` before a step's micro-batches, :meth:`add`s
    them, and calls :meth:`stepped` after the optimizer step."""

    def __init__(self, every: int, names: list[str], backend: Backend, optimizer: torch.optim.Optimizer,
                 tb: TensorBoard, where: str):
        self.every, self.names, self.backend, self.optimizer, self.tb, self.where = every, names, backend, optimizer, tb, where
        self.totals: MetricTotals | None = None

    def wants(self, step: int) -> bool:
        """Whether optimizer step ``step`` (counted over the whole run, from 1) is logged."""
        return step % self.every == 0

    def add(self, n: int, loss: torch.Tensor, metrics: dict[str, Any]) -> None:
        if self.totals is None:
            self.totals = MetricTotals(self.names, self.backend.device, self.where)
        self.totals.add(n, loss, metrics)

    def stepped(self, step: int) -> None:
        """After a logged step: reduce its sums over the ranks and write them (collective: every rank)."""
        totals = self.totals or MetricTotals(self.names, self.backend.device, self.where)  # all skipped: no values
        self.totals = None
        means = totals.means(self.backend.all_reduce(totals.packed(), "sum"), "train")
        self.tb.log_step(step, {"lr": float(self.optimizer.param_groups[0]["lr"]), **means})
