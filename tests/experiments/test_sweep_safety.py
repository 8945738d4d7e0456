"""One scorch-sweep per sweep directory (the sweep lock), and a scorch-sweep killed outright
(SIGKILL) leaves no run training without it: its runs get SIGTERM, checkpoint and stop, and the
next scorch-sweep takes the dead one's lock over and resumes them. Real processes, real signals."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import BIN, FIXTURES, env, snapshot

pytestmark = pytest.mark.slow
MODEL, DATASET = str(FIXTURES / "dropout_model.py"), str(FIXTURES / "noisy_dataset.py")
SLOW = {"OMP_NUM_THREADS": "1", "SCORCH_TEST_SLOW": "0.004"}  # ~0.4 s an epoch: time to act while run 00 trains
DEADLINE_S = 120.0


def args(root: Path, *extra: str) -> list[str]:
    return ["--model", MODEL, "--dataset", DATASET, "--epochs", "3", "--batch-size", "4", "--lr", "0.05",
            "--grid", "seed=1,2", "--run-root", str(root), "--name", "s", *extra]


def start(argv: list[str], stderr: Path, slow: bool = True) -> subprocess.Popen[bytes]:
    e = {**env(), **(SLOW if slow else {"OMP_NUM_THREADS": "1"})}
    with open(stderr, "wb") as err:
        return subprocess.Popen([str(BIN / "scorch-sweep"), *argv], env=e, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)


def wait_for(what: str, ready: Callable[[], object], procs: tuple[subprocess.Popen[bytes], ...] = ()) -> object:
    """``ready()`` once it is truthy; fails at the deadline, or when one of ``procs`` ended first."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        value = ready()
        if value:
            return value
        ended = [p for p in procs if p.poll() is not None]
        assert not ended, f"waiting for {what}: pid {ended[0].pid} ended first (code {ended[0].returncode})"
        time.sleep(0.02)
    raise AssertionError(f"not within {DEADLINE_S:g} s: {what}")


def holder(run_dir: Path) -> int | None:
    """The pid in a run's lock (rank 0's scorch-train), once the lock is there and written."""
    with contextlib.suppress(OSError, ValueError):
        return int(json.loads((run_dir.parent / f".{run_dir.name}.lock").read_text())["pid"])
    return None


def stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the name (state, ppid, ...); None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    fields = stat(pid)
    return fields is not None and fields[0] != "Z"


