"""What every launch environment answers: its rank facts, and where its ranks meet."""
from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import DistributedError


@dataclass(frozen=True)
class LaunchInfo:
    """Rank facts of this process, as its launcher set them."""

    launcher: str  # "mpirun", "torchrun", "srun", "horovodrun" or "none"
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    node_rank: int | None = None  # None where the launcher does not say (mpirun)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


@dataclass(frozen=True)
class Rendezvous:
    """Where the ranks of a torch.distributed job meet: a TCPStore at ``addr:port``, hosted by
    rank 0, or (``agent_store``) already hosted by the launcher's agent on node 0."""

    addr: str
    port: int
    agent_store: bool = False
    attempt: int = 0  # the launcher's restart count: each attempt meets under its own keys


class RankFacts:
    """``rank``, ``world_size``, ``local_rank`` and ``local_world_size``, read from ``self.info``."""

    info: LaunchInfo

    @property
    def rank(self) -> int:
        return self.info.rank

    @property
    def world_size(self) -> int:
        return self.info.world_size

    @property
    def local_rank(self) -> int:
        return self.info.local_rank

    @property
    def local_world_size(self) -> int:
        return self.info.local_world_size


class LaunchEnvironment(RankFacts):
    """One launcher. Subclasses say whether it started this process (:meth:`detect`), read its
    rank facts (:meth:`read`) and know where its ranks meet (:meth:`rendezvous`)."""

    name: ClassVar[str] = "none"

    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.info = self.read(env)

    @classmethod
    def detect(cls, env: Mapping[str, str]) -> bool:
        raise NotImplementedError

    @classmethod
    def read(cls, env: Mapping[str, str]) -> LaunchInfo:
        raise NotImplementedError

    # --- meeting the other ranks -------------------------------------------
    def rendezvous(self) -> Rendezvous:
        """MASTER_ADDR and MASTER_PORT when both are set; launchers that can find them override."""
        addr, port = self.env.get("MASTER_ADDR"), self.env.get("MASTER_PORT")
        if addr and port:
            return Rendezvous(addr, int(port))
        raise DistributedError(
            f"{self.world_size} ranks started by {self.name} but MASTER_ADDR/MASTER_PORT are not set"
        )

    # --- choosing the backend ------------------------------------------------
    def auto_backend(self) -> tuple[str, str]:
        """What ``--backend auto`` means under this launcher, and why, as rank 0 sees it (before
        checking that Horovod can run); :meth:`agree` makes every rank take rank 0's answer."""
        return "torch", f"started by {self.name}" if self.world_size > 1 else "a single process"

    def agree(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank, before any process group exists. Launchers without
        a channel of their own answer alike on every rank already."""
        return value

    def follow_launcher(self) -> None:
        """Make sure this rank does not train on when the launcher process that watches it dies
        (launchers whose ranks are their children override)."""

    def close_channel(self) -> None:
        """The process group exists: the launcher's own channel (:meth:`agree`, :meth:`rendezvous`)
        is not needed any more and is closed, where closing it matters."""


def env_int(env: Mapping[str, str], *names: str) -> int | None:
    """The first of ``names`` that is set (and not empty), as an int."""
    for name in names:
        value = env.get(name)
        if value not in (None, ""):
            return int(value)
    return None


def free_port() -> int:
    """A TCP port nothing listens on now (the OS's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])
