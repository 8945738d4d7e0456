"""``history.csv``: one row per epoch, rewritten atomically each epoch (rank 0 only)."""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from ._atomic import user_facing, write_text

FIRST = ("epoch", "step", "lr", "time")


def _order(keys: list[str]) -> list[str]:
    rest = [k for k in keys if k not in FIRST]
    train = sorted((k for k in rest if k.startswith("train/")), key=lambda k: (k != "train/loss", k))
    valid = sorted((k for k in rest if k.startswith("valid/")), key=lambda k: (k != "valid/loss", k))
    other = sorted(k for k in rest if not k.startswith(("train/", "valid/")))
    return [*FIRST, *train, *valid, *other]


def _fmt(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def read(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class History:
    def __init__(self, path: str | os.PathLike, rank0: bool, keep_until_epoch: int = 0):
        """Resume keeps the rows of epochs already in the checkpoint and drops later ones."""
        self.path, self.rank0 = Path(path), rank0
        self.rows: list[dict[str, Any]] = []
        if rank0 and keep_until_epoch > 0 and self.path.is_file():
            self.rows = [r for r in read(self.path) if int(r["epoch"]) <= keep_until_epoch]

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if not self.rank0:
            return
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
