"""Compare run directories: a table of settings and metrics, and a PNG of the training curves.

A run directory is what scorch-train leaves: ``config.json`` (every setting) and
``history.csv`` (one row per epoch). "Best" follows the run's own ``--monitor``: its
``monitor`` (None: ``valid/loss``, or ``train/loss`` without validation) and ``monitor_mode``.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._atomic import atomic_open
from .config import MONITOR_MODES, NOT_SWEEPABLE, monitor_direction
from .errors import ScorchError

log = logging.getLogger(__name__)

STEP_COLUMNS = ("epoch", "step", "lr", "time")

Row = dict[str, float | None]


@dataclass(frozen=True)
class Run:
    path: Path
    config: dict[str, Any]
    columns: list[str]  # history.csv's header
    rows: list[Row]  # one per epoch; None where a cell is empty

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.path.name)

    @property
    def metrics(self) -> list[str]:
        return [c for c in self.columns if c not in STEP_COLUMNS]

    @property
    def monitor(self) -> str:
        if self.config.get("monitor"):
            return str(self.config["monitor"])
        has_valid = any(r.get("valid/loss") is not None for r in self.rows)
        return "valid/loss" if has_valid else "train/loss"

    @property
    def monitor_mode(self) -> str:
        return monitor_direction(self.monitor, self.config.get("monitor_mode") or "auto")

    def values(self, metric: str) -> list[tuple[int, float]]:
        return [(int(r["epoch"] or 0), v) for r in self.rows if (v := r.get(metric)) is not None]

    def final(self, metric: str) -> float | None:
        points = self.values(metric)
        return points[-1][1] if points else None

    def best(self) -> tuple[int, float] | None:
        """(epoch, value) of the best monitor value; the earliest on ties, as scorch-train keeps best.pt."""
        points = [(e, v) for e, v in self.values(self.monitor) if math.isfinite(v)]
        if not points:
            return None
        pick = min if self.monitor_mode == "min" else max
        value = pick(v for _, v in points)
        return next((e, v) for e, v in points if v == value)


def _number(text: str | None) -> float | None:
    if text is None or text.strip() == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def load_run(path: str | os.PathLike) -> Run:
    """Read a run directory; ScorchError (one line) when it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise ScorchError(f"RUN_DIR {path}: no such directory")
    config_path, history_path = path / "config.json", path / "history.csv"
    for required in (config_path, history_path):
        if not required.is_file():
            raise ScorchError(f"RUN_DIR {path}: no {required.name}; expected a run directory written by scorch-train")
    try:
        config = json.loads(config_path.read_text())
    except (ValueError, OSError) as exc:
        raise ScorchError(f"{config_path}: not readable JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise ScorchError(f"{config_path}: expected a JSON object of settings, found {type(config).__name__}")
    if config.get("monitor_mode", "auto") not in MONITOR_MODES:
        raise ScorchError(f"{config_path}: monitor_mode {config['monitor_mode']!r} is not one of {', '.join(MONITOR_MODES)}")
    try:
        with open(history_path, newline="") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or [])
            raw = list(reader)
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise ScorchError(f"{history_path}: not a readable CSV file ({exc})") from exc
    if raw and "epoch" not in columns:
        raise ScorchError(f"{history_path}: no 'epoch' column; expected scorch-train's history")
    rows = [{c: _number(r.get(c)) for c in columns} for r in raw]
    if any(r["epoch"] is None for r in rows):
        raise ScorchError(f"{history_path}: a row has no epoch number")
    return Run(path, config, columns, rows)


def differing_settings(runs: Sequence[Run]) -> list[str]:
    shown = {"epochs", "monitor", "monitor_mode"}  # columns of their own
    keys = sorted({k for run in runs for k in run.config} - set(NOT_SWEEPABLE) - shown)  # what a sweep may vary
    return [k for k in keys if len({json.dumps(run.config.get(k), sort_keys=True) for run in runs}) > 1]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def table(runs: Sequence[Run]) -> list[list[str]]:
    """Header and one row per run: name, epochs, differing settings, the monitor's best, final metrics."""
    settings = differing_settings(runs)
    metrics: list[str] = []
    for run in runs:
        metrics += [m for m in run.metrics if m not in metrics]
    header = ["name", "epochs", *settings, "monitor", "best", "best epoch", *metrics]
    rows = [header]
    for run in runs:
        done, planned = len(run.rows), run.config.get("epochs")
        epochs = str(done) if planned in (None, done) else f"{done}/{planned}"
        best = run.best()
        rows.append([
            run.name, epochs, *(_fmt(run.config.get(k)) for k in settings),
            f"{run.monitor} ({run.monitor_mode})", _fmt(best[1] if best else None), _fmt(best[0] if best else None),
            *(_fmt(run.final(m)) for m in metrics),
        ])
    return rows


def format_table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def _base(metric: str) -> tuple[str, str]:
    split, sep, base = metric.partition("/")
    return (split, base) if sep else ("", metric)


def plot(runs: Sequence[Run], out: str | os.PathLike) -> list[str]:
    """One panel per metric (loss first): every run in its colour, train dashed, valid solid,
    a star at the best monitor value. Written atomically as PNG; returns the panel titles."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state
    except ImportError as exc:
        raise ScorchError("scorch-report needs matplotlib: pip install 'scorch[report]'") from exc
    bases: list[str] = []
    for run in runs:
        for metric in run.metrics:
            if run.values(metric) and _base(metric)[1] not in bases:
                bases.append(_base(metric)[1])
    bases.sort(key=lambda b: b != "loss")
    if not bases:
        raise ScorchError("no run has a finished epoch in its history.csv; nothing to plot")
    out = Path(out)
    if not out.parent.is_dir():
        raise ScorchError(f"--out {out}: directory {out.parent} does not exist")
    ncols = min(len(bases), 3)
    nrows = math.ceil(len(bases) / ncols)
    fig = Figure(figsize=(5.2 * ncols, 3.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, base in zip(axes, bases):
        for i, run in enumerate(runs):
            color = f"C{i % 10}"
            for metric in run.metrics:
                split, b = _base(metric)
                points = run.values(metric)
                if b != base or not points:
                    continue
                epochs, values = zip(*points)
                ax.plot(epochs, values, "-" if split != "train" else "--", color=color,
                        marker="o" if len(points) == 1 else None, label=f"{run.name} {split}".strip())
            best = run.best()
            if best is not None and _base(run.monitor)[1] == base:
                ax.plot([best[0]], [best[1]], "*", color=color, markersize=12, label=f"{run.name} best {run.monitor}")
        ax.set_title(base)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(bases):]:
        ax.set_visible(False)
    with atomic_open(out, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    log.debug("wrote %s with panels %s", out, bases)
    return bases
