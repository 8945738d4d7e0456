"""Long runs: checkpoints and validations every N steps or every DURATION, --max-steps and
--max-time, learning rates set per optimizer step, and a rank SIGKILLed at random steps losing at
most --checkpoint-every steps. Each cut run, resumed, is compared with an uninterrupted one."""
from __future__ import annotations

import csv
import json
import math
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from scorch.cli.train import main
from scorch.errors import EXIT_PREEMPTED
from scorch.rundir.lock import _alive, lock_path
from tests.helpers import BIN, FIXTURES, base_args, env, mpirun, scorch_train, session_pids, unmeasured

STEPS = str(FIXTURES / "steps_model.py")  # BatchNorm in the trained head, a frozen block, steps.txt
UNTIDY = str(FIXTURES / "untidy_dataset.py")
NOISY = str(FIXTURES / "noisy_dataset.py")  # 96 training samples, augmentation from the global RNGs
CALLBACK = str(FIXTURES / "callback_model.py")
STEP_SCHEDULER = str(FIXTURES / "step_scheduler_model.py")
ODD = ["--set", "dataset.n_train=101"]  # 13 steps of 8 samples per epoch, the last of 5


def untidy(root, name, *extra, model=STEPS):
    return base_args(root, name, *ODD, *extra, model=model, dataset=UNTIDY)


def history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv") as f:
        return [unmeasured(row) for row in csv.DictReader(f)]


def ckpt(run_dir: Path, which: str = "last.pt") -> dict:
    return torch.load(run_dir / "checkpoints" / which, weights_only=True)


def assert_same_run(a: Path, b: Path) -> None:
    wa, wb = ckpt(a), ckpt(b)
    assert wa["step"] == wb["step"]
    assert all(torch.equal(wa["model"][k], wb["model"][k]) for k in wa["model"]), "weights differ"
    assert history(a) == history(b)


def step_files(run_dir: Path) -> list[int]:
    return sorted(int(p.stem.split("-")[1]) for p in (run_dir / "checkpoints").glob("step-*.pt"))


def scalars(logdir: Path, tag: str) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_every_n_steps_validates_and_checkpoints_and_max_steps_ends_mid_epoch(tmp_path):
    run = tmp_path / "a"
    assert main(untidy(tmp_path, "a", "--batch-size", "8", "--epochs", "5", "--val-every", "5", "--checkpoint-every", "3",
                       "--keep-checkpoints", "3", "--max-steps", "30")) == 0
    rows = history(run)
    assert [(int(r["epoch"]), int(r["step"])) for r in rows] == [(1, 5), (1, 10), (1, 13), (2, 15), (2, 20), (2, 25),
                                                                 (2, 26), (3, 30)]
    assert step_files(run) == [26, 27, 30]  # saved at 3, 5, 6, 9, 10, 12, 13, ...: the newest three stay
    last = ckpt(run)
    assert last["step"] == 30 and last["cursor"]["epoch"] == 2 and last["cursor"]["samples"] == 4 * 8
    losses = [float(r["valid/loss"]) for r in rows]
    assert ckpt(run, "best.pt")["step"] == int(rows[losses.index(min(losses))]["step"])
    assert [s for s, _ in scalars(run / "tensorboard", "valid/loss")] == [int(r["step"]) for r in rows]  # a step axis
    assert json.loads((run / "meta.json").read_text())["status"] == "finished"
    assert (run / "steps.txt").read_text().split() == [str(i) for i in range(1, 31)]


def test_a_run_ended_by_max_steps_and_resumed_equals_one_uninterrupted_run(tmp_path):
    """With accumulation (2 micro-batches a step, a short last one) and BatchNorm, a cut at a
    validation inside epoch 2 and a resume that goes on: bitwise the same weights and history."""
    common = ["--batch-size", "4", "--accumulate", "2", "--epochs", "3", "--val-every", "5", "--checkpoint-every", "3"]
    assert main(untidy(tmp_path, "whole", *common)) == 0
    assert main(untidy(tmp_path, "cut", *common, "--max-steps", "15")) == 0
    assert ckpt(tmp_path / "cut")["step"] == 15
    assert main(untidy(tmp_path, "cut", *common, "--resume", "--max-steps", "1000")) == 0
    assert_same_run(tmp_path / "cut", tmp_path / "whole")


