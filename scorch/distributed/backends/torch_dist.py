"""torch.distributed: gloo on CPU, NCCL on GPU (the DDP strategy places the model on it)."""
from __future__ import annotations

import contextlib
import datetime
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as tdist

from ...launch import LaunchInfo, Rendezvous
from ...launch.rendezvous import join_ranks
from .base import Backend

log = logging.getLogger(__name__)

_OPS = {"sum": tdist.ReduceOp.SUM, "max": tdist.ReduceOp.MAX, "min": tdist.ReduceOp.MIN}
FAILED_KEY = "scorch/failed"
# What gloo and the store say when a peer's connection went away mid-collective.
BROKEN = ("Connection reset by peer", "Connection closed by peer", "gloo/transport", "Connection was likely closed",
          "Broken pipe")


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 goes to /dev/null meanwhile (C++ code writes there directly)."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, launch: LaunchInfo, device: torch.device, where: Rendezvous, timeout_s: float = 1800.0,
                 join_timeout_s: float = 600.0):
        super().__init__(launch, device)
        os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = where.addr, str(where.port)
        backend = "nccl" if device.type == "cuda" else "gloo"
        store = join_ranks(where, launch, join_timeout_s, gloo=backend == "gloo")
        log.debug("init_process_group(%s) rank %d/%d at %s:%s", backend, launch.rank, launch.world_size, where.addr, where.port)
        kwargs: dict[str, Any] = {}
        if device.type == "cuda":
            kwargs["device_id"] = device
        tdist.init_process_group(
            backend,
            store=store,
            rank=launch.rank,
            world_size=launch.world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
            **kwargs,
        )
        # Small CPU flags (stop signals) go through a gloo group of their own: they never queue
        # behind (or hold up) the gradient traffic, and need no device tensor under NCCL.
        self._control = tdist.new_group(backend="gloo")
        self._store = store  # this attempt's keys: where the first rank to fail says so

    def first_to_fail(self, exc: BaseException) -> bool:
        """The first rank to fail posts its rank in the store; a rank that finds another's there, or
        cannot reach the store any more (its host, rank 0 or the launcher's agent, is gone: it
        failed first), was not the first."""
        with _quiet_stderr():  # a store whose host is gone makes torch log a C++ stack on stderr
            try:
                first = self._store.compare_set(FAILED_KEY, "", str(self.rank))
            except RuntimeError:
                return False
        return bytes(first) == str(self.rank).encode()

    def broken_collective(self, exc: BaseException) -> str | None:
        text = str(exc).strip()
        if not isinstance(exc, RuntimeError) or not (isinstance(exc, tdist.DistError) or any(m in text for m in BROKEN)):
            return None
        first = re.sub(r"^\[[^\]]*\]\s*", "", text.splitlines()[0] if text else "")  # "[.../pair.cc:537] "
        return first.split(". This is typically")[0].split(". Did the remote")[0] or type(exc).__name__

    def barrier(self) -> None:
        if self.device.type == "cuda":
            tdist.barrier(device_ids=[self.device.index])
        else:
            tdist.barrier()

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        box = [obj]
        tdist.broadcast_object_list(box, src=src)
        return box[0]

    def all_gather_object(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self.world_size
        tdist.all_gather_object(out, obj)
        return out

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        tdist.all_reduce(tensor, op=_OPS[op])
        return tensor

    def broadcast_tensor(self, tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
        tdist.broadcast(tensor, src=src)
        return tensor

    def _pass_bytes(self, data: torch.Tensor | None, nbytes: int, src: int, dst: int) -> torch.Tensor | None:
        # Point to point over the gloo group of CPU traffic: only src and dst take part.
        if self.rank == src:
            assert data is not None
            tdist.send(data, dst, group=self._control)
            return None
        if self.rank == dst:
            buffer = torch.empty(nbytes, dtype=torch.uint8)
            tdist.recv(buffer, src, group=self._control)
            return buffer
        return None

    def all_reduce_async(self, tensor: torch.Tensor, op: str = "sum") -> Callable[[], torch.Tensor]:
        work = tdist.all_reduce(tensor, op=_OPS[op], group=self._control, async_op=True)

        def result() -> torch.Tensor:
            assert work is not None
            work.wait()
            return tensor

        return result

    def shutdown(self) -> None:
        """Called by every rank after a successful run that goes on in this process (API, tests).
        The barrier keeps one rank from tearing its gloo connections down while a peer's
        connection thread still reads from them (which aborts the peer: "terminate called
        without an active exception")."""
        if tdist.is_initialized():
            self.barrier()
            tdist.destroy_process_group()

    def leave(self) -> None:
        # Only the barrier. Even after one, gloo's C++ teardown racing a peer's aborts that peer
        # now and then (once in CI so far; not reproduced in 225 tries here), so a process that
        # is about to end skips it (distributed.exit_process).
        if tdist.is_initialized():
            self.barrier()
