"""Launch environments: who started this process, its rank facts, and where its ranks meet.

One class per launcher (:mod:`.torchrun`, :mod:`.horovodrun`, :mod:`.mpirun`, :mod:`.srun`,
:mod:`.single`); :func:`detect` asks each in turn, first match wins. The launcher side, scorch's
own ``--nproc-per-node``/``--nnodes`` launch, is :mod:`.agent`. The rest of the package asks
:mod:`scorch.distributed`, not this package.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from .base import LaunchEnvironment, LaunchInfo, Rendezvous, free_port
from .horovodrun import HorovodrunEnvironment
from .mpirun import MpirunEnvironment
from .single import SingleProcessEnvironment
from .srun import SrunEnvironment
from .torchrun import TorchrunEnvironment

# In the order they are asked: torchrun's variables win (a torchrun inside an srun step or an
# mpirun job is what started the ranks); horovodrun is mpirun plus a mark; the single process last.
ENVIRONMENTS: tuple[type[LaunchEnvironment], ...] = (
    TorchrunEnvironment,
    HorovodrunEnvironment,
    MpirunEnvironment,
    SrunEnvironment,
    SingleProcessEnvironment,
)

__all__ = ["ENVIRONMENTS", "LaunchEnvironment", "LaunchInfo", "Rendezvous", "detect", "free_port"]


def detect(env: Mapping[str, str] | None = None) -> LaunchEnvironment:
    """The environment that started this process (from ``os.environ`` by default)."""
    env = os.environ if env is None else env
    for cls in ENVIRONMENTS:
        if cls.detect(env):
            return cls(env)
    raise AssertionError("SingleProcessEnvironment detects every environment")
