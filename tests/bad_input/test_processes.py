"""Bad input across the process boundary: each command's console script, and scorch-train's ranks under
a real ``mpirun -np 2`` and under scorch's own ``--nproc-per-node 2``.

With several ranks the job's error is printed once: by rank 0 for what every rank sees (flags, files,
a refused run directory), by the rank that failed otherwise, while the healthy ranks leave quietly
(no gloo "Connection reset by peer ... GLHF" line). mpirun's own banner ("mpirun detected that one or
more processes exited with non-zero status") is mpirun's and stays; scorch's own launch adds its one
summary line naming the rank that failed.
"""
from __future__ import annotations

import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scorch.cli.train import main as train
from tests.bad_input.harness import TMP, changes, checksums
from tests.gen.conftest import TEST_DATASETS
from tests.helpers import BIN, DATASET, FIXTURES, MODEL, base_args, env, mpirun, run

SCORCH_LINE = re.compile(r"^scorch-[a-z]+(\[rank \d+\])?: ")  # an error line of a scorch command
SUMMARY = re.compile(r"^scorch-train: error: (rank \d+ \(exit code -?\d+\)(, | failed)?)+.*the job's error is above$")
NOISE = ("Traceback", "GLHF", "Connection reset by peer", "Connection closed by peer", "TCPStore")
FAILING = str(FIXTURES / "failing_dataset.py")  # rank 1 raises on its 3rd training batch
SIGNAL_DATASET = str(FIXTURES / "noisy_dataset.py")


@dataclass(frozen=True)
class Proc:
    """A command line run as processes: ``launch`` is "console", "mpirun" (2 ranks) or "nproc" (2 ranks)."""

    command: str
    args: tuple[str, ...]
    words: tuple[str, ...]
    launch: str = "console"
    code: int = 2
    files: dict[str, str] = field(default_factory=dict)


def P(command: str, args: list[str], *words: str, launch: str = "console", code: int = 2,
      files: dict[str, str] | None = None) -> Proc:
    return Proc(command, tuple(args), words, launch, code, files or {})


def train_args(*extra: str, name: str = "old", model: str = MODEL, dataset: str = DATASET) -> list[str]:
    return base_args(Path(TMP, "runs"), name, *extra, model=model, dataset=dataset)


NO_SOCKET = "import torch\nclass Network(torch.nn.Module):\n    pass\n"

