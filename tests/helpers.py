"""Shared helpers: paths, and launching the real console script (optionally under mpirun)."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
BIN = Path(sys.executable).parent
MODEL = str(FIXTURES / "mlp_model.py")
DATASET = str(FIXTURES / "blobs_dataset.py")
DIGITS_MODEL = str(REPO / "examples" / "digits" / "model.py")
DIGITS_DATASET = str(REPO / "examples" / "digits" / "dataset.py")


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        OMPI_MCA_rmaps_base_oversubscribe="1",
        OMPI_MCA_btl_vader_single_copy_mechanism="none",
        PYTHONUNBUFFERED="1",
    )
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    return e


def mpirun(np_: int) -> list[str]:
    return ["mpirun", "-np", str(np_), "--oversubscribe", "--bind-to", "none", "-x", "PATH", "-x", "PYTHONUNBUFFERED"]


def scorch_train(args: list[str], np_: int | None = None, timeout: float = 300, cwd: str | Path | None = None,
                 extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed console script, under a real mpirun when ``np_`` is given."""
    cmd = [str(BIN / "scorch-train"), *args]
    if np_ is not None:
        cmd = [*mpirun(np_), *cmd]
    e = env()
    e.update(extra_env or {})
    return run(cmd, timeout, e, cwd)


def run(cmd: list[str], timeout: float, env: dict[str, str], cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(cmd, capture_output=True, text=True)`` in a session of its own. A command still
    running at ``timeout`` fails the test with its output and the stacks of every process of its
    session (ranks and their DataLoader workers included, by py-spy), and is killed, all of it
    (mpirun puts each rank in a process group of its own): a hang in CI says where it hung, and
    leaves no orphaned rank behind."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stacks = "\n".join(_stack(pid) for pid in session_pids(proc.pid))
        for _ in range(50):  # a dying rank's workers may still be forking
            pids = session_pids(proc.pid)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        out, err = proc.communicate()
        raise AssertionError(f"still running after {timeout:g} s, killed: {' '.join(cmd)}\n--- stderr:\n{err[-6000:]}"
                             f"\n--- stacks:\n{stacks}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def session_pids(session: int) -> list[int]:
    """The live processes of session ``session`` (zombies left out)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == session and fields[0] != "Z":  # after the name: state, ppid, pgrp, session
                pids.append(int(stat.parent.name))
    return sorted(pids)


def _stack(pid: int) -> str:
    """py-spy's dump of process ``pid`` (Python and native frames), under its command line."""
    try:
        name = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return f"== pid {pid}: gone"
    spy = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
    if spy is None or "python" not in Path(f"/proc/{pid}/exe").resolve().name:
        return f"== pid {pid}: {name}"
    try:
        dump = subprocess.run([spy, "dump", "--native", "--pid", str(pid)], capture_output=True, text=True, timeout=60)
        text = dump.stdout or dump.stderr.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired) as exc:
        text = f"py-spy: {exc}"
    return f"== pid {pid}: {name}\n{text}"


def base_args(run_root: Path, name: str, *extra: str, model: str = MODEL, dataset: str = DATASET) -> list[str]:
    return ["--model", model, "--dataset", dataset, "--run-root", str(run_root), "--name", name, "--no-progress", *extra]


def weights(run_dir: Path, which: str = "last.pt") -> dict[str, torch.Tensor]:
    """The Network's weights of a checkpoint; a sharded run's (``last.dcp``) read whole by scorch."""
    path = run_dir / "checkpoints" / which
    if not path.exists() and which.endswith(".pt") and (path.with_suffix(".dcp")).exists():
        from scorch.rundir import checkpoint
        return checkpoint.load(path.with_suffix(".dcp"))["model"]
    return torch.load(path, weights_only=True)["model"]


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` with its bytes, to prove nothing changed."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def unmeasured(row: dict[str, str]) -> dict[str, str]:
    """A history row without the columns that measure the machine (``time``, ``diag/...``): what two
    runs of the same training have alike."""
    from scorch.training.diagnostics import is_diagnostic

    return {k: v for k, v in row.items() if k != "time" and not is_diagnostic(k)}
