"""The one typed, frozen configuration of a training run."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from .errors import ScorchError

OPTIMIZERS = ("adam", "adamw", "sgd")
BACKENDS = ("auto", "torch", "horovod")
DEVICES = ("auto", "cpu", "cuda")
AMP_MODES = ("off", "bf16", "fp16")
MONITOR_MODES = ("auto", "min", "max")
NAN_POLICIES = ("stop", "skip")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a run. Checks itself; errors name the flag to change."""

    model: str
    dataset: str
    dataset_path: str | None = None
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    seed: int = 0
    workers: int = 0
    run_root: str = "runs"
    name: str | None = None
    resume: bool = False
    auto_resume: bool = False
    overwrite: bool = False
    backend: str = "auto"
    device: str = "auto"
    amp: str = "off"
    accumulate: int = 1
    clip_grad: float | None = None
    monitor: str | None = None
    monitor_mode: str = "auto"
    patience: int | None = None
    keep_checkpoints: int = 1
    nan_policy: str = "stop"
    progress: bool = True
    debug: bool = False
    dist_timeout: float = 1800.0
    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int | None = None
    join_timeout: float = 600.0
    max_restarts: int = 0
    lr_schedule: Any = None
    warmup_epochs: int = 0
    model_settings: dict[str, Any] = field(default_factory=dict)
    dataset_settings: dict[str, Any] = field(default_factory=dict)
    config: str | None = None

    def __post_init__(self) -> None:
        for name in ("model", "dataset"):
            path = getattr(self, name)
            if not path or not os.path.isfile(path):
                raise ScorchError(f"{_flag(name)}: file not found: {path!r} (expected a Python file)")
        for name, choices in (
            ("optimizer", OPTIMIZERS),
            ("backend", BACKENDS),
            ("device", DEVICES),
            ("amp", AMP_MODES),
            ("monitor_mode", MONITOR_MODES),
        ):
            if getattr(self, name) not in choices:
                raise ScorchError(f"{_flag(name)}: {getattr(self, name)!r} is not one of {', '.join(choices)}")
        if self.nan_policy not in NAN_POLICIES:
            raise ScorchError(f"--nan-policy: {self.nan_policy!r} is not one of {', '.join(NAN_POLICIES)}")
        for name in ("epochs", "batch_size", "accumulate", "nproc_per_node", "nnodes", "keep_checkpoints"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ScorchError(f"{_flag(name)}: expected a whole number >= 1, got {getattr(self, name)!r}")
        for name in ("workers", "node_rank", "seed"):
            if getattr(self, name) < 0:
                raise ScorchError(f"{_flag(name)}: expected a whole number >= 0, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ScorchError(f"--lr: expected a number > 0, got {self.lr!r}")
        if self.weight_decay < 0:
            raise ScorchError(f"--weight-decay: expected a number >= 0, got {self.weight_decay!r}")
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise ScorchError(f"--clip-grad: expected a number > 0, got {self.clip_grad!r}")
        if self.patience is not None and self.patience < 1:
            raise ScorchError(f"--patience: expected a whole number >= 1, got {self.patience!r}")
        if self.auto_resume and self.overwrite:
            raise ScorchError("--auto-resume and --overwrite contradict each other: give one of them")
        if self.auto_resume and not self.name:
            raise ScorchError("--auto-resume needs --name: the run to continue is <run-root>/<name>")
        if self.resume and self.overwrite:
            raise ScorchError("--resume and --overwrite contradict each other: give one of them")
        if self.resume and not self.name:
            raise ScorchError("--resume needs --name: the run to continue is <run-root>/<name>")
        if self.name is not None and (not self.name or "/" in self.name or self.name in (".", "..")):
            raise ScorchError(f"--name: {self.name!r} is not a valid directory name")
        if self.monitor is not None:
            split, _, metric = self.monitor.partition("/")
            if split not in ("train", "valid") or not metric:
                raise ScorchError(f"--monitor: expected train/NAME or valid/NAME, got {self.monitor!r}")
        if self.node_rank >= self.nnodes:
            raise ScorchError(f"--node-rank: {self.node_rank} must be below --nnodes {self.nnodes}")
        check_lr_schedule(self.lr_schedule)
        if self.warmup_epochs < 0:
            raise ScorchError(f"--set warmup_epochs: expected a whole number >= 0, got {self.warmup_epochs!r}")
        if self.master_port is not None and not 0 < self.master_port < 65536:
            raise ScorchError(f"--master-port: {self.master_port} is not a TCP port")
        if not isinstance(self.join_timeout, (int, float)) or isinstance(self.join_timeout, bool) or not self.join_timeout > 0:
            raise ScorchError(f"--join-timeout: expected a number of seconds > 0, got {self.join_timeout!r}")
        if not isinstance(self.max_restarts, int) or isinstance(self.max_restarts, bool) or self.max_restarts < 0:
            raise ScorchError(f"--max-restarts: expected a whole number >= 0, got {self.max_restarts!r}")

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def run_dir(self) -> str:
        if self.name is None:
            raise ValueError("run name not resolved yet")
        return os.path.join(self.run_root, self.name)

    def monitor_direction(self, monitor: str) -> str:
        """``min`` or ``max``; ``auto`` is min for losses and errors, max otherwise."""
        if self.monitor_mode != "auto":
            return self.monitor_mode
        metric = monitor.split("/", 1)[-1].lower()
        return "min" if any(word in metric for word in ("loss", "err", "mse", "mae", "rmse", "nll", "perplexity")) else "max"


def check_lr_schedule(schedule: Any) -> None:
    """None/"constant", "cosine", or [[EPOCH, LR], ...] with increasing epochs (LR until EPOCH, inclusive)."""
    if schedule is None or schedule in ("constant", "cosine"):
        return
    ok = isinstance(schedule, (list, tuple)) and len(schedule) > 0
    last = 0
    for pair in schedule if ok else []:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], int) and pair[0] > last
                and isinstance(pair[1], (int, float)) and not isinstance(pair[1], bool) and pair[1] > 0):
            ok = False
            break
        last = pair[0]
    if not ok:
        raise ScorchError(
            f"--set lr_schedule: {schedule!r} is not a schedule; expected \"cosine\", \"constant\" or "
            "[[EPOCH, LR], ...] with increasing epochs and LR > 0, e.g. \"[[3, 0.1], [100, 0.01]]\""
        )


# Settings that change the trajectory of training; a resume with different values is warned about.
TRAJECTORY_KEYS = (
    "batch_size", "lr", "optimizer", "weight_decay", "momentum", "seed", "accumulate",
    "clip_grad", "amp", "lr_schedule", "warmup_epochs", "model_settings", "dataset_settings",
)

# Settings that describe how this invocation runs, not what is trained: never taken from a saved run.
INVOCATION_KEYS = (
    "resume", "auto_resume", "overwrite", "debug", "progress", "config", "nproc_per_node", "nnodes", "node_rank",
    "master_addr", "master_port", "name", "run_root", "max_restarts",
)
