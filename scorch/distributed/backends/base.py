"""The interface every communication backend offers (collectives and the failure protocol), and the
single-process backend. How the model is placed is a strategy's (:mod:`scorch.strategies`)."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ...launch import LaunchInfo
from ...launch.base import RankFacts


class Backend(RankFacts):
    """Single process: every collective is the identity. Backends for several ranks subclass it."""

    name = "none"
    reason = ""  # why this backend was chosen, for the start line (distributed.choose_backend)
    threads = ""  # the CPU thread count and why, for the start line (distributed.init)

    def __init__(self, launch: LaunchInfo, device: torch.device):
        self.info = self.launch = launch  # the rank facts (RankFacts reads info)
        self.device = device

    # --- collectives: every rank must call these, in the same order --------
    def barrier(self) -> None:
        pass

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        return obj

    def all_gather_object(self, obj: Any) -> list[Any]:
        return [obj]

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        return tensor

    def broadcast_tensor(self, tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
        """Rank ``src``'s ``tensor``, in place on every rank (returned)."""
        return tensor

    def gather_rows(self, rows: torch.Tensor | None, sink: Callable[[int, torch.Tensor], object], dst: int = 0) -> None:
        """Every rank's ``rows`` (a CPU tensor, or None for none) handed to ``sink(rank, rows)`` on rank
        ``dst``, one rank at a time in rank order, so that ``dst`` can put each where it belongs and
        drop it before the next arrives; other ranks hold at most one rank's rows at a time."""
        metas = self.all_gather_object(None if rows is None else (tuple(rows.shape), rows.dtype))
        for src, meta in enumerate(metas):
            if meta is None:
                continue
            if src == dst:
                if self.rank == dst and rows is not None:  # its meta is not None: it has rows
                    sink(src, rows)
                continue
            shape, dtype = meta
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes == 0:  # nothing to send: an empty tensor of that shape
                if self.rank == dst:
                    sink(src, torch.empty(shape, dtype=dtype))
                continue
            mine = _as_bytes(rows) if self.rank == src and rows is not None else None
            received = self._pass_bytes(mine, nbytes, src, dst)
            if received is not None:
                sink(src, received.view(dtype).reshape(shape))

    def _pass_bytes(self, data: torch.Tensor | None, nbytes: int, src: int, dst: int) -> torch.Tensor | None:
        """Rank ``src``'s ``data`` (1-D uint8) on rank ``dst``; every rank calls it."""
        raise NotImplementedError("a single process has nobody to pass bytes to")

    def shutdown(self) -> None:
        pass

    def all_reduce_async(self, tensor: torch.Tensor, op: str = "sum") -> Callable[[], torch.Tensor]:
        """Start an all-reduce of a small CPU tensor; the returned function waits for it and
        returns the result. Every rank must start the same ones in the same order."""
        result = self.all_reduce(tensor, op)
        return lambda: result

    # --- when this rank's command failed -----------------------------------
    def first_to_fail(self, exc: BaseException) -> bool:
        """Whether this rank is the first of its job to fail (it then prints the job's error); tells the
        other ranks so where the backend can. A single process is always the first."""
        return True

    def release_peers(self) -> None:
        """This rank failed first while its peers wait in a collective: make that collective fail
        now, so that rank 0 puts an ``--overwrite``'d run back before the launcher ends the job.
        Nothing to do where the peers learn it from this rank's exit (gloo: its connections close)."""

    def broken_collective(self, exc: BaseException) -> str | None:
        """The reason, in a few words, when ``exc`` says a collective broke (a peer is gone), else None."""
        return None

    def leave(self) -> None:
        """Called by every rank of a successful run whose process ends right after: wait for the
        other ranks and stop background work; the rest of the teardown is the process exit's."""
        self.shutdown()


def _as_bytes(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor's memory as a flat uint8 tensor: any dtype travels as bytes."""
    return tensor.contiguous().reshape(-1).view(torch.uint8)
