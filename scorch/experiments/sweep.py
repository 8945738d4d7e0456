"""Sweeps: every combination of a grid of settings, one run directory each, under one sweep directory.

Layout of ``<run-root>/<sweep name>/``::

    sweep.json              the grid, the shared scorch-train arguments and every run's settings
    configs/<run>.json      each run's resolved settings (what its scorch-train gets with --config)
    logs/<run>.log          output of local runs; logs/slurm-<array job>_<i>.out of SLURM ones
    sweep.sbatch            the job array (scorch-sweep --slurm)
    <run>/                  the run directories, named ``<index>-<key=value,...>``
    summary.csv             one row per run, best first by the monitored metric

Running the same sweep again skips finished runs and resumes the others (``--auto-resume``).

One scorch-sweep at a time per sweep directory: :func:`locked` holds ``<run-root>/.<sweep name>.lock``,
scorch-train's run lock (:mod:`scorch.rundir.lock`: holder pid and host, a dead holder's lock taken
over) beside the sweep directory. A local sweep's runs get SIGTERM when it dies (SIGKILL included):
they checkpoint and exit 3, and the next scorch-sweep resumes them, first waiting for the ones still
stopping.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import itertools
import json
import logging
import math
import os
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import _atomic, jobs
from ..config import NOT_SWEEPABLE, TrainConfig, check_file_name, check_path
from ..contract import nearest, overrides
from ..errors import ScorchError
from ..rundir import lock as run_lock
from ..rundir.layout import RunLayout
from . import report, slurm
from .sweepfile import SWEEP_FILE, RunPlan, load

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.csv"
SWEEP_SCRIPT = "sweep.sbatch"
NPROC_FOR_SLURM = "--nproc-per-node does not apply to SLURM jobs: give --ntasks-per-node (and --nodes)"
LEFT_RUN_WAIT_S = 300.0  # for a run's scorch-train that an earlier, killed scorch-sweep left writing its checkpoint


@dataclass(frozen=True)
class Axis:
    key: str  # as given, e.g. "lr" or "model.n_filters"
    texts: tuple[str, ...]  # each value as given, passed on as --set KEY=TEXT
    values: tuple[Any, ...]  # each value parsed as a literal


def split_values(text: str) -> list[str]:
    """Split at commas outside brackets and quotes: ``0.1,[[3,0.1],[9,0.01]],'a,b'`` -> 3 values."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_grid(items: Sequence[str]) -> list[Axis]:
    """``--grid KEY=V1,V2`` items -> axes; keys must be settings scorch-train knows."""
    fields = {f for f in TrainConfig.__dataclass_fields__ if f not in overrides.SETTINGS_PREFIXES.values()}
    valid = ", ".join(sorted((fields - set(NOT_SWEEPABLE)) | {"model.NAME", "socket.NAME", "dataset.NAME", "shared.NAME"}))
    axes: list[Axis] = []
    seen: set[str] = set()
    for item in items:
        key, sep, rest = item.partition("=")
        key = key.strip()
        if not sep or not key or not rest.strip():
            raise ScorchError(f"--grid {item!r}: expected KEY=VALUE1,VALUE2,..., e.g. --grid lr=0.1,0.01")
        norm = key.replace("-", "_")
        prefix, dot, sub = norm.partition(".")
        if dot and prefix in overrides.SETTINGS_PREFIXES and sub:
            pass
        elif norm in NOT_SWEEPABLE:
            raise ScorchError(f"--grid {key}: scorch-sweep sets {key} itself for every run; valid keys: {valid}")
        elif norm not in fields:
            raise ScorchError(f"--grid {key}: unknown setting; " + nearest.hint(norm, fields, f"valid keys: {valid}"))
        if norm in seen:
            raise ScorchError(f"--grid {key}: given twice; put all its values in one --grid {key}=V1,V2")
        seen.add(norm)
        texts = split_values(rest)
        if any(not t for t in texts):
            raise ScorchError(f"--grid {item!r}: an empty value; separate values with single commas")
        if len(set(texts)) != len(texts):
            raise ScorchError(f"--grid {item!r}: a value is repeated")
        axes.append(Axis(key, tuple(texts), tuple(overrides.parse_value(t) for t in texts)))
    if not axes:
        raise ScorchError("give at least one --grid KEY=V1,V2")
    return axes


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._,=+-]", "_", text)


def run_name(index: int, width: int, combo: Sequence[tuple[str, str]]) -> str:
    """``003-lr=0.1,model.n_filters=8``: deterministic, a valid directory name, at most ~100 chars."""
    label = _safe(",".join(f"{k}={t}" for k, t in combo))
    if len(label) > 90:
        label = label[:80] + "-" + hashlib.sha1(label.encode()).hexdigest()[:8]
    return f"{index:0{width}d}-{label}"


