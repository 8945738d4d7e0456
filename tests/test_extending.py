"""The seams: callbacks (hooks in order, state in checkpoints), run.log, loggers from outside the package.

The guarantee under test (README, "Extending scorch"): a stateful callback, the values it and the Socket
give ``run.log`` (history.csv columns and TensorBoard step points) and the files it writes end the same,
bitwise, whether the run went through uninterrupted or was stopped mid-epoch by SIGUSR1 and resumed on
the same world size (2 ranks under mpirun, torch.distributed and Horovod, DataLoader workers, 301
samples no world size divides)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import scorch
from scorch.cli.train import main
from tests.helpers import FIXTURES, base_args, scorch_train

CALLBACK_MODEL = str(FIXTURES / "callback_model.py")
UNTIDY = str(FIXTURES / "untidy_dataset.py")


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def step_points(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(run_dir / "tensorboard" / "steps"), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def cb_args(root: Path, name: str, *extra: str) -> list[str]:
    return base_args(root, name, "--batch-size", "16", "--lr", "0.05", "--workers", "2", "--epochs", "3", "--log-every", "1",
                     "--set", "dataset.noise=0.1", *extra, model=CALLBACK_MODEL, dataset=UNTIDY)


@pytest.mark.mpi
@pytest.mark.parametrize("backend", ["torch", "horovod"])
def test_callback_state_logged_scalars_and_files_survive_a_mid_epoch_stop(tmp_path: Path, backend: str) -> None:
    out = scorch_train(cb_args(tmp_path, "whole", "--backend", backend), np_=2)
    assert out.returncode == 0, out.stderr
    # 301 samples, 32 per step: 10 steps an epoch; the main rank signals itself after step 13 (epoch 2).
    out = scorch_train(cb_args(tmp_path, "cut", "--backend", backend), np_=2, extra_env={"SCORCH_TEST_STOP_AT_STEP": "13"})
    assert out.returncode == 3, out.stderr
    cut = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert cut["cursor"]["epoch"] == 1 and 0 < cut["cursor"]["samples"] < 301, "the stop was not mid-epoch"
    assert cut["callbacks"]["step_counter"]["steps"] == cut["step"]
    assert not (tmp_path / "cut" / "callback_state.json").exists()  # on_fit_end: not after a stop
    out = scorch_train(cb_args(tmp_path, "cut", "--backend", backend, "--resume"), np_=2)
    assert out.returncode == 0, out.stderr

    whole, resumed = tmp_path / "whole", tmp_path / "cut"
    state = json.loads((whole / "callback_state.json").read_text())
    assert state["steps"] == 30 and state["norm_sum"] > 0
    assert json.loads((resumed / "callback_state.json").read_text()) == state  # bitwise: the same float sum
    for column in ("train/grad_norm", "train/ce", "valid/ce"):
        assert [r[column] for r in rows(whole)] == [r[column] for r in rows(resumed)], column
    for r in rows(whole):  # the criterion's term, weighted by samples, is exactly the loss column's mean
        assert float(r["train/ce"]) == pytest.approx(float(r["train/loss"]), rel=1e-12)
        assert float(r["valid/ce"]) == pytest.approx(float(r["valid/loss"]), rel=1e-12)
    points = step_points(whole, "step/train/grad_norm")
    assert [s for s, _ in points] == list(range(1, 31))
    assert step_points(resumed, "step/train/grad_norm") == points  # no step lost or repeated after the purge
    assert (whole / "fit_starts.txt").read_text() == "epoch 0 step 0 world 2\n"
    assert (resumed / "fit_starts.txt").read_text().splitlines()[1] == f"epoch 1 step {cut['step']} world 2"


def test_a_stop_in_one_process_gives_the_same_callback_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(cb_args(tmp_path, "whole", "--workers", "0")) == 0
    monkeypatch.setenv("SCORCH_TEST_STOP_AT_STEP", "4")
    assert main(cb_args(tmp_path, "cut", "--workers", "0")) == 3
    monkeypatch.delenv("SCORCH_TEST_STOP_AT_STEP")
    assert main(cb_args(tmp_path, "cut", "--workers", "0", "--resume")) == 0
    state = json.loads((tmp_path / "whole" / "callback_state.json").read_text())
    assert state["steps"] == 3 * 19  # 301 samples, 16 per step
    assert json.loads((tmp_path / "cut" / "callback_state.json").read_text()) == state
    assert [r["train/grad_norm"] for r in rows(tmp_path / "whole")] == [r["train/grad_norm"] for r in rows(tmp_path / "cut")]


class Recorder(scorch.Callback):
    def __init__(self, events: list[str]):
        self.events = events

    def on_fit_start(self, run):
        self.events.append("fit_start")

    def on_train_epoch_start(self, run):
        self.events.append(f"epoch_start {run.epoch}")

    def on_train_batch_end(self, run, batch):
        self.events.append(f"batch {batch.samples}")

    def on_step_end(self, run):
        self.events.append(f"step {run.step}")

    def on_validation_batch_end(self, run, batch):
        self.events.append(f"valid_batch {batch.index}")

    def on_validation_end(self, run, metrics):
        self.events.append(f"validation_end {sorted(metrics)}")

    def on_epoch_end(self, run, row):
        self.events.append(f"epoch_end {row['epoch']} {(run.run_dir / 'history.csv').exists()}")

    def on_save_checkpoint(self, run):
        self.events.append("save")

    def on_fit_end(self, run):
        self.events.append("fit_end")

    def on_exception(self, run, exc):
        self.events.append(f"exception {type(exc).__name__}")


def recorder_model(tmp_path: Path, fail_at_step: int | None = None) -> str:
    path = tmp_path / "recorder_model.py"
    path.write_text(f"""
