"""Concurrent and killed writers: counts stay exact, nothing partial is counted."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from scorch.gen._params import param_id
from scorch.gen._store import ParamSetDir, param_set_dir

from .conftest import all_uids, assert_consistent, cli, only_param_set

pytestmark = __import__("pytest").mark.slow


def test_eight_concurrent_writers_five_chunks_each(gen_dir: Path):
    # save_every is 10, so 8 jobs x 50 samples = 8 processes writing 5 chunks each, all at once.
    assert cli("generate", "seq", "-n", "400", "--jobs", "8", "--max-parallel", "8",
               "--local", "--time", "5", gen_dir=gen_dir) == 0
    ps = only_param_set(gen_dir)
    chunks = ps.chunks("unassigned")
    assert len(chunks) == 40 and {n for _, n in chunks} == {10}
    assert ps.count("unassigned") == 400
    assert assert_consistent(ps) == 400
    uids = all_uids(ps)
    assert len({u.rsplit("-", 1)[0] for u in uids}) == 8  # one id prefix per writer
    assert list(ps.tmp.iterdir()) == []


def _worker(gen_dir: Path, values: dict, total: int) -> subprocess.Popen:
    full = {"offset": 0.0, "delay": 0.0, "width": 1, **values}
    return subprocess.Popen(
        [sys.executable, "-m", "scorch.gen._worker", "--dir", str(gen_dir), "--dataset", "seq",
         "--params-json", json.dumps(full), "--param-id", param_id(full), "--total", str(total),
         "--jobs", "1", "--task", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for_chunks(ps: ParamSetDir, at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(ps.chunks("unassigned")) < at_least:
        assert time.monotonic() < deadline, "worker wrote no chunks"
        time.sleep(0.02)


def test_sigkill_mid_chunk_then_generate_carries_on(gen_dir: Path):
    values = {"delay": 0.01}
    proc = _worker(gen_dir, values, total=10_000)
    ps = param_set_dir(gen_dir, "seq", param_id({"offset": 0.0, "delay": 0.01, "width": 1}))
    _wait_for_chunks(ps, 3)
    time.sleep(0.05)  # in the middle of the next chunk (10 samples x 10 ms)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    chunks = ps.chunks("unassigned")
    assert proc.returncode == -signal.SIGKILL and len(chunks) >= 3
    total = assert_consistent(ps)
    assert total == 10 * len(chunks) == ps.count("unassigned")
    # The next generate runs and adds exactly what it was asked for.
    assert cli("generate", "seq", "-n", "25", "--jobs", "2", "--local", "--time", "5",
               "--params", repr(values), gen_dir=gen_dir) == 0
    assert ps.count("unassigned") == total + 25
    assert assert_consistent(ps) == total + 25


def test_sigkill_at_random_moments_during_large_writes(gen_dir: Path):
    # Wide rows (20k floats = 160 kB each, 1.6 MB per chunk) so that many kills land in a write.
    values = {"width": 20_000}
    ps = param_set_dir(gen_dir, "seq", param_id({"offset": 0.0, "delay": 0.0, "width": 20_000}))
    rng = random.Random(1234)
    for _ in range(6):
        before = len(ps.chunks("unassigned"))
        proc = _worker(gen_dir, values, total=100_000)
        if before == 0:
            _wait_for_chunks(ps, 1)
        else:
            _wait_for_chunks(ps, before + 1)
        time.sleep(rng.uniform(0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert assert_consistent(ps) == ps.count("unassigned") == 10 * len(ps.chunks("unassigned"))
    # Partial files are only ever in tmp/, and never counted; an old one is cleaned up.
    leftovers = list(ps.tmp.iterdir())
    for path in leftovers:
        os.utime(path, (0, 0))
    assert ps.clean_tmp() == len(leftovers)
    assert list(ps.tmp.iterdir()) == []


def test_sigterm_saves_the_finished_samples_of_the_unfinished_chunk(gen_dir: Path):
    # 0.2 s per sample: after the first chunk, 0.5 s more is 2 finished samples and one under way.
    values = {"delay": 0.2}
    proc = _worker(gen_dir, values, total=1000)
    ps = param_set_dir(gen_dir, "seq", param_id({"offset": 0.0, "delay": 0.2, "width": 1}))
    _wait_for_chunks(ps, 1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)  # what SLURM sends at the time limit, and scancel
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    sizes = sorted(n for _, n in ps.chunks("unassigned"))
    assert sizes[-1] == 10 and 0 < sizes[0] < 10, sizes  # the partial chunk was saved
    assert assert_consistent(ps) == ps.count("unassigned") == sum(sizes)
    assert list(ps.tmp.iterdir()) == []
