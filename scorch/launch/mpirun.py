"""Open MPI's mpirun (and MPICH/Hydra's PMI variables)."""
from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, cast

from ..errors import DistributedError
from .base import LaunchEnvironment, LaunchInfo, Rendezvous, env_int, free_port
from .network import own_address


class MpirunEnvironment(LaunchEnvironment):
    name = "mpirun"

    @classmethod
    def detect(cls, env: Mapping[str, str]) -> bool:
        return "OMPI_COMM_WORLD_SIZE" in env or "PMI_SIZE" in env

    @classmethod
    def read(cls, env: Mapping[str, str]) -> LaunchInfo:
        return LaunchInfo(
            cls.name,
            env_int(env, "OMPI_COMM_WORLD_RANK", "PMI_RANK") or 0,
            env_int(env, "OMPI_COMM_WORLD_SIZE", "PMI_SIZE") or 1,
            env_int(env, "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID") or 0,
            env_int(env, "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS") or 1,
        )

    def rendezvous(self) -> Rendezvous:
        """Rank 0 picks its address (127.0.0.1 when every rank is on its node) and a free port,
        unless MASTER_ADDR/MASTER_PORT say, and tells the others over MPI."""
        addr, port = self.env.get("MASTER_ADDR"), self.env.get("MASTER_PORT")
        if addr and port:
            return Rendezvous(addr, int(port))
        mine = None
        if self.rank == 0:
            one_node = self.local_world_size == self.world_size
            mine = (addr or ("127.0.0.1" if one_node else own_address(self.env.get("GLOO_SOCKET_IFNAME"))),
                    port or str(free_port()))
        shared = cast(tuple[str, str], mpi_broadcast(mine))
        return Rendezvous(shared[0], int(shared[1]))

    def auto_backend(self) -> tuple[str, str]:
        """Horovod, the engine the original scorch ran under mpirun (horovodrun is mpirun too), unless
        SCORCH_BACKEND says torch or horovod."""
        chosen = self.env.get("SCORCH_BACKEND", "").lower()
        if chosen in ("torch", "horovod"):
            return chosen, f"SCORCH_BACKEND={chosen}"
        return "horovod", f"started by {self.name}"

    def agree(self, value: Any) -> Any:
        return mpi_broadcast(value) if self.world_size > 1 else value

    def close_channel(self) -> None:
        """MPI is finalized once torch.distributed has its process group: MPI is not fork-safe (Open
        MPI's memory hooks, shared-memory segments and progress threads stay in a forked child), and
        every epoch forks DataLoader workers. Finalizing is collective: every rank calls this right
        after init_process_group, which all of them passed. Only an MPI that scorch initialized for
        its channel: a program that imported mpi4py before (a script calling scorch.train) keeps
        its MPI. (Horovod keeps MPI too: it runs on it.)"""
        if _started_mpi:
            finalize_mpi()


def finalize_mpi() -> None:
    """MPI_Finalize, when mpi4py initialized MPI in this process and it is not finalized yet."""
    MPI = sys.modules.get("mpi4py.MPI")
    if MPI is not None and MPI.Is_initialized() and not MPI.Is_finalized():
        MPI.Finalize()


_started_mpi = False  # whether importing mpi4py.MPI here initialized MPI (not the program before)


def mpi_broadcast(obj: object) -> object:
    """Rank 0's ``obj`` on every rank, over MPI (mpi4py)."""
    global _started_mpi
    try:
        _started_mpi = _started_mpi or "mpi4py.MPI" not in sys.modules
        from mpi4py import MPI  # optional, and importing it initializes MPI: only when a rank under mpirun needs it
    except ImportError as exc:  # pragma: no cover - mpi4py is a dependency of setup
        raise DistributedError(
            "started by mpirun but mpi4py is not installed, so rank 0 cannot share its "
            "address; install it (pip install mpi4py) or set MASTER_ADDR and MASTER_PORT"
        ) from exc
    return MPI.COMM_WORLD.bcast(obj, root=0)