from tests.fixtures.mlp_model import Network, Socket as Base
from tests.test_extending import EVENTS, Recorder


class Socket(Base):
    def callbacks(self):
        return [Recorder(EVENTS)]

    def criterion(self, preds, targets):
        if self.run.step == {fail_at_step if fail_at_step is not None else -1}:
            raise RuntimeError("boom")
        return super().criterion(preds, targets)
""")
    return str(path)


EVENTS: list[str] = []


def test_hooks_fire_in_the_documented_order(tmp_path: Path) -> None:
    EVENTS.clear()
    # 64 train samples, 24 per step (8 x accumulate 3): steps of 24, 24, 16 samples; 37 valid samples in batches of 8.
    args = base_args(tmp_path, "r", "--epochs", "1", "--batch-size", "8", "--accumulate", "3", model=recorder_model(tmp_path))
    assert main(args) == 0
    valid = [f"valid_batch {i}" for i in range(5)]
    assert ["fit_start", "epoch_start 1",
                      "batch 8", "batch 8", "batch 8", "step 1", "batch 8", "batch 8", "batch 8", "step 2",
                      "batch 6", "batch 5", "batch 5", "step 3", *valid,
                      "validation_end ['valid/accuracy', 'valid/first_class', 'valid/loss']",
                      "epoch_end 1 True", "save", "fit_end"] == EVENTS


def test_a_failure_reaches_on_exception(tmp_path: Path) -> None:
    EVENTS.clear()
    assert main(base_args(tmp_path, "r", "--epochs", "1", "--batch-size", "8", model=recorder_model(tmp_path, 2))) == 1
    assert EVENTS[-1] == "exception RuntimeError" and "fit_end" not in EVENTS and EVENTS.count("step 2") == 1


def test_a_logger_from_outside_the_package_gets_the_documented_calls(tmp_path: Path) -> None:
    spec = "csv,tests.fixtures.recording_logger:RecordingLogger"
    args = base_args(tmp_path, "r", "--batch-size", "16", "--log-every", "2", "--logger", spec)
    assert main([*args, "--epochs", "1"]) == 0
    assert main([*args, "--epochs", "2", "--resume"]) == 0
    run_dir = tmp_path / "r"
    calls = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    kinds = [c[0] for c in calls]
    # 64 samples, 16 per step: 4 steps an epoch, steps 2 and 4 logged; each session closes its logger.
    assert kinds == ["check", "open", "hparams", "step", "step", "epoch", "close",
                     "check", "open", "hparams", "step", "step", "epoch", "close"]
    assert calls[1] == ["open", None] and calls[8] == ["open", [1, 4]]
    assert calls[2][1] == {"epochs": 1, "batch_size": 16, "logger": spec}
    assert [c[1] for c in calls if c[0] == "step"] == [2, 4, 6, 8]
    assert set(calls[3][2]) == {"lr", "train/loss", "train/accuracy", "train/first_class"}
    history = rows(run_dir)
    epochs = [c[1] for c in calls if c[0] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    for row, logged in zip(history, epochs):
        assert float(row["valid/loss"]) == logged["valid/loss"]  # the same row as history.csv's
    assert not (run_dir / "tensorboard").exists()  # not asked for


def test_a_model_files_logger_and_none(tmp_path: Path) -> None:
    model = tmp_path / "logged_model.py"
    model.write_text("from tests.fixtures.mlp_model import Network, Socket as Base\n"
                     "from tests.fixtures.recording_logger import RecordingLogger\n\n\n"
                     "class Socket(Base):\n    def loggers(self):\n        return [RecordingLogger()]\n")
    assert main(base_args(tmp_path, "r", "--epochs", "1", "--logger", "none", model=str(model))) == 0
    run_dir = tmp_path / "r"
    assert (run_dir / "records.jsonl").exists() and not (run_dir / "history.csv").exists()
    assert not (run_dir / "tensorboard").exists()


@pytest.mark.parametrize("spec, words", [("tensorbord", "'tensorbord' is not a logger"),
                                         ("csv,csv", "names a logger twice"),
                                         ("tests.fixtures.recording_logger:Nope", "has no Nope"),
                                         ("tests.fixtures.mlp_model:Network", "not a subclass of scorch.Logger")])
def test_a_bad_logger_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, words: str) -> None:
    assert main(base_args(tmp_path, "r", "--epochs", "1", "--logger", spec)) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_run_log_outside_training_records_nothing(tmp_path: Path) -> None:
    assert main(cb_args(tmp_path, "r", "--epochs", "1", "--workers", "0")) == 0
    loaded = scorch.load_run(tmp_path / "r")
    x = torch.randn(5, 4)
    preds = loaded.network([x])
    loaded.socket.criterion(preds, [torch.zeros(5, dtype=torch.long)])  # self.run.log: a detached run
    assert loaded.socket.raw.run.is_detached
