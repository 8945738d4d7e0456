"""SLURM's srun: one task per rank, inside an allocation."""
from __future__ import annotations

import re
from collections.abc import Mapping

from .base import LaunchEnvironment, LaunchInfo, Rendezvous, env_int


class SrunEnvironment(LaunchEnvironment):
    name = "srun"

    @classmethod
    def detect(cls, env: Mapping[str, str]) -> bool:
        # Inside an srun step (a bare sbatch script has SLURM_PROCID too, but no step id).
        return "SLURM_PROCID" in env and "SLURM_NTASKS" in env and "SLURM_STEP_ID" in env

    @classmethod
    def read(cls, env: Mapping[str, str]) -> LaunchInfo:
        node = env_int(env, "SLURM_NODEID")
        return LaunchInfo(
            cls.name,
            int(env["SLURM_PROCID"]),
            int(env["SLURM_NTASKS"]),
            env_int(env, "SLURM_LOCALID") or 0,
            env_int(env, "SLURM_NTASKS_PER_NODE") or tasks_on_node(env.get("SLURM_TASKS_PER_NODE", "1"), node or 0),
            node,
        )

    def rendezvous(self) -> Rendezvous:
        """The first node of the step and a port derived from the job id, unless MASTER_ADDR /
        MASTER_PORT say otherwise: every task works them out alike, with no channel needed."""
        nodelist = self.env.get("SLURM_STEP_NODELIST") or self.env.get("SLURM_JOB_NODELIST", "")
        return Rendezvous(
            self.env.get("MASTER_ADDR") or slurm_first_host(nodelist),
            int(self.env.get("MASTER_PORT") or slurm_port(self.env.get("SLURM_JOB_ID"))),
        )


def tasks_on_node(tasks_per_node: str, node: int) -> int:
    """Tasks on node ``node`` from SLURM's compressed list: "4(x2),3" -> 4, 4, 3."""
    counts: list[int] = []
    for part in tasks_per_node.split(","):
        match = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", part)
        if not match:
            return 1
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts[node] if node < len(counts) else counts[0]


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
