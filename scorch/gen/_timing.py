"""Job time limits and compute-time estimates from recorded per-sample times."""
from __future__ import annotations

import math

from ._stats import TimeStats

# Interpreter start, imports and datasets.py import per job, on top of the samples.
STARTUP_MARGIN_SECONDS = 60.0


def per_sample_bound(stats: TimeStats) -> float:
    """Mean + 3 standard deviations of the recorded per-sample time (seconds)."""
    return stats.mean + 3.0 * stats.std


def time_limit_minutes(stats: TimeStats, samples_per_job: int) -> int:
    """Whole minutes for a job of *samples_per_job*: (mean + 3 sd) x samples + start-up."""
    seconds = per_sample_bound(stats) * samples_per_job + STARTUP_MARGIN_SECONDS
    return max(1, math.ceil(seconds / 60.0))


def split_samples(total: int, jobs: int) -> list[int]:
    """*total* samples over *jobs* jobs, sizes differing by at most one."""
    base, extra = divmod(total, jobs)
    return [base + (1 if i < extra else 0) for i in range(jobs)]


def format_duration(seconds: float) -> str:
    """``H:MM:SS``, or ``12.34s`` under a minute (``-`` for NaN)."""
    if math.isnan(seconds):
        return "-"
    if seconds < 60:
        return f"{seconds:.2f}s"
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
