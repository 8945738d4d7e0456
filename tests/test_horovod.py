"""The Horovod backend, launched by real mpirun and horovodrun (built by `make setup-horovod`)."""
import csv
import json
import re
import shlex

import pytest
import torch

from tests.helpers import BIN, DIGITS_DATASET, DIGITS_MODEL, FIXTURES, base_args, env, mpirun, run, scorch_train, unmeasured, weights

hvd = pytest.importorskip("horovod.torch", reason="Horovod is not installed: run `make setup-horovod`")
pytestmark = pytest.mark.mpi

RUN_FILES = {"config.json", "meta.json", "history.csv", "log.txt", "tensorboard", "checkpoints"}


def rows(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def meta(run_dir):
    return json.loads((run_dir / "meta.json").read_text())


def horovodrun(np_, args, timeout=300, extra=""):
    # From a shell, as a user types it: horovodrun in MPI mode is recognised by the shell's "_".
    cmd = f"{BIN}/horovodrun -np {np_} -H localhost:{np_} {extra} {BIN}/scorch-train {shlex.join(args)}"
    return run(["bash", "-c", cmd], timeout, env())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    common = ["--epochs", "3", "--lr", "0.05"]
    for name, np_, batch, backend in (("hvd", 2, "8", "horovod"), ("torch", 2, "8", "torch"), ("one", None, "16", "torch")):
        out = scorch_train(base_args(root, name, "--batch-size", batch, "--backend", backend, *common), np_=np_)
        assert out.returncode == 0, out.stderr
    return root


def test_mpirun_backend_horovod_writes_a_complete_run(runs):
    assert {p.name for p in (runs / "hvd").iterdir()} >= RUN_FILES
    assert meta(runs / "hvd")["backend"] == "horovod" and meta(runs / "hvd")["world_size"] == 2
    assert len(rows(runs / "hvd")) == 3


def test_horovod_equals_torch_distributed_and_one_rank_with_double_batch(runs):
    h, t, one = weights(runs / "hvd"), weights(runs / "torch"), weights(runs / "one")
    for key in h:
        assert torch.allclose(h[key], t[key], atol=1e-4, rtol=0), key
        assert torch.allclose(h[key], one[key], atol=1e-4, rtol=0), key
    for rh, rt in zip(rows(runs / "hvd"), rows(runs / "torch")):
        for key in ("valid/loss", "valid/accuracy", "valid/first_class"):
            assert float(rh[key]) == pytest.approx(float(rt[key]), rel=1e-5), key


def test_mpirun_backend_horovod_trains_the_digits_example(tmp_path):
    out = scorch_train(base_args(tmp_path, "digits", "--epochs", "4", "--lr", "0.003", "--backend", "horovod",
                                 model=DIGITS_MODEL, dataset=DIGITS_DATASET), np_=2)
    assert out.returncode == 0, out.stderr
    assert {p.name for p in (tmp_path / "digits").iterdir()} >= RUN_FILES
    assert meta(tmp_path / "digits")["backend"] == "horovod"
    assert float(rows(tmp_path / "digits")[-1]["valid/accuracy"]) > 0.9


def test_horovodrun_trains_the_digits_example(tmp_path):
    out = horovodrun(2, base_args(tmp_path, "digits", "--epochs", "4", "--lr", "0.003", model=DIGITS_MODEL, dataset=DIGITS_DATASET))
    assert out.returncode == 0, out.stderr
    run = tmp_path / "digits"
    assert {p.name for p in run.iterdir()} >= RUN_FILES
    assert (meta(run)["backend"], meta(run)["launcher"], meta(run)["world_size"]) == ("horovod", "horovodrun", 2)
    assert float(rows(run)[-1]["valid/accuracy"]) > 0.9


def test_mpirun_selects_horovod_unless_scorch_backend_says_torch(tmp_path):
    # As the original scorch did: plain mpirun trains with Horovod's allreduce, and says why.
    out = scorch_train(base_args(tmp_path, "plain", "--epochs", "1"), np_=2)
    assert out.returncode == 0, out.stderr
    assert meta(tmp_path / "plain")["backend"] == "horovod"
    from scorch.distributed import HOROVOD_ON_CPU
    assert f"backend horovod (started by mpirun, Horovod importable; {HOROVOD_ON_CPU})" in out.stderr
    assert "--backend torch chooses torch.distributed" in HOROVOD_ON_CPU
    out = scorch_train(base_args(tmp_path, "env", "--epochs", "1"), np_=2, extra_env={"SCORCH_BACKEND": "torch"})
    assert out.returncode == 0, out.stderr
    assert meta(tmp_path / "env")["backend"] == "torch" and "backend torch (SCORCH_BACKEND=torch)" in out.stderr


DROPOUT = {"model": str(FIXTURES / "dropout_model.py"), "dataset": str(FIXTURES / "noisy_dataset.py")}


def test_exact_resume_under_horovod(tmp_path):
    common = ["--batch-size", "8", "--lr", "0.05", "--workers", "2", "--backend", "horovod"]
    for name, extra in (("whole", ["--epochs", "4"]), ("split", ["--epochs", "2"]), ("split", ["--epochs", "4", "--resume"])):
        out = scorch_train(base_args(tmp_path, name, *common, *extra, **DROPOUT), np_=2)
        assert out.returncode == 0, out.stderr
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "split")
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda rs: [unmeasured(r) for r in rs]  # noqa: E731
    assert strip(rows(tmp_path / "whole")) == strip(rows(tmp_path / "split"))


