"""Every run's diagnostics (scorch/training/diagnostics.py): the diag/ columns of history.csv and
TensorBoard, gathered over the ranks of real mpirun jobs under both backends, the summary line of
the log, and meta.json's provenance (scorch/rundir/provenance.py)."""
from __future__ import annotations

import csv
import json
import math
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from scorch.cli.train import main
from scorch.rundir import provenance
from scorch.training.diagnostics import COLUMNS, StepTimes, combine
from tests.helpers import DATASET, FIXTURES, MODEL, base_args, scorch_train

HOST = socket.gethostname()
NUMBERS = [c for c in COLUMNS if c not in ("diag/slowest_host", "diag/cuda_peak_mib")]


def history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def assert_sane(rows: list[dict[str, str]], ranks: int) -> None:
    assert rows
    for row in rows:
        assert float(row["diag/samples_per_s"]) > 0, row
        assert 0 <= float(row["diag/data_wait"]) <= 1, row
        p50, p95 = float(row["diag/step_p50_ms"]), float(row["diag/step_p95_ms"])
        assert p95 >= p50 > 0, row
        assert int(row["diag/slowest_rank"]) in range(ranks) and row["diag/slowest_host"] == HOST, row
        assert 50 < float(row["diag/peak_rss_mib"]) < 1e5, row  # a Python process with torch: ~300 MiB
        assert "diag/cuda_peak_mib" not in row, row  # CPU runs have no such number


def summary_line(run_dir: Path) -> str:
    lines = [line for line in (run_dir / "log.txt").read_text().splitlines() if "diagnostics: " in line]
    assert len(lines) == 1, lines
    return lines[0]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


# Pure pieces first: the histogram's percentiles and how the ranks' reports combine.

def test_step_time_percentiles_are_within_one_percent():
    times = StepTimes()
    for ms in range(1, 101):  # 1..100 ms
        times.add(ms / 1000)
    assert times.quantile(0.5) == pytest.approx(0.050, rel=0.01)
    assert times.quantile(0.95) == pytest.approx(0.095, rel=0.01)
    assert math.isnan(StepTimes().quantile(0.5))
    times.add(0.0)  # a clock that did not move is counted, below every other time
    assert times.n == 101 and times.quantile(0.0) < 1e-6


def test_the_slowest_rank_is_the_one_with_the_highest_median():
    def report(rank, p50, p95, samples=64, train_s=1.0, wait_s=0.1, rss=300.0):
        return {"rank": rank, "host": f"h{rank}", "steps": 8, "samples": samples, "train_s": train_s, "wait_s": wait_s,
                "p50": p50, "p95": p95, "rss": rss, "cuda": None}
    d = combine([report(0, 0.004, 0.009, rss=500.0), report(1, 0.005, 0.006, train_s=2.0, wait_s=1.5), report(2, 0.003, 0.020)])
    assert (d["diag/slowest_rank"], d["diag/slowest_host"]) == (1, "h1")
    assert (d["diag/step_p50_ms"], d["diag/step_p95_ms"]) == pytest.approx((5.0, 6.0))  # rank 1's own p95
    assert d["diag/samples_per_s"] == pytest.approx(3 * 64 / 2.0)  # every rank's samples on the slowest clock
    assert d["diag/data_wait"] == pytest.approx(0.75) and d["diag/peak_rss_mib"] == 500.0
    assert "diag/cuda_peak_mib" not in d
    assert combine([{**report(0, math.nan, math.nan), "steps": 0, "samples": 0}]) == {}  # nothing trained: no columns


# One process, in-process, its model file in a git repository of its own.

@pytest.fixture(scope="module")
def repo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("diag")
    repo = root / "code"
    repo.mkdir()
    model = repo / "model.py"
    shutil.copy(MODEL, model)
    git(repo, "init", "-q")
    git(repo, "add", "model.py")
    git(repo, "commit", "-q", "-m", "the model")
    assert main(base_args(root, "one", "--epochs", "3", "--batch-size", "8", model=str(model))) == 0
    return root, repo, model


def test_one_rank_has_the_diagnostic_columns_with_sane_values(repo_run):
    root, _, _ = repo_run
    rows = history(root / "one")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert_sane(rows, 1)
    assert all(r["diag/slowest_rank"] == "0" for r in rows)


