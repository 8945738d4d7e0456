"""Who started us: read rank facts from the launcher's environment variables.

Pure functions of ``os.environ``; nothing here talks to other processes.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class LaunchInfo:
    launcher: str  # "mpirun", "torchrun", "srun", "horovodrun" or "none"
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _int(env: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        value = env.get(name)
        if value not in (None, ""):
            return int(value)
    return None


def detect(env: Mapping[str, str] | None = None) -> LaunchInfo:
    """Work out rank facts from torchrun, Open MPI / horovodrun, srun, or nothing."""
    env = os.environ if env is None else env
    if "TORCHELASTIC_RUN_ID" in env or ("RANK" in env and "WORLD_SIZE" in env and "LOCAL_RANK" in env):
        return LaunchInfo(
            "torchrun",
            int(env["RANK"]),
            int(env["WORLD_SIZE"]),
            int(env.get("LOCAL_RANK", 0)),
            int(env.get("LOCAL_WORLD_SIZE", 1)),
        )
    if "OMPI_COMM_WORLD_SIZE" in env or "PMI_SIZE" in env:
        # horovodrun --gloo sets HOROVOD_RANK; in MPI mode it exec()s "sh -c mpirun ..." and leaves
        # only the shell's "_" (the program the shell ran) behind in the ranks' environment.
        horovod = (
            bool(env.get("HOROVOD_HOSTNAME") or env.get("HOROVOD_RANK"))
            or os.path.basename(env.get("_", "")) == "horovodrun"
            or started_by("horovodrun")
        )
        launcher = "horovodrun" if horovod else "mpirun"
        return LaunchInfo(
            launcher,
            _int(env, "OMPI_COMM_WORLD_RANK", "PMI_RANK") or 0,
            _int(env, "OMPI_COMM_WORLD_SIZE", "PMI_SIZE") or 1,
            _int(env, "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID") or 0,
            _int(env, "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS") or 1,
        )
    if "SLURM_PROCID" in env and "SLURM_NTASKS" in env and "SLURM_STEP_ID" in env:
        # Inside an srun step (a bare sbatch script has SLURM_PROCID too, but no step id).
        return LaunchInfo(
            "srun",
            int(env["SLURM_PROCID"]),
            int(env["SLURM_NTASKS"]),
            _int(env, "SLURM_LOCALID") or 0,
            _int(env, "SLURM_NTASKS_PER_NODE") or _first_int(env.get("SLURM_TASKS_PER_NODE", "1")),
        )
    return LaunchInfo("none", 0, 1, 0, 1)


def started_by(program: str, depth: int = 8) -> bool:
    """Whether an ancestor process runs ``program`` (Linux /proc). horovodrun in MPI mode leaves no
    variable of its own; ranks on other nodes (started through orted/ssh) cannot see it either, so
    callers that must agree on the answer have rank 0 decide and broadcast it."""
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


def mpi_broadcast(obj: object) -> object:
    """Rank 0's ``obj`` on every rank, over MPI (mpi4py); for launches by mpirun/horovodrun."""
    from mpi4py import MPI

    return MPI.COMM_WORLD.bcast(obj, root=0)


def _first_int(text: str) -> int:
    match = re.match(r"\d+", text)
    return int(match.group()) if match else 1


def slurm_first_host(nodelist: str) -> str:
    """First host of a SLURM nodelist: "node[03-05,9],gpu1" -> "node03"."""
    first = re.match(r"([^,\[]+)(\[([^\]]+)\])?", nodelist.strip())
    if not first:
        raise ValueError(f"cannot parse SLURM nodelist {nodelist!r}")
    prefix, _, ranges = first.groups()
    if not ranges:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def slurm_port(job_id: str | None) -> int:
    """A port every task of one SLURM job derives alike, spread over 20000-39999."""
    return 20000 + int(job_id or 0) % 20000
