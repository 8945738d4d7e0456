"""What every run measures of itself: throughput, data wait, step times, peak memory.

Each rank's :class:`StepTimer` reads ``time.perf_counter`` around each fetch of a batch (the
DataLoader's ``next()``, and starting its workers) and at the end of each optimizer step: ~1 µs a
step, nothing on the device. A step's time runs from the first fetch of its first micro-batch to
the end of the step (its callbacks included); what the loop does between steps (a checkpoint, a
validation inside the epoch) is no step's. On CUDA there is no ``torch.cuda.synchronize()``: the
host's clock runs at most a step or so ahead of the device, because the loss check of each step
waits for the loss of the step before (:class:`~scorch.training.loop.NanGuard`; with
``--nan-policy skip`` the gradient check waits for the step's own), so in the steady state the
intervals between step ends are the device's step times (one step may take part of its
neighbour's time).

Once per history row (each epoch; each validation with ``--val-every``) every rank hands its
numbers to one ``all_gather`` (:meth:`Diagnostics.gather`, called by every rank); the row gets the
``diag/`` columns of :data:`COLUMNS`. At the end of a session the log gets one line
(:meth:`Diagnostics.summary`), over the whole session.
"""
from __future__ import annotations

import contextlib
import math
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import data, distributed as dist

PREFIX = "diag/"
COLUMNS = (
    "diag/samples_per_s",  # samples of every rank trained per second of training (the slowest rank's clock)
    "diag/data_wait",  # the share of its training time a rank waited for batches (the most of any rank), 0..1
    "diag/step_p50_ms",  # the median step time of the slowest rank (the highest median)
    "diag/step_p95_ms",  # and its 95th percentile
    "diag/slowest_rank",
    "diag/slowest_host",
    "diag/peak_rss_mib",  # the process's peak resident memory so far (the most of any rank)
    "diag/cuda_peak_mib",  # on CUDA: the peak of torch's allocated memory so far (the most of any rank)
)

_BUCKET = math.log(1.01)  # step times are counted in buckets 1 % wide: percentiles within 1 %


def is_diagnostic(column: str) -> bool:
    """A column that measures the machine, not the training (it differs between identical runs)."""
    return column.startswith(PREFIX)


class StepTimes:
    """A histogram of step times (log buckets 1 % wide): bounded memory over any number of steps."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.n = 0

    def add(self, seconds: float) -> None:
        bucket = math.floor(math.log(seconds) / _BUCKET) if seconds > 0 else -10**6
        self.counts[bucket] = self.counts.get(bucket, 0) + 1
        self.n += 1

    def merge(self, other: StepTimes) -> None:
        for bucket, count in other.counts.items():
            self.counts[bucket] = self.counts.get(bucket, 0) + count
        self.n += other.n

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (nearest rank) in seconds, the middle of its bucket; NaN when empty."""
        if not self.n:
            return math.nan
        target = max(1, math.ceil(q * self.n))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= target:
                return math.exp((bucket + 0.5) * _BUCKET)
        raise AssertionError("unreachable: the counts add up to n")


@dataclass
class Tally:
    """One rank's steps over a stretch of training."""

    steps: int = 0
    samples: int = 0
    train_s: float = 0.0  # the sum of its step times
    wait_s: float = 0.0  # of which waiting for batches
    times: StepTimes = field(default_factory=StepTimes)

    def merge(self, other: Tally) -> None:
        self.steps += other.steps
        self.samples += other.samples
        self.train_s += other.train_s
        self.wait_s += other.wait_s
        self.times.merge(other.times)

    def report(self) -> dict[str, Any]:
        """What :func:`combine` needs of this rank (small and picklable)."""
        return {"steps": self.steps, "samples": self.samples, "train_s": self.train_s, "wait_s": self.wait_s,
                "p50": self.times.quantile(0.5), "p95": self.times.quantile(0.95)}


