"""Rank facts for the hand-written DDP script, from mpirun's, torchrun's or srun's variables."""
from __future__ import annotations

import os


def rank_env() -> tuple[int, int]:
    for rank, size in (("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"), ("RANK", "WORLD_SIZE"), ("PMI_RANK", "PMI_SIZE")):
        if os.environ.get(rank) is not None and os.environ.get(size) is not None:
            return int(os.environ[rank]), int(os.environ[size])
    return 0, 1
