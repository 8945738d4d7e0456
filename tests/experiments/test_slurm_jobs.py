"""Real SLURM (the private cluster of tests/slurm_fixture.py): a submitted 2-task job trains the digits
example; a job sent the preemption signal requeues itself and ends bitwise equal to an uninterrupted
one; a 4-combination sweep runs as one job array."""
from __future__ import annotations

import csv
import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import BIN, DATASET, DIGITS_DATASET, DIGITS_MODEL, FIXTURES, MODEL, unmeasured
from tests.slurm_fixture import TERMINAL_STATES

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent
ODD = "it's a \"slurm\" dir"


def _env(slurm, **extra: str) -> dict[str, str]:
    return {**slurm.env, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra}


def submit_train(slurm, args: list[str], **extra_env: str) -> str:
    out = subprocess.run([str(BIN / "scorch-train"), *args, "--submit"], capture_output=True, text=True,
                         env=_env(slurm, **extra_env), timeout=120)
    assert out.returncode == 0, out.stderr
    return re.search(r"submitted SLURM job (\d+): ", out.stdout).group(1)


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def job_field(slurm, job: str, name: str) -> str:
    return re.search(rf"\b{name}=(\S+)", slurm.run(["scontrol", "-o", "show", "job", job]).stdout).group(1)


def test_submitted_two_task_job_trains_digits(slurm, tmp_path):
    root = tmp_path / ODD
    job = submit_train(slurm, ["--model", DIGITS_MODEL, "--dataset", DIGITS_DATASET, "--epochs", "3", "--batch-size", "32",
                               "--lr", "0.002", "--monitor", "valid/accuracy", "--run-root", str(root), "--name", "digits",
                               "--ntasks-per-node", "2", "--time", "10"])
    run = root / "digits"
    state = slurm.wait_job(job, timeout=240)
    log = (run / f"slurm-{job}.out").read_text()
    assert state == "COMPLETED", log
    meta = json.loads((run / "meta.json").read_text())
    assert (meta["status"], meta["world_size"], meta["launcher"]) == ("finished", 2, "srun"), meta
    history = rows(run / "history.csv")
    assert len(history) == 3 and float(history[-1]["valid/accuracy"]) > 0.85, history[-1]
    assert (run / "checkpoints" / "best.pt").is_file() and "epoch 3/3" in log


def test_preempted_job_requeues_resumes_and_ends_bitwise_equal(slurm, tmp_path):
    root = tmp_path / ODD
    common = ["--model", str(FIXTURES / "dropout_model.py"), "--dataset", str(FIXTURES / "noisy_dataset.py"),
              "--epochs", "3", "--batch-size", "4", "--lr", "0.05", "--run-root", str(root), "--ntasks-per-node", "2"]
    cut = submit_train(slurm, [*common, "--name", "cut"], SCORCH_TEST_SLOW="0.02")  # about 1 s per epoch
    whole = submit_train(slurm, [*common, "--name", "whole"])
    last = root / "cut" / "checkpoints" / "last.pt"
    wait_for_checkpoint(slurm, cut, last, root / "cut" / f"slurm-{cut}.out")
    time.sleep(0.2)  # into epoch 2
    slurm.run(["scancel", "--signal=USR1", "--batch", cut])  # what --signal=B:USR1@90 sends before the time limit
    assert slurm.wait_job(whole, timeout=240) == "COMPLETED"
    # The first attempt's checkpoint-and-requeue, the requeued job's start (after a short BeginTime hold)
    # and its resumed training.
    state = slurm.wait_job(cut, timeout=240)
    log = (root / "cut" / f"slurm-{cut}.out").read_text()
    assert state == "COMPLETED", log
    assert job_field(slurm, cut, "Restarts") == "1", log
    assert re.search(r"stopped by SIGUSR1 at epoch 2, step \d+", log), log
    assert f"requeueing job {cut}" in log and "resumed" in log
    meta = json.loads((root / "cut" / "meta.json").read_text())
    assert meta["status"] == "finished" and len(meta["sessions"]) == 2
    a = torch.load(last, weights_only=True)
    b = torch.load(root / "whole" / "checkpoints" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] and a["epoch"] == b["epoch"] == 3
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])
    assert all(torch.equal(x, y) for x, y in zip(_tensors(a["optimizer"]), _tensors(b["optimizer"])))
    drop_time = lambda rs: [unmeasured(r) for r in rs]  # noqa: E731
    assert drop_time(rows(root / "cut" / "history.csv")) == drop_time(rows(root / "whole" / "history.csv"))


