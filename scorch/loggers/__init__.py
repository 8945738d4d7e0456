"""Loggers: where a run's numbers go (TensorBoard and history.csv built in, others plug in).

See :mod:`scorch.loggers.base` for the protocol and the order of its calls.
"""
from __future__ import annotations

from .base import Logger, Loggers, Resume
from .choose import build, check_spec
from .csv import CSVLogger
from .tensorboard import TensorBoardLogger

__all__ = ["CSVLogger", "Logger", "Loggers", "Resume", "TensorBoardLogger", "build", "check_spec"]
