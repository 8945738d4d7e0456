"""Stops under torchrun: the documented recipe passes SIGUSR1 on (``--signals-to-handle``), and an
agent that dies, even by SIGKILL, leaves no rank training.

torchrun forwards only the signals ``--signals-to-handle`` names (default SIGTERM, SIGINT, SIGHUP,
SIGQUIT); any other one kills the agent at once. After forwarding one it waits up to
``--shutdown-timeout`` (default 30 s) for the ranks, then exits 1 itself with a traceback, whatever
its ranks' codes (3 here): a job script under torchrun tells a stop from a failure by the run's
meta.json, not by torchrun's code (docs/multinode.md)."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import torch

from tests.helpers import BIN, FIXTURES, base_args, env

SIGNALS = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"


def children(parent: int) -> list[int]:
    """The live child processes of ``parent``."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent and fields[0] != "Z":
                kids.append(int(stat.parent.name))
    return kids


def alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def start(tmp_path: Path) -> subprocess.Popen[str]:
    cmd = [str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2", "--signals-to-handle", SIGNALS,
           "--no-python", str(BIN / "scorch-train"),
           *base_args(tmp_path, "tr", "--epochs", "100", "--batch-size", "4",
                      model=str(FIXTURES / "dropout_model.py"), dataset=str(FIXTURES / "noisy_dataset.py"))]
    return subprocess.Popen(cmd, env={**env(), "SCORCH_TEST_SLOW": "0.01"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_training(proc: subprocess.Popen[str], run: Path) -> tuple[list[int], int]:
    """Until the run's first checkpoint is written: the ranks' pids, and that checkpoint's mtime."""
    last = run / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 180
    while not last.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 180 s"
        time.sleep(0.05)
    ranks = children(proc.pid)
    assert len(ranks) == 2, ranks
    return ranks, last.stat().st_mtime_ns


def check_stopped(tmp_path: Path, run: Path, first_mtime: int) -> None:
    last = run / "checkpoints" / "last.pt"
    assert last.stat().st_mtime_ns > first_mtime, "the stop wrote no checkpoint of its own"
    state = torch.load(last, weights_only=True)
    assert state["step"] > 0
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "preempted" and meta["world_size"] == 2, meta["status"]
    assert not list((run / "checkpoints").glob(".*.tmp")) and not (tmp_path / ".tr.lock").exists()


def test_sigusr1_to_a_torchrun_agent_checkpoints_and_stops_its_ranks(tmp_path):
    run = tmp_path / "tr"
    proc = start(tmp_path)
    _, first = wait_for_training(proc, run)
    proc.send_signal(signal.SIGUSR1)  # SLURM's warning before the time limit, passed on by the recipe's flag
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-3000:]  # torchrun's own code after any signal (see the docstring)
    assert "got signal: 10" in err
    check_stopped(tmp_path, run, first)


def test_a_torchrun_agent_killed_outright_leaves_no_rank_training(tmp_path):
    run = tmp_path / "tr"
    proc = start(tmp_path)
    ranks, first = wait_for_training(proc, run)
    os.kill(proc.pid, signal.SIGKILL)  # the agent alone: an OOM killer's choice, a lost login shell
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 120
    while any(alive(pid) for pid in ranks):
        assert time.monotonic() < deadline, "the ranks trained on without their agent"
        time.sleep(0.05)
    check_stopped(tmp_path, run, first)