def children(pid: int) -> list[int]:
    kids = []
    for path in Path("/proc").glob("[0-9]*"):
        fields = stat(int(path.name))
        if fields is not None and fields[0] != "Z" and int(fields[1]) == pid:
            kids.append(int(path.name))
    return sorted(kids)


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_a_second_sweep_is_refused_and_the_next_takes_over_from_a_killed_one(tmp_path):
    """While sweep A runs (stopped with SIGSTOP, so that nothing moves), sweep B on the same directory is
    refused in one line naming A's pid and host, exit 2, and nothing on disk changes. A is then SIGKILLed
    while its run 00 is still stopped; sweep C takes A's stale lock over, waits for run 00 (which got
    SIGTERM when A died) to checkpoint and stop once it is let go on, resumes it and finishes the sweep."""
    sdir, first = tmp_path / "s", tmp_path / "s" / "00-seed=1"
    a = start(args(tmp_path), tmp_path / "a.err")
    left: list[int] = [a.pid]
    try:
        wait_for("run 00's checkpoint", lambda: (first / "checkpoints" / "last.pt").exists(), (a,))
        train = holder(first)
        assert train is not None and stat(train) is not None and int(stat(train)[1]) == a.pid  # type: ignore[index]
        left.append(train)
        os.kill(train, signal.SIGSTOP)
        os.kill(a.pid, signal.SIGSTOP)
        wait_for("both stopped", lambda: stat(train)[0] == "T" and stat(a.pid)[0] == "T")  # type: ignore[index]
        before = snapshot(tmp_path)

        b = subprocess.run([str(BIN / "scorch-sweep"), *args(tmp_path)], capture_output=True, text=True,
                           timeout=DEADLINE_S, env={**env(), **SLOW})
        assert b.returncode == 2, b.stderr
        lines = b.stderr.strip().splitlines()
        assert len(lines) == 1, b.stderr
        assert lines[0].startswith(f"scorch-sweep: error: {sdir} is in use by another scorch-sweep "
                                   f"(pid {a.pid} on host {socket.gethostname()}, since "), lines[0]
        assert f"(lock: {tmp_path / '.s.lock'})" in lines[0]
        assert snapshot(tmp_path) == before

        a.kill()  # SIGKILL, stopped or not
        assert a.wait(timeout=DEADLINE_S) == -signal.SIGKILL
        assert alive(train)  # stopped: the SIGTERM it got when A died waits for it

        c = start(args(tmp_path), tmp_path / "c.err", slow=False)
        left.append(c.pid)
        err = tmp_path / "c.err"
        wait_for("C waiting for run 00", lambda: "waiting up to" in err.read_text(), (c,))
        assert f"00-seed=1: still held by pid {train} on host" in err.read_text()
        assert not (sdir / "01-seed=2").exists()
        os.kill(train, signal.SIGCONT)
        assert c.wait(timeout=300) == 0, err.read_text()
    finally:
        kill_all(left)
    text = err.read_text()
    assert f"took over the lock of {sdir} from pid {a.pid} on host" in text and "(its process is gone)" in text
    assert "failed" not in text
    assert not alive(train)
    log = (sdir / "logs" / "00-seed=1.log").read_text()
    assert "stopped by SIGTERM" in log
    meta = json.loads((first / "meta.json").read_text())
    assert meta["status"] == "finished" and len(meta["sessions"]) == 2  # A's session, resumed by C
    assert json.loads((sdir / "01-seed=2" / "meta.json").read_text())["status"] == "finished"
    assert not (tmp_path / ".s.lock").exists()


def test_a_killed_sweeps_two_rank_run_stops_and_the_rerun_resumes_it(tmp_path):
    """A run of the sweep launched with --nproc-per-node 2: SIGKILL to scorch-sweep reaches its agent
    as SIGTERM, which passes it to both ranks: they checkpoint and stop (status preempted), none is
    left running. Running the sweep again resumes that run and finishes both."""
    sdir, first = tmp_path / "s", tmp_path / "s" / "00-seed=1"
    argv = args(tmp_path, "--nproc-per-node", "2")
    a = start(argv, tmp_path / "a.err")
    left: list[int] = [a.pid]
    try:
        wait_for("run 00's checkpoint", lambda: (first / "checkpoints" / "last.pt").exists(), (a,))
        rank0 = holder(first)
        assert rank0 is not None and stat(rank0) is not None
        agent = int(stat(rank0)[1])  # type: ignore[index]
        assert children(a.pid) == [agent]
        ranks = children(agent)
        assert rank0 in ranks and len(ranks) == 2
        left += [agent, *ranks]
        a.kill()
        assert a.wait(timeout=DEADLINE_S) == -signal.SIGKILL
        wait_for("the agent and both ranks to stop", lambda: not any(alive(p) for p in (agent, *ranks)))
    finally:
        kill_all(left)
    meta = json.loads((first / "meta.json").read_text())
    assert meta["status"] == "preempted", meta
    assert "stopped by SIGTERM" in (sdir / "logs" / "00-seed=1.log").read_text()
    assert not (sdir / "01-seed=2").exists()
    assert (tmp_path / ".s.lock").exists()  # A's, stale

    again = subprocess.run([str(BIN / "scorch-sweep"), *argv], capture_output=True, text=True, timeout=300,
                           env={**env(), "OMP_NUM_THREADS": "1"})
    assert again.returncode == 0, again.stderr
    assert f"took over the lock of {sdir} from pid {a.pid}" in again.stderr
    assert "waiting up to" not in again.stderr
    meta = json.loads((first / "meta.json").read_text())
    assert meta["status"] == "finished" and len(meta["sessions"]) == 2
    assert json.loads((sdir / "01-seed=2" / "meta.json").read_text())["status"] == "finished"
