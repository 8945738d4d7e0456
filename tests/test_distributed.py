"""Real multi-rank runs: mpirun, and scorch's own --nproc-per-node launch."""
import csv
import json
import re
import time

import pytest
import torch

from scorch.cli.train import main
from tests.helpers import FIXTURES, base_args, scorch_train, weights

pytestmark = pytest.mark.mpi


def rows(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """1 rank with batch 16, and 2 ranks under mpirun with batch 8 each: the same global batches.
    torch.distributed, so that the same ranks started by scorch's own launch compare bitwise."""
    root = tmp_path_factory.mktemp("runs")
    common = ["--epochs", "3", "--lr", "0.05", "--optimizer", "adam"]
    assert main(base_args(root, "one", "--batch-size", "16", *common)) == 0
    out = scorch_train(base_args(root, "two", "--batch-size", "8", *common, "--backend", "torch"), np_=2)
    assert out.returncode == 0, out.stderr
    return root, out


def test_two_ranks_with_batch_b_equal_one_rank_with_batch_2b(runs):
    root, _ = runs
    one, two = weights(root / "one"), weights(root / "two")
    for key in one:
        assert torch.allclose(one[key], two[key], atol=1e-4, rtol=0), (key, (one[key] - two[key]).abs().max())
    assert rows(root / "one")[-1]["step"] == rows(root / "two")[-1]["step"] == "12"


def test_gradient_averaging_is_not_trivially_equal(runs, tmp_path):
    # Batch 8 on one rank takes different steps: the comparison above can fail.
    root, _ = runs
    assert main(base_args(tmp_path, "small", "--batch-size", "8", "--epochs", "3", "--lr", "0.05")) == 0
    one, small = weights(root / "one"), weights(tmp_path / "small")
    assert max((one[k] - small[k]).abs().max().item() for k in one) > 1e-3


def test_validation_metrics_are_the_same_for_one_and_two_ranks(runs):
    root, _ = runs
    for r1, r2 in zip(rows(root / "one"), rows(root / "two")):
        # first_class depends on the 37 targets only: exactly one count per sample, or it moves.
        assert float(r1["valid/first_class"]) == pytest.approx(float(r2["valid/first_class"]), abs=1e-12)
        for key in ("valid/loss", "valid/accuracy", "train/loss"):
            assert float(r1[key]) == pytest.approx(float(r2[key]), rel=1e-5), key


def test_validation_is_exact_with_three_ranks_and_an_uneven_split(tmp_path):
    out = scorch_train(base_args(tmp_path, "three", "--epochs", "1", "--batch-size", "4"), np_=3)
    assert out.returncode == 0, out.stderr
    from tests.fixtures.blobs_dataset import DataSet, DataSetIndex
    valid = DataSet(DataSetIndex(), "valid")
    expected = sum(int(valid[i][1][0] == 0) for i in range(len(valid))) / len(valid)
    assert float(rows(tmp_path / "three")[0]["valid/first_class"]) == pytest.approx(expected, abs=1e-12)


def test_only_rank_0_writes_to_the_console(runs):
    _, out = runs
    epoch_lines = [line for line in out.stderr.splitlines() if line.startswith("scorch: epoch ")]
    assert len(epoch_lines) == 3
    # the end's diagnostics line may name rank 1 as the slowest: that line is rank 0's
    said = [line for line in out.stderr.splitlines() if not line.startswith("scorch: diagnostics: ")]
    assert len(said) < len(out.stderr.splitlines())  # the diagnostics line is there, once ...
    assert not any("rank 1" in line for line in said) and out.stdout == ""  # ... and rank 1 says nothing


def test_meta_records_both_ranks(runs):
    import json
    meta = json.loads((runs[0] / "two" / "meta.json").read_text())
    assert meta["world_size"] == 2 and meta["launcher"] == "mpirun" and len(meta["hostnames"]) == 2


def test_nproc_per_node_starts_its_own_ranks(runs, tmp_path):
    root, _ = runs
    out = scorch_train(base_args(tmp_path, "elastic", "--batch-size", "8", "--epochs", "3", "--lr", "0.05",
                                 "--nproc-per-node", "2"))
    assert out.returncode == 0, out.stderr
    import json
    meta = json.loads((tmp_path / "elastic" / "meta.json").read_text())
    assert meta["world_size"] == 2 and meta["launcher"] == "torchrun"
    mpi, elastic = weights(root / "two"), weights(tmp_path / "elastic")
    assert all(torch.equal(mpi[k], elastic[k]) for k in mpi)  # same ranks, same data: bitwise


def test_a_failing_rank_ends_the_job_naming_it(tmp_path):
    start = time.monotonic()
    out = scorch_train(base_args(tmp_path, "fail", "--epochs", "2", "--batch-size", "8",
                                 dataset=str(FIXTURES / "failing_dataset.py")), np_=2, timeout=120)
    assert time.monotonic() - start < 60
    assert out.returncode != 0
    # The dataset's error, naming the rank, the file, the mode and the sample (exit 2: the data is at fault).
    assert re.search(r"scorch-train\[rank 1\]: error: .*failing_dataset.py: "
                     r"DataSet.__getitem__ \(mode='train'\) raised OSError: disk read failed", out.stderr), out.stderr


def test_torchrun_launch(tmp_path):
    import subprocess

    from tests.helpers import BIN, env
    cmd = [str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2", "--no-python", str(BIN / "scorch-train"),
           *base_args(tmp_path, "tr", "--epochs", "1", "--batch-size", "8")]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=300)
    assert out.returncode == 0, out.stderr
    assert len(rows(tmp_path / "tr")) == 1


