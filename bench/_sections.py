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

from ._work import LIGHTNING_PYTHON, RunFailed, Work, command, env, run

MLP_SMALL = {"kind": "mlp", "in_features": 32, "width": 128, "depth": 2}
MLP_MEDIUM = {"kind": "mlp", "in_features": 256, "width": 1024, "depth": 2}
CNN = {"kind": "cnn", "width": 8}
# ~86M parameters (16 bytes each with Adam: 1.4 GB of parameters, gradients and moments per DDP rank)
# in 21 Linear units of 4.2M each, as a model of many blocks is (each unit ~5 % of the model: what
# one unit gathered at a time adds to a rank's shard).
SHARD_WORK = Work({"kind": "mlp", "in_features": 1024, "width": 2048, "depth": 21},
                  {"n_train": 256, "n_valid": 64, "in_features": 1024}, batch_size=16, epochs=2)


@dataclass
class Plan:
    """How much to run: the full bench, the quick one (each section once) or the tiny one the tests use."""

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
    compile_works: dict[str, Work] = field(default_factory=dict)
    compile_reps: int = 1
    shard_work: Work | None = None  # the sharding section's model (~90M parameters in the full bench)
    shard_worlds: list[int] = field(default_factory=lambda: [2])
    quick: bool = False
    lightning: bool = True
    step_works: tuple[str, ...] = ("medium",)  # the loop workloads that also run the custom step (scorch-step)
    notes: list[str] = field(default_factory=list)


def _works(scale: float, epochs: int | None) -> dict[str, Work]:
    """The three loop workloads; ``scale`` shrinks their epochs' sizes (quick mode)."""
    def n(x: int) -> int:
        return max(256, int(x * scale))
    return {
        "small": Work(MLP_SMALL, {"n_train": n(16384), "n_valid": n(4096), "in_features": 32}, epochs=epochs or 6),
        "medium": Work(MLP_MEDIUM, {"n_train": n(4096), "n_valid": n(1024), "in_features": 256}, epochs=epochs or 5),
        "cnn": Work(CNN, {"n_train": n(4096), "n_valid": n(1024), "image_size": 32, "augment": True}, epochs=epochs or 4,
                    workers=2),
    }


