"""The reusable SLURM harness itself: job states, requeue, and a clean stop."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from tests.slurm_fixture import missing_binaries, start_slurm

pytestmark = pytest.mark.slow


def test_states_of_single_and_array_jobs(slurm, tmp_path: Path):
    ok = slurm.submit(["--wrap", "true", "-o", "/dev/null"])
    bad = slurm.submit(["--wrap", "exit 3", "-o", "/dev/null"])
    arr = slurm.submit(["--wrap", "test $SLURM_ARRAY_TASK_ID != 1", "--array=0-2", "-o", "/dev/null"])
    assert slurm.wait_job(ok, 60) == "COMPLETED"
    assert slurm.wait_job(bad, 60) == "FAILED"
    assert slurm.wait_job(arr, 60) == "COMPLETED,FAILED"
    states = slurm.job_states(arr)
    assert states[f"{arr}_1"] == "FAILED" and states[f"{arr}_0"] == "COMPLETED"


def test_requeue_runs_the_job_again(slurm, tmp_path: Path):
    out = tmp_path / "starts.txt"
    job = slurm.submit(["--wrap", f"echo ${{SLURM_RESTART_COUNT:-0}} >> '{out}'; sleep 300",
                        "-o", "/dev/null"])
    deadline = time.monotonic() + 60
    while slurm.job_states(job)[job] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    slurm.run(["scontrol", "requeue", job])
    deadline = time.monotonic() + 90
    while not (out.exists() and len(out.read_text().split()) == 2):
        assert time.monotonic() < deadline, slurm.run(["scontrol", "show", "job", job]).stdout
        time.sleep(0.5)
    assert out.read_text().split() == ["0", "1"]  # second start knows it is a restart
    slurm.run(["scancel", job])
    assert slurm.wait_job(job, 60) == "CANCELLED"


@pytest.mark.skipif(bool(missing_binaries()), reason="SLURM is not installed")
def test_stop_leaves_no_daemon_or_job_running(tmp_path: Path):
    with start_slurm(tmp_path / "own") as cluster:
        job = cluster.submit(["--wrap", "sleep 300", "-o", "/dev/null"])
        deadline = time.monotonic() + 60
        while cluster.job_states(job)[job] != "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        daemons = [p.pid for p in cluster._procs]
        conf = str(cluster.conf)
    for pid in daemons:
        assert not _alive(pid), pid
    needle = f"SLURM_CONF={conf}".encode()
    leftovers = [p for p in _pids() if needle in _environ(p) and _alive(int(p))]
    assert leftovers == []


def _pids() -> list[str]:
    return [p for p in os.listdir("/proc") if p.isdigit()]


def _environ(pid: str) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def _alive(pid: int) -> bool:
    """Running (zombies, already dead but not yet reaped by init, do not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return re.sub(r"^.*\) ", "", stat).split()[0] != "Z"
