"""What the experiment trackers (``--logger mlflow``, ``--logger wandb``) share: one tracker run per
scorch run, kept in meta.json, and a tracker that fails never stopping training.

A :class:`Tracker` is a :class:`~scorch.loggers.base.Logger` whose subclass talks to one tracking
service through five methods (``_start``, ``_log``, ``_upload``, ``_finish``, ``_last_logged``).
Every call into them goes through :meth:`Tracker._guard`: the first exception is one warning line,
the tracker is off for the rest of the session, and meta.json's ``trackers.NAME`` says what it lost
(``lost_from_step``, ``lost_from_epoch``, ``error``). TensorBoard and history.csv are other loggers,
so they stay complete.

meta.json's ``trackers.NAME`` also holds the tracker's run id (written as soon as the run exists, so a
session killed outright is continued by the next), and the last step the tracker was given.
:class:`~scorch.loggers.base.Loggers` hands a tracker meta.json (``bind``): the section as the run
left it, and a way to write it again (atomically, through the run directory).

The x axis of every point is the global optimizer step: a ``--log-every`` point at its step, a
history row at the step it ends (with ``epoch`` as a value). After a resume, points at steps the
tracker already holds are not sent again (what a session killed after its checkpoint had sent, and
the resumed run redoes), so no step appears twice or out of order.
"""
from __future__ import annotations

import json
import logging
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..rundir.layout import BEST, CHECKPOINTS, CONFIG, HISTORY, LAST, META
from .base import Logger, Resume

log = logging.getLogger(__name__)

Record = Callable[[str, dict[str, Any]], None]  # (tracker name, its meta.json section): write meta.json


