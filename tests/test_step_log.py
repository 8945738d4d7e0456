"""--log-every N: the loss, learning rate and metrics of every N-th optimizer step in TensorBoard, read back
from the event files; the value of a target-only metric is checked against the step's own samples."""
from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from scorch import data
from scorch.cli.train import main
from tests.fixtures.blobs_dataset import DataSet, DataSetIndex
from tests.helpers import base_args, scorch_train


def scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def first_class_of_step(step: int, steps_per_epoch: int, global_batch: int, seed: int = 0) -> float:
    """The exact share of class 0 among the samples of optimizer step ``step`` (from 1)."""
    epoch, k = divmod(step - 1, steps_per_epoch)
    train = DataSet(DataSetIndex(), "train")
    plan = data.EpochPlan(len(train), global_batch, global_batch, 0, 1, seed, epoch + 1)
    indices = plan.slots[k].indices
    return sum(int(train[i][1][0]) == 0 for i in indices) / len(indices)


def test_every_third_step_is_logged_with_the_exact_means_of_its_samples(tmp_path: Path) -> None:
    assert main(base_args(tmp_path, "r", "--epochs", "2", "--batch-size", "8", "--lr", "0.02", "--log-every", "3")) == 0
    steps = scalars(tmp_path / "r" / "tensorboard" / "steps")
    assert set(steps) == {"step/lr", "step/train/loss", "step/train/accuracy", "step/train/first_class"}
    assert [s for s, _ in steps["step/train/loss"]] == [3, 6, 9, 12, 15]  # 8 steps per epoch, 2 epochs
    assert all(v == pytest.approx(0.02) for _, v in steps["step/lr"])
    for step, value in steps["step/train/first_class"]:
        assert value == pytest.approx(first_class_of_step(step, 8, 8), abs=1e-6)
    epochs = scalars(tmp_path / "r" / "tensorboard")  # the epoch scalars as they were
    assert [s for s, _ in epochs["train/loss"]] == [1, 2] and not any(t.startswith("step/") for t in epochs)


def test_a_resume_neither_repeats_nor_loses_steps(tmp_path: Path) -> None:
    args = base_args(tmp_path, "r", "--batch-size", "8", "--log-every", "2")
    assert main([*args, "--epochs", "1"]) == 0
    assert main([*args, "--epochs", "2", "--resume"]) == 0
    steps = scalars(tmp_path / "r" / "tensorboard" / "steps")
    assert [s for s, _ in steps["step/train/loss"]] == [2, 4, 6, 8, 10, 12, 14, 16]


@pytest.mark.mpi
def test_two_ranks_log_the_means_over_the_samples_of_both(tmp_path: Path) -> None:
    proc = scorch_train(base_args(tmp_path, "r", "--epochs", "1", "--batch-size", "4", "--log-every", "2"), np_=2)
    assert proc.returncode == 0, proc.stderr
    steps = scalars(tmp_path / "r" / "tensorboard" / "steps")
    assert [s for s, _ in steps["step/train/first_class"]] == [2, 4, 6, 8]  # 64 samples, 8 per step
    for step, value in steps["step/train/first_class"]:  # both ranks' 4 samples: the global batch of 8
        assert value == pytest.approx(first_class_of_step(step, 8, 8), abs=1e-6)