def combinations(axes: Sequence[Axis]) -> list[RunPlan]:
    """Every combination, the first axis varying slowest."""
    pairs = [[(a.key, t, v) for t, v in zip(a.texts, a.values)] for a in axes]
    combos = list(itertools.product(*pairs))
    width = max(2, len(str(len(combos) - 1)))
    return [
        RunPlan(i, run_name(i, width, [(k, t) for k, t, _ in combo]), {k: v for k, _, v in combo},
                tuple(f"{k}={t}" for k, t, _ in combo))
        for i, combo in enumerate(combos)
    ]


def default_name(base_args: Sequence[str], grid: Sequence[str]) -> str:
    """The same command gives the same sweep directory: ``sweep-`` and a hash of its arguments."""
    digest = hashlib.sha1(json.dumps([list(base_args), list(grid)]).encode()).hexdigest()[:10]
    return f"sweep-{digest}"


@dataclass(frozen=True)
class Sweep:
    path: Path
    runs: tuple[RunPlan, ...]
    base_args: tuple[str, ...]
    grid: tuple[str, ...]
    nproc_per_node: int = 1

    def config_file(self, run: RunPlan) -> Path:
        return self.path / "configs" / f"{run.name}.json"

    def command(self, run: RunPlan, debug: bool = False) -> list[str]:
        extra = ["--nproc-per-node", str(self.nproc_per_node)] if self.nproc_per_node > 1 else []
        return slurm.train_command(self.config_file(run), self.path, run.name, debug=debug, extra=extra)


def prepare(path: Path, base_args: Sequence[str], grid: Sequence[str],
            parse_config: Callable[[list[str]], TrainConfig], for_slurm: bool = False) -> Sweep:
    """Check every combination (settings, model/dataset settings) and write sweep.json and the
    configs; nothing is written when one combination is invalid (or, ``for_slurm``, cannot be a
    SLURM job). A directory holding another sweep is refused."""
    for flag in ("--resume", "--auto-resume", "--overwrite"):
        if any(a == flag or a.startswith(flag + "=") for a in base_args):
            raise ScorchError(f"{flag}: scorch-sweep skips finished runs and resumes the others itself; "
                              "to start again, remove the sweep directory or give another --name")
    axes = parse_grid(grid)
    runs = combinations(axes)
    path = Path(os.path.abspath(path))
    from ..contract import parts
    from ..contract.userfiles import load_dataset_file, load_model_file  # torch: only when a sweep checks the files

    configs: dict[str, dict[str, Any]] = {}
    files: dict[str, Any] = {}
    nproc = 1
    for run in runs:
        argv = [*base_args, *(x for s in run.sets for x in ("--set", s)), "--run-root", str(path), "--name", run.name]
        try:
            config = parse_config(argv)
            # The files' own settings are checked here too, so a typo in --grid model.X fails now, not in every job.
            model = files.get(config.model) or files.setdefault(config.model, load_model_file(config.model))
            dkey = "dataset:" + config.dataset
            dataset = files.get(dkey) or files.setdefault(dkey, load_dataset_file(config.dataset))
            parts.check(model, dataset, config)
        except ScorchError as exc:
            raise _as_grid_error(exc, [axis.key for axis in axes]) from exc
        configs[run.name] = slurm.job_config(config)
        nproc = config.nproc_per_node
    if for_slurm and nproc > 1:
        raise ScorchError(NPROC_FOR_SLURM)
    record = {"base_args": list(base_args), "grid": list(grid), "runs": [r.to_dict() for r in runs]}
    sweep_file = path / SWEEP_FILE
    if sweep_file.is_file():
        try:
            old = json.loads(sweep_file.read_text())
        except ValueError as exc:
            raise ScorchError(f"{sweep_file}: not readable JSON ({exc})") from exc
        if (old.get("base_args"), old.get("grid")) != (record["base_args"], record["grid"]):
            raise ScorchError(f"{path} holds another sweep (its grid and arguments are in {sweep_file}); "
                              "give another --name, or the same arguments to continue it")
    try:
        (path / "configs").mkdir(parents=True, exist_ok=True)
        (path / "logs").mkdir(exist_ok=True)
    except OSError as exc:
        raise ScorchError(f"cannot create sweep directory {path}: {exc.strerror or exc}") from exc
    for name, cfg in configs.items():
        _atomic.write_json(path / "configs" / f"{name}.json", cfg)
    _atomic.write_json(sweep_file, record)
    return Sweep(path, tuple(runs), tuple(base_args), tuple(grid), nproc)


