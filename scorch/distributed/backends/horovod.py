"""Horovod's collectives (the Horovod strategy wraps the optimizer in hvd.DistributedOptimizer)."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import torch

from ...errors import ScorchError
from ...launch import LaunchInfo
from .base import Backend

log = logging.getLogger(__name__)

RELEASE_TIMEOUT_S = 5.0  # how long a rank that failed first waits for Horovod to shut down
INSTALL_HINT = "make setup-horovod (or: bash scripts/setup_horovod.sh)"


def import_horovod() -> Any:
    """Import horovod.torch, or explain in one line why it cannot be used."""
    try:
        import horovod.torch as hvd
    except ImportError as exc:
        raise ScorchError(
            f"--backend horovod: Horovod with PyTorch support is not installed ({exc}); install it with: {INSTALL_HINT}"
        ) from exc
    return hvd


class HorovodBackend(Backend):
    name = "horovod"

    def __init__(self, launch: LaunchInfo, device: torch.device):
        hvd = import_horovod()
        hvd.init()
        if not (hvd.mpi_built() or hvd.gloo_built()):
            raise ScorchError(f"--backend horovod: this Horovod was built without MPI or Gloo; rebuild it with: {INSTALL_HINT}")
        if device.type == "cuda" and not hvd.nccl_built():
            log.warning("Horovod was built without NCCL: GPU gradients go through MPI/Gloo")
        self.hvd = hvd
        self._calls = 0
        super().__init__(
            LaunchInfo(launch.launcher, hvd.rank(), hvd.size(), hvd.local_rank(), hvd.local_size(), launch.node_rank), device
        )

    def barrier(self) -> None:
        self.hvd.barrier()

    def _name(self, what: str) -> str:
        # Horovod pairs collectives by name, and by default names object collectives after
        # type(obj): rank 0 sending a dict while the others pass None would never match.
        self._calls += 1
        return f"scorch.{what}.{self._calls}"

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        return self.hvd.broadcast_object(obj, root_rank=src, name=self._name("broadcast"))

    def all_gather_object(self, obj: Any) -> list[Any]:
        return list(self.hvd.allgather_object(obj, name=self._name("allgather")))

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        ops = {"sum": self.hvd.Sum, "max": self.hvd.Max, "min": self.hvd.Min}
        return self.hvd.allreduce_(tensor, op=ops[op])

    def broadcast_tensor(self, tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
        return self.hvd.broadcast_(tensor, root_rank=src, name=self._name("tensor"))

    def _pass_bytes(self, data: torch.Tensor | None, nbytes: int, src: int, dst: int) -> torch.Tensor | None:
        # Horovod has no point-to-point: a broadcast from src, which every rank other than dst drops.
        buffer = data if self.rank == src else torch.empty(nbytes, dtype=torch.uint8)
        received = self.hvd.broadcast(buffer, root_rank=src, name=self._name("rows"))
        return received if self.rank == dst else None

    def all_reduce_async(self, tensor: torch.Tensor, op: str = "sum") -> Callable[[], torch.Tensor]:
        ops = {"sum": self.hvd.Sum, "max": self.hvd.Max, "min": self.hvd.Min}
        handle = self.hvd.allreduce_async_(tensor, op=ops[op], name=self._name("flag"))
        return lambda: self.hvd.synchronize(handle)

    def first_to_fail(self, exc: BaseException) -> bool:
        # No store to post in: a collective that Horovod shut down broke because another rank failed
        # (Horovod says so), and that rank prints its error.
        return self.broken_collective(exc) is None

    def broken_collective(self, exc: BaseException) -> str | None:
        text = str(exc).strip()
        if type(exc).__name__ == "HorovodInternalError" or "Horovod has been shut down" in text:
            return text.splitlines()[0] if text else type(exc).__name__
        return None

    def release_peers(self) -> None:
        # Shutting Horovod down makes the peers' pending collectives raise "Horovod has been shut
        # down" at its next cycle. In a thread, given a few seconds: it could wait for a peer.
        thread = threading.Thread(target=self.hvd.shutdown, daemon=True)
        thread.start()
        thread.join(RELEASE_TIMEOUT_S)

    def shutdown(self) -> None:
        self.hvd.shutdown()
