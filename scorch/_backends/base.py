"""The interface every backend offers, and the single-process backend."""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager as ContextManager
from typing import Any

import torch

from ..launch import LaunchInfo


class Backend:
    """Single process: every collective is the identity. Backends for several ranks subclass it."""

    name = "none"
    reason = ""  # why this backend was chosen, for the start line (distributed.choose_backend)

    def __init__(self, launch: LaunchInfo, device: torch.device):
        self.launch = launch
        self.device = device

    # --- rank facts -------------------------------------------------------
    @property
    def rank(self) -> int:
        return self.launch.rank

    @property
    def world_size(self) -> int:
        return self.launch.world_size

    @property
    def local_rank(self) -> int:
        return self.launch.local_rank

    # --- collectives: every rank must call these, in the same order --------
    def barrier(self) -> None:
        pass

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        return obj

    def all_gather_object(self, obj: Any) -> list[Any]:
        return [obj]

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
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
                if self.rank == dst:
                    sink(src, rows)  # type: ignore[arg-type]
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

    # --- training hooks ---------------------------------------------------
    def wrap_model(self, model: torch.nn.Module, find_unused: bool = False) -> torch.nn.Module:
        """The model to train with; ``find_unused``: some trainable parameters may get no gradient."""
        return model

    def wrap_optimizer(
        self,
        optimizer: torch.optim.Optimizer,
        named_parameters: Iterable[tuple[str, torch.nn.Parameter]],
        accumulate: int,
    ) -> torch.optim.Optimizer:
        return optimizer

    def broadcast_training_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Make every rank start from rank 0's weights and optimizer state."""

    def no_sync(self, model: torch.nn.Module) -> ContextManager[Any]:
        """Context for accumulation micro-steps whose gradients need no exchange yet."""
        return contextlib.nullcontext()

    def zero_grad(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)

    def optimizer_step(
        self,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        before_step: Callable[[], bool],
    ) -> None:
        """Unscale, run ``before_step`` (clipping; False skips this step), step. Gradients are
        already averaged, so every rank makes the same decision."""
        scaler.unscale_(optimizer)
        if before_step():
            scaler.step(optimizer)
        scaler.update()

    def shutdown(self) -> None:
        pass

    def all_reduce_async(self, tensor: torch.Tensor, op: str = "sum") -> Callable[[], torch.Tensor]:
        """Start an all-reduce of a small CPU tensor; the returned function waits for it and
        returns the result. Every rank must start the same ones in the same order."""
        result = self.all_reduce(tensor, op)
        return lambda: result

    def broadcast_buffers(self, model: torch.nn.Module) -> None:
        """Give every rank rank 0's buffers (e.g. BatchNorm's running statistics)."""

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
