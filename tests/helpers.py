"""Shared helpers: paths, and launching the real console script (optionally under mpirun)."""
from __future__ import annotations

import os
import subprocess
import sys
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
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e, cwd=cwd)


def base_args(run_root: Path, name: str, *extra: str, model: str = MODEL, dataset: str = DATASET) -> list[str]:
    return ["--model", model, "--dataset", dataset, "--run-root", str(run_root), "--name", name, "--no-progress", *extra]


def weights(run_dir: Path, which: str = "last.pt") -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / which, weights_only=True)["model"]


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` with its bytes, to prove nothing changed."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}
