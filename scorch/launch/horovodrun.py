"""horovodrun in MPI mode: mpirun underneath (``--backend auto`` means Horovod under both)."""
from __future__ import annotations

import os
from collections.abc import Mapping

from .mpirun import MpirunEnvironment


class HorovodrunEnvironment(MpirunEnvironment):
    name = "horovodrun"

    @classmethod
    def detect(cls, env: Mapping[str, str]) -> bool:
        # horovodrun --gloo sets HOROVOD_RANK; in MPI mode it exec()s "sh -c mpirun ..." and leaves
        # only the shell's "_" (the program the shell ran) behind in the ranks' environment.
        if not super().detect(env):
            return False
        return (
            bool(env.get("HOROVOD_HOSTNAME") or env.get("HOROVOD_RANK"))
            or os.path.basename(env.get("_", "")) == "horovodrun"
            or (env is os.environ and started_by("horovodrun"))
        )


def started_by(program: str, depth: int = 8) -> bool:
    """Whether an ancestor process runs ``program`` (Linux /proc). horovodrun in MPI mode leaves no
    variable of its own; ranks on other nodes (started through orted/ssh) cannot see it either, so
    the backend is chosen by rank 0 and broadcast (:meth:`MpirunEnvironment.agree`)."""
    pid = os.getpid()
    for _ in range(depth):
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
            if pid <= 1:
                return False
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if any(os.path.basename(part) == program.encode() for part in f.read().split(b"\0")):
                    return True
        except (OSError, ValueError, IndexError):
            return False
    return False
