"""Stops under torchrun: the documented recipe passes SIGUSR1 on (``--signals-to-handle``), and an
agent that dies, even by SIGKILL, leaves no rank training.

torchrun forwards only the signals ``--signals-to-handle`` names (default SIGTERM, SIGINT, SIGHUP,
SIGQUIT); any other one kills the agent at once. After forwarding one it waits up to
``--shutdown-timeout`` (default 30 s) for the ranks, then exits 1 itself with a traceback, whatever
its ranks' codes (3 here): a job script under torchrun tells a stop from a failure by the run's
meta.json, not by torchrun's code (docs/multinode.md). ``scorch-torchrun`` (scorch/cli/torchrun.py)
is torchrun with SIGUSR1 handled by default and exit code 3 for a stop after saving."""
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


def start(tmp_path: Path, *extra: str, launcher: tuple[str, ...] = ("torchrun", "--signals-to-handle", SIGNALS),
          ) -> subprocess.Popen[str]:
    cmd = [str(BIN / launcher[0]), "--standalone", "--nproc-per-node", "2", *launcher[1:],
           "--no-python", str(BIN / "scorch-train"),
           *base_args(tmp_path, "tr", "--epochs", "100", "--batch-size", "4", *extra,
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


def test_scorch_torchrun_passes_sigusr1_on_by_default_and_exits_3(tmp_path):
    run = tmp_path / "tr"
    proc = start(tmp_path, launcher=("scorch-torchrun",))
    _, first = wait_for_training(proc, run)
    proc.send_signal(signal.SIGUSR1)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err[-3000:]
    assert "Traceback" not in err and err.count("stopped by SIGUSR1") == 1, err[-3000:]
    check_stopped(tmp_path, run, first)


def test_scorch_torchrun_exits_3_after_max_time_and_1_after_a_failure(tmp_path):
    # --max-time: the ranks stop after saving with exit 3, which torchrun calls a ChildFailedError
    proc = start(tmp_path, "--max-time", "1s", launcher=("scorch-torchrun",))
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 3, err[-3000:]
    assert json.loads((tmp_path / "tr" / "meta.json").read_text())["status"] == "preempted"
    # a rank that fails: torchrun's own report, and exit 1
    bad = subprocess.run([str(BIN / "scorch-torchrun"), "--standalone", "--nproc-per-node", "2", "--no-python",
                          str(BIN / "scorch-train"), *base_args(tmp_path, "bad", "--epochs", "1",
                                                                dataset=str(FIXTURES / "flaky_dataset.py"))],
                         env={**env(), "SCORCH_TEST_FAIL_AFTER": str(FIXTURES / "flaky_dataset.py"),  # exists: fail now
                              "SCORCH_TEST_FAIL_MARKER": str(tmp_path / "failed")},
                         capture_output=True, text=True, timeout=180)
    assert bad.returncode == 1, bad.stderr[-3000:]
    assert "FAILED" in bad.stderr
