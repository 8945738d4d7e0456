"""What one bench run trains (``Work``), and running one variant of it in a subprocess.

Every variant is its own process, started the same way, with the same ``OMP_NUM_THREADS``;
its timings come from the stamps ``bench/workload.py`` takes inside that process.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
MODEL_FILE = BENCH / "workload.py"
STEP_MODEL_FILE = BENCH / "workload_step.py"  # the same Network, trained by a custom step
DATASET_FILE = BENCH / "workload_data.py"
LIGHTNING_PYTHON = BENCH / ".venv-lightning" / "bin" / "python"
BIN = Path(sys.executable).parent
EMA_DECAY = 0.999  # the scorch-ema variant's --ema


@dataclass(frozen=True)
class Work:
    """One training job, done identically by every variant."""

    model: dict[str, Any]
    dataset: dict[str, Any]
    batch_size: int = 64
    epochs: int = 5
    lr: float = 1e-3
    seed: int = 0
    workers: int = 0
    device: str = "cpu"
    amp: str = "off"  # off | bf16
    compile: bool = False  # torch.compile of the Network (scorch: --compile; raw: Network.compile, the same call)

    def steps_per_epoch(self, world_size: int = 1) -> int:
        per_rank = math.ceil(self.dataset["n_train"] / world_size)
        return math.ceil(per_rank / self.batch_size)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> Work:
        return Work(**json.loads(text))

    def with_(self, **changes: Any) -> Work:
        return dataclasses.replace(self, **changes)


def scorch_args(work: Work, run_root: Path, name: str, model: Path = MODEL_FILE) -> list[str]:
    """scorch-train's command line for ``work``: default settings, progress bar, TensorBoard,
    history and checkpoints all on."""
    args = [
        "--model", str(model), "--dataset", str(DATASET_FILE),
        "--epochs", str(work.epochs), "--batch-size", str(work.batch_size), "--lr", str(work.lr),
        "--optimizer", "adam", "--seed", str(work.seed), "--workers", str(work.workers),
        "--device", work.device, "--amp", work.amp,
        "--run-root", str(run_root), "--name", name, "--overwrite",
    ]
    if work.compile:
        args.append("--compile")
    for prefix, settings in (("model", work.model), ("dataset", work.dataset)):
        for key, value in settings.items():
            args += ["--set", f"{prefix}.{key}={value!r}"]
    return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mpirun(n: int) -> list[str]:
    return ["mpirun", "-np", str(n), "--oversubscribe", "--bind-to", "none",
            "-x", "PATH", "-x", "PYTHONPATH", "-x", "OMP_NUM_THREADS", "-x", "BENCH_STAMPS",
            "-x", "MASTER_ADDR", "-x", "MASTER_PORT", "-x", "PYTHONUNBUFFERED"]


def command(variant: str, work: Work, tmp: Path, name: str, world: int = 0) -> list[str]:
    """The command line of one variant. ``world`` > 0: under ``mpirun -np world``."""
    work_arg = ["--work", work.to_json()]
    if variant == "raw":
        cmd = [sys.executable, "-m", "bench.raw_loop", *work_arg, "--root", str(tmp / name)]
    elif variant == "ddp":
        cmd = [sys.executable, "-m", "bench.raw_loop", "--ddp", *work_arg]
    elif variant == "lightning":
        cmd = [str(LIGHTNING_PYTHON), "-m", "bench.lightning_loop", *work_arg, "--root", str(tmp / name)]
    elif variant == "scorch":  # in-process scorch.cli.train.main(argv)
        cmd = [sys.executable, "-m", "bench.scorch_loop", *scorch_args(work, tmp, name)]
    elif variant == "scorch-step":  # in-process, the Network trained by a custom step (bench/workload_step.py)
        cmd = [sys.executable, "-m", "bench.scorch_loop", *scorch_args(work, tmp, name, STEP_MODEL_FILE)]
    elif variant == "scorch-ema":  # the same with --ema (the moving average updated every step, validated)
        cmd = [sys.executable, "-m", "bench.scorch_loop", *scorch_args(work, tmp, name), "--ema", str(EMA_DECAY)]
    elif variant == "scorch-cli":  # the installed console script
        cmd = [str(BIN / "scorch-train"), *scorch_args(work, tmp, name)]
    elif variant.startswith("strategy-"):  # scorch-train --strategy ddp|fsdp|fsdp-ac (activation checkpointing)
        strategy = variant.split("-", 1)[1]
        extra = ["--strategy", "fsdp", "--activation-checkpointing"] if strategy == "fsdp-ac" else ["--strategy", strategy]
        cmd = [str(BIN / "scorch-train"), *scorch_args(work, tmp, name), *extra]
    elif variant == "sharded-ckpt":
        cmd = [sys.executable, "-m", "bench.sharded_ckpt", "--work", work.to_json(), "--dir", str(tmp / name),
               "--out", str(tmp / f"{name}.json")]
    elif variant in ("scorch-torch", "scorch-horovod"):
        cmd = [str(BIN / "scorch-train"), *scorch_args(work, tmp, name), "--backend", variant.split("-")[1]]
    else:
        raise ValueError(f"unknown variant {variant!r}")
    return [*mpirun(world), *cmd] if world > 0 else cmd


def env(stamps: Path, threads: int) -> dict[str, str]:
    e = dict(os.environ)
    e.update(
        PYTHONPATH=str(REPO) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else ""),
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        BENCH_STAMPS=str(stamps),
        PYTHONUNBUFFERED="1",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(free_port()),
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        OMPI_MCA_rmaps_base_oversubscribe="1",
        OMPI_MCA_btl_vader_single_copy_mechanism="none",
    )
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    return e


class RunFailed(RuntimeError):
    pass


@dataclass
class Timing:
    """What one run measured (rank 0's stamps)."""

    epoch_s: list[float]  # first step of epoch e to first step of epoch e+1, e = 1 .. epochs-1
    steps_per_epoch: int
    startup_s: float | None  # process start to the first training step
    wall_s: float  # the whole process: start to exit
    maxrss_mb: float | None = None  # peak resident memory of rank 0's process
    worker_maxrss_mb: float | None = None  # the largest of its DataLoader workers (and other children)
    faults_per_step: float | None = None  # minor page faults per step after the first epoch
    tail_s: float | None = None  # from the last training step to the process's exit (its last validation, saving, exit)
    cuda_max_allocated_mb: float | None = None  # torch.cuda.max_memory_allocated of rank 0, on CUDA
    extra: dict[str, Any] = field(default_factory=dict)

    def steady_epoch_s(self) -> float:
        """Median epoch time without the first epoch (warm-up)."""
        steady = self.epoch_s[1:] or self.epoch_s
        if not steady:
            raise ValueError("no complete epoch between two stamps: run at least 2 epochs")
        return statistics.median(steady)

    def step_s(self) -> float:
        return self.steady_epoch_s() / self.steps_per_epoch


def run(variant: str, work: Work, tmp: Path, name: str, world: int = 0, threads: int = 1, timeout: float = 600) -> Timing:
    """Run one variant in its own process; raise RunFailed with its log's tail if it fails."""
    tmp.mkdir(parents=True, exist_ok=True)
    stamps = tmp / f"{name}.stamps"
    log = tmp / f"{name}.log"
    cmd = command(variant, work, tmp, name, world)
    environ = env(stamps, threads)
    if work.compile:  # an empty cache: the compile time is that of a first compile, not a cache hit
        environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp / f"{name}.inductor")
    start = time.time()
    with open(log, "w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=environ, cwd=tmp, timeout=timeout)
    wall = time.time() - start
    data_path = Path(f"{stamps}.rank0.json")
    if proc.returncode != 0 or not data_path.is_file():
        tail = log.read_text(errors="replace")[-2000:]
        raise RunFailed(f"{variant} ({name}) exited {proc.returncode}:\n{tail}")
    data = json.loads(data_path.read_text())
    s = data["stamps"]
    steps = work.steps_per_epoch(max(world, 1))
    if len(s) < steps * work.epochs:
        raise RunFailed(f"{variant} ({name}): {len(s)} training steps recorded, expected {steps * work.epochs}")
    epoch_s = [s[(e + 1) * steps] - s[e * steps] for e in range(work.epochs - 1)]
    after_first_step = s[-1] - s[0]
    first = data.get("first_wall")
    kb = data.get("maxrss_kb"), data.get("children_maxrss_kb")
    faults = data.get("faults") or []
    last = min(len(faults), steps * work.epochs) - 1
    per_step = (faults[last] - faults[steps]) / (last - steps) if last > steps else None
    startup = (first - start) if first else None
    return Timing(epoch_s, steps, startup, wall, kb[0] / 1024 if kb[0] else None, kb[1] / 1024 if kb[1] else None,
                  per_step, wall - startup - after_first_step if startup is not None else None,
                  data["cuda_max_allocated"] / 2**20 if data.get("cuda_max_allocated") else None)
