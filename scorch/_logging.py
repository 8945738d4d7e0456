"""Console logging of every scorch command, set up here only (by :mod:`scorch.cli._runner`).

Rank 0 logs at INFO (DEBUG with ``--debug``), other ranks errors only (and show no Python warnings); ``SCORCH_LOG_LEVEL``
overrides the level. A command with a ``-v`` count (scorch-gen) is quiet by default: WARNING,
INFO with ``-v``, DEBUG with ``-vv``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import TextIO


class _Stderr(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is now, not the one there was at set-up (which a test
    harness or a notebook may since have closed or replaced)."""

    def __init__(self, rank: int) -> None:
        super().__init__()
        self.rank = rank  # also marks the handler as scorch's console handler
        self.setFormatter(logging.Formatter("scorch: %(message)s" if rank == 0 else f"scorch[rank {rank}]: %(message)s"))

    @property  # a view of the current sys.stderr where logging has an attribute
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def console_level(debug: bool, verbose: int | None = None) -> str:
    """The level of rank 0's console: ``SCORCH_LOG_LEVEL`` if set; else DEBUG with ``--debug``; else
    INFO, or for a command counting ``-v`` (``verbose`` not None) WARNING, INFO (-v), DEBUG (-vv)."""
    env = os.environ.get("SCORCH_LOG_LEVEL")
    if env:
        return env.upper()
    if debug or (verbose or 0) > 1:
        return "DEBUG"
    return "INFO" if verbose is None or verbose == 1 else "WARNING"


def setup(rank: int, debug: bool, verbose: int | None = None) -> None:
    """Log the ``scorch`` loggers to stderr, once (a second call replaces the first handler)."""
    logger = logging.getLogger("scorch")
    logger.setLevel(console_level(debug, verbose) if rank == 0 else "ERROR")
    for h in list(logger.handlers):
        if isinstance(h, _Stderr):
            logger.removeHandler(h)
    logger.addHandler(_Stderr(rank))
    logger.propagate = False


@contextlib.contextmanager
def configured(rank: int, debug: bool, verbose: int | None = None, quiet: Sequence[str] = ()) -> Iterator[None]:
    """:func:`setup` for the length of one command; the ``scorch`` logger is restored afterwards,
    so that a command called in-process (tests, notebooks) leaves no handlers behind. The loggers
    named in ``quiet`` log warnings only, unless ``debug``."""
    logger = logging.getLogger("scorch")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    hushed = [(q, q.level) for q in map(logging.getLogger, quiet if not debug else ())]
    setup(rank, debug, verbose)
    for q, _ in hushed:
        q.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            if rank != 0:  # Python's warnings too (torch's, the user's): rank 0 shows them once
                warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        logger.handlers[:] = saved[2]
        for q, level in hushed:
            q.setLevel(level)
