"""Console logging: rank 0 at INFO (DEBUG with --debug), other ranks errors only."""
from __future__ import annotations

import logging
import os
import sys


def setup(rank: int, debug: bool) -> None:
    level = os.environ.get("SCORCH_LOG_LEVEL", "DEBUG" if debug else "INFO").upper()
    logger = logging.getLogger("scorch")
    logger.setLevel(level if rank == 0 else "ERROR")
    for h in list(logger.handlers):
        if getattr(h, "_scorch_console", False):
            logger.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("scorch: %(message)s" if rank == 0 else f"scorch[rank {rank}]: %(message)s"))
    handler._scorch_console = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.propagate = False
