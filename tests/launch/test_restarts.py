"""--max-restarts with scorch's own launch: a failed rank restarts every rank from the last
checkpoint, ending bitwise where an uninterrupted run ends (CPU); a failure that repeats ends the job."""
import csv
import signal
import subprocess

import torch

from tests.helpers import BIN, FIXTURES, env, scorch_train, weights
from tests.launch.conftest import train_args

FLAKY = str(FIXTURES / "flaky_dataset.py")


def test_a_rank_that_fails_once_is_restarted_and_the_run_ends_bitwise_equal(tmp_path):
    args = ["--nproc-per-node", "2", "--max-restarts", "1"]
    straight = scorch_train(train_args(tmp_path, "straight", 8, *args, dataset=FLAKY))
    assert straight.returncode == 0, straight.stderr
    marker = tmp_path / "failed-once"
    flaky = scorch_train(train_args(tmp_path, "flaky", 8, *args, dataset=FLAKY), extra_env={
        # rank 1 fails once, after the first checkpoint: in epoch 2
        "SCORCH_TEST_FAIL_AFTER": str(tmp_path / "flaky" / "checkpoints" / "last.pt"),
        "SCORCH_TEST_FAIL_MARKER": str(marker)})
    assert flaky.returncode == 0, flaky.stderr
    assert marker.exists() and "raised OSError: flaky read of item" in flaky.stderr
    assert "scorch-train[rank 1]: error: " in flaky.stderr
    [restart] = [line for line in flaky.stderr.splitlines() if "restart 1 of 1" in line]
    assert "rank 1 (exit code 2)" in restart and "every rank starts again from the last checkpoint" in restart
    assert "resumed" in flaky.stderr
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "flaky")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with open(tmp_path / "flaky" / "history.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]


def test_a_failure_that_repeats_ends_the_job_with_the_last_error(tmp_path):
    out = scorch_train(train_args(tmp_path, "fails", 8, "--nproc-per-node", "2", "--max-restarts", "1",
                                  dataset=str(FIXTURES / "failing_dataset.py")), timeout=180)
    assert out.returncode == 2  # the dataset's error: exit 2, the code of the rank that failed
    assert out.stderr.count("raised OSError: disk read failed") == 2  # K + 1 attempts
    assert len([line for line in out.stderr.splitlines() if "restart 1 of 1" in line]) == 1
    [last] = [line for line in out.stderr.splitlines() if line.startswith("scorch-train: error:")]
    assert "rank 1 (exit code 2)" in last and "(after 1 restart)" in last


def test_a_stop_signal_reaches_every_rank_and_is_not_restarted(tmp_path):
    # SIGUSR1 to scorch's launch (SLURM's warning, in a batch script): the ranks checkpoint and stop
    # with exit code 3, which is not a failure to restart; no rank process is left.
    proc = subprocess.Popen([str(BIN / "scorch-train"), *train_args(tmp_path, "stop", 8, "--nproc-per-node", "2",
                                                                     "--max-restarts", "2", "--epochs", "500")],
                            env=env(), stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "epoch 2/500" in line:
            proc.send_signal(signal.SIGUSR1)
            break
    lines += proc.stderr.readlines()
    assert proc.wait(timeout=120) == 3, "".join(lines)
    err = "".join(lines)
    assert "got SIGUSR1: passing it to the ranks" in err and "restart" not in err
    assert err.count("stopped by SIGUSR1") == 1  # both ranks stop; rank 0 says so, once
    assert (tmp_path / "stop" / "checkpoints" / "last.pt").is_file()
    leftovers = subprocess.run(["pgrep", "-f", "--", f"--run-root {tmp_path} "], capture_output=True, text=True)
    assert leftovers.returncode == 1, leftovers  # 1: no process matched
