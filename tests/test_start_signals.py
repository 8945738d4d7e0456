"""Stop signals while scorch-train starts (its imports, the set-up): the exit-code table holds.

A stop signal recorded before training is acted on at the first step boundary (a checkpoint, exit
3); a second Ctrl-C interrupts (one line, exit 130); never a traceback, never Python's default
death by SIGUSR1 (status 138). The test waits until the process has its handler (the signal's bit
in /proc/PID/status SigCgt), which the console script installs on its first line."""
from __future__ import annotations

import json
import signal
import subprocess
import time

import torch

from scorch.errors import EXIT_INTERRUPTED, EXIT_PREEMPTED
from tests.helpers import BIN, base_args, env


def _catches(pid: int, sig: signal.Signals) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(mask >> (sig - 1) & 1)


def start(tmp_path, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([str(BIN / "scorch-train"), *base_args(tmp_path, "early", "--epochs", "2", *extra)], env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not _catches(proc.pid, signal.SIGUSR1) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    assert proc.poll() is None and _catches(proc.pid, signal.SIGUSR1), "the console script installed no handler"
    return proc


def test_a_sigusr1_in_the_first_moments_stops_at_the_first_step_with_a_checkpoint(tmp_path):
    proc = start(tmp_path)
    proc.send_signal(signal.SIGUSR1)  # while it imports torch and the rest
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_PREEMPTED, err
    assert "got SIGUSR1 while starting" in err and "Traceback" not in err
    assert "stopped by SIGUSR1 at epoch 1, step 1" in err
    assert torch.load(tmp_path / "early" / "checkpoints" / "last.pt", weights_only=True)["step"] == 1
    assert json.loads((tmp_path / "early" / "meta.json").read_text())["status"] == "preempted"


def test_two_ctrl_c_while_starting_interrupt_in_one_line(tmp_path):
    proc = start(tmp_path)
    proc.send_signal(signal.SIGINT)
    assert proc.stderr is not None
    first = proc.stderr.readline()  # said when the first is recorded (signals sent at once would merge)
    assert first.startswith("scorch-train: got SIGINT while starting"), first
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, err
    lines = [line for line in err.splitlines() if not line.startswith("scorch: ")]
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in err, err