class StepTimer:
    """This rank's clock in the training loop (:func:`scorch.training.loop.train_epoch`)."""

    def __init__(self) -> None:
        self.window = Tally()  # since the last history row
        self._start: float | None = None  # when the current step began
        self._wait = 0.0  # the current step's wait so far
        self._samples = 0

    @contextlib.contextmanager
    def batches(self, loader: Any) -> Iterator[Iterator[Any]]:
        """:func:`scorch.data.batches`, timed: starting the loader's workers is waiting for data."""
        start = time.perf_counter()
        self._start, self._wait, self._samples = start, 0.0, 0
        with data.batches(loader) as it:
            self._wait += time.perf_counter() - start
            yield self._timed(it)

    def _timed(self, it: Iterator[Any]) -> Iterator[Any]:
        clock, fetch = time.perf_counter, it.__next__
        while True:
            start = clock()
            if self._start is None:
                self._start, self._wait, self._samples = start, 0.0, 0
            try:
                batch = fetch()
            except StopIteration:
                return
            self._wait += clock() - start
            yield batch

    def micro_batch(self, samples: int) -> None:
        self._samples += samples

    def step_end(self) -> None:
        """The optimizer step and its callbacks are done."""
        if self._start is None:
            return
        seconds = time.perf_counter() - self._start
        w = self.window
        w.steps += 1
        w.samples += self._samples
        w.train_s += seconds
        w.wait_s += self._wait
        w.times.add(seconds)
        self._start = None

    def take(self) -> Tally:
        """The window's tally; a new window starts."""
        window, self.window = self.window, Tally()
        return window


def peak_memory(device: torch.device) -> dict[str, float | None]:
    """This process's peak RSS so far and, on CUDA, torch's peak allocated memory, in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    cuda = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"rss": rss, "cuda": cuda}


def combine(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``diag/`` columns from every rank's report (``Tally.report`` with ``rank``, ``host``,
    ``rss``, ``cuda``); {} when no rank trained a step."""
    trained = [r for r in reports if r["steps"]]
    if not trained:
        return {}
    slowest = max(trained, key=lambda r: (r["p50"], -r["rank"]))
    train_s = max(r["train_s"] for r in trained)
    out: dict[str, Any] = {
        "diag/samples_per_s": sum(r["samples"] for r in reports) / train_s if train_s > 0 else math.nan,
        "diag/data_wait": max(min(1.0, r["wait_s"] / r["train_s"]) if r["train_s"] > 0 else 0.0 for r in trained),
        "diag/step_p50_ms": slowest["p50"] * 1e3,
        "diag/step_p95_ms": slowest["p95"] * 1e3,
        "diag/slowest_rank": slowest["rank"],
        "diag/slowest_host": slowest["host"],
        "diag/peak_rss_mib": max(r["rss"] for r in reports),
    }
    cuda = [r["cuda"] for r in reports if r["cuda"] is not None]
    if cuda:
        out["diag/cuda_peak_mib"] = max(cuda)
    return out


class Diagnostics:
    """The run's measurements: the timer the loop feeds, and what the last gather said of the session."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.timer = StepTimer()
        self.session = Tally()  # this rank's, since the session began
        self.whole: dict[str, Any] = {}  # the session's columns over every rank, as of the last gather

    def gather(self) -> dict[str, Any]:
        """The ``diag/`` columns of the window since the last row: one all_gather; every rank calls it."""
        window = self.timer.take()
        self.session.merge(window)
        where = dist.placement()
        memory = peak_memory(self.device)
        mine = {"rank": where["rank"], "host": where["host"], **memory}
        reports = dist.all_gather({"window": {**mine, **window.report()}, "session": {**mine, **self.session.report()}})
        self.whole = combine([r["session"] for r in reports])
        return combine([r["window"] for r in reports])

    def summary(self) -> str | None:
        """The session's line for the log, or None before any row measured a step."""
        d = self.whole
        if not d:
            return None
        line = (f"diagnostics: {d['diag/samples_per_s']:.0f} samples/s, data wait {d['diag/data_wait']:.0%}, "
                f"step p50 {d['diag/step_p50_ms']:.3g} ms p95 {d['diag/step_p95_ms']:.3g} ms (slowest: rank "
                f"{d['diag/slowest_rank']} on host {d['diag/slowest_host']}), peak RSS {d['diag/peak_rss_mib']:.0f} MiB")
        if "diag/cuda_peak_mib" in d:
            line += f", peak CUDA allocated {d['diag/cuda_peak_mib']:.0f} MiB"
        return line
