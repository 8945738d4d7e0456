"""``history.csv``: one row per epoch (per validation with --val-every), rewritten atomically at each.
On a resume it must hold the rows of what the checkpoint has done (checked before the run directory
changes), and keeps them."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from .._atomic import user_facing, write_text
from ..errors import ScorchError
from ..rundir.layout import HISTORY
from .base import Logger, Resume

FIRST = ("epoch", "step", "lr", "time")


def _order(keys: list[str]) -> list[str]:
    rest = [k for k in keys if k not in FIRST]
    train = sorted((k for k in rest if k.startswith("train/")), key=lambda k: (k != "train/loss", k))
    valid = sorted((k for k in rest if k.startswith("valid/")), key=lambda k: (k != "valid/loss", k))
    other = sorted(k for k in rest if not k.startswith(("train/", "valid/")))
    return [*FIRST, *train, *valid, *other]


def _fmt(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def resumed_rows(path: Path, resume: Resume | None) -> list[dict[str, str]]:
    """The rows of a run's history.csv up to where ``resume`` continues (every row of epochs
    1..``resume.epoch``, and those of the next epoch up to ``resume.step``: --val-every rows inside it),
    checked: one line naming the file and what is wrong when it cannot be the history of those epochs."""
    epochs = resume.epoch if resume else 0
    if resume is None or (epochs == 0 and resume.step == 0):
        return []
    if not path.is_file():
        if epochs == 0:
            return []
        raise ScorchError(f"{path} is missing; the checkpoint is at epoch {epochs}, so expected its {epochs} row(s)")
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ScorchError(f"{path} cannot be read ({exc}); expected the CSV scorch wrote") from exc
    if header[:len(FIRST)] != list(FIRST):
        raise ScorchError(f"{path} has the header {','.join(header)[:80]!r}; expected it to start with {','.join(FIRST)}")
    kept: list[dict[str, str]] = []
    seen: list[int] = []
    for line, row in enumerate(rows, start=2):
        try:
            epoch, step = int(row["epoch"]), int(row["step"])
        except (TypeError, ValueError):
            raise ScorchError(f"{path}, line {line}: epoch {row['epoch']!r} or step {row['step']!r} is not a whole "
                              "number; expected the rows as scorch wrote them") from None
        if epoch <= epochs or (epoch == epochs + 1 and step <= resume.step):
            kept.append(row)
            seen.append(epoch)
    if sorted(seen) != seen or sorted(set(seen) - {epochs + 1}) != list(range(1, epochs + 1)):
        raise ScorchError(f"{path} holds the rows of epochs {sorted(set(seen))[:8]}; the checkpoint is at epoch {epochs}, "
                          f"so expected epochs 1 to {epochs}")
    return kept


class CSVLogger(Logger):
    name = "csv"

    def __init__(self) -> None:
        self.path: Path | None = None
        self.rows: list[dict[str, Any]] = []  # the resumed epochs' rows, then this session's

    def check(self, run_dir: Path, resume: Resume | None) -> None:
        self.rows = resumed_rows(run_dir / HISTORY, resume)

    def open(self, run_dir: Path, resume: Resume | None) -> None:
        self.path = run_dir / HISTORY

    def log_epoch(self, row: dict[str, Any]) -> None:
        assert self.path is not None, "CSVLogger.open comes first"
        self.rows.append(row)
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=_order(keys), lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: _fmt(v) for k, v in r.items()})
        with user_facing(self.path):
            write_text(self.path, out.getvalue())
