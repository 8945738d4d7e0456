"""torchrun (TorchElastic), and scorch's own launch, which sets the same variables."""
from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from pathlib import Path

from .._parent_death import follow_parent
from .base import LaunchEnvironment, LaunchInfo, Rendezvous, env_int

# where a rank under scorch-torchrun notes that it started and that it stopped after saving
# (scorch/cli/torchrun.py: the agent exits 3 when every rank did)
STOP_NOTES = "SCORCH_STOP_NOTES"


def note(event: str) -> None:
    """A rank under scorch-torchrun notes ``started`` or ``stopped`` (nothing elsewhere)."""
    where = os.environ.get(STOP_NOTES)
    if where and os.path.isdir(where):
        Path(where, f"{event}-{os.environ.get('RANK', '0')}").touch()


class TorchrunEnvironment(LaunchEnvironment):
    name = "torchrun"

    @classmethod
    def detect(cls, env: Mapping[str, str]) -> bool:
        return "TORCHELASTIC_RUN_ID" in env or ("RANK" in env and "WORLD_SIZE" in env and "LOCAL_RANK" in env)

    @classmethod
    def read(cls, env: Mapping[str, str]) -> LaunchInfo:
        return LaunchInfo(
            cls.name,
            int(env["RANK"]),
            int(env["WORLD_SIZE"]),
            env_int(env, "LOCAL_RANK") or 0,
            env_int(env, "LOCAL_WORLD_SIZE") or 1,
            env_int(env, "GROUP_RANK"),
        )

    def follow_launcher(self) -> None:
        """A torchrun agent (or scorch's own) that dies, even by SIGKILL, sends its ranks SIGTERM:
        they stop together at the next step boundary with a checkpoint (exit 3), instead of
        training on without it, holding the run's lock. (torchrun starts its ranks as its own
        children, from its main thread.)"""
        if self.env.get("TORCHELASTIC_RUN_ID"):
            follow_parent(signal.SIGTERM)
        note("started")

    def rendezvous(self) -> Rendezvous:
        """torchrun's MASTER_ADDR/MASTER_PORT; with TORCHELASTIC_USE_AGENT_STORE=True the agent on
        node 0 already hosts the store there."""
        point = super().rendezvous()
        return Rendezvous(
            point.addr,
            point.port,
            agent_store=self.env.get("TORCHELASTIC_USE_AGENT_STORE") == "True",
            attempt=env_int(self.env, "TORCHELASTIC_RESTART_COUNT") or 0,
        )