def _as_grid_error(exc: ScorchError, keys: Sequence[str]) -> ScorchError:
    """An error about a grid value names --grid (the run's scorch-train got the value as --set KEY=VALUE)."""
    text = str(exc)
    for key in keys:
        for said in (f"--set {key}", f"--set: {key} = ", f"--set: {key.replace('_', '-')} = "):
            if text.startswith(said):
                return ScorchError(f"--grid {key}{' = ' if said.endswith(' = ') else ''}{text[len(said):]}")
    return exc


def status(run_dir: Path) -> str:
    """``finished`` (its loop ended: all epochs, or early stopping), ``new`` (nothing trained) or
    the status in its meta.json (``preempted``, ``failed``, ``running``)."""
    layout = RunLayout(run_dir)
    try:
        meta = json.loads(layout.meta.read_text())
        config = overrides.read_saved(layout.config)
    except (OSError, ValueError, ScorchError):
        return "new"
    if not isinstance(meta, dict):
        return "new"
    state = str(meta.get("status") or "running")
    if state == "finished" and (int(meta.get("epochs_done") or 0) >= int(config.get("epochs") or 0)
                                or config.get("patience") is not None):
        return "finished"
    return "unfinished" if state == "finished" else state


def _todo(sweep: Sweep) -> list[RunPlan]:
    todo = [r for r in sweep.runs if status(sweep.path / r.name) != "finished"]
    for r in sweep.runs:
        if r not in todo:
            log.info("%s: finished, skipped", r.name)
    return todo


class SweepLock(run_lock.RunLock):
    """One scorch-sweep per sweep directory: scorch-train's run lock (the same file format, holder
    check and takeover of a dead holder's lock), at ``<run-root>/.<sweep name>.lock``; only the
    refusals speak of a sweep."""

    def _refusal(self, holder: dict[str, Any], record: dict[str, Any]) -> str:
        if "unreadable" in holder or not holder:
            return (f"{self.run_dir} is locked by {self.path}, which is not a lock scorch wrote (or is being "
                    "written); remove it if no scorch-sweep uses this sweep")
        if holder.get("host") == record["host"]:
            return (f"{self.run_dir} is in use by another scorch-sweep ({run_lock.describe(holder)}); wait for "
                    f"it to end or stop it (lock: {self.path})")
        return (f"{self.run_dir} is in use by a scorch-sweep on another host ({run_lock.describe(holder)}), "
                f"which cannot be checked from here; if that process is gone, remove {self.path}")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the sweep directory ``path`` (see :class:`SweepLock`); a live holder is a ScorchError
    (one line naming it) and nothing is written. Released on the way out, whatever happened."""
    hold = SweepLock(Path(os.path.abspath(path)))
    hold.acquire()
    try:
        yield
    finally:
        hold.abandon()  # also removes a run root made for the lock that stayed empty (a refused sweep)


def _stopping_holder(run_dir: Path) -> dict[str, Any] | None:
    """The live process on this host that holds ``run_dir``'s run lock, if one does."""
    holder = run_lock.RunLock._read(run_lock.lock_path(run_dir))
    if holder and holder.get("host") == socket.gethostname() and run_lock._alive(holder):
        return holder
    return None


def _wait_for_left_runs(sweep: Sweep, runs: Sequence[RunPlan], timeout: float = LEFT_RUN_WAIT_S) -> None:
    """Wait (up to ``timeout``) for the scorch-train processes that still hold one of ``runs``:
    those of an earlier scorch-sweep that was killed, which got SIGTERM and are writing their
    checkpoint. Then the run is resumed, not refused as in use. One still held after that is
    started anyway (its scorch-train refuses, and the sweep names it as failed)."""
    deadline = time.monotonic() + timeout
    for r in runs:
        holder = _stopping_holder(sweep.path / r.name)
        if holder is None:
            continue
        log.warning("%s: still held by %s (left by an earlier scorch-sweep?); waiting up to %.0f s for it to stop",
                    r.name, run_lock.describe(holder), max(0.0, deadline - time.monotonic()))
        while holder is not None and time.monotonic() < deadline:
            time.sleep(0.1)
            holder = _stopping_holder(sweep.path / r.name)
        if holder is not None:
            log.warning("%s: still held by %s; starting it anyway", r.name, run_lock.describe(holder))