class Tracker(Logger):
    """A tracking service as a logger. Subclasses set ``name`` and implement the service calls."""

    name = "tracker"

    def __init__(self) -> None:
        self.run_dir: Path | None = None
        self.resume: Resume | None = None
        self.state: dict[str, Any] = {}  # meta.json's trackers.NAME
        self.meta: dict[str, Any] = {}  # the session's meta.json (host, world size, backend, strategy ...)
        self._record: Record | None = None
        self.live = False  # the tracker run is open and nothing has failed
        self.step = 0  # the last optimizer step seen (for lost_from_step)
        self.epoch = 0
        self.last_step = -1  # the tracker holds points up to this step (of --log-every)
        self.last_row = -1  # and of history rows
        self.config: dict[str, Any] = {}

    # ---- what scorch calls ------------------------------------------------------------------
    def bind(self, meta: dict[str, Any], record: Record) -> None:
        """meta.json as this session starts (with the tracker's section from the sessions before, on a
        resume), and how to write it."""
        self.meta, self._record = meta, record
        self.state = dict((meta.get("trackers") or {}).get(self.name) or {})

    def open(self, run_dir: Path, resume: Resume | None) -> None:
        self.run_dir, self.resume = run_dir, resume
        if resume is not None:
            self.step, self.epoch = resume.step, resume.epoch
        else:
            self.state = {}  # a new run (--overwrite, --auto-resume before a first checkpoint): a new tracker run

    def log_hparams(self, params: dict[str, Any]) -> None:
        """Start (or continue) the tracker run: the settings, the tags, the run id into meta.json."""
        self.config = params
        run_id = self.state.get("run_id") if self.resume is not None else None

        def start() -> None:
            new_id = self._start(run_id, params, self.tags())
            self.state.update(run_id=new_id, **self._where())
            if "error" in self.state:  # a session before lost the tracker: its gap stays on record
                gap = {"from_step": self.state.pop("lost_from_step", None), "to_step": self.step,
                       "error": self.state.pop("error")}
                self.state.pop("lost_from_epoch", None)
                self.state["gaps"] = [*self.state.get("gaps", []), gap]
            self.live = True
            self._save()
            if run_id is not None:
                self.last_step, self.last_row = self._last_logged()
                self.last_step = max(self.last_step, int(self.state.get("last_step", -1)))
                self.last_row = max(self.last_row, int(self.state.get("last_row", -1)))
            verb = "continues" if run_id is not None else "started"
            log.info("%s: %s run %s%s", self.name, verb, new_id, self._shown_where())

        self._guard(start, self.step + 1, self.epoch + 1, starting=True)

    def log_step(self, step: int, values: dict[str, float]) -> None:
        self.step = step
        if not self.live or step <= self.last_step:
            return
        self._guard(lambda: self._log(step, {f"step/{k}": float(v) for k, v in values.items()}), step, self.epoch + 1)
        self.last_step = step

    def log_epoch(self, row: dict[str, Any]) -> None:
        self.step, self.epoch = int(row["step"]), int(row["epoch"])
        if not self.live or self.step <= self.last_row:
            return
        values = {k: float(v) for k, v in row.items() if k not in ("step", "time") and _number(v)}
        values["epoch_time"] = float(row.get("time", 0.0))
        self._guard(lambda: self._log(self.step, values), self.step, self.epoch)
        self.last_row = self.step
        if self.live:
            self.state.update(last_step=max(self.last_step, self.state.get("last_step", -1)), last_row=self.last_row)
            self._save()

    def close(self) -> None:
        """The run's files as artifacts (config.json, history.csv, meta.json as this session ends, the best
        checkpoint with --track-checkpoint), then the tracker run ends."""
        if not self.live:
            return
        assert self.run_dir is not None
        run_dir = self.run_dir
        self.state.update(last_step=max(self.last_step, self.state.get("last_step", -1)), last_row=self.last_row)

        def upload() -> None:
            with tempfile.TemporaryDirectory(prefix="scorch-tracker-") as tmp:
                meta = Path(tmp) / META
                meta.write_text(json.dumps({**self.meta, "trackers": {**(self.meta.get("trackers") or {}),
                                                                     self.name: self.state}},
                                           indent=2, sort_keys=True, default=str) + "\n")
                files = [p for p in (run_dir / CONFIG, run_dir / HISTORY) if p.is_file()] + [meta]
                self._upload(files, "")
                if self.config.get("track_checkpoint"):
                    best = next((p for p in (run_dir / CHECKPOINTS / BEST, run_dir / CHECKPOINTS / LAST) if p.is_file()), None)
                    if best is not None:
                        self._upload([best], CHECKPOINTS)
            self._finish()

        self._guard(upload, self.step + 1, self.epoch + 1)  # the artifacts (every point was sent)
        self.live = False
        self._save()

    # ---- for subclasses ---------------------------------------------------------------------
    def _start(self, run_id: str | None, params: dict[str, Any], tags: dict[str, str]) -> str:
        """Create the tracker run (``run_id`` None) or continue run ``run_id``; its id."""
        raise NotImplementedError

    def _log(self, step: int, values: dict[str, float]) -> None:
        raise NotImplementedError

    def _upload(self, files: list[Path], folder: str) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError

    def _last_logged(self) -> tuple[int, int]:
        """The last step of --log-every points and of history rows the continued run holds (-1: none)."""
        return -1, -1

    def _where(self) -> dict[str, Any]:
        """What meta.json keeps beside the run id (the tracking URI, the experiment, a directory)."""
        return {}

    def _shown_where(self) -> str:
        return ""

    # ---- shared -----------------------------------------------------------------------------
    def tags(self) -> dict[str, str]:
        """host, world size, backend, strategy, launcher, device, scorch's version and the git commit."""
        meta = self.meta
        tags = {"host": socket.gethostname(), "world_size": str(meta.get("world_size", 1)),
                "backend": str(meta.get("backend", "")), "strategy": str(meta.get("strategy", "")),
                "launcher": str(meta.get("launcher", "")), "device": str(meta.get("device", "")),
                "scorch_version": str((meta.get("versions") or {}).get("scorch", "")),
                "scorch_run_dir": str(self.run_dir.resolve()) if self.run_dir else ""}
        commit = (meta.get("git") or {}).get("commit")  # scorch.rundir.provenance put it there
        if commit:
            tags["git_commit"] = str(commit)
        return {k: v for k, v in tags.items() if v}

    def _guard(self, call: Callable[[], None], step: int, epoch: int, starting: bool = False) -> None:
        """Run a service call about optimizer step ``step`` of epoch ``epoch``; the first failure turns the
        tracker off with one warning line and a note in meta.json (``lost_from_step``: the first step whose
        points it does not have). Training never stops for a tracker."""
        if not self.live and not starting:
            return
        try:
            with _quiet():
                call()
        except Exception as exc:  # any failure of the service or its client: the run goes on
            self.live = False
            error = f"{type(exc).__name__}: {_one_line(str(exc))}"[:500]
            self.state.update(lost_from_step=step, lost_from_epoch=epoch, error=error)
            log.warning("%s: %s; training goes on without it from step %d (TensorBoard and history.csv are complete; "
                        "meta.json's trackers.%s says what it lost)", self.name, error, step, self.name)
            self._save()

    def _save(self) -> None:
        if self._record is not None:
            try:
                self._record(self.name or "tracker", dict(self.state))
            except Exception as exc:  # meta.json cannot be written (full disk): the run's own writes say so
                log.debug("%s: meta.json not updated: %s", self.name, exc)


QUIET = ("urllib3", "mlflow", "wandb", "requests")  # the clients' own loggers: their retries are not the run's news


@contextmanager
def _quiet() -> Iterator[None]:
    """The trackers' client libraries log nothing below an error while scorch calls them (urllib3's
    "Retrying ..." lines for a server that is gone: the tracker's one warning says it)."""
    loggers = [logging.getLogger(name) for name in QUIET]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "(no message)"


def flat(params: dict[str, Any], prefix: str = "", text: bool = True) -> dict[str, Any]:
    """The settings as flat pairs (nested sections as ``model_settings.width``); values as JSON text
    (``text``, MLflow's params) or as they are (W&B's config)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat(value, f"{name}.", text))
        elif text:
            out[name] = value if isinstance(value, str) else json.dumps(value)
        else:
            out[name] = value
    return out