def test_tensorboard_holds_the_diagnostic_scalars(repo_run):
    root, _, _ = repo_run
    acc = EventAccumulator(str(root / "one" / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    rows = history(root / "one")
    tags = set(acc.Tags()["scalars"])
    assert set(NUMBERS) <= tags and "diag/slowest_host" not in tags  # a host name is no scalar
    for key in NUMBERS:
        assert [e.step for e in acc.Scalars(key)] == [1, 2, 3], key
        assert [e.value for e in acc.Scalars(key)] == pytest.approx([float(r[key]) for r in rows], rel=1e-6), key


def test_the_log_ends_the_session_with_one_diagnostics_line(repo_run):
    root, _, _ = repo_run
    line = summary_line(root / "one")
    assert f"(slowest: rank 0 on host {HOST})" in line, line
    for words in ("samples/s, data wait ", "%, step p50 ", " ms p95 ", " MiB"):
        assert words in line, line
    lines = (root / "one" / "log.txt").read_text().splitlines()
    assert lines.index(line) > max(i for i, x in enumerate(lines) if "epoch 3/3" in x)  # after the last epoch


def test_meta_json_records_the_model_files_commit_and_versions(repo_run):
    root, repo, model = repo_run
    meta = json.loads((root / "one" / "meta.json").read_text())
    commit = git(repo, "rev-parse", "HEAD")
    assert meta["git"] == {"root": str(repo.resolve()), "commit": commit, "dirty": False}
    assert meta["sessions"][-1]["git"] == {"commit": commit, "dirty": False}
    import torch

    import scorch
    versions = meta["versions"]
    assert versions["torch"] == torch.__version__ and versions["scorch"] == scorch.__version__
    assert set(versions) >= {"horovod", "mpi", "mpi4py"}
    assert versions["mpi"] == provenance.mpi_version()  # None unless this process loaded mpi4py.MPI (MPI_Init)

    # An edited model file: the same commit, dirty; the resumed session says so, the first keeps its word.
    model.write_text(model.read_text() + "\n# edited\n")
    assert main(base_args(root, "one", "--epochs", "4", "--batch-size", "8", "--resume", model=str(model))) == 0
    meta = json.loads((root / "one" / "meta.json").read_text())
    assert meta["git"]["dirty"] is True and meta["git"]["commit"] == commit
    assert [s["git"]["dirty"] for s in meta["sessions"]] == [False, True]
    rows = history(root / "one")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert_sane(rows, 1)  # the resumed rows kept their values, the new one has its own


def test_git_state_of_files_outside_a_repository_and_untracked_ones(tmp_path):
    outside = tmp_path / "plain" / "m.py"
    outside.parent.mkdir()
    outside.write_text("")
    assert provenance.git_state(outside) is None
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "m.py").write_text("")
    assert provenance.git_state(repo / "m.py") is None  # no commit yet
    (repo / "other.py").write_text("")
    git(repo, "add", "other.py")
    git(repo, "commit", "-q", "-m", "other")
    state = provenance.git_state(repo / "m.py")
    assert state is not None and state["dirty"] is True  # the model file is not in the commit


def test_slow_data_shows_as_data_wait(tmp_path, monkeypatch):
    # 10 ms per item in the main process against a step of a 4-16-3 MLP: nearly all of it is waiting.
    monkeypatch.setenv("SCORCH_TEST_SLOW", "0.01")
    args = base_args(tmp_path, "slow", "--epochs", "1", "--batch-size", "8", "--accumulate", "2", "--val-every", "3",
                     model=str(FIXTURES / "dropout_model.py"), dataset=str(FIXTURES / "noisy_dataset.py"))
    assert main(args) == 0
    rows = history(tmp_path / "slow")
    assert [int(r["step"]) for r in rows] == [3, 6]  # 96 samples, 16 a step: a row inside the epoch, one at its end
    assert_sane(rows, 1)
    assert all(float(r["diag/data_wait"]) > 0.5 for r in rows), rows
    assert all(float(r["diag/step_p50_ms"]) > 150 for r in rows), rows  # 16 items of 10 ms a step (within 1 %)


def test_a_logger_of_the_users_gets_the_diagnostics_in_each_row(tmp_path):
    args = base_args(tmp_path, "r", "--epochs", "2", "--batch-size", "16", "--logger",
                     "csv,tests.fixtures.recording_logger:RecordingLogger")
    assert main(args) == 0
    calls = [json.loads(line) for line in (tmp_path / "r" / "records.jsonl").read_text().splitlines()]
    logged = [c[1] for c in calls if c[0] == "epoch"]
    assert len(logged) == 2
    for row, csv_row in zip(logged, history(tmp_path / "r")):
        assert set(NUMBERS) <= set(row) and row["diag/slowest_host"] == HOST
        assert all(isinstance(row[k], (int, float)) for k in NUMBERS)
        assert {k: repr(float(row[k])) if isinstance(row[k], float) else str(row[k]) for k in NUMBERS} == \
            {k: csv_row[k] for k in NUMBERS}  # the numbers history.csv holds


# Two ranks under a real mpirun, with each backend.

@pytest.mark.mpi
@pytest.mark.parametrize("backend", ["torch", "horovod"])
def test_two_ranks_gather_their_numbers_under_both_backends(tmp_path, backend):
    if backend == "horovod":
        pytest.importorskip("horovod.torch", reason="Horovod is not installed: run `make setup-horovod`")
    out = scorch_train(base_args(tmp_path, "two", "--epochs", "2", "--batch-size", "8", "--backend", backend,
                                 dataset=DATASET), np_=2)
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = tmp_path / "two"
    meta = json.loads((run_dir / "meta.json").read_text())
    assert (meta["backend"], meta["world_size"]) == (backend, 2)
    rows = history(run_dir)
    assert len(rows) == 2
    assert_sane(rows, 2)
    line = summary_line(run_dir)
    assert f"on host {HOST})" in line and ("rank 0 on" in line or "rank 1 on" in line), line
    assert meta["versions"]["mpi"] and "MPI" in meta["versions"]["mpi"]  # the launch loaded mpi4py: its library says
    assert "diagnostics: " in out.stderr  # rank 0's console too
