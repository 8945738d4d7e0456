"""Whole-split outputs: every sample's outputs gathered to rank 0 in dataset order, for
``Socket.split_metrics`` (during training and in ``scorch-test``) and for the predictions of
``scorch-test``.

The gather: each rank holds an unpadded shard of the split (:class:`scorch.data.ShardSampler`:
rank r has the samples r, r + W, ...), keeps its outputs on the CPU, and hands them to rank 0
one rank at a time (:meth:`scorch.distributed` backends' ``gather_rows``), which puts each row
where its sample belongs. Rank 0 holds one copy of the split's outputs, the other ranks their own
shard; rank 0 computes and every rank gets the results by broadcast, so every rank's row is the
same. Every rank calls every collective here, in the same order.
"""
from __future__ import annotations

import logging

import torch

from .. import distributed as dist
from ..contract.userfiles import Socket
from ..distributed.backends.base import Backend
from ..errors import ScorchError

log = logging.getLogger(__name__)

LOW_PRECISION = (torch.float16, torch.bfloat16)


class SplitOutputs:
    """This rank's outputs (and targets) of one evaluation, batch by batch, on the CPU (half
    precision as float32, so that numpy takes them); :meth:`gather` puts the whole split on rank 0."""

    def __init__(self, targets: bool):
        self.keep_targets = targets
        self.batches: list[list[torch.Tensor]] = []  # per batch: its outputs, then its targets
        self.n_preds = 0
        self.preds: list[torch.Tensor] = []  # after gather, on rank 0: one tensor per output, a row per sample
        self.targets: list[torch.Tensor] = []

    def add(self, preds: list[torch.Tensor], targets: list[torch.Tensor]) -> None:
        self.n_preds = len(preds)
        self.batches.append(_host([*preds, *(targets if self.keep_targets else [])]))

    def gather(self, backend: Backend, indices: list[int], length: int, where: str) -> None:
        """Rank 0 ends with every sample's rows in dataset order; ``indices``: this rank's samples,
        in the order its batches came. Problems (shapes that do not join) raise on every rank alike."""
        local, problem = self._joined(len(indices), where)
        metas = backend.all_gather_object(problem or (self.n_preds, [(tuple(t.shape[1:]), t.dtype) for t in local]))
        problem = next((m for m in metas if isinstance(m, str)), None)
        if problem is not None:
            raise ScorchError(problem)
        n_preds, shapes = next(m for m in metas if m[1])  # rank 0 holds sample 0
        other = next((m[1] for m in metas if m[1] and m[1] != shapes), None)
        if other is not None:
            raise ScorchError(f"{where}: the ranks' outputs have shapes (beyond the sample dimension) and dtypes "
                              f"{shapes} and {other}; expected one shape and dtype per position")
        shards: list[torch.Tensor] = []  # rank 0: each rank's sample indices, in rank order
        backend.gather_rows(torch.tensor(indices, dtype=torch.int64) if indices else None, lambda _, t: shards.append(t))
        if backend.rank == 0:
            seen = torch.zeros(length, dtype=torch.int64).index_add_(0, torch.cat(shards), torch.ones(length, dtype=torch.int64))
            assert bool((seen == 1).all()), "the ranks' shards do not cover the split once"
        full = [self._place(backend, local[i] if local else None, shards, length, shape, dtype)
                for i, (shape, dtype) in enumerate(shapes)]
        self.batches = []
        if backend.rank == 0:
            self.preds, self.targets = full[:n_preds], full[n_preds:]

    @staticmethod
    def _place(backend: Backend, rows: torch.Tensor | None, shards: list[torch.Tensor], length: int,
               shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """Every rank's ``rows`` at their samples' positions in one tensor on rank 0."""
        out = torch.empty((length, *shape), dtype=dtype) if backend.rank == 0 else torch.empty(0)
        order = iter(shards)
        backend.gather_rows(rows, lambda _, t: out.index_copy_(0, next(order), t))
        return out

    def joined(self, count: int, where: str) -> list[torch.Tensor]:
        """This rank's batches joined per position: its outputs, then its targets."""
        joined, problem = self._joined(count, where)
        if problem is not None:
            raise ScorchError(problem)
        return joined

    def _joined(self, count: int, where: str) -> tuple[list[torch.Tensor], str | None]:
        """This rank's batches joined per position (outputs, then targets), or why they cannot be."""
        if not self.batches:
            return [], None
        joined = []
        for i in range(len(self.batches[0])):
            what = f"Network.forward's output {i}" if i < self.n_preds else f"DataSet target {i - self.n_preds}"
            try:
                tensor = torch.cat([batch[i] for batch in self.batches])
            except (RuntimeError, IndexError) as exc:
                return [], (f"{where}: {what} cannot be joined over the split's batches ({str(exc).splitlines()[0]}); "
                            "expected one shape per position, the samples along the first dimension")
            if tensor.shape[0] != count:
                return [], (f"{where}: {what} has {tensor.shape[0]} rows for {count} samples; expected one row per "
                            "sample (the first dimension is the batch)")
            joined.append(tensor)
        return joined, None


def _host(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    out = []
    for t in tensors:
        t = t.detach().cpu()
        out.append(t.float() if t.dtype in LOW_PRECISION else t)
    return out


def split_results(backend: Backend, socket: Socket, outputs: SplitOutputs, prefix: str,
                  metric_names: list[str]) -> dict[str, float]:
    """``prefix/NAME`` for each value of Socket.split_metrics on the whole split (computed on rank 0)."""

    def compute() -> dict[str, float]:
        values = socket.split_metrics(outputs.preds, outputs.targets)
        clash = next((name for name in values if name in metric_names), None)
        if clash is not None:
            raise ScorchError(f"{socket.path}: Socket.split_metrics returned {clash!r}, which Socket.metrics returns "
                              f"too; expected names of their own (both are columns {prefix}/NAME)")
        return values

    return {f"{prefix}/{name}": value for name, value in dist.decide(compute).items()}
