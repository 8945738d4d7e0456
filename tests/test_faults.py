"""Fault tolerance: failed ranks, killed writers, corrupt or hostile checkpoints, NaNs, full disks."""
import csv
import json
import os
import pickle
import signal
import subprocess
import time

import pytest
import torch

from scorch.cli.train import main
from tests.bad_input.sources import NAN_AT_STEP_5
from tests.helpers import BIN, FIXTURES, base_args, env, mpirun, scorch_train, snapshot, weights

BALLAST = str(FIXTURES / "ballast_model.py")


def history(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def test_keep_checkpoints_keeps_the_newest_k_and_links_last(tmp_path):
    assert main(base_args(tmp_path, "k", "--epochs", "5", "--batch-size", "16", "--keep-checkpoints", "3")) == 0
    ck = tmp_path / "k" / "checkpoints"
    kept = sorted(p.name for p in ck.glob("step-*.pt"))
    assert kept == ["step-000000012.pt", "step-000000016.pt", "step-000000020.pt"]
    assert (ck / "last.pt").samefile(ck / "step-000000020.pt")  # written once, linked


def test_truncated_last_checkpoint_falls_back_to_the_newest_good_one(tmp_path, capsys):
    assert main(base_args(tmp_path, "k", "--epochs", "3", "--batch-size", "16", "--keep-checkpoints", "2")) == 0
    ck = tmp_path / "k" / "checkpoints"
    last = ck / "last.pt"
    with open(last, "r+b") as f:  # truncates step-12 too: the same file
        f.truncate(os.path.getsize(last) // 2)
    capsys.readouterr()
    assert main(base_args(tmp_path, "k", "--epochs", "4", "--batch-size", "16", "--keep-checkpoints", "2", "--resume")) == 0
    err = capsys.readouterr().err
    assert "last.pt is truncated or corrupt" in err and "resuming from" in err and "step-000000008.pt" in err
    assert [int(r["epoch"]) for r in history(tmp_path / "k")] == [1, 2, 3, 4]


def test_corrupt_checkpoint_without_a_fallback_is_one_clear_error(tmp_path, capsys):
    assert main(base_args(tmp_path, "c", "--epochs", "1")) == 0
    (tmp_path / "c" / "checkpoints" / "last.pt").write_bytes(b"PK\x03\x04 not really a zip")
    before = snapshot(tmp_path / "c")
    capsys.readouterr()
    assert main(base_args(tmp_path, "c", "--epochs", "2", "--resume")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "last.pt is truncated or corrupt" in err[0]
    assert snapshot(tmp_path / "c") == before


class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['SCORCH_PWNED']}",))


def test_a_malicious_pickle_in_a_checkpoint_is_refused_without_running_it(tmp_path, monkeypatch, capsys):
    assert main(base_args(tmp_path, "m", "--epochs", "1")) == 0
    marker = tmp_path / "pwned"
    monkeypatch.setenv("SCORCH_PWNED", str(marker))
    last = tmp_path / "m" / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    state["evil"] = Payload()
    torch.save(state, last)
    pickle.loads(pickle.dumps(Payload()))  # sanity: the payload is live when unpickled unsafely
    assert marker.exists()
    marker.unlink()
    capsys.readouterr()
    assert main(base_args(tmp_path, "m", "--epochs", "2", "--resume")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was refused" in err[0] and "last.pt" in err[0]
    assert "weights_only" not in err[0] and "Re-running" not in err[0]  # never the advice to load it unsafely
    assert not marker.exists()


def test_nan_policy_skip_skips_the_step_and_counts_it(tmp_path):
    (tmp_path / "model.py").write_text(NAN_AT_STEP_5)
    out = scorch_train(base_args(tmp_path, "skip", "--epochs", "3", "--batch-size", "16", "--nan-policy", "skip",
                                 model=str(tmp_path / "model.py")))
    assert out.returncode == 0, out.stderr
    rows = history(tmp_path / "skip")
    assert [r["skipped_steps"] for r in rows] == ["0", "1", "1"]
    assert all(float(r["train/loss"]) == float(r["train/loss"]) for r in rows)  # no NaN in the means
    assert all(torch.isfinite(v).all() for v in weights(tmp_path / "skip").values())


def test_sigkill_while_a_checkpoint_is_written_leaves_the_previous_one_intact(tmp_path):
    ck = tmp_path / "w" / "checkpoints"
    cmd = [str(BIN / "scorch-train"), *base_args(tmp_path, "w", "--epochs", "50", "--batch-size", "32", model=BALLAST)]
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    killed_mid_write = False
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (ck / "last.pt").exists() and any(p.name.startswith(".last.pt") for p in ck.iterdir()):
            os.killpg(proc.pid, signal.SIGKILL)  # a second checkpoint is half written right now
            killed_mid_write = True
            break
    proc.wait(timeout=30)
    assert killed_mid_write, "never caught a checkpoint being written"
    state = torch.load(ck / "last.pt", weights_only=True)  # the previous one, whole
    assert state["epoch"] >= 1
    leftovers = [p for p in ck.iterdir() if p.name.startswith(".last.pt")]
    assert leftovers and json.loads((tmp_path / "w" / "meta.json").read_text())["status"] == "running"
    assert main(base_args(tmp_path, "w", "--epochs", str(state["epoch"] + 1), "--resume", model=BALLAST)) == 0
    # The next session records the killed one, and removes its half-written file once it has saved its own.
    meta = json.loads((tmp_path / "w" / "meta.json").read_text())
    assert [s.get("status") for s in meta["sessions"]] == ["killed", "finished"]
    assert not any(p.exists() for p in leftovers) and not list(ck.glob(".*.tmp"))


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)])


