"""Preemption: a stop signal checkpoints at a step boundary (mid-epoch), exits 3, and a resume
continues exactly: weights and history bitwise equal to an uninterrupted run."""
import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from scorch.errors import EXIT_PREEMPTED
from tests.helpers import BIN, FIXTURES, base_args, env, mpirun, scorch_train, unmeasured

MODEL = str(FIXTURES / "dropout_model.py")
DATASET = str(FIXTURES / "noisy_dataset.py")


def args(root, name, *extra):
    # Items loaded in the main process (--workers 0, the default); see the workers test below.
    return base_args(root, name, "--batch-size", "4", "--lr", "0.05", "--epochs", "3", *extra, model=MODEL, dataset=DATASET)


def history(run_dir):
    with open(run_dir / "history.csv") as f:
        return [unmeasured(r) for r in csv.DictReader(f)]


def start_and_signal(cmd, run_dir, sig, to_group, last="last.pt"):
    """Start training, wait for its first epoch checkpoint (``last``: last.dcp for a sharded run),
    then send ``sig`` mid-epoch 2."""
    e = env()
    e["SCORCH_TEST_SLOW"] = "0.004"  # ~0.4 s per epoch per rank
    proc = subprocess.Popen(cmd, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    last = run_dir / "checkpoints" / last
    deadline = time.time() + 120
    while time.time() < deadline and not last.exists():
        time.sleep(0.02)
    assert last.exists(), "no checkpoint appeared"
    time.sleep(0.15)
    os.killpg(proc.pid, sig) if to_group else proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def assert_bitwise_equal(a, b):
    wa = torch.load(a / "checkpoints" / "last.pt", weights_only=True)
    wb = torch.load(b / "checkpoints" / "last.pt", weights_only=True)
    assert wa["step"] == wb["step"]
    assert all(torch.equal(wa["model"][k], wb["model"][k]) for k in wa["model"])
    assert history(a) == history(b)


def test_sigterm_checkpoints_mid_epoch_and_resume_is_exact(tmp_path):
    code, err = start_and_signal([str(BIN / "scorch-train"), *args(tmp_path, "cut")], tmp_path / "cut", signal.SIGTERM, False)
    assert code == EXIT_PREEMPTED, err
    assert "stopped by SIGTERM" in err and "--resume" in err
    ckpt = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert 0 < ckpt["cursor"]["samples"] < 96, "the stop was not mid-epoch"
    assert json.loads((tmp_path / "cut" / "meta.json").read_text())["status"] == "preempted"
    out = scorch_train(args(tmp_path, "cut", "--auto-resume"))
    assert out.returncode == 0, out.stderr
    out = scorch_train(args(tmp_path, "whole"))
    assert out.returncode == 0, out.stderr
    assert_bitwise_equal(tmp_path / "whole", tmp_path / "cut")


def test_mid_epoch_resume_with_dataloader_workers_is_exact(tmp_path):
    """Workers draw random augmentation from a seed of (seed, epoch, rank, batch position), so
    the batches after a mid-epoch restart are the ones an uninterrupted run loads."""
    workers = ("--workers", "2")
    code, err = start_and_signal([str(BIN / "scorch-train"), *args(tmp_path, "cut", *workers)], tmp_path / "cut", signal.SIGTERM, False)
    assert code == EXIT_PREEMPTED, err
    ckpt = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert 0 < ckpt["cursor"]["samples"] < 96, "the stop was not mid-epoch"
    out = scorch_train(args(tmp_path, "cut", "--auto-resume"))  # workers come back from config.json
    assert out.returncode == 0, out.stderr
    out = scorch_train(args(tmp_path, "whole", *workers))
    assert out.returncode == 0, out.stderr
    assert_bitwise_equal(tmp_path / "whole", tmp_path / "cut")


@pytest.mark.mpi
def test_sigusr1_to_mpirun_stops_every_rank_and_resume_is_exact(tmp_path):
    cmd = [*mpirun(2), str(BIN / "scorch-train"), *args(tmp_path, "cut")]
    code, err = start_and_signal(cmd, tmp_path / "cut", signal.SIGUSR1, False)  # mpirun forwards SIGUSR1
    assert code == EXIT_PREEMPTED, err
    ckpt = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert len(ckpt["rng"]) == 2 and (ckpt["totals"] is None or len(ckpt["totals"]) == 2)
    out = scorch_train(args(tmp_path, "cut", "--auto-resume"), np_=2)
    assert out.returncode == 0, out.stderr
    out = scorch_train(args(tmp_path, "whole"), np_=2)
    assert out.returncode == 0, out.stderr
    assert_bitwise_equal(tmp_path / "whole", tmp_path / "cut")


def test_auto_resume_starts_a_fresh_run(tmp_path):
    out = scorch_train(args(tmp_path, "new", "--auto-resume", "--epochs", "1"))
    assert out.returncode == 0, out.stderr
    assert len(history(tmp_path / "new")) == 1


def valid_items_loaded(count: Path) -> int:
    """The fixture's count, read once (it rewrites the file in place: a read may find it empty)."""
    text = count.read_text() if count.exists() else ""
    return int(text) if text.isdigit() else 0


def test_a_stop_during_validation_saves_and_the_resume_redoes_that_validation(tmp_path):
    """Validation polls the stop signal too: a long validation does not eat SLURM's grace time."""
    untidy = str(FIXTURES / "untidy_dataset.py")
    mlp = str(FIXTURES / "mlp_model.py")

    def run_args(name, *extra):
        return base_args(tmp_path, name, "--batch-size", "8", "--epochs", "2", *extra, model=mlp, dataset=untidy)

    count = tmp_path / "valid-count"
    e = env()
    e.update(SCORCH_TEST_SLOW_VALID="0.05", SCORCH_TEST_VALID_COUNT=str(count))
    proc = subprocess.Popen([str(BIN / "scorch-train"), *run_args("cut")], env=e, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    # 8 items for the pre-flight check and 37 per validation: item 50 is in the second epoch's.
    deadline = time.time() + 120
    while time.time() < deadline and valid_items_loaded(count) < 50:
        time.sleep(0.02)
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_PREEMPTED, err
    assert time.monotonic() - signalled < 10  # not the rest of the validation (about 1 s here) plus a margin
    assert "while validating epoch 2" in err
    ckpt = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["cursor"]["trained"] and ckpt["epoch"] == 1 and int(count.read_text()) < 8 + 2 * 37
    assert scorch_train(run_args("cut", "--resume")).returncode == 0
    assert scorch_train(run_args("whole")).returncode == 0
    assert_bitwise_equal(tmp_path / "whole", tmp_path / "cut")