CASES = {
    # one console script per command
    "train: a model file that is not there": P("scorch-train", train_args("--overwrite", model=f"{TMP}/nope.py"),
                                               "scorch-train: error: --model: file not found", "nope.py",
                                               "(expected a Python file)"),
    "sweep: a name with a newline": P("scorch-sweep", ["--name", "a\nb", "--grid", "lr=0.1,0.2", "--model", MODEL,
                                                       "--dataset", DATASET], "--name", "control character"),
    "gen: an unknown dataset": P("scorch-gen", ["generate", "nothing", "-n", "10", "--local"], "no dataset 'nothing'",
                                 files={"datasets.py": TEST_DATASETS}),
    "check: --lr not finite": P("scorch-check", ["--model", MODEL, "--dataset", DATASET, "--lr", "inf"], "--lr", "finite"),
    "init: an empty DIR": P("scorch-init", [""], "DIR", "use . for the current one"),
    "report: no such run": P("scorch-report", ["/nonexistent/run"], "/nonexistent/run", "no such directory"),
    # every rank sees it: rank 0 says it
    "mpirun: a bad flag": P("scorch-train", train_args("--overwrite", "--lr", "-1"), "scorch-train: error: --lr",
                            "finite number > 0", launch="mpirun"),
    "mpirun: a model file that is not there": P("scorch-train", train_args("--overwrite", model=f"{TMP}/nope.py"),
                                                "scorch-train[rank 0]: error: --model: file not found", launch="mpirun"),
    "mpirun: a model file without Socket": P("scorch-train", train_args("--overwrite", model=f"{TMP}/m.py"),
                                             "scorch-train[rank 0]: error:", "no class Socket", launch="mpirun",
                                             files={"m.py": NO_SOCKET}),
    "mpirun: an existing run": P("scorch-train", train_args(), "scorch-train[rank 0]: error:", "already exists",
                                 launch="mpirun"),
    # one rank fails while training: that rank says it, the other leaves quietly
    "mpirun: rank 1's sample raises": P("scorch-train", train_args("--overwrite", "--batch-size", "8", dataset=FAILING),
                                        "scorch-train[rank 1]: error:", "DataSet.__getitem__ (mode='train')",
                                        "OSError: disk read failed", launch="mpirun"),
    "nproc: a model file without Socket": P("scorch-train", train_args("--overwrite", "--nproc-per-node", "2",
                                                                       model=f"{TMP}/m.py"),
                                            "scorch-train[rank 0]: error:", "no class Socket", launch="nproc",
                                            files={"m.py": NO_SOCKET}),
    "nproc: an existing run": P("scorch-train", train_args("--nproc-per-node", "2"), "scorch-train[rank 0]: error:",
                                "already exists", launch="nproc"),
    "nproc: rank 1's sample raises": P("scorch-train", train_args("--overwrite", "--batch-size", "8", "--nproc-per-node", "2",
                                                                  dataset=FAILING),
                                       "scorch-train[rank 1]: error:", "DataSet.__getitem__ (mode='train')",
                                       "OSError: disk read failed", launch="nproc"),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    assert train(base_args(root, "old", "--epochs", "1")) == 0
    return root


def job_lines(err: str, launch: str) -> list[str]:
    """The scorch error lines of a job's stderr, with scorch's own launch's summary taken out (and checked)."""
    for noise in NOISE:
        assert noise not in err, err
    lines = [line for line in err.splitlines() if SCORCH_LINE.match(line)]
    if launch == "nproc":
        assert lines and SUMMARY.match(lines[-1]), err
        lines = lines[:-1]
    return lines


@pytest.mark.parametrize("case", [pytest.param(c, id=n, marks=[pytest.mark.mpi] if c.launch == "mpirun" else [])
                                  for n, c in CASES.items()])
def test_one_line_exit_code_and_nothing_changed(case, tmp_path, pristine):
    shutil.copytree(pristine, tmp_path / "runs")
    for name, text in case.files.items():
        (tmp_path / name).write_text(text)
    argv = [a.replace(TMP, str(tmp_path)) for a in (str(BIN / case.command), *case.args)]
    if case.launch == "mpirun":
        argv = [*mpirun(2), *argv]
    before = checksums(tmp_path)
    out = run(argv, 240, env(), cwd=tmp_path)
    assert out.returncode == case.code, out.stderr
    lines = [line.replace(str(tmp_path), TMP) for line in job_lines(out.stderr, case.launch)]
    assert len(lines) == 1, out.stderr
    assert all(w in lines[0] for w in case.words), lines[0]
    assert not changes(before, checksums(tmp_path)), out.stderr


def test_the_console_scripts_agree_with_main_on_the_exact_line(tmp_path):
    missing = tmp_path / "nope.py"
    out = subprocess.run([str(BIN / "scorch-train"), "--model", str(missing), "--dataset", DATASET, "--run-root", str(tmp_path)],
                         capture_output=True, text=True, env=env(), timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"scorch-train: error: --model: file not found: '{missing}' (expected a Python file)"]
    assert not any(tmp_path.iterdir())


@pytest.mark.mpi
def test_a_stop_under_mpirun_is_said_once_by_rank_0(tmp_path):
    from tests.test_preempt import start_and_signal

    cmd = [*mpirun(2), str(BIN / "scorch-train"),
           *base_args(tmp_path, "cut", "--batch-size", "4", "--epochs", "3", dataset=SIGNAL_DATASET)]
    code, err = start_and_signal(cmd, tmp_path / "cut", signal.SIGUSR1, False)  # mpirun forwards SIGUSR1
    assert code == 3, err
    lines = [line for line in err.splitlines() if SCORCH_LINE.match(line)]
    assert len(lines) == 1 and lines[0].startswith("scorch-train[rank 0]: stopped by SIGUSR1"), err


def test_the_catalogue_covers_every_command_and_launch():
    assert {c.command for c in CASES.values()} == {f"scorch-{n}" for n in ("train", "sweep", "gen", "check", "init", "report")}
    assert {c.launch for c in CASES.values()} == {"console", "mpirun", "nproc"}
