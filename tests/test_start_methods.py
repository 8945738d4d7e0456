"""DataLoader workers load the user's dataset file (imported by path under a synthetic module name) under
every start method: fork, forkserver (Python 3.14's default on Linux) and spawn; the batches are the
same under all three."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

from scorch import data
from scorch.cli.train import main
from scorch.contract import userfiles
from tests.helpers import MODEL, base_args

# In the parent only: a fork inherits it, a spawned or forkserver worker does not.
MARKER = "scorch_test_parent_marker"

DATASET_TEXT = f'''
import sys
import torch


class DataSet:
    def __init__(self, path, mode):
        self.n = 40 if mode == "train" else 8

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        inherited = float("{MARKER}" in sys.modules)
        x = torch.tensor([float(i), inherited, 0.0, 0.0]) + 0.01 * torch.rand(4)  # an augmentation draw
        return [x], [torch.tensor(i % 3)]
'''


@pytest.fixture
def dataset_file(tmp_path: Path) -> Path:
    path = tmp_path / "my data.py"  # a name no import statement could reach
    path.write_text(DATASET_TEXT)
    return path


def batches(path: Path, start_method: str) -> list[torch.Tensor]:
    sys.modules[MARKER] = types.ModuleType(MARKER)
    try:
        dataset = userfiles.load_dataset_file(str(path)).build(None, "train")
        assert type(dataset).__module__ == userfiles.module_name(str(path), "dataset")
        loader = data.train_loader(dataset, 2, False, "t", start_method=start_method)
        data.set_plan(loader, data.EpochPlan(40, 8, 8, 0, 1, seed=5, epoch=1))
        return [x for (x,), _ in loader]
    finally:
        del sys.modules[MARKER]


def test_workers_under_fork_forkserver_and_spawn_load_the_same_batches(dataset_file: Path) -> None:
    got = {method: batches(dataset_file, method) for method in ("fork", "forkserver", "spawn")}
    inherited = {method: {round(v) for b in bs for v in b[:, 1].tolist()} for method, bs in got.items()}
    assert inherited == {"fork": {1}, "forkserver": {0}, "spawn": {0}}  # really three start methods
    first = torch.cat(got["fork"])[:, [0, 2, 3]]
    for method in ("forkserver", "spawn"):
        assert torch.equal(torch.cat(got[method])[:, [0, 2, 3]], first), method
    assert sorted(round(v) for v in first[:, 0].tolist()) == list(range(40))


def test_a_worker_imports_only_the_files_its_dataset_comes_from(dataset_file: Path, tmp_path: Path) -> None:
    # Another dataset file this process loaded earlier (an earlier run, a load_run) and that is gone now
    # is not the worker's business: a spawned worker must not try to import it again.
    gone = tmp_path / "gone" / "old data.py"
    gone.parent.mkdir()
    gone.write_text(DATASET_TEXT)
    userfiles.load_dataset_file(str(gone))
    gone.unlink()
    assert len(batches(dataset_file, "spawn")) == 5


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_scorch_train_with_workers_under_a_fresh_interpreter(method: str, dataset_file: Path, tmp_path: Path) -> None:
    args = base_args(tmp_path, method, "--epochs", "1", "--batch-size", "8", "--workers", "2", "--worker-start", method,
                     dataset=str(dataset_file), model=MODEL)
    assert main(args) == 0
    assert (tmp_path / method / "checkpoints" / "last.pt").is_file()


GROUP_SIGNAL_SCRIPT = '''
import os, signal, sys, time
from scorch import data
from scorch.contract import userfiles


def main():
    got = []
    signal.signal(signal.SIGUSR1, lambda *a: got.append("USR1"))  # the rank's handler (scorch's StopSignal)
    signal.signal(signal.SIGTERM, lambda *a: got.append("TERM"))
    dataset = userfiles.load_dataset_file(sys.argv[1]).build(None, "train")
    loader = data.train_loader(dataset, 2, False, "t", start_method=sys.argv[2])
    data.set_plan(loader, data.EpochPlan(40, 4, 4, 0, 1, seed=5, epoch=1))
    n = 0
    for i, batch in enumerate(loader):
        if i == 2:  # as mpirun, srun and a terminal do: the whole process group, workers included
            os.killpg(0, signal.SIGUSR1)
            os.killpg(0, signal.SIGTERM)
        time.sleep(0.05)
        n += len(batch[0][0])
    print(n, sorted(got))


if __name__ == "__main__":  # spawn and forkserver import the main module again in each worker
    main()
'''


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_workers_outlive_stop_signals_sent_to_the_process_group(method: str, dataset_file: Path, tmp_path: Path) -> None:
    import subprocess

    from tests.helpers import env

    script = tmp_path / "group.py"
    script.write_text(GROUP_SIGNAL_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(dataset_file), method], capture_output=True, text=True,
                          timeout=120, env=env(), start_new_session=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["40", "['TERM',", "'USR1']"]  # every sample loaded; the rank saw both signals
