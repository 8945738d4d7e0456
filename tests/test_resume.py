"""Exact resume: N epochs in one go equal N/2 + resume, bitwise, for 1 rank and 2 ranks under mpirun."""
import csv
import os
import signal
import subprocess
import time

import pytest
import torch

from scorch.cli.train import main
from tests.helpers import BIN, FIXTURES, base_args, env, scorch_train

MODEL = str(FIXTURES / "dropout_model.py")
DATASET = str(FIXTURES / "noisy_dataset.py")


def args(root, name, *extra):
    return base_args(root, name, "--batch-size", "8", "--lr", "0.05", "--workers", "2", *extra, model=MODEL, dataset=DATASET)


def history_without_time(run_dir):
    with open(run_dir / "history.csv") as f:
        return [{k: v for k, v in row.items() if k != "time"} for row in csv.DictReader(f)]


def assert_same_run(a, b):
    ca = torch.load(a / "checkpoints" / "last.pt", weights_only=True)
    cb = torch.load(b / "checkpoints" / "last.pt", weights_only=True)
    assert ca["epoch"] == cb["epoch"] and ca["step"] == cb["step"]
    for key in ca["model"]:
        assert torch.equal(ca["model"][key], cb["model"][key]), key  # bitwise
    for pa, pb in zip(ca["optimizer"]["state"].values(), cb["optimizer"]["state"].values()):
        assert torch.equal(pa["exp_avg"], pb["exp_avg"])
    assert ca["scheduler"] == cb["scheduler"]
    assert history_without_time(a) == history_without_time(b)


def test_resume_is_bitwise_exact_one_rank(tmp_path):
    assert main(args(tmp_path, "whole", "--epochs", "4")) == 0
    assert main(args(tmp_path, "split", "--epochs", "2")) == 0
    assert main(args(tmp_path, "split", "--epochs", "4", "--resume")) == 0
    assert_same_run(tmp_path / "whole", tmp_path / "split")
    assert len(history_without_time(tmp_path / "split")) == 4


def test_a_different_seed_gives_different_weights(tmp_path):
    # The comparison above would be empty if runs could not differ.
    assert main(args(tmp_path, "a", "--epochs", "1")) == 0
    assert main(args(tmp_path, "b", "--epochs", "1", "--seed", "1")) == 0
    wa = torch.load(tmp_path / "a/checkpoints/last.pt", weights_only=True)["model"]
    wb = torch.load(tmp_path / "b/checkpoints/last.pt", weights_only=True)["model"]
    assert not all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.mpi
def test_resume_is_bitwise_exact_two_ranks_under_mpirun(tmp_path):
    for name, extra in (("whole", ["--epochs", "4"]), ("split", ["--epochs", "2"]), ("split", ["--epochs", "4", "--resume"])):
        out = scorch_train(args(tmp_path, name, *extra), np_=2)
        assert out.returncode == 0, out.stderr
    assert_same_run(tmp_path / "whole", tmp_path / "split")
    ckpt = torch.load(tmp_path / "split/checkpoints/last.pt", weights_only=True)
    assert len(ckpt["rng"]) == 2 and not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])


def test_sigkill_mid_run_resumes_from_the_last_checkpoint(tmp_path):
    cmd = [str(BIN / "scorch-train"), *args(tmp_path, "killed", "--epochs", "4")]
    e = env()
    e["SCORCH_TEST_SLOW"] = "0.01"  # about 1 s per epoch
    proc = subprocess.Popen(cmd, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    last = tmp_path / "killed" / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while time.time() < deadline and not last.exists():
        time.sleep(0.05)
    assert last.exists(), "no checkpoint appeared"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = torch.load(last, weights_only=True)["epoch"]
    assert killed_at < 4
    assert main(args(tmp_path, "killed", "--epochs", "4", "--resume")) == 0
    assert main(args(tmp_path, "whole", "--epochs", "4")) == 0
    assert_same_run(tmp_path / "whole", tmp_path / "killed")