def plan(tiny: bool, reps: int | None = None, quick: bool = False) -> Plan:
    if tiny:
        small = Work(MLP_SMALL, {"n_train": 512, "n_valid": 128, "in_features": 32}, epochs=3)
        cnn = Work(CNN, {"n_train": 256, "n_valid": 64, "image_size": 32, "augment": True}, epochs=2, workers=2)
        return Plan(
            tiny=True, reps=reps or 1, loop_works={"small": small, "cnn": cnn}, dist_work=small, dist_worlds=[2], dist_reps=1,
            startup_work=small.with_(epochs=1), checkpoint_mb=4, checkpoint_reps=2,
            gpu_work=Work({"kind": "resnet18", "classes": 10}, {"n_train": 512, "n_valid": 128, "image_size": 32},
                          batch_size=128, epochs=3, device="cuda", amp="bf16", workers=2),
            compile_works={"small": small.with_(compile=True)},
            shard_work=Work({"kind": "mlp", "in_features": 64, "width": 256, "depth": 3},
                            {"n_train": 128, "n_valid": 32, "in_features": 64}, batch_size=16, epochs=2),
            lightning=False, step_works=("small",), notes=["tiny mode: checks that the bench runs; the numbers mean nothing"],
        )
    if quick:
        works = _works(0.25, 3)
        return Plan(
            tiny=False, quick=True, reps=reps or 1, loop_works=works,
            dist_work=Work({"kind": "mlp", "in_features": 64, "width": 512, "depth": 2},
                           {"n_train": 2048, "n_valid": 0, "in_features": 64}, epochs=3),
            dist_worlds=[2], dist_reps=1, startup_work=works["small"].with_(epochs=1), checkpoint_mb=50, checkpoint_reps=1,
            gpu_work=Work({"kind": "resnet18", "classes": 10}, {"n_train": 2048, "n_valid": 256, "image_size": 32},
                          batch_size=128, epochs=2, device="cuda", amp="bf16", workers=4),
            compile_works={"small": works["small"].with_(compile=True)}, compile_reps=1,
            shard_work=SHARD_WORK.with_(dataset={**SHARD_WORK.dataset, "n_train": 128}),
            notes=["quick mode: each section once on shortened work, for checking a change; not for the docs"],
        )
    works = _works(1.0, None)
    return Plan(
        tiny=False, reps=reps or 5,
        loop_works=works,
        dist_work=Work({"kind": "mlp", "in_features": 64, "width": 512, "depth": 2},
                       {"n_train": 8192, "n_valid": 0, "in_features": 64}, epochs=4),
        dist_worlds=[1, 2], dist_reps=max(2, (reps or 5) // 2),
        startup_work=Work(MLP_SMALL, {"n_train": 1024, "n_valid": 256, "in_features": 32}, epochs=1),
        checkpoint_mb=100, checkpoint_reps=7,
        gpu_work=Work({"kind": "resnet18", "classes": 10}, {"n_train": 16384, "n_valid": 2048, "image_size": 32},
                      batch_size=128, epochs=4, device="cuda", amp="bf16", workers=4),
        compile_works={name: w.with_(compile=True) for name, w in works.items()}, compile_reps=3,
        shard_work=SHARD_WORK, shard_worlds=[2, 4],
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


def _one_run(t: Any) -> dict[str, Any]:
    return {"step_s": t.step_s(), "epoch_s": t.epoch_s, "wall_s": t.wall_s, "startup_s": t.startup_s,
            "maxrss_mb": t.maxrss_mb, "worker_maxrss_mb": t.worker_maxrss_mb, "faults_per_step": t.faults_per_step,
            "tail_s": t.tail_s}


def _medians(got: dict[str, list[dict[str, Any]]], key: str) -> dict[str, float | None]:
    return {v: _median([r[key] for r in runs if r.get(key) is not None]) for v, runs in got.items()}


def loop_overhead(p: Plan, tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Items 1-3 and 5: steady-state time per training step (epochs 2.., validation included),
    whole-process time and peak RSS, the same runs."""
    lightning_skip = "skipped: tiny mode" if not p.lightning else lightning_status()
    variants = ["raw", "scorch", "scorch-ema"] + ([] if lightning_skip else ["lightning"])
    out: dict[str, Any] = {"variants": variants, "lightning": lightning_skip or lightning_versions(), "works": {}}
    for size, work in p.loop_works.items():
        def one(v: str, rep: int, size: str = size, work: Work = work) -> dict[str, Any]:
            t = run(v, work, tmp, f"loop-{size}-{v}-{rep}")
            log(f"loop {size} {v} rep {rep}: {t.step_s() * 1e3:.3f} ms/step, {t.wall_s:.2f} s, {t.maxrss_mb or 0:.0f} MB")
            return _one_run(t)
        here = variants + (["scorch-step"] if size in p.step_works else [])
        got = _interleaved(here, p.reps, one)
        med = _medians(got, "step_s")
        best = {v: min(r["step_s"] for r in got[v]) for v in here}
        out["works"][size] = {
            "variants": here,
            "min_step_s": best, "min_ratio_to_raw": {v: best[v] / best["raw"] for v in here},
            "work": work.__dict__, "steps_per_epoch": work.steps_per_epoch(),
            "params": _params(work), "runs": got, "median_step_s": med,
            "ratio_to_raw": {v: med[v] / med["raw"] for v in here},  # type: ignore[operator]
            "ema_overhead": med["scorch-ema"] / med["scorch"] - 1,  # type: ignore[operator]  # --ema, per step
            "median_wall_s": _medians(got, "wall_s"), "median_maxrss_mb": _medians(got, "maxrss_mb"),
            "median_worker_maxrss_mb": _medians(got, "worker_maxrss_mb"),
            "median_faults_per_step": _medians(got, "faults_per_step"),
            "median_startup_s": _medians(got, "startup_s"), "median_tail_s": _medians(got, "tail_s"),
        }
        if "scorch-step" in here:  # the custom step's cost: its time per step over the standard loop's
            out["works"][size]["step_ratio_to_scorch"] = med["scorch-step"] / med["scorch"]  # type: ignore[operator]
    return out


def compiled(p: Plan, tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Item 4: --compile (raw: Network.compile(dynamic=False), the call scorch makes) on each workload;
    the compile time (first epoch minus a steady one) apart from the steady step time."""
    variants = ["raw", "scorch"]
    out: dict[str, Any] = {"variants": variants, "works": {}}
    for size, work in p.compile_works.items():
        def one(v: str, rep: int, size: str = size, work: Work = work) -> dict[str, Any]:
            t = run(v, work, tmp, f"compile-{size}-{v}-{rep}")
            r = _one_run(t)
            r["compile_s"] = t.epoch_s[0] - t.steady_epoch_s() if len(t.epoch_s) > 1 else None
            log(f"compile {size} {v} rep {rep}: {t.step_s() * 1e3:.3f} ms/step, compile {r['compile_s'] or 0:.1f} s")
            return r
        got = _interleaved(variants, p.compile_reps, one)
        out["works"][size] = {"work": work.__dict__, "runs": got, "median_step_s": _medians(got, "step_s"),
                              "median_compile_s": _medians(got, "compile_s"), "median_maxrss_mb": _medians(got, "maxrss_mb")}
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
    """Item 3: scorch.rundir.checkpoint.save/load against torch.save/torch.load of the same dict."""
    from scorch.rundir import checkpoint as ckpt

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
        return {"samples_per_s": rate, "step_s": t.step_s(), "startup_s": t.startup_s, "epoch_s": t.epoch_s,
                "maxrss_mb": t.maxrss_mb, "cuda_max_allocated_mb": t.cuda_max_allocated_mb}
    got = _interleaved(variants, max(2, p.reps // 2) if not p.tiny else 1, one)
    rate = {v: _median([r["samples_per_s"] for r in got[v]]) for v in variants}
    start = {v: _median([r["startup_s"] for r in got[v]]) for v in variants}
    return {
        "device_name": torch.cuda.get_device_name(0), "work": work.__dict__, "params": _params(work), "runs": got,
        "median_samples_per_s": rate, "throughput_ratio": rate["scorch-cli"] / rate["raw"],
        "median_startup_s": start, "median_maxrss_mb": _medians(got, "maxrss_mb"),
        "median_cuda_max_allocated_mb": _medians(got, "cuda_max_allocated_mb"),
    }


def sharding(p: Plan, tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Issue 22.5: peak RSS per rank and step time of --strategy fsdp (and with
    --activation-checkpointing) against --strategy ddp on the same model, on 2 (and 4) ranks; the
    save and load time of a sharded checkpoint against a one-file one."""
    work = p.shard_work
    assert work is not None
    variants = ["strategy-ddp", "strategy-fsdp", "strategy-fsdp-ac"]
    out: dict[str, Any] = {"work": work.__dict__, "params": _params(work), "variants": variants, "worlds": {}}
    for world in p.shard_worlds:
        def one(v: str, rep: int, world: int = world) -> dict[str, Any]:
            t = run(v, work, tmp, f"shard-{world}-{v}-{rep}", world=world, timeout=1800)
            log(f"sharding np={world} {v} rep {rep}: {t.step_s() * 1e3:.0f} ms/step, rank 0 peak RSS {t.maxrss_mb or 0:.0f} MB")
            return _one_run(t)
        got = _interleaved(variants, 1 if p.tiny or p.quick else 2, one)
        rss, step = _medians(got, "maxrss_mb"), _medians(got, "step_s")
        out["worlds"][str(world)] = {
            "runs": got, "median_maxrss_mb": rss, "median_step_s": step,
            "rss_ratio_to_ddp": {v: rss[v] / rss["strategy-ddp"] for v in variants},  # type: ignore[operator]
            "step_ratio_to_ddp": {v: step[v] / step["strategy-ddp"] for v in variants},  # type: ignore[operator]
        }
    name = "sharded-ckpt"
    e = env(tmp / "unused.stamps", 1)
    cmd = [*command(name, work, tmp, name, world=2)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=e, cwd=tmp, timeout=1800)
    if proc.returncode != 0:
        raise RunFailed(f"{name} exited {proc.returncode}: {proc.stderr[-1500:]}")
    import json
    ckpt = json.loads((tmp / f"{name}.json").read_text())
    ckpt["median_s"] = {k: _median(v) for k, v in ckpt["runs"].items()}
    log("sharded checkpoint: " + ", ".join(f"{k} {v:.3f} s" for k, v in ckpt["median_s"].items()))
    out["checkpoint"] = ckpt
    return out


SECTIONS: dict[str, Callable[[Plan, Path, Callable[[str], None]], dict[str, Any]]] = {
    "loop": loop_overhead, "distributed": distributed, "checkpoint": checkpoint, "startup": startup, "gpu": gpu,
    "compile": compiled, "sharding": sharding,
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
