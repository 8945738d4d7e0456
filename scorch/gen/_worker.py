"""One generation job: run a generator and save its samples in chunks.

Started as ``python -m scorch.gen._worker`` by a SLURM array task (its share
from ``SLURM_ARRAY_TASK_ID``) or by the local runner (``--task``). Each
``save_every`` samples become one chunk, written atomically. Stopped by
SIGTERM, SIGUSR1 or SIGINT (a SLURM time limit, ``scancel``, Ctrl-C), the job
saves the samples it finished since its last chunk as a smaller chunk and
exits with 128 + the signal number; killed outright (SIGKILL), it loses those
samples, and nothing partial is counted.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
import traceback
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import STOP_SIGNALS
from ._generator import GeneratorSpec, get_spec
from ._params import Params
from ._store import ParamSetDir, param_set_dir, publish_chunk
from ._timing import split_samples
from .errors import GenError

log = logging.getLogger(__name__)


def _unpack(sample: Any, spec: GeneratorSpec, index: int) -> tuple[Any, Any]:
    if isinstance(sample, (tuple, list)) and len(sample) == 2:
        return sample[0], sample[1]
    raise GenError(f"generator {spec.name} yielded {type(sample).__name__} as sample {index}; "
                   "expected a pair (x, y)")


def _stack(values: list[Any], what: str, spec: GeneratorSpec) -> np.ndarray:
    try:
        return np.stack([np.asarray(v) for v in values])
    except ValueError as exc:
        raise GenError(f"generator {spec.name}: the {what} of one chunk differ in shape ({exc})") from exc


class Stopped(BaseException):
    """A stop signal arrived; raised in the main thread by the signal handler (a BaseException,
    like KeyboardInterrupt, so that a generator's own `except Exception` does not swallow it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, frame: Any) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Stop signals wait until the block is done (a chunk is published whole, and the buffer
    emptied with it, or neither)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class _ChunkWriter:
    """Buffers samples and publishes them every ``save_every``."""

    def __init__(self, ps: ParamSetDir, spec: GeneratorSpec) -> None:
        self.ps, self.spec = ps, spec
        self.prefix = uuid.uuid4().hex
        self.xs: list[Any] = []
        self.ys: list[Any] = []
        self.times: list[float] = []
        self.written = 0

    def add(self, x: Any, y: Any, seconds: float) -> None:
        self.xs.append(x)
        self.ys.append(y)
        self.times.append(seconds)
        if len(self.xs) >= self.spec.save_every:
            self.flush()

    def flush(self) -> None:
        if not self.xs:
            return
        n = len(self.xs)
        first = self.written
        arrays = {
            "X": _stack(self.xs, "x values", self.spec),
            "y": _stack(self.ys, "y values", self.spec),
            "time": np.asarray(self.times, dtype=np.float64),
            "uid": np.asarray([f"{self.prefix}-{first + i}" for i in range(n)]),
        }
        with _signals_deferred():
            path = publish_chunk(self.ps, arrays)
            self.written += n
            self.xs, self.ys, self.times = [], [], []
        log.info("saved %d samples to %s (%d so far)", n, path.name, self.written)


def generate_samples(directory: str | Path, spec: GeneratorSpec, params: Params, n: int) -> int:
    """Run *spec* for *n* samples with *params*; returns how many were saved."""
    ps = param_set_dir(directory, spec.name, params.param_id())
    ps.ensure(spec.name, params.values())
    writer = _ChunkWriter(ps, spec)
    samples = iter(spec.func(n, params))
    start = time.perf_counter()
    try:
        for index in range(n):
            try:
                sample = next(samples)
            except StopIteration:
                log.warning("generator %s stopped after %d of %d samples", spec.name, index, n)
                break
            seconds = time.perf_counter() - start
            x, y = _unpack(sample, spec, index)
            writer.add(x, y, seconds)
            start = time.perf_counter()  # chunk writes are not the sample's time
    except Stopped as stop:
        with _signals_deferred():
            log.warning("stopped by %s: saving the %d samples finished since the last chunk", stop, len(writer.xs))
            writer.flush()
        raise
    writer.flush()
    return writer.written


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m scorch.gen._worker",
                                description="one scorch-gen generation job (internal)")
    p.add_argument("--dir", required=True, help="directory holding datasets.py")
    p.add_argument("--dataset", required=True, help="generator name")
    p.add_argument("--params-json", required=True, help="all parameter values as JSON")
    p.add_argument("--param-id", required=True, help="expected id of those values")
    p.add_argument("--total", type=int, required=True, help="samples over all jobs")
    p.add_argument("--jobs", type=int, required=True, help="number of jobs")
    p.add_argument("--task", type=int, default=None,
                   help="this job's index (default: $SLURM_ARRAY_TASK_ID)")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    """Generate this task's share; returns the number of samples saved."""
    task = args.task
    if task is None:
        task = int(os.environ.get("SLURM_ARRAY_TASK_ID", "-1"))
    sizes = split_samples(args.total, args.jobs)
    if not 0 <= task < len(sizes):
        raise GenError(f"task index {task} outside 0..{len(sizes) - 1}")
    spec = get_spec(args.dir, args.dataset)
    params = spec.make_params(json.loads(args.params_json))
    if params.param_id() != args.param_id:
        raise GenError(f"{spec.params_cls.__name__} in datasets.py changed since the job was "
                       f"submitted (parameter id {params.param_id()} != {args.param_id}); resubmit")
    log.info("task %d: %d samples of %s %s", task, sizes[task], spec.name, params)
    return generate_samples(args.dir, spec, params, sizes[task])


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("SCORCH_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_stopped)
    try:
        run(_parse(argv))
    except Stopped as stop:
        return 128 + stop.signum
    except GenError as exc:
        log.error("%s", exc)
        if os.environ.get("SCORCH_DEBUG"):
            traceback.print_exc()
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
