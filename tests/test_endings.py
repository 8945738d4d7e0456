"""A run explains how it ended: meta.json's ``ended_by`` and a line in log.txt hold the line the console
printed (the one-line error), the rank and the exit code, after a NaN stop, a preemption and a failure of
another rank than 0 (a real mpirun)."""
from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from scorch.errors import EXIT_PREEMPTED
from tests.bad_input.sources import NAN_AT_STEP_5
from tests.helpers import BIN, FIXTURES, base_args, scorch_train
from tests.test_preempt import args as slow_args, start_and_signal


def ending(run_dir: Path) -> tuple[dict, str]:
    meta = json.loads((run_dir / "meta.json").read_text())
    return meta, (run_dir / "log.txt").read_text()


def test_a_nan_stop_records_the_line_the_console_printed(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text(NAN_AT_STEP_5)
    out = scorch_train(base_args(tmp_path, "nan", "--epochs", "3", "--batch-size", "16", model=str(tmp_path / "model.py")))
    assert out.returncode == 2
    printed = out.stderr.strip().splitlines()[-1]
    meta, log = ending(tmp_path / "nan")
    assert meta["status"] == "failed"
    ended = meta["ended_by"]
    assert (ended["rank"], ended["exit_code"]) == (0, 2)
    assert printed == f"scorch-train: {ended['message']}"  # the same words as the console's line
    assert "epoch 2, step 5" in ended["message"]
    last = log.strip().splitlines()[-1]
    assert "ERROR" in last and f"exit code 2: {ended['message']}" in last


def test_a_preemption_records_the_signal_and_where_it_stopped(tmp_path: Path) -> None:
    code, err = start_and_signal([str(BIN / "scorch-train"), *slow_args(tmp_path, "cut")], tmp_path / "cut", signal.SIGUSR1, False)
    assert code == EXIT_PREEMPTED, err
    meta, log = ending(tmp_path / "cut")
    assert meta["status"] == "preempted"
    assert meta["ended_by"]["exit_code"] == EXIT_PREEMPTED and meta["ended_by"]["message"].startswith("stopped by SIGUSR1")
    assert err.strip().splitlines()[-1] == f"scorch-train: {meta['ended_by']['message']}"
    assert "exit code 3: stopped by SIGUSR1" in log


@pytest.mark.mpi
def test_a_failure_on_rank_1_is_recorded_by_rank_0_with_its_rank_and_line(tmp_path: Path) -> None:
    out = scorch_train(base_args(tmp_path, "f", "--epochs", "2", "--batch-size", "8",
                                 dataset=str(FIXTURES / "failing_dataset.py")), np_=2)
    assert out.returncode != 0
    meta, log = ending(tmp_path / "f")
    assert meta["status"] == "failed"
    ended = meta["ended_by"]
    assert ended["rank"] == 1 and ended["exit_code"] == 2 and "disk read failed" in ended["message"]
    assert f"scorch-train[rank 1]: {ended['message']}" in out.stderr  # what rank 1 printed
    assert ended["then"]["rank"] == 0  # rank 0's own error, the broken collective
    assert "ended on rank 1" in log and "disk read failed" in log
    assert not list((tmp_path / "f").glob(".rank-*"))  # rank 0 took the note away
