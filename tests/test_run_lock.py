"""One writer per run directory: a second scorch-train on a run in use refuses with one line naming the
holder (two real processes); a lock whose process is gone, or a requeued SLURM job's own, is taken over;
a holder on another host needs --break-lock."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from scorch.cli.train import main
from scorch.rundir.lock import RunLock, lock_path, me
from tests.helpers import BIN, base_args, env, snapshot
from tests.test_preempt import args as slow_args


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def write_lock(run_dir: Path, **holder: object) -> Path:
    path = lock_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**me(), **holder}))
    return path


def test_a_second_scorch_train_on_a_run_in_use_refuses_naming_the_holder(tmp_path: Path) -> None:
    e = env()
    e["SCORCH_TEST_SLOW"] = "0.004"
    first = subprocess.Popen([str(BIN / "scorch-train"), *slow_args(tmp_path, "r", "--auto-resume")], env=e,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lock = lock_path(tmp_path / "r")
    deadline = time.time() + 60
    while time.time() < deadline and not (tmp_path / "r" / "log.txt").exists():
        time.sleep(0.05)
    assert lock.exists() and first.poll() is None
    before = snapshot(tmp_path / "r" / "checkpoints")
    # A requeued job's twin started by hand: the same command (--auto-resume accepts a non-empty run).
    second = subprocess.run([str(BIN / "scorch-train"), *slow_args(tmp_path, "r", "--auto-resume")], env=e,
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 2
    line = second.stderr.strip()
    assert "\n" not in line and line.startswith("scorch-train: error: ")
    assert f"in use by another scorch-train (pid {first.pid} on host {socket.gethostname()}" in line
    assert first.poll() is None or first.returncode == 0  # the holder was not disturbed
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert not lock.exists()  # released at the end
    assert snapshot(tmp_path / "r" / "checkpoints").keys() >= before.keys()


def test_a_lock_whose_process_is_gone_is_taken_over(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock = write_lock(tmp_path / "r", pid=dead_pid())
    assert main(base_args(tmp_path, "r", "--epochs", "1")) == 0
    assert "took over the lock" in capsys.readouterr().err and not lock.exists()


def test_a_holder_that_ended_but_was_not_reaped_is_gone(tmp_path: Path) -> None:
    # A rank killed after its mpirun ended is a zombie until someone reaps it: it holds nothing.
    child = subprocess.Popen(["true"])
    stat = Path(f"/proc/{child.pid}/stat")
    deadline = time.monotonic() + 60
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"  # ended, not yet waited for
    start = stat.read_text().rsplit(")", 1)[1].split()[19]
    write_lock(tmp_path / "r", pid=child.pid, pid_start=start)
    lock = RunLock(tmp_path / "r")
    lock.acquire()
    assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    lock.release()
    child.wait()


def test_a_reused_pid_is_not_the_holder(tmp_path: Path) -> None:
    write_lock(tmp_path / "r", pid=os.getpid(), pid_start="1")  # this pid, but a process started at another time
    lock = RunLock(tmp_path / "r")
    lock.acquire()
    assert json.loads(lock.path.read_text())["pid_start"] == me()["pid_start"]
    lock.release()
    assert not lock.path.exists()


def test_a_live_holder_on_this_host_is_refused_and_nothing_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    holder = subprocess.Popen(["sleep", "60"])
    try:
        write_lock(tmp_path / "r", pid=holder.pid, pid_start=None)
        assert main(base_args(tmp_path, "r", "--epochs", "1")) == 2
    finally:
        holder.kill()
        holder.wait()
    assert f"pid {holder.pid} on host" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_another_host_needs_break_lock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock = write_lock(tmp_path / "r", host="node-17", pid=4242, slurm_job_id="991")
    assert main(base_args(tmp_path, "r", "--epochs", "1")) == 2
    err = capsys.readouterr().err
    assert "pid 4242 on host node-17, SLURM job 991" in err and "--break-lock" in err
    assert main(base_args(tmp_path, "r", "--epochs", "1", "--break-lock")) == 0
    assert not lock.exists()


def test_a_requeued_slurm_job_takes_over_its_own_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    holder = subprocess.Popen(["sleep", "60"])  # alive, and on another node as far as the lock says
    try:
        write_lock(tmp_path / "r", host="node-3", pid=holder.pid, slurm_job_id="77", slurm_restart=0)
        monkeypatch.setenv("SLURM_JOB_ID", "77")
        monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
        assert main(base_args(tmp_path, "r", "--epochs", "1", "--auto-resume")) == 0
        write_lock(tmp_path / "r", host="node-3", pid=holder.pid, slurm_job_id="78", slurm_restart=0)
        assert main(base_args(tmp_path, "r", "--epochs", "2", "--auto-resume")) == 2  # another job: refused
    finally:
        holder.kill()
        holder.wait()


def test_after_taking_over_a_stale_lock_a_second_taker_is_refused(tmp_path: Path) -> None:
    write_lock(tmp_path / "r", pid=dead_pid())
    a, b = RunLock(tmp_path / "r"), RunLock(tmp_path / "r")
    a.acquire()
    with pytest.raises(Exception, match="in use by another scorch-train"):
        b.acquire()  # a's lock is alive (this very process)
    a.release()
