"""Compare run directories: a table of settings and metrics, and a PNG of the training curves.

A run directory is what scorch-train leaves: ``config.json`` (every setting) and
``history.csv`` (one row per epoch). "Best" follows the run's own ``--monitor``, as training did: its
``monitor`` (None: training's default, :func:`scorch.training.monitor.default_monitor`: ``valid/main`` when the
model has a metric ``main``, else ``valid/loss``; ``train/...`` without validation) and ``monitor_mode``.
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

from .._atomic import atomic_open
from ..config import MONITOR_MODES, NOT_SWEEPABLE, monitor_direction
from ..contract.overrides import read_saved
from ..errors import ScorchError
from ..rundir.layout import HISTORY, RunLayout
from ..training.monitor import default_monitor
from .sweepfile import SWEEP_FILE, load as load_sweep

log = logging.getLogger(__name__)

STEP_COLUMNS = ("epoch", "step", "lr", "time")
LR = "lr"  # history.csv's learning rate: a column of the table and the last panel of the plot
DIAGNOSTICS = "diag/"  # how the machine ran (scorch/training/diagnostics.py), not what the run learned: left out
COUNTERS = ("skipped_steps",)  # running counts, not metrics: in the table, never a panel of the plot
SOFTWARE = "scorch-report"  # the PNG's Software text: only such a PNG may be replaced by --out
LEGEND_INSIDE = 3  # more runs than this: one legend below the panels instead of one inside each
SETTINGS_SUFFIX = "_settings"  # model_settings, dataset_settings: a part's own settings, shown one by one

Row = dict[str, float | None]


@dataclass(frozen=True)
class Run:
    path: Path
    config: dict[str, Any]
    columns: list[str]  # history.csv's header
    rows: list[Row]  # one per epoch; None where a cell is empty
    sessions: tuple[dict[str, Any], ...] = ()  # meta.json's sessions (world_size, global_batch), oldest first

    @property
    def settings(self) -> dict[str, Any]:
        """config.json's settings, a part's settings (``model_settings``: {...}) one by one as
        ``model.KEY``, as --set and --grid name them."""
        flat: dict[str, Any] = {}
        for key, value in self.config.items():
            if key.endswith(SETTINGS_SUFFIX) and isinstance(value, dict):
                flat.update({f"{key[:-len(SETTINGS_SUFFIX)]}.{k}": v for k, v in value.items()})
            else:
                flat[key] = value
        return flat

    def _sessions(self, key: str) -> str | None:
        """A session fact (``world_size``, ``global_batch``): one value, or each session's that differ
        (``2,4``: resumed with other ranks); None when meta.json does not say."""
        values = [str(s[key]) for s in self.sessions if s.get(key) is not None]
        return ",".join(dict.fromkeys(values)) if values else None

    @property
    def world_size(self) -> str | None:
        return self._sessions("world_size")

    @property
    def global_batch(self) -> str | None:
        return self._sessions("global_batch")

    @property
    def lr(self) -> str | None:
        """The learning rate used, from history.csv's lr column (a Socket.optimizer's own, or the
        schedule's): the first epoch's, and the last's when it changed (``0.003→0.0003``)."""
        points = [v for _, v in self.values("lr")]
        if not points:
            return None
        first, last = _fmt(points[0]), _fmt(points[-1])
        return first if first == last else f"{first}→{last}"

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.path.name)

    @property
    def metrics(self) -> list[str]:
        return [c for c in self.columns if c not in STEP_COLUMNS and not c.startswith(DIAGNOSTICS)]

    @property
    def monitor(self) -> str:
        if self.config.get("monitor"):
            return str(self.config["monitor"])
        has_valid = any(r.get("valid/loss") is not None for r in self.rows)
        return default_monitor(self.columns, has_valid)

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
    layout = RunLayout(path)
    config_path, history_path = layout.config, layout.history
    for required in (config_path, history_path):
        if not required.is_file():
            raise ScorchError(f"RUN_DIR {path}: no {required.name}; expected a run directory written by scorch-train")
    config = read_saved(config_path)
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
    return Run(path, config, columns, rows, _sessions(layout.meta))


def _sessions(meta: Path) -> tuple[dict[str, Any], ...]:
    """meta.json's sessions; none when it is missing or unreadable (the table shows '-')."""
    try:
        sessions = json.loads(meta.read_text()).get("sessions") or []
    except (OSError, ValueError, AttributeError):
        return ()
    return tuple(s for s in sessions if isinstance(s, dict))


