"""``--log-every N``: the training loss, learning rate, metrics and ``run.log`` scalars of every N-th
optimizer step, to the loggers' ``log_step`` (TensorBoard: ``steps/``, x axis: the global step).

Only the logged steps cost anything: their micro-batches' loss and metrics are summed on the device
like the epoch's (:class:`~scorch.training.state.MetricTotals`), and after the step one all-reduce over the
ranks (every rank runs every step, so every rank takes part) turns them into the means over exactly
that step's samples; reading that result is the one device sync. The main rank writes (the
loggers check the rank themselves).
"""
from __future__ import annotations

from typing import Any

from ..training.state import MetricTotals
from .base import BatchEnd, Callback


class StepLog(Callback):
    """Fires after the model file's callbacks, so a value they log in ``on_step_end`` is in its step."""

    name = "step_log"

    def __init__(self, every: int, names: list[str], loggers: Any, where: str):
        self.every, self.names, self.loggers, self.where = every, names, loggers, where
        self.totals: MetricTotals | None = None
        self.logged = False

    def wants(self, step: int) -> bool:
        """Whether optimizer step ``step`` (counted over the whole run, from 1) is logged."""
        return step % self.every == 0

    def _watch(self, run: Any) -> None:
        self.logged = self.wants(run.step + 1)
        self.totals = None
        if self.logged:
            run.scalars.watch_step()

    def on_train_epoch_start(self, run: Any) -> None:
        self._watch(run)

    def on_train_batch_end(self, run: Any, batch: BatchEnd) -> None:
        if not self.logged or batch.metrics is None:
            return
        if self.totals is None:
            self.totals = MetricTotals(self.names, batch.loss.device, self.where)
        self.totals.add(batch.samples, batch.loss, batch.metrics)

    def on_step_end(self, run: Any) -> None:
        """After a logged step: reduce its sums over the ranks and write them (collective: every rank)."""
        if self.logged:
            backend = run.backend
            totals = self.totals or MetricTotals(self.names, backend.device, self.where)  # all skipped: no values
            means = totals.means(backend.all_reduce(totals.packed(), "sum"), "train")
            scalars = run.scalars.step_means(backend)
            self.loggers.log_step(run.step, {"lr": float(run.optimizer.param_groups[0]["lr"]), **means, **scalars})
        self._watch(run)