def test_scancel_stops_the_job_without_requeueing_it(slurm, tmp_path):
    """scancel sends TERM: the script forwards the stop (the ranks checkpoint if KillWait leaves them
    time), but only the time-limit warning (USR1) requeues; the job stays CANCELLED."""
    root = tmp_path / ODD
    job = submit_train(slurm, ["--model", str(FIXTURES / "dropout_model.py"), "--dataset", str(FIXTURES / "noisy_dataset.py"),
                               "--epochs", "1000", "--batch-size", "4", "--run-root", str(root), "--name", "c",
                               "--ntasks-per-node", "2"])
    log = root / "c" / f"slurm-{job}.out"
    wait_for_checkpoint(slurm, job, root / "c" / "checkpoints" / "last.pt", log)
    slurm.run(["scancel", job])
    assert slurm.wait_job(job, timeout=120) == "CANCELLED"
    time.sleep(6)  # past KillWait: the batch shell has ended, and a requeue would show by now
    text = log.read_text()
    assert slurm.job_states(job) == {job: "CANCELLED"}, text
    assert job_field(slurm, job, "Restarts") == "0", text
    assert "requeueing" not in text and "got SIGTERM" in text, text


def test_a_rank_failing_alone_ends_the_job_promptly(slurm, tmp_path):
    """Rank 1 raises on its first item while rank 0 is busy loading its own for 10 minutes (in no
    collective that would notice rank 1 is gone): srun's --kill-on-bad-exit ends the step at once,
    and a failure is not requeued."""
    root = tmp_path / ODD
    job = submit_train(slurm, ["--model", MODEL, "--dataset", str(HERE / "rank_fails_dataset.py"), "--epochs", "2",
                               "--batch-size", "8", "--run-root", str(root), "--name", "f", "--ntasks-per-node", "2"])
    deadline = time.monotonic() + 120
    while set(slurm.job_states(job).values()) == {"PENDING"}:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    started = time.monotonic()
    state = slurm.wait_job(job, timeout=120)
    log = (root / "f" / f"slurm-{job}.out").read_text()
    assert state == "FAILED" and time.monotonic() - started < 90, log  # not after rank 0's 600 s
    assert re.search(r"scorch-train\[rank 1\]: .*OSError: disk read failed", log), log
    assert job_field(slurm, job, "Restarts") == "0" and "requeueing" not in log


def wait_for_checkpoint(slurm, job: str, path: Path, log: Path, timeout: float = 180) -> None:
    """Until ``path`` exists; fails at once, with the job's log, when the job ends without it."""
    deadline = time.time() + timeout
    polls = 0
    while not path.exists():
        polls += 1
        if polls % 50 == 0 and set(slurm.job_states(job).values()) <= TERMINAL_STATES:
            raise AssertionError(f"job {job} ended without {path}:\n{log.read_text() if log.exists() else ''}")
        assert time.time() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.02)


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for k in sorted(obj, key=str):
            yield from _tensors(obj[k])
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


def test_sweep_runs_as_one_job_array(slurm, tmp_path):
    root = tmp_path / ODD
    args = ["--model", MODEL, "--dataset", DATASET, "--epochs", "2", "--batch-size", "8", "--grid", "lr=0.1,0.01",
            "--grid", "optimizer=adam,sgd", "--run-root", str(root), "--name", "s", "--slurm", "--parallel", "2", "--time", "10"]
    out = subprocess.run([str(BIN / "scorch-sweep"), *args], capture_output=True, text=True, env=_env(slurm), timeout=180)
    assert out.returncode == 0, out.stderr
    job = re.search(r"submitted SLURM job array (\d+) \(4 of 4 runs\)", out.stdout).group(1)
    sdir = root / "s"
    assert "#SBATCH --array=0-3%2\n" in (sdir / "sweep.sbatch").read_text()
    assert slurm.wait_job(job, timeout=300) == "COMPLETED"
    assert sorted(p.name for p in (sdir / "logs").iterdir()) == [f"slurm-{job}_{i}.out" for i in range(4)]
    summary = subprocess.run([str(BIN / "scorch-sweep"), "--summary", str(sdir)], capture_output=True, text=True, timeout=120)
    assert summary.returncode == 0, summary.stderr
    table = rows(sdir / "summary.csv")
    assert len(table) == 4 and {t["status"] for t in table} == {"finished"}
    assert sorted((t["lr"], t["optimizer"]) for t in table) == [("0.01", "adam"), ("0.01", "sgd"), ("0.1", "adam"), ("0.1", "sgd")]
    # The same command again: nothing left to submit.
    again = subprocess.run([str(BIN / "scorch-sweep"), *args], capture_output=True, text=True, env=_env(slurm), timeout=180)
    assert again.returncode == 0, again.stderr
    assert "every run has finished" in again.stdout and "submitted" not in again.stdout