def run_local(sweep: Sweep, parallel: int, debug: bool = False, env: dict[str, str] | None = None) -> dict[str, int]:
    """Run the unfinished runs as scorch-train processes, ``parallel`` at a time, in the pool of
    :func:`scorch.jobs.run_local` (output in ``logs/<run>.log``); exit code per run started.
    Call it holding the sweep (:func:`locked`), from the main thread.

    SIGINT, SIGTERM and SIGUSR1 to this process start no new runs and reach the running ones as
    SIGUSR1: they checkpoint and exit 3, and the same command resumes them later. When this
    process dies without a word (SIGKILL, out of memory), its runs get SIGTERM (Linux) and stop
    the same way; a run launched with ``--nproc-per-node`` is its agent, which passes it on.
    """
    _wait_for_left_runs(sweep, sweep.runs)
    todo = _todo(sweep)
    pool = [jobs.LocalJob(r.name, tuple(sweep.command(r, debug)), sweep.path / "logs" / f"{r.name}.log")
            for r in todo]
    result = jobs.run_local(pool, max_parallel=parallel, env=env, parent_death_signal=signal.SIGTERM)
    return {job.name: code for job, code in zip(pool, result.codes) if code is not None}


def submit_array(sweep: Sweep, options: slurm.SlurmOptions, parallel: int | None,
                 debug: bool = False) -> tuple[str | None, list[RunPlan]]:
    """Write sweep.sbatch (element *i* runs combination *i*) and submit the unfinished runs as one
    job array; (job id, runs submitted), or (None, []) when every run has finished."""
    if sweep.nproc_per_node > 1:
        raise ScorchError(NPROC_FOR_SLURM)
    todo = _todo(sweep)
    if not todo:
        return None, []
    script = jobs.render(slurm.job_spec(
        options, commands=[sweep.command(r, debug) for r in sweep.runs], job_name=sweep.path.name,
        chdir=os.getcwd(), log_dir=str(sweep.path / "logs"), log_name="slurm-%A_%a.out",
        array=jobs.array_spec([r.index for r in todo], parallel),
    ))
    path = sweep.path / SWEEP_SCRIPT
    _atomic.write_text(path, script)
    return slurm.submit_script(path), todo


def sweep_dir(run_root: str, name: str, for_slurm: bool = False) -> Path:
    """``RUN_ROOT/NAME``, refused (naming the flag) when NAME is no plain directory name or a
    value has a control character; with ``for_slurm`` the run root and the working directory
    too, since they reach the job script."""
    check_file_name(name, "--name")
    check_path(str(run_root), "--run-root")
    slurm.check_job_values(name=name, **({"cwd": os.getcwd(), "run_root": run_root} if for_slurm else {}))
    return Path(run_root) / name


# --- summary ------------------------------------------------------------------------------------

def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def summary(path: str | os.PathLike) -> tuple[list[str], list[list[Any]]]:
    """Header and one row per run: name, its grid settings, status, epochs, monitor, best, best
    epoch, final monitored value, then the final value of every other metric. Sorted best first
    by the monitored metric (runs without a value last, in index order)."""
    path, runs = load(path)
    keys: list[str] = []
    for r in runs:
        keys += [k for k in r.settings if k not in keys]
    loaded: list[tuple[RunPlan, report.Run | None]] = []
    for r in runs:
        run_dir = path / r.name
        try:
            loaded.append((r, report.load_run(run_dir)))
        except ScorchError:
            loaded.append((r, None))
    metrics: list[str] = []
    for _, run in loaded:
        metrics += [m for m in (run.metrics if run else []) if m not in metrics]
    modes = [run.monitor_mode for _, run in loaded if run is not None and run.best() is not None]
    sign = -1.0 if modes and modes[0] == "max" else 1.0
    header = ["name", *keys, "status", "epochs", "monitor", "best", "best_epoch", "final", *metrics]
    rows: list[tuple[tuple[int, float, int], list[Any]]] = []
    for r, run in loaded:
        best = run.best() if run else None
        final = run.final(run.monitor) if run else None
        row = [r.name, *(r.settings.get(k) for k in keys), status(path / r.name),
               len(run.rows) if run else 0, run.monitor if run else None,
               best[1] if best else None, best[0] if best else None, final,
               *((run.final(m) if run else None) for m in metrics)]
        order = (0, sign * best[1], r.index) if best and math.isfinite(best[1]) else (1, 0.0, r.index)
        rows.append((order, row))
    return header, [row for _, row in sorted(rows, key=lambda x: x[0])]


def write_summary(path: str | os.PathLike) -> tuple[Path, list[str], list[list[Any]]]:
    """Write ``summary.csv`` atomically; returns its path, header and rows."""
    header, rows = summary(path)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    target = Path(path) / SUMMARY_FILE
    _atomic.write_text(target, out.getvalue())
    return target, header, rows


def format_summary(header: list[str], rows: list[list[Any]]) -> str:
    """The summary as an aligned text table (numbers to 4 significant digits)."""
    def show(value: Any) -> str:
        return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else _cell(value)

    return report.format_table([header, *[[show(v) for v in row] for row in rows]])
