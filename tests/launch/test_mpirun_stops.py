"""A stop under mpirun with a checkpoint that takes seconds to write (a 600 MB model state).

Open MPI's mpirun, on SIGTERM or SIGINT (scancel, Ctrl-C), passes SIGTERM to the ranks and SIGKILLs
them ``odls_base_sigkill_timeout`` seconds later (default 1): measured here with 1.2 GB, the stop
checkpoint was lost (a complete .tmp, status running, a stale lock) and mpirun exited 1. Two
documented ways out, all tested: SIGUSR1 to mpirun (passed on, nothing killed: the ranks save and
mpirun exits 3; scorch's SLURM scripts turn TERM into it), a longer kill timeout in the job's
environment (the checkpoint lands; mpirun itself still exits 1 after a SIGTERM), and
``scorch-mpirun``, which turns a Ctrl-C or TERM into SIGUSR1 to mpirun (exit 3)."""
from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import torch

from scorch.errors import EXIT_PREEMPTED
from tests.helpers import BIN, FIXTURES, base_args, env, mpirun


@pytest.mark.mpi
@pytest.mark.parametrize("wrapper, sig, extra_env, code", [
    ((), signal.SIGUSR1, {}, EXIT_PREEMPTED),
    ((), signal.SIGTERM, {"OMPI_MCA_odls_base_sigkill_timeout": "10"}, 1),
    ((str(BIN / "scorch-mpirun"),), signal.SIGINT, {}, EXIT_PREEMPTED),
], ids=["usr1", "term-with-kill-timeout", "scorch-mpirun-sigint"])
def test_a_slow_stop_checkpoint_under_mpirun_lands(tmp_path, wrapper, sig, extra_env, code):
    run = tmp_path / "big"
    launcher = [*wrapper, *mpirun(2)[1:]] if wrapper else mpirun(2)
    cmd = [*launcher, str(BIN / "scorch-train"),
           *base_args(tmp_path, "big", "--epochs", "100", "--batch-size", "4", "--set", "model.ballast_mb=600",
                      model=str(FIXTURES / "ballast_model.py"), dataset=str(FIXTURES / "noisy_dataset.py"))]
    e = {**env(), "SCORCH_TEST_SLOW": "0.002", **extra_env}
    proc = subprocess.Popen(cmd, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 180
    while not (run / "checkpoints" / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first = (run / "checkpoints" / "last.pt").stat().st_mtime_ns
    while (run / "checkpoints" / "last.pt").stat().st_mtime_ns == first and time.monotonic() < deadline:
        time.sleep(0.05)  # mid-epoch 2: the stop's checkpoint is a new one
    proc.send_signal(sig)  # to mpirun alone, as scancel's and a terminal's signals reach it
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == code, err[-3000:]
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["cursor"]["samples"] > 0 or state["epoch"] >= 2, "the stop wrote no checkpoint of its own"
    assert json.loads((run / "meta.json").read_text())["status"] == "preempted"
    assert not list((run / "checkpoints").glob(".*.tmp")) and not (tmp_path / ".big.lock").exists()
