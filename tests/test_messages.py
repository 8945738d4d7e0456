"""Messages a newcomer meets: each says what happened in the words of the flag or command given."""
from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from scorch.cli.sweep import main as sweep_main
from scorch.cli.train import main
from scorch.errors import EXIT_PREEMPTED
from tests.helpers import BIN, DIGITS_MODEL, base_args, scorch_train
from tests.test_preempt import args as slow_args, start_and_signal


def test_resume_of_a_run_that_does_not_exist_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--resume", "--name", "nope", "--run-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"there is no run {tmp_path / 'nope'}" in err and "--model is required" not in err


def test_a_stop_and_its_resume_speak_of_the_same_epoch_and_step(tmp_path: Path) -> None:
    code, err = start_and_signal([str(BIN / "scorch-train"), *slow_args(tmp_path, "cut")], tmp_path / "cut", signal.SIGTERM, False)
    assert code == EXIT_PREEMPTED, err
    stopped = re.search(r"stopped by SIGTERM at epoch (\d+), step (\d+)", err)
    assert stopped, err
    out = scorch_train(slow_args(tmp_path, "cut", "--resume"))
    assert out.returncode == 0, out.stderr
    assert f"resumed {tmp_path / 'cut'} at epoch {stopped[1]}, step {stopped[2]} (" in out.stderr


def test_amp_fp16_on_the_cpu_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(base_args(tmp_path, "r", "--epochs", "1", "--amp", "fp16")) == 0
    assert "--amp fp16 on the CPU" in capsys.readouterr().err


@pytest.mark.parametrize("grid, said", [
    ("model.nope=1,2", "--grid model.nope: unknown setting of"),
    ("model.n_filters=8,x", "--grid model.n_filters='x': expected a int like the default 16"),
    ("lr=0.1,x", "--grid lr = 'x' is a str, expected float"),
])
def test_a_bad_grid_value_is_reported_as_grid(grid: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.helpers import DATASET

    assert sweep_main(["--model", DIGITS_MODEL, "--dataset", DATASET, "--grid", grid, "--run-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert said in err and "--set" not in err
    assert not any(tmp_path.iterdir())