def expand(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """The run directories ``paths`` name: a sweep directory (with sweep.json) stands for its runs that
    have a history, in the sweep's order; what a shell's ``SWEEP/*`` adds besides them (``configs/``,
    ``logs/``, ``sweep.json``, ...) is left out."""
    out: list[Path] = []
    for given in map(Path, paths):
        if (given / SWEEP_FILE).is_file() and not RunLayout(given).history.is_file():
            root, plans = load_sweep(given)
            found = [root / p.name for p in plans if RunLayout(root / p.name).history.is_file()]
            if not found:
                raise ScorchError(f"RUN_DIR {given}: a sweep none of whose {len(plans)} runs has a {HISTORY} yet")
            out += found
        elif (given.parent / SWEEP_FILE).is_file() and not RunLayout(given).config.is_file():
            log.debug("left out %s: part of the sweep %s, not a run", given, given.parent)
        else:
            out.append(given)
    if not out:
        raise ScorchError(f"RUN_DIR: no run directory among {', '.join(map(str, paths))}")
    return list(dict.fromkeys(out))


def check_out(out: str | os.PathLike) -> Path:
    """Where the PNG may go: a new ``.png`` file in an existing directory, or a PNG that scorch-report
    wrote itself (its Software text says so); anything else is refused, so that ``--out`` never
    replaces a run's file (``--out runs/x/history.csv``) or a picture of the user's."""
    out = Path(out)
    if out.is_dir():
        raise ScorchError(f"--out {out}: is a directory; expected a .png file, e.g. {out / 'report.png'}")
    if out.suffix.lower() != ".png":
        raise ScorchError(f"--out {out}: expected a file name ending in .png (scorch-report writes a PNG)")
    if not out.parent.is_dir():
        raise ScorchError(f"--out {out}: directory {out.parent} does not exist")
    if out.exists() and png_software(out) != SOFTWARE:
        raise ScorchError(f"--out {out}: exists and was not written by scorch-report; not replacing it "
                          "(remove it, or choose another file)")
    return out


def png_software(path: Path) -> str | None:
    """The ``Software`` text of a PNG file (None: not a PNG, or none given)."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                return None
            while True:
                head = f.read(8)
                if len(head) < 8:
                    return None
                length, kind = int.from_bytes(head[:4], "big"), head[4:]
                if kind in (b"IDAT", b"IEND") or length > 1 << 20:
                    return None  # text chunks matplotlib writes come before the image data
                body = f.read(length)
                f.read(4)  # CRC
                if kind == b"tEXt":
                    key, _, value = body.partition(b"\0")
                    if key == b"Software":
                        return value.decode("latin-1")
    except OSError:
        return None


def differing_settings(runs: Sequence[Run]) -> list[str]:
    shown = {"epochs", "monitor", "monitor_mode", "lr"}  # columns of their own (lr: the one used)
    keys = sorted({k for run in runs for k in run.settings} - set(NOT_SWEEPABLE) - shown)  # what a sweep may vary
    return [k for k in keys if len({json.dumps(run.settings.get(k), sort_keys=True) for run in runs}) > 1]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def table(runs: Sequence[Run]) -> list[list[str]]:
    """Header and one row per run: name, epochs, world size and global batch (meta.json's sessions), the
    learning rate used (history.csv's), the settings that differ (a part's one by one, ``model.KEY``),
    the monitor's best, final metrics."""
    settings = differing_settings(runs)
    metrics: list[str] = []
    for run in runs:
        metrics += [m for m in run.metrics if m not in metrics]
    header = ["name", "epochs", "world", "global batch", "lr", *settings, "monitor", "best", "best epoch", *metrics]
    rows = [header]
    for run in runs:
        done, planned = len(run.rows), run.config.get("epochs")
        epochs = str(done) if planned in (None, done) else f"{done}/{planned}"
        best = run.best()
        rows.append([
            run.name, epochs, _fmt(run.world_size), _fmt(run.global_batch), _fmt(run.lr),
            *(_fmt(run.settings.get(k)) for k in settings),
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
    """:func:`figure`, written atomically as a PNG whose Software text is scorch-report's; returns the
    panel titles."""
    fig, bases = figure(runs)
    out = check_out(out)
    with atomic_open(out, "wb") as f:
        fig.savefig(f, format="png", dpi=100, metadata={"Software": SOFTWARE})
    log.debug("wrote %s with panels %s", out, bases)
    return bases


def figure(runs: Sequence[Run]) -> tuple[Any, list[str]]:
    """One panel per metric (loss first; counters such as skipped_steps are not metrics) and one of the
    learning rate (last): every run in
    its colour, train dashed, valid solid, a star at the best monitor value; whole-number epoch ticks;
    with more than three runs one legend below the panels instead of one inside each."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state
    except ImportError as exc:
        raise ScorchError("scorch-report needs matplotlib: pip install 'scorch[report]'") from exc
    from matplotlib.ticker import MaxNLocator

    bases: list[str] = []
    for run in runs:
        for metric in run.metrics:
            if run.values(metric) and _base(metric)[1] not in bases and metric not in COUNTERS:
                bases.append(_base(metric)[1])
    bases.sort(key=lambda b: b != "loss")
    if not bases:
        raise ScorchError(f"no run has a finished epoch in its {HISTORY}; nothing to plot")
    if any(run.values(LR) for run in runs):
        bases.append(LR)  # the learning rate each epoch used, last
    ncols = min(len(bases), 3)
    nrows = math.ceil(len(bases) / ncols)
    fig = Figure(figsize=(5.2 * ncols, 3.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    handles: dict[str, Any] = {}
    for ax, base in zip(axes, bases):
        for i, run in enumerate(runs):
            color = f"C{i % 10}"
            for metric in (LR,) if base == LR else run.metrics:
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
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.grid(alpha=0.3)
        lines, labels = ax.get_legend_handles_labels()
        if len(runs) <= LEGEND_INSIDE:
            ax.legend(fontsize="small")
        handles.update({label: line for line, label in zip(lines, labels) if label not in handles})
    for ax in axes[len(bases):]:
        ax.set_visible(False)
    if len(runs) > LEGEND_INSIDE:
        # Many runs: one legend for the figure, below the panels, where it hides no curve.
        fig.legend(list(handles.values()), list(handles.keys()), loc="outside lower center", fontsize="small",
                   ncols=min(4, len(handles)))
    return fig, bases