@pytest.mark.mpi
@pytest.mark.parametrize("how", [["--backend", "torch"], ["--backend", "horovod"], ["--strategy", "fsdp"]],
                         ids=["torch", "horovod", "fsdp"])
def test_two_ranks_cut_at_max_steps_and_resumed_equal_one_run(tmp_path, how):
    if "horovod" in how:
        pytest.importorskip("horovod.torch", reason="Horovod is not installed: run `make setup-horovod`")
    common = ["--batch-size", "4", "--epochs", "2", "--val-every", "4", "--checkpoint-every", "3", *how]
    for name, extra in (("whole", []), ("cut", ["--max-steps", "12"]), ("cut", ["--resume", "--max-steps", "100"])):
        out = scorch_train(untidy(tmp_path, name, *common, *extra), np_=2)
        assert out.returncode == 0, out.stderr
    if "fsdp" in how:
        from scorch.rundir import checkpoint
        a, b = (checkpoint.load(tmp_path / n / "checkpoints" / "last.dcp") for n in ("cut", "whole"))
        assert a["step"] == b["step"] == 26
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
        assert history(tmp_path / "cut") == history(tmp_path / "whole")
    else:
        assert_same_run(tmp_path / "cut", tmp_path / "whole")
    assert [int(r["step"]) for r in history(tmp_path / "whole")] == [4, 8, 12, 13, 16, 20, 24, 26]


NOISY_RUN = ["--batch-size", "4", "--epochs", "6"]  # 12 steps of 8 samples per epoch on 2 ranks


@pytest.fixture(scope="module")
def uncut(tmp_path_factory):
    """The uninterrupted 2-rank runs the cut ones are compared with, by backend."""
    root, made = tmp_path_factory.mktemp("uncut"), {}

    def run(backend: str) -> Path:
        if backend not in made:
            out = scorch_train(base_args(root, backend, *NOISY_RUN, "--backend", backend, model=STEPS, dataset=NOISY), np_=2)
            assert out.returncode == 0, out.stderr
            made[backend] = root / backend
        return made[backend]
    return run


@pytest.mark.mpi
@pytest.mark.parametrize("backend", ["torch", "horovod"])
def test_checkpoints_by_wall_time_and_max_time_stop_and_resume_exactly(tmp_path, backend, uncut):
    """Rank 0's clock decides; every rank saves at the same step (a disagreement would hang a
    collective). --max-time stops like a signal: exit 3, then a resume ends where one run ends."""
    if backend == "horovod":
        pytest.importorskip("horovod.torch", reason="Horovod is not installed: run `make setup-horovod`")
    common = base_args(tmp_path, "timed", *NOISY_RUN, "--backend", backend, "--keep-checkpoints", "1000", model=STEPS,
                       dataset=NOISY)
    slow = {"SCORCH_TEST_SLOW": "0.03"}  # 0.12 s of sleep per step at least: 8.6 s for the 72 steps
    out = scorch_train([*common, "--checkpoint-every", "1s", "--max-time", "7s"], np_=2, extra_env=slow)
    assert out.returncode == EXIT_PREEMPTED, out.stderr
    assert "stopped by --max-time 7s" in out.stderr
    run = tmp_path / "timed"
    assert json.loads((run / "meta.json").read_text())["status"] == "preempted"
    reached = int((run / "steps.txt").read_text().split()[-1])
    saved = step_files(run)
    assert saved[-1] == reached and reached < 72
    if reached >= 25:  # at least 3 s of training (the sleeps alone): several saves by the clock
        assert [s for s in saved[:-1] if s % 12], f"no checkpoint inside an epoch among {saved}"
    out = scorch_train([*common, "--resume"], np_=2)
    assert out.returncode == 0, out.stderr
    assert_same_run(run, uncut(backend))


