"""The launcher side: ``--nproc-per-node N`` without a launcher starts the local ranks through torch's
elastic launcher."""
from __future__ import annotations

import logging
import sys
import uuid

from ..config import TrainConfig
from ..errors import RankFailed
from .base import free_port

log = logging.getLogger(__name__)

# Flags of the parent that the ranks must not see again.
LAUNCH_FLAGS = {"--nproc-per-node": 1, "--nnodes": 1, "--node-rank": 1, "--master-addr": 1, "--master-port": 1}


def child_argv(argv: list[str], name: str) -> list[str]:
    out: list[str] = []
    skip = 0
    for arg in argv:
        if skip:
            skip -= 1
            continue
        flag = arg.split("=", 1)[0].replace("_", "-")
        if flag in LAUNCH_FLAGS:
            skip = 0 if "=" in arg else LAUNCH_FLAGS[flag]
            continue
        out.append(arg)
    if "--name" not in [a.split("=", 1)[0] for a in out]:
        out += ["--name", name]
    return out


def launch(config: TrainConfig, argv: list[str]) -> int:
    """Run ``python -m scorch.cli.train`` on N local ranks; exit code of the first failure, else 0."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    assert config.name is not None
    port = config.master_port or (free_port() if config.nnodes == 1 else 29500)
    lc = LaunchConfig(
        min_nodes=config.nnodes,
        max_nodes=config.nnodes,
        nproc_per_node=config.nproc_per_node,
        run_id=f"scorch-{config.name}-{uuid.uuid4().hex[:8]}" if config.nnodes == 1 else f"scorch-{config.name}",
        rdzv_backend="static",
        rdzv_endpoint=f"{config.master_addr}:{port}",
        rdzv_configs={"rank": config.node_rank},
        max_restarts=0,
        monitor_interval=0.5,
    )
    log.info("starting %d local rank(s) (node %d of %d, rendezvous %s:%d)", config.nproc_per_node, config.node_rank, config.nnodes, config.master_addr, port)
    try:
        elastic_launch(lc, sys.executable)("-m", "scorch.cli.train", *child_argv(argv, config.name))
    except ChildFailedError as exc:
        # Every failed rank: the agent's "first" one is often only a peer of the rank that broke.
        failed = sorted(exc.failures.items())
        codes = [f.exitcode for _, f in failed]
        what = ", ".join(f"rank {rank} (exit code {f.exitcode})" for rank, f in failed)
        code = next((c for c in codes if c and c > 0), 1)
        raise RankFailed(f"{what} failed; each rank's own error is above", code) from None
    return 0
