"""The example: generate noisy-sine samples, move them, train on them with scorch-train."""
from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scorch.gen import Cache

from .conftest import BIN, EXAMPLE_DATASETS, REPO, cli

pytestmark = pytest.mark.slow
EXAMPLE = REPO / "examples" / "gen"


def test_train_on_a_cached_group_with_scorch_train(tmp_path: Path):
    work = tmp_path / "gen"
    work.mkdir()
    shutil.copy(EXAMPLE_DATASETS, work / "datasets.py")
    assert cli("generate", "noisy_sine", "-n", "600", "--jobs", "2", "--local", "--time", "2",
               gen_dir=work) == 0
    assert cli("move", "noisy_sine", "500", "train", gen_dir=work) == 0
    assert cli("move", "noisy_sine", "100", "valid", gen_dir=work) == 0
    r = subprocess.run([str(BIN / "scorch-train"), "--model", str(EXAMPLE / "model.py"),
                        "--dataset", str(EXAMPLE / "dataset.py"), "--dataset-path", str(work),
                        "--epochs", "8", "--batch-size", "50", "--lr", "0.01", "--optimizer", "adam",
                        "--run-root", str(tmp_path / "runs"), "--name", "sine", "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "500 train / 100 valid samples" in r.stdout + r.stderr
    with open(tmp_path / "runs" / "sine" / "history.csv") as f:
        rows = list(csv.DictReader(f))
    _, y = Cache(work)["noisy_sine"][0]["valid"].get()
    # Learned sin(x): far below predicting the mean, near the noise variance 0.01.
    assert len(rows) == 8 and float(rows[-1]["valid/mse"]) < 0.25 * float(np.var(y))


def test_benchmark_tiny_mode_runs():
    r = subprocess.run([sys.executable, str(REPO / "bench" / "gen_cache.py"), "--tiny"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "np.load one .npz (baseline)" in r.stdout and "get(n), group from 10 moves" in r.stdout
