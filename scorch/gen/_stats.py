"""Per-sample generation times of a parameter set: totals, mean and spread.

Every chunk stores the seconds spent on each of its samples (``time``).
Summing them means opening every chunk, so ``index.json`` caches per file
``[count, sum, sum of squares]``, keyed by the (unique, immutable) chunk
name. The index is only a cache: entries for files that no longer exist are
dropped, files it lacks are read, and a lost or stale index is rebuilt from
the chunks; concurrent writers each write a correct index (last one wins).
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from .._atomic import write_json as atomic_write_json
from ._store import ParamSetDir, read_chunk

log = logging.getLogger(__name__)
INDEX_VERSION = 1


@dataclass(frozen=True)
class TimeStats:
    """Summary of the recorded per-sample times (seconds)."""

    samples: int
    total: float
    mean: float
    std: float

    @classmethod
    def from_sums(cls, n: int, s: float, ss: float) -> TimeStats:
        if n == 0:
            return cls(0, 0.0, math.nan, math.nan)
        mean = s / n
        var = max(ss / n - mean * mean, 0.0)
        return cls(n, s, mean, math.sqrt(var))


def time_stats(ps: ParamSetDir, *, update_index: bool = True) -> TimeStats:
    """Timing summary over every counted chunk of *ps* (unassigned and groups)."""
    index_path = ps.root / "index.json"
    cached = _read_index(index_path)
    fresh: dict[str, list[float]] = {}
    for path in ps.all_chunk_paths():
        entry = cached.get(path.name)
        if entry is None:
            try:
                times = read_chunk(path, ("time",))["time"]
            except FileNotFoundError:  # moved while we listed; counted where it went
                continue
            entry = [len(times), float(times.sum()), float((times * times).sum())]
        fresh[path.name] = entry
    if update_index and fresh != cached:
        try:
            atomic_write_json(index_path, {"version": INDEX_VERSION, "files": fresh})
        except OSError as exc:  # read-only cache: the index is only an optimisation
            log.debug("could not write %s: %s", index_path, exc)
    n = sum(int(e[0]) for e in fresh.values())
    return TimeStats.from_sums(n, sum(e[1] for e in fresh.values()),
                               sum(e[2] for e in fresh.values()))


def _read_index(path: Path) -> dict[str, list[float]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
        return {}
    files = data.get("files")
    return files if isinstance(files, dict) else {}