def test_nproc_per_node_reports_a_failed_rank_with_its_exit_code(tmp_path):
    out = scorch_train(base_args(tmp_path, "elastic-fail", "--epochs", "2", "--batch-size", "8", "--nproc-per-node", "2",
                                 dataset=str(FIXTURES / "failing_dataset.py")), timeout=120)
    assert out.returncode == 2  # the code of the rank that failed first (its dataset is at fault)
    # The dataset's error, naming the rank, the file, the mode and the sample (exit 2: the data is at fault).
    assert re.search(r"scorch-train\[rank 1\]: error: .*failing_dataset.py: "
                     r"DataSet.__getitem__ \(mode='train'\) raised OSError: disk read failed", out.stderr), out.stderr
    assert "scorch-train: error:" in out.stderr and "rank 1 (exit code 2) failed" in out.stderr


def test_every_rank_runs_the_user_atexit_handlers_and_mpirun_sees_a_clean_exit(tmp_path):
    # Ranks end with os._exit (no gloo teardown to race a peer's), after running atexit handlers
    # and MPI_Finalize: without the latter, mpirun reports the rank as "exiting improperly".
    marks = tmp_path / "marks"
    marks.mkdir()
    out = scorch_train(base_args(tmp_path, "r", "--epochs", "1", "--batch-size", "8", dataset=str(FIXTURES / "atexit_dataset.py")),
                       np_=2, extra_env={"SCORCH_TEST_ATEXIT_DIR": str(marks)})
    assert out.returncode == 0, out.stderr
    assert "improperly" not in out.stderr
    assert len(list(marks.iterdir())) == 2


@pytest.mark.parametrize("backend", ["torch", "auto"])  # auto: Horovod under mpirun, where Horovod is built
def test_dataloader_workers_of_the_torch_backend_inherit_no_mpi(tmp_path, backend):
    # mpirun's ranks meet over MPI (mpi4py) and then train over torch.distributed: MPI, which is not
    # fork-safe, is finalized before the first DataLoader worker forks. Horovod runs on MPI and keeps it.
    if backend == "auto":
        pytest.importorskip("horovod.torch")
    marks = tmp_path / "marks"
    marks.mkdir()
    out = scorch_train(base_args(tmp_path, "r", "--epochs", "2", "--batch-size", "8", "--workers", "2", "--backend", backend,
                                 dataset=str(FIXTURES / "mpi_state_dataset.py")),
                       np_=2, extra_env={"SCORCH_TEST_MPI_DIR": str(marks)})
    assert out.returncode == 0, out.stderr
    assert "improperly" not in out.stderr
    states = [json.loads(p.read_text()) for p in marks.iterdir()]
    assert len(states) == 16  # 2 ranks x 2 workers x (train + valid) x 2 epochs: workers start afresh each time
    assert all(s["initialized"] for s in states)  # the ranks did meet over MPI
    if backend == "torch":
        assert all(s["finalized"] and s["mca_mappings"] == 0 for s in states), states
    else:
        assert not any(s["finalized"] for s in states) and all(s["mca_mappings"] > 0 for s in states), states


def test_torch_distributed_ranks_on_a_crowded_core_state_their_threads_and_rank_1_prints_nothing(tmp_path):
    """As tests/test_horovod.py's test of the start line, on torch.distributed: two ranks on one core
    (taskset), two DataLoader workers each; only rank 0's log reaches the console."""
    from tests.helpers import BIN, env, mpirun, run
    cmd = ["taskset", "-c", "0", *mpirun(2), str(BIN / "scorch-train"),
           *base_args(tmp_path, "crowded", "--epochs", "2", "--workers", "2", "--backend", "torch")]
    e = env()
    e.pop("OMP_NUM_THREADS", None)
    out = run(cmd, 300, e)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert all(line.startswith("scorch: ") for line in lines), out.stderr
    start = next(line for line in lines if line.startswith("scorch: training "))
    assert "backend torch (--backend torch), strategy ddp, amp off, 1 CPU thread (1 core / 2 ranks on this node" in start, start
    assert sum("DataLoader worker processes" in line for line in lines) == 1
