"""``sweep.json``: the record of a sweep's runs, written by scorch-sweep and read by it and by
scorch-report (which expands a sweep directory to its runs)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ScorchError

SWEEP_FILE = "sweep.json"


@dataclass(frozen=True)
class RunPlan:
    index: int
    name: str
    settings: dict[str, Any]  # grid key -> value
    sets: tuple[str, ...]  # "KEY=TEXT" for --set

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "settings": self.settings, "set": list(self.sets),
                "config": f"configs/{self.name}.json"}


def load(path: str | os.PathLike) -> tuple[Path, list[RunPlan]]:
    """The runs a sweep directory holds, from its sweep.json."""
    path = Path(path)
    sweep_file = path / SWEEP_FILE
    if not sweep_file.is_file():
        raise ScorchError(f"{path}: no {SWEEP_FILE}; expected a sweep directory written by scorch-sweep")
    try:
        record = json.loads(sweep_file.read_text())
        runs = [RunPlan(r["index"], r["name"], r["settings"], tuple(r["set"])) for r in record["runs"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ScorchError(f"{sweep_file}: not a sweep record ({exc})") from exc
    return path, runs
