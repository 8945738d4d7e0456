"""A full disk and a run directory removed under a live run, for real: a tmpfs of a few MB that a
ballast file fills mid-run (root mounts it; skipped, with the reason, where mounting is not allowed),
and ``rm -rf`` of the run directory while scorch-train trains.

- A full disk that first hits history.csv is one line (exit 2, as a read-only disk: the fix is the
  user's, space), and meta.json's status is true ("failed", not "running"): the run directory holds
  a reserve that is given up to write meta.json when nothing else is left.
- meta.json on a full disk: written from the reserve; without one, the old file stays whole.
- A run directory removed under a live run is a failure (exit 1), in one line naming it.
- What a failed session left (``.rank-N.failed``, ``.*.tmp``) goes once a later one has a checkpoint.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch

from scorch.errors import ScorchError
from scorch.rundir.directory import RunDir
from tests.helpers import BIN, FIXTURES, base_args, env

SLOW_MODEL, SLOW_DATA = str(FIXTURES / "dropout_model.py"), str(FIXTURES / "noisy_dataset.py")


@contextlib.contextmanager
def small_disk(path: Path, size_mb: int):
    path.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)], capture_output=True,
                         text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and mount rights): {out.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> None:
    """Write ballast until the disk is full (to its last block)."""
    for name, chunk in (("ballast", 65536), ("ballast-small", 512)):
        fd = os.open(disk / name, os.O_WRONLY | os.O_CREAT)
        try:
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * chunk)
        finally:
            os.close(fd)


def start(root: Path, name: str, *extra: str) -> subprocess.Popen[str]:
    cmd = [str(BIN / "scorch-train"), *base_args(root, name, "--epochs", "100", "--batch-size", "4", *extra,
                                                 model=SLOW_MODEL, dataset=SLOW_DATA)]
    return subprocess.Popen(cmd, env={**env(), "SCORCH_TEST_SLOW": "0.01"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"no {path} within {timeout} s"
        time.sleep(0.05)


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("scorch-train:")]


def test_a_full_disk_that_hits_history_csv_is_one_line_and_meta_json_stays_true(tmp_path):
    with small_disk(tmp_path / "disk", 16) as disk:
        run = disk / "r"
        proc = start(disk, "r")
        wait_for(run / "checkpoints" / "last.pt", proc)  # epoch 1 written: history.csv, then its checkpoint
        fill(disk)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, err[-3000:]
        assert "Traceback" not in err and "Logging error" not in err, err[-3000:]
        [line] = error_lines(err)
        assert "history.csv" in line and "No space left on device" in line, line
        meta = json.loads((run / "meta.json").read_text())
        assert meta["status"] == "failed" and meta["sessions"][-1]["status"] == "failed", meta["status"]
        state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)  # the last complete checkpoint
        assert state["epoch"] >= 1
        assert not (run / ".meta.reserve").exists() and not list(run.glob(".*.tmp"))


def test_meta_json_on_a_full_disk_is_written_from_the_reserve_or_left_whole(tmp_path):
    with small_disk(tmp_path / "disk", 4) as disk:
        run_dir = RunDir(disk / "r", rank0=True)
        run_dir.path.mkdir()
        run_dir.write_meta({"status": "running", "sessions": []})
        run_dir.reserve()
        fill(disk)
        run_dir.write_meta({"status": "finished", "sessions": []})  # the reserve gives way
        assert json.loads(run_dir.layout.meta.read_text())["status"] == "finished"
        assert not run_dir.layout.reserve.exists()
        with pytest.raises(ScorchError, match="No space left on device"):
            run_dir.write_meta({"status": "failed", "sessions": [], "pad": "x" * 3_000_000})  # more than the reserve freed
        assert json.loads(run_dir.layout.meta.read_text())["status"] == "finished"  # whole, not half-written


def test_a_run_directory_removed_under_a_live_run_is_a_failure_exit_1(tmp_path):
    run = tmp_path / "r"
    proc = start(tmp_path, "r")
    wait_for(run / "checkpoints" / "last.pt", proc)
    shutil.rmtree(run)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-3000:]
    [line] = error_lines(err)
    assert f"{run} was removed while" in line and "nothing can be saved there" in line, line
    assert "Traceback" not in err and "Logging error" not in err


def test_what_a_failed_session_left_goes_once_the_next_one_has_a_checkpoint(tmp_path):
    # A run, then what a killed 2-rank session leaves: a rank's failure note and half-written files.
    from scorch.cli.train import main
    assert main(base_args(tmp_path, "r", "--epochs", "1")) == 0
    run = tmp_path / "r"
    left = [run / ".rank-1.failed", run / ".meta.json.abc.tmp", run / "checkpoints" / ".last.pt.xyz.tmp"]
    for path in left:
        path.write_text("left by a session that died")
        os.utime(path, (time.time() - 60, time.time() - 60))
    assert main(base_args(tmp_path, "r", "--epochs", "2", "--resume")) == 0
    assert not any(p.exists() for p in left), [p for p in left if p.exists()]
    assert json.loads((run / "meta.json").read_text())["status"] == "finished"


def test_a_disk_too_full_for_the_lock_is_one_line_and_leaves_no_lock(tmp_path, capsys):
    from scorch.cli.train import main
    with small_disk(tmp_path / "disk", 4) as disk:
        fill(disk)
        assert main(base_args(disk, "l", "--epochs", "1")) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1] == (f"scorch-train: error: cannot write the lock {disk / '.l.lock'} of run {disk / 'l'}: "
                           "No space left on device"), err
        assert sorted(p.name for p in disk.iterdir()) == ["ballast", "ballast-small"]  # no empty lock left
