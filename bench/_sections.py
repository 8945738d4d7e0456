"""The five measurements. Each returns plain data for the JSON; variants are interleaved
(A, B, C, A, B, C, ...) so that load from other processes on the machine hits all alike."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ._work import LIGHTNING_PYTHON, RunFailed, Work, run

MLP_SMALL = {"kind": "mlp", "in_features": 32, "width": 128, "depth": 2}
MLP_MEDIUM = {"kind": "mlp", "in_features": 256, "width": 1024, "depth": 2}


@dataclass
class Plan:
    """How much to run: the full bench or the tiny one the tests use."""

    tiny: bool
    reps: int
    loop_works: dict[str, Work]
    dist_work: Work
    dist_worlds: list[int]
    dist_reps: int
    startup_work: Work
    checkpoint_mb: int
    checkpoint_reps: int
    gpu_work: Work
    lightning: bool = True
    notes: list[str] = field(default_factory=list)


def plan(tiny: bool, reps: int | None = None) -> Plan:
    if tiny:
        small = Work(MLP_SMALL, {"n_train": 512, "n_valid": 128, "in_features": 32}, epochs=3)
        return Plan(
            tiny=True, reps=reps or 1, loop_works={"small": small}, dist_work=small, dist_worlds=[2], dist_reps=1,
            startup_work=small.with_(epochs=1), checkpoint_mb=4, checkpoint_reps=2,
            gpu_work=Work({"kind": "resnet18", "classes": 10}, {"n_train": 512, "n_valid": 128, "image_size": 32},
                          batch_size=128, epochs=3, device="cuda", amp="bf16", workers=2),
            lightning=False, notes=["tiny mode: checks that the bench runs; the numbers mean nothing"],
        )
    return Plan(
        tiny=False, reps=reps or 5,
        loop_works={
            "small": Work(MLP_SMALL, {"n_train": 16384, "n_valid": 4096, "in_features": 32}, epochs=6),
            "medium": Work(MLP_MEDIUM, {"n_train": 4096, "n_valid": 1024, "in_features": 256}, epochs=5),
        },
        dist_work=Work({"kind": "mlp", "in_features": 64, "width": 512, "depth": 2},
                       {"n_train": 8192, "n_valid": 0, "in_features": 64}, epochs=4),
        dist_worlds=[1, 2], dist_reps=max(2, (reps or 5) // 2),
        startup_work=Work(MLP_SMALL, {"n_train": 1024, "n_valid": 256, "in_features": 32}, epochs=1),
        checkpoint_mb=100, checkpoint_reps=7,
        gpu_work=Work({"kind": "resnet18", "classes": 10}, {"n_train": 16384, "n_valid": 2048, "image_size": 32},
                      batch_size=128, epochs=4, device="cuda", amp="bf16", workers=4),
    )


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def lightning_status() -> str | None:
    """None when bench/.venv-lightning has Lightning; else why not."""
    if not LIGHTNING_PYTHON.is_file():
        return f"skipped: {LIGHTNING_PYTHON.parent.parent} missing (make bench creates it)"
    proc = subprocess.run([str(LIGHTNING_PYTHON), "-c", "import lightning, torch; print(lightning.__version__, torch.__version__)"],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        return f"skipped: lightning does not import in {LIGHTNING_PYTHON}: {proc.stderr.strip().splitlines()[-1:]}"
    return None


def lightning_versions() -> dict[str, str]:
    out = subprocess.run([str(LIGHTNING_PYTHON), "-c", "import lightning, torch; print(lightning.__version__, torch.__version__)"],
                         capture_output=True, text=True, timeout=120).stdout.split()
    return {"lightning": out[0], "torch": out[1]} if len(out) == 2 else {}


def _interleaved(variants: list[str], reps: int, one: Callable[[str, int], Any]) -> dict[str, list[Any]]:
    got: dict[str, list[Any]] = {v: [] for v in variants}
    for rep in range(reps):
        for v in variants:
            got[v].append(one(v, rep))
    return got


def loop_overhead(p: Plan, tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Item 1: steady-state time per training step (epochs 2.., validation included)."""
    lightning_skip = "skipped: tiny mode" if not p.lightning else lightning_status()
    variants = ["raw", "scorch"] + ([] if lightning_skip else ["lightning"])
    out: dict[str, Any] = {"variants": variants, "lightning": lightning_skip or lightning_versions(), "works": {}}
    for size, work in p.loop_works.items():
        def one(v: str, rep: int, size: str = size, work: Work = work) -> dict[str, Any]:
            t = run(v, work, tmp, f"loop-{size}-{v}-{rep}")
            log(f"loop {size} {v} rep {rep}: {t.step_s() * 1e3:.3f} ms/step")
            return {"step_s": t.step_s(), "epoch_s": t.epoch_s}
        got = _interleaved(variants, p.reps, one)
        med = {v: _median([r["step_s"] for r in got[v]]) for v in variants}
        best = {v: min(r["step_s"] for r in got[v]) for v in variants}
        out["works"][size] = {
            "min_step_s": best, "min_ratio_to_raw": {v: best[v] / best["raw"] for v in variants},
            "work": work.__dict__, "steps_per_epoch": work.steps_per_epoch(),
            "params": _params(work), "runs": got, "median_step_s": med,
            "ratio_to_raw": {v: med[v] / med["raw"] for v in variants},
        }
    return out