def lrs(run_dir: Path) -> dict[int, float]:
    events = scalars(run_dir / "tensorboard" / "steps", "step/lr")
    steps = [s for s, _ in events]
    assert len(steps) == len(set(steps)), f"steps logged twice: {steps}"
    return dict(events)


@pytest.mark.mpi
def test_rates_by_step_hold_across_a_mid_epoch_resume_on_another_world_size(tmp_path):
    """cosine over the run's 32 steps after 5 warm-up steps; stopped at step 7 on 1 rank, resumed
    on 2 ranks (the same global batch): every step's rate, read back from TensorBoard, is the schedule's."""
    common = base_args(tmp_path, "cos", "--epochs", "2", "--lr", "0.1", "--schedule-by", "step", "--warmup-steps", "5",
                       "--set", "lr_schedule=cosine", "--log-every", "1", model=CALLBACK)
    os.environ["SCORCH_TEST_STOP_AT_STEP"] = "7"
    try:
        assert main([*common, "--batch-size", "4"]) == EXIT_PREEMPTED
    finally:
        del os.environ["SCORCH_TEST_STOP_AT_STEP"]
    assert ckpt(tmp_path / "cos")["step"] == 7
    out = scorch_train([*common, "--batch-size", "2", "--resume"], np_=2)
    assert out.returncode == 0, out.stderr
    total, warm = 32, 5

    def expected(t: int) -> float:
        if t <= warm:
            return 0.1 * t / (warm + 1)
        return 0.1 * 0.5 * (1 + math.cos(math.pi * (t - 1 - warm) / (total - warm - 1)))

    got = lrs(tmp_path / "cos")
    assert sorted(got) == list(range(1, total + 1))
    for t, lr in got.items():
        assert lr == pytest.approx(expected(t), rel=1e-6, abs=1e-9), t


def test_a_socket_scheduler_stepped_every_step_resumes_mid_epoch(tmp_path):
    args = base_args(tmp_path, "sched", "--epochs", "2", "--batch-size", "4", "--log-every", "1", model=STEP_SCHEDULER)
    assert main([*args, "--max-steps", "7"]) == 0
    assert main([*args, "--resume", "--max-steps", "100"]) == 0
    got = lrs(tmp_path / "sched")
    assert sorted(got) == list(range(1, 33))
    for t, lr in got.items():
        assert lr == pytest.approx(0.08 * 0.5 ** ((t - 1) // 4), rel=1e-6), t


@pytest.mark.parametrize("extra, words", [
    (["--checkpoint-every", "30x"], "--checkpoint-every: '30x' is not a duration"),
    (["--checkpoint-every", "0"], "--checkpoint-every: expected a whole number of steps >= 1"),
    (["--max-time", "1h30"], "--max-time: '1h30' is not a duration"),
    (["--val-every", "0"], "--val-every: expected a whole number >= 1"),
    (["--schedule-by", "step", "--set", "warmup_epochs=2"], "--set warmup_epochs counts epochs"),
    (["--warmup-steps", "3", "--model", STEP_SCHEDULER], "--warmup-steps: "),
    (["--schedule-by", "step", "--model", STEP_SCHEDULER], "--schedule-by step: "),
])
def test_bad_cadences_and_schedules_are_one_line(tmp_path, capsys, extra, words):
    assert main([*base_args(tmp_path, "bad", "--epochs", "1"), *extra]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("scorch: ")]  # the log's
    assert len(err) == 1 and err[0].startswith("scorch-train: error: ") and words in err[0], err
    assert not (tmp_path / "bad").exists()


def test_a_plateau_scheduler_stepped_every_step_is_refused(tmp_path, capsys):
    model = tmp_path / "plateau.py"
    model.write_text(Path(STEP_SCHEDULER).read_text().replace(
        "torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)",
        "torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)"))
    assert main(base_args(tmp_path, "p", "--epochs", "1", model=str(model))) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("scorch: ")]
    assert len(err) == 1 and "scheduler_interval is \"step\" but Socket.scheduler is ReduceLROnPlateau" in err[0]


def _rank_pids(job: subprocess.Popen) -> list[int]:
    """The training ranks of an mpirun job: the scorch-train processes of its session."""
    pids = []
    for pid in session_pids(job.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"scorch-train") for part in cmdline) and b"mpirun" not in cmdline[0]:
            pids.append(pid)
    return pids


