"""Console logging: rank 0 at INFO (DEBUG with --debug), other ranks errors only."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is now, not the one there was at set-up (which a test
    harness or a notebook may since have closed or replaced)."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def setup(rank: int, debug: bool) -> None:
    level = os.environ.get("SCORCH_LOG_LEVEL", "DEBUG" if debug else "INFO").upper()
    logger = logging.getLogger("scorch")
    logger.setLevel(level if rank == 0 else "ERROR")
    for h in list(logger.handlers):
        if getattr(h, "_scorch_console", False):
            logger.removeHandler(h)
    handler = _Stderr()
    handler.setFormatter(logging.Formatter("scorch: %(message)s" if rank == 0 else f"scorch[rank {rank}]: %(message)s"))
    handler._scorch_console = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.propagate = False


@contextlib.contextmanager
def configured(rank: int, debug: bool) -> Iterator[None]:
    """:func:`setup` for the length of one command; the ``scorch`` logger is restored afterwards,
    so a command called in-process (tests, notebooks) leaves no handlers behind."""
    logger = logging.getLogger("scorch")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    setup(rank, debug)
    try:
        yield
    finally:
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        logger.handlers[:] = saved[2]