def _params(work: Work) -> int:
    from .workload import Network

    return sum(q.numel() for q in Network(**work.model).parameters())


def _horovod_missing() -> str | None:
    proc = subprocess.run([sys.executable, "-c", "import horovod.torch"], capture_output=True, text=True, timeout=120)
    return None if proc.returncode == 0 else "skipped: horovod.torch does not import in this environment"


def distributed(p: Plan, tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Item 2: training samples/s over all ranks, 1 thread per rank, everything under mpirun."""
    variants = ["ddp", "scorch-torch", "scorch-horovod"]
    skipped: dict[str, str] = {}
    if p.tiny:  # Horovod's start-up alone takes ~20 s here
        skipped["scorch-horovod"] = "skipped: tiny mode"
    elif (why := _horovod_missing()) is not None:
        skipped["scorch-horovod"] = why
    variants = [v for v in variants if v not in skipped]
    work = p.dist_work
    out: dict[str, Any] = {"work": work.__dict__, "params": _params(work), "variants": variants, "skipped": skipped, "worlds": {}}
    for world in p.dist_worlds:
        def one(v: str, rep: int, world: int = world) -> float:
            t = run(v, work, tmp, f"dist-{world}-{v}-{rep}", world=world)
            rate = work.dataset["n_train"] / t.steady_epoch_s()
            log(f"dist np={world} {v} rep {rep}: {rate:.0f} samples/s")
            return rate
        got = _interleaved(variants, p.dist_reps, one)
        med = {v: _median(got[v]) for v in variants}
        out["worlds"][str(world)] = {"runs": got, "median_samples_per_s": med,
                                     "ratio_to_ddp": {v: med[v] / med["ddp"] for v in variants}}
    return out


def startup(p: Plan, tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Item 4: process start (before exec) to the first training step."""
    lightning_skip = "skipped: tiny mode" if not p.lightning else lightning_status()
    variants = ["raw", "scorch-cli"] + ([] if lightning_skip else ["lightning"])

    def one(v: str, rep: int) -> float:
        t = run(v, p.startup_work, tmp, f"startup-{v}-{rep}")
        log(f"startup {v} rep {rep}: {t.startup_s:.2f} s")
        assert t.startup_s is not None
        return t.startup_s
    got = _interleaved(variants, p.reps, one)
    med = {v: _median(got[v]) for v in variants}
    return {"variants": variants, "runs": got, "median_s": med, "minus_raw_s": {v: med[v] - med["raw"] for v in variants}}


def _fsync_save(state: dict[str, Any], path: Path) -> None:
    with open(path, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())


def checkpoint(p: Plan, tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Item 3: scorch.checkpoint.save/load against torch.save/torch.load of the same dict."""
    from scorch import checkpoint as ckpt

    n = p.checkpoint_mb * 2**20 // 4
    g = torch.Generator().manual_seed(0)
    rows = max(1, n // 4096)
    model = {f"layer{i}.weight": torch.randn(rows // 16 or 1, 4096, generator=g) for i in range(16)}
    state = {"model": model, "optimizer": {"state": {}, "param_groups": []}, "epoch": 1, "step": 10, "config": {"lr": 1e-3}}
    size = sum(t.numel() * t.element_size() for t in model.values())
    d = Path(tempfile.mkdtemp(dir=tmp, prefix="ckpt-"))
    ops: dict[str, Callable[[], Any]] = {
        "torch.save": lambda: torch.save(state, d / "plain.pt"),
        "torch.save+fsync": lambda: _fsync_save(state, d / "fsync.pt"),
        "scorch.save": lambda: ckpt.save(d / "scorch.pt", state),
        "torch.load": lambda: torch.load(d / "plain.pt", map_location="cpu", weights_only=True),
        "scorch.load": lambda: ckpt.load(d / "scorch.pt"),
    }

    def one(op: str, rep: int) -> float:
        start = time.perf_counter()
        ops[op]()
        return time.perf_counter() - start
    got = _interleaved(list(ops), p.checkpoint_reps + 1, one)
    got = {k: v[1:] for k, v in got.items()}  # the first round warms the page cache and allocator
    med = {k: _median(v) for k, v in got.items()}
    log("checkpoint: " + ", ".join(f"{k} {v:.3f} s" for k, v in med.items() if v is not None))
    for f in d.iterdir():
        f.unlink()
    d.rmdir()
    return {
        "bytes": size, "runs": got, "median_s": med,
        "save_ratio": med["scorch.save"] / med["torch.save"],
        "save_ratio_to_fsync": med["scorch.save"] / med["torch.save+fsync"],
        "load_ratio": med["scorch.load"] / med["torch.load"],
    }


def gpu(p: Plan, tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Item 5: items 1 and 4 on CUDA, ResNet-18, --amp bf16. Skipped without CUDA."""
    if not torch.cuda.is_available():
        return {"skipped": "skipped: no CUDA device"}
    work = p.gpu_work
    variants = ["raw", "scorch-cli"]

    def one(v: str, rep: int) -> dict[str, Any]:
        t = run(v, work, tmp, f"gpu-{v}-{rep}", threads=4)
        rate = work.dataset["n_train"] / t.steady_epoch_s()
        log(f"gpu {v} rep {rep}: {rate:.0f} samples/s, start-up {t.startup_s:.2f} s")
        return {"samples_per_s": rate, "step_s": t.step_s(), "startup_s": t.startup_s, "epoch_s": t.epoch_s}
    got = _interleaved(variants, max(2, p.reps // 2) if not p.tiny else 1, one)
    rate = {v: _median([r["samples_per_s"] for r in got[v]]) for v in variants}
    start = {v: _median([r["startup_s"] for r in got[v]]) for v in variants}
    return {
        "device_name": torch.cuda.get_device_name(0), "work": work.__dict__, "params": _params(work), "runs": got,
        "median_samples_per_s": rate, "throughput_ratio": rate["scorch-cli"] / rate["raw"],
        "median_startup_s": start,
    }


SECTIONS: dict[str, Callable[[Plan, Path, Callable[[str], None]], dict[str, Any]]] = {
    "loop": loop_overhead, "distributed": distributed, "checkpoint": checkpoint, "startup": startup, "gpu": gpu,
}


def safe(name: str, p: Plan, tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """One section; a failure is recorded, not raised, so the other sections still report."""
    start = time.perf_counter()
    try:
        result = SECTIONS[name](p, tmp, log)
    except (RunFailed, subprocess.TimeoutExpired, OSError, ValueError) as exc:
        log(f"{name} failed: {exc}")
        result = {"failed": f"{type(exc).__name__}: {str(exc).strip()[:1500]}"}
    result["section_s"] = time.perf_counter() - start
    return result