def _holder_alive(path: Path) -> bool:
    """Whether the lock at ``path`` is held by a live process, as scorch-train would judge it."""
    try:
        return _alive(json.loads(path.read_text()))
    except (OSError, ValueError):
        return False  # released (or being written) meanwhile


def _reached(run_dir: Path) -> int:
    path = run_dir / "steps.txt"
    return int(path.read_text().split()[-1]) if path.exists() and path.read_text().split() else 0


@pytest.mark.mpi
@pytest.mark.parametrize("backend", ["torch", "horovod"])
def test_a_rank_sigkilled_at_random_steps_loses_at_most_n_steps_and_auto_resume_is_exact(tmp_path, backend, uncut):
    if backend == "horovod":
        pytest.importorskip("horovod.torch", reason="Horovod is not installed: run `make setup-horovod`")
    every, total = 5, 72
    args = [str(BIN / "scorch-train"), *base_args(tmp_path, "chaos", *NOISY_RUN, "--backend", backend, "--checkpoint-every",
                                                   str(every), "--auto-resume", model=STEPS, dataset=NOISY)]
    rng = random.Random()
    seed = rng.randrange(10**6)
    rng.seed(seed)
    run = tmp_path / "chaos"
    e = env()
    e["SCORCH_TEST_SLOW"] = "0.005"
    kills = sorted(rng.sample(range(8, 60), 2))
    for target in kills:
        job = subprocess.Popen([*mpirun(2), *args], env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
        deadline = time.monotonic() + 120
        while _reached(run) < target and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        ranks = _rank_pids(job)
        assert job.poll() is None and len(ranks) == 2, f"seed {seed}: the job ended before step {target}"
        victim = rng.choice(ranks)
        os.kill(victim, signal.SIGKILL)
        reached = _reached(run)
        _, err = job.communicate(timeout=120)
        assert job.returncode != 0, f"seed {seed}: {err[-2000:]}"
        # mpirun can end before its last rank has: the next --auto-resume would find the run's lock held
        # (a clear refusal, not this test's subject). Wait for the job's processes to end, not for a time.
        left = time.monotonic() + 120
        while session_pids(job.pid) and time.monotonic() < left:
            time.sleep(0.05)
        assert not session_pids(job.pid), f"seed {seed}: a rank outlived its mpirun by 120 s"
        holder = lock_path(run)
        while holder.exists() and _holder_alive(holder) and time.monotonic() < left:
            time.sleep(0.05)
        assert not (holder.exists() and _holder_alive(holder)), f"seed {seed}: {holder.read_text()} still held"
        saved = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"]
        assert reached - every <= saved <= reached + 1, f"seed {seed}: killed at step {reached}, saved {saved}"
    out = scorch_train(args[1:], np_=2)  # the last --auto-resume runs to the end
    assert out.returncode == 0, out.stderr
    wa, wb = ckpt(run), ckpt(uncut(backend))
    assert wa["step"] == wb["step"] == total
    assert all(torch.equal(wa["model"][k], wb["model"][k]) for k in wa["model"]), f"seed {seed}: weights differ"
    assert history(run) == history(uncut(backend))