@pytest.mark.parametrize("first,second", [("torch", "horovod"), ("horovod", "torch")])
def test_checkpoints_cross_backends(tmp_path, first, second):
    common = ["--batch-size", "8", "--lr", "0.05"]
    out = scorch_train(base_args(tmp_path, "x", *common, "--epochs", "2", "--backend", first), np_=2)
    assert out.returncode == 0, out.stderr
    out = scorch_train(base_args(tmp_path, "x", *common, "--epochs", "4", "--backend", second, "--resume"), np_=2)
    assert out.returncode == 0, out.stderr
    out = scorch_train(base_args(tmp_path, "ref", *common, "--epochs", "4", "--backend", second), np_=2)
    assert out.returncode == 0, out.stderr
    x, ref = weights(tmp_path / "x"), weights(tmp_path / "ref")
    assert all(torch.allclose(x[k], ref[k], atol=1e-5, rtol=0) for k in x)
    assert [s["world_size"] for s in meta(tmp_path / "x")["sessions"]] == [2, 2]
    assert meta(tmp_path / "x")["backend"] == second


def test_rank0_decisions_reach_every_rank_under_horovod(tmp_path):
    # No --name: rank 0 picks the timestamp and broadcasts it; a second run into the same
    # directory is refused by rank 0 alone. Both broadcasts send an object from rank 0 and None
    # from the others, which Horovod would pair by type name and deadlock on, unless named.
    args = ["--model", str(FIXTURES / "mlp_model.py"), "--dataset", str(FIXTURES / "blobs_dataset.py"),
            "--run-root", str(tmp_path), "--epochs", "1", "--no-progress", "--backend", "horovod"]
    out = scorch_train(args, np_=2, timeout=120)
    assert out.returncode == 0, out.stderr
    (name,) = [p.name for p in tmp_path.iterdir()]
    out = scorch_train([*args, "--name", name], np_=2, timeout=120)
    assert out.returncode == 2 and "already exists and is not empty" in out.stderr


def test_a_failing_rank_ends_a_horovod_job_naming_it(tmp_path):
    import time
    start = time.monotonic()
    out = scorch_train(base_args(tmp_path, "fail", "--epochs", "2", "--batch-size", "8", "--backend", "horovod",
                                 dataset=str(FIXTURES / "failing_dataset.py")), np_=2, timeout=120)
    assert time.monotonic() - start < 60
    assert out.returncode != 0
    # The dataset's error, naming the rank, the file, the mode and the sample (exit 2: the data is at fault).
    assert re.search(r"scorch-train\[rank 1\]: error: .*failing_dataset.py: "
                     r"DataSet.__getitem__ \(mode='train'\) raised OSError: disk read failed", out.stderr), out.stderr


def test_on_a_crowded_core_the_start_line_states_threads_and_amp_and_rank_1_prints_nothing(tmp_path):
    """Two ranks on one core (taskset), two DataLoader workers each: each rank runs 1 thread (the
    core / 2 ranks), the start line says so, and the one line about too many workers is rank 0's
    (torch's own warning was printed by every rank, for the train and the valid loader)."""
    cmd = ["taskset", "-c", "0", *mpirun(2), str(BIN / "scorch-train"),
           *base_args(tmp_path, "crowded", "--epochs", "2", "--workers", "2")]
    e = env()
    e.pop("OMP_NUM_THREADS", None)
    out = run(cmd, 300, e)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert all(line.startswith("scorch: ") for line in lines), out.stderr  # rank 0's log only: no warning, no rank 1
    start = next(line for line in lines if line.startswith("scorch: training "))
    assert "strategy horovod, amp off, 1 CPU thread (1 core / 2 ranks on this node; OMP_NUM_THREADS sets it)" in start, start
    assert [line for line in lines if "DataLoader worker" in line] == [
        "scorch: --workers 2: more DataLoader worker processes per rank than the 1 CPU(s) this process may use; "
        "fewer workers may load faster"]