def test_disk_full_while_writing_a_checkpoint_is_a_clear_error_and_keeps_the_last_one(small_disk, capsys):
    # ~0.5 MB checkpoints on a 2 MB disk: epoch 1 fits; later ones fill it up.
    argv = base_args(small_disk, "full", "--epochs", "6", "--set", "model.ballast_mb=0.5", "--keep-checkpoints", "4",
                     model=BALLAST)
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "No space left on device" in err[-1] and "last complete checkpoint is intact" in err[-1]
    state = torch.load(small_disk / "full" / "checkpoints" / "last.pt", weights_only=True)
    assert 1 <= state["epoch"] < 6
    assert not [p for p in (small_disk / "full" / "checkpoints").iterdir() if p.name.endswith(".tmp")]


def test_read_only_run_directory_is_a_clear_error(small_disk, capsys):
    assert main(base_args(small_disk, "ro", "--epochs", "1")) == 0
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        code = main(base_args(small_disk, "ro", "--epochs", "2", "--resume"))
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "Read-only file system" in err[-1]
    assert torch.load(small_disk / "ro" / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1


@pytest.mark.mpi
@pytest.mark.parametrize("backend", ["torch", "horovod"])
def test_a_rank_killed_with_sigkill_ends_the_job(tmp_path, backend):
    if backend == "horovod":
        pytest.importorskip("horovod.torch", reason="Horovod is not installed: run `make setup-horovod`")
    cmd = [*mpirun(2), str(BIN / "scorch-train"),
           *base_args(tmp_path, "k9", "--epochs", "200", "--batch-size", "8", "--backend", backend)]
    e = env()
    e["SCORCH_TEST_SLOW"] = "0.001"
    proc = subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    last = tmp_path / "k9" / "checkpoints" / "last.pt"
    deadline = time.time() + 60
    while time.time() < deadline and not last.exists():
        time.sleep(0.05)
    ranks = subprocess.run(["pgrep", "-f", "--", f"--run-root {tmp_path}"], capture_output=True, text=True).stdout.split()
    workers = [int(p) for p in ranks if int(p) != proc.pid]
    assert len(workers) >= 2
    start = time.monotonic()
    os.kill(max(workers), signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    assert time.monotonic() - start < 60
    assert proc.returncode != 0
    assert "exited on signal 9" in out or "killed" in out.lower()
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", "--", f"--run-root {tmp_path}"], capture_output=True, text=True).stdout.split()
    assert left == []


def test_memory_stays_flat_over_50_epochs(tmp_path):
    out = scorch_train(base_args(tmp_path, "mem", "--epochs", "50", "--batch-size", "16", "--set", "model.ballast_mb=1",
                                 model=BALLAST))
    assert out.returncode == 0, out.stderr
    rows = history(tmp_path / "mem")
    at5, at50 = float(rows[4]["valid/rss_mb"]), float(rows[49]["valid/rss_mb"])
    assert at50 - at5 < 0.1 * at5, (at5, at50)


@pytest.mark.mpi
def test_workers_with_slow_items_keep_ranks_in_step(tmp_path):
    args = base_args(tmp_path, "slow", "--epochs", "2", "--batch-size", "8", "--workers", "4",
                     model=str(FIXTURES / "dropout_model.py"), dataset=str(FIXTURES / "noisy_dataset.py"))
    out = scorch_train(args, np_=2, extra_env={"SCORCH_TEST_SLOW": "0.02", "SCORCH_TEST_SLOW_EVERY": "5"}, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = history(tmp_path / "slow")
    assert [int(r["step"]) for r in rows] == [6, 12]  # 96 samples / 2 ranks / batch 8
