"""``scorch.Logger``: where a run's numbers go, and the list that writes them on the main rank.

A logger is built on every rank; scorch calls its methods on the main rank only (rank 0, through
:class:`Loggers`), so a logger needs no rank checks and its constructor must not write anything.
The calls, in order::

    bind(meta, record)          meta.json as this session starts, and record(name, section) to write its
                                trackers.NAME section (trackers: scorch/loggers/tracker.py)
    check(run_dir, resume)      read-only, before the run directory changes: raise ScorchError to
                                refuse the run (history.csv that cannot be the saved epochs', say)
    open(run_dir, resume)       the run directory exists; a resumed run continues after
                                resume.epoch / resume.step (drop what a redone stretch rewrites)
    log_hparams(params)         the run's settings (config.json's content), once per session
    log_step(step, values)      --log-every: the step's train/... means and lr, at optimizer step
    log_epoch(row)              the epoch's history row (epoch, step, lr, train/..., valid/..., time,
                                diag/...: numbers but diag/slowest_host, a host name)
    log_visuals(epoch, visuals) Socket.visualize's images and texts
    close()                     always, however the run ended

Subclass :class:`Logger` and override what you need; name it with ``--logger module:Class`` (the
module importable from where scorch-train runs, the class built without arguments) or return
instances from ``Socket.loggers()`` in the model file.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resume:
    """Where a resumed run continues: after ``epoch`` epochs and ``step`` optimizer steps."""

    epoch: int
    step: int


class Logger:
    """The protocol, with methods that do nothing."""

    name: str | None = None  # how messages name it (default: the class name)

    def bind(self, meta: dict[str, Any], record: Callable[[str, dict[str, Any]], None]) -> None: ...
    def check(self, run_dir: Path, resume: Resume | None) -> None: ...
    def open(self, run_dir: Path, resume: Resume | None) -> None: ...
    def log_hparams(self, params: dict[str, Any]) -> None: ...
    def log_step(self, step: int, values: dict[str, float]) -> None: ...
    def log_epoch(self, row: dict[str, Any]) -> None: ...
    def log_visuals(self, epoch: int, visuals: Any) -> None: ...
    def close(self) -> None: ...


class Loggers:
    """The run's loggers, built on every rank; every call reaches them on the main rank only."""

    def __init__(self, loggers: list[Logger], is_main: bool):
        self.loggers, self.is_main = list(loggers), is_main
        self._open: list[Logger] = []

    def get(self, cls: type) -> Any:
        """The logger of class ``cls``, or None."""
        return next((lg for lg in self.loggers if isinstance(lg, cls)), None)

    def bind(self, meta: dict[str, Any], previous: dict[str, Any] | None, write: Callable[[dict[str, Any]], None]) -> None:
        """Give the loggers the session's ``meta`` (written with ``write``); ``previous``: the trackers'
        sections of a resumed run's meta.json, carried over."""
        if previous:
            meta["trackers"] = {k: dict(v) for k, v in previous.items()}

        def record(name: str, section: dict[str, Any]) -> None:
            meta.setdefault("trackers", {})[name] = section
            write(meta)

        for lg in self.loggers:
            lg.bind(meta, record)

    def check(self, run_dir: Path, resume: Resume | None) -> None:
        """Rank 0 alone (inside ``dist.decide``)."""
        for lg in self.loggers:
            lg.check(run_dir, resume)

    def open(self, run_dir: Path, resume: Resume | None, params: dict[str, Any]) -> None:
        if not self.is_main:
            return
        for lg in self.loggers:
            lg.open(run_dir, resume)
            self._open.append(lg)
            lg.log_hparams(params)

    def log_step(self, step: int, values: dict[str, float]) -> None:
        for lg in self._open:
            lg.log_step(step, values)

    def log_epoch(self, row: dict[str, Any]) -> None:
        for lg in self._open:
            lg.log_epoch(row)

    def log_visuals(self, epoch: int, visuals: Any) -> None:
        for lg in self._open:
            lg.log_visuals(epoch, visuals)

    def close(self) -> None:
        opened, self._open = self._open, []
        for lg in opened:
            try:
                lg.close()
            except Exception as exc:  # every logger gets closed; do not hide the error that ended the run
                log.warning("closing logger %s failed: %s: %s", lg.name or type(lg).__name__, type(exc).__name__, exc)
