"""The one typed, frozen configuration of a training run: pure data, checked value by value.

Each field declares what the rest of scorch needs to know about it once, in its metadata
(:class:`Setting`): its flag and help text (scorch-train's parser is built from them), its
allowed values, and whether it is invocation-only, changes the trajectory of training, or may
vary in a sweep. :data:`INVOCATION_KEYS`, :data:`TRAJECTORY_KEYS` and :data:`NOT_SWEEPABLE` are
derived from it. Nothing here touches a file: files are checked where they are loaded
(:mod:`scorch.contract.userfiles`, :mod:`scorch.contract.overrides`).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import types
import typing
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from .errors import ScorchError
from .loggers.choose import check_spec
from .rundir.layout import BEST, CHECKPOINTS, EVAL, HISTORY, LAST

OPTIMIZERS = ("adam", "adamw", "sgd")
BACKENDS = ("auto", "torch", "horovod")
STRATEGIES = ("auto", "ddp", "fsdp", "hsdp")  # scorch.strategies.CHOICES
DEVICES = ("auto", "cpu", "cuda")
AMP_MODES = ("off", "bf16", "fp16")
MONITOR_MODES = ("auto", "min", "max")
NAN_POLICIES = ("stop", "skip")
START_METHODS = ("fork", "forkserver", "spawn")
SCHEDULE_UNITS = ("epoch", "step")
EMA_EVAL = ("ema", "raw")

# The groups of scorch-train --help, in order.
GROUPS = ("files", "settings", "training", "run directory", "distributed", "output")
SEED_LIMIT = 2**63
MAX_NAME_BYTES = 255  # a file name, as the file system takes it
MAX_TIMEOUT_S = 1e9  # beyond any job; larger values overflow the backends' timers
MAX_WORKERS = 256  # DataLoader processes per rank; a typo of a few more digits would fork the machine to a halt


@dataclass(frozen=True)
class Setting:
    """What scorch needs to know about one :class:`TrainConfig` field besides its type and default."""

    help: str | None = None  # None: no flag of its own (--set KEY=VALUE, --KEY=VALUE or a config file)
    group: str = "training"
    flag: str | None = None  # when not the field name with dashes, e.g. --no-progress
    default_text: str | None = None  # the default to show in --help when the field's is None
    choices: tuple[str, ...] = ()
    at_least: float | None = None  # the bounds of a number (finite, if a float)
    more_than: float | None = None
    less_than: float | None = None
    invocation: bool = False  # how this invocation runs, not what is trained: never taken from a saved run
    trajectory: bool = False  # changes the trajectory of training: a resume with another value is warned about
    sweepable: bool = True  # a sweep may vary it, a report compares it (else the sweep sets it for every run)

    def bounds(self) -> str:
        parts = [f"{op} {_number(v)}" for op, v in ((">=", self.at_least), (">", self.more_than), ("<", self.less_than))
                 if v is not None]
        return " and ".join(parts)


def setting(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, **meta: Any) -> Any:
    """A dataclass field carrying its :class:`Setting` as metadata."""
    return field(default=default, default_factory=factory, metadata={"setting": Setting(**meta)})


def _number(value: float) -> str:
    if isinstance(value, int) and value >= 2**32 and value & (value - 1) == 0:
        return f"2**{value.bit_length() - 1}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _run_dir_setting(default: Any, help: str) -> Any:
    return setting(default, help=help, group="run directory", invocation=True, sweepable=False)


def _dist_setting(default: Any, help: str, **meta: Any) -> Any:
    return setting(default, help=help, group="distributed", **meta)


def _launch_setting(default: Any, help: str, **meta: Any) -> Any:
    return _dist_setting(default, help, invocation=True, **meta)


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a run. Checks its values; errors name the flag to change."""

    model: str = setting(help="MODEL_FILE defining Network and Socket", group="files")
    dataset: str = setting(help="DATASET_FILE defining DataSet (and optionally DataSetIndex)", group="files")
    dataset_path: str | None = setting(
        None, help="passed to DataSetIndex(path), or to DataSet when there is no DataSetIndex", group="files")
    epochs: int = setting(10, help="epochs to train in total (a resume continues up to this)", at_least=1)
    batch_size: int = setting(32, help="batch size per process", at_least=1, trajectory=True)
    lr: float = setting(1e-3, help="learning rate", more_than=0, trajectory=True)
    optimizer: str = setting("adam", help="used unless Socket.optimizer(params) is defined", choices=OPTIMIZERS,
                             trajectory=True)
    weight_decay: float = setting(0.0, help="weight decay", at_least=0, trajectory=True)
    momentum: float = setting(0.9, help="momentum of sgd, in [0, 1)", at_least=0, less_than=1, trajectory=True)
    seed: int = setting(0, help="seed for weights, shuffling and every rank's RNG", at_least=0, less_than=SEED_LIMIT,
                        trajectory=True)
    workers: int = setting(0, help="DataLoader worker processes per rank", at_least=0, less_than=MAX_WORKERS + 1)
    worker_start: str = setting("fork", help="how DataLoader workers start: fork (a copy of the rank: fastest, no "
                                "re-import), forkserver (forked from a clean process without threads: for datasets "
                                "or models that start threads of their own) or spawn (a fresh interpreter)",
                                choices=START_METHODS)
    run_root: str = _run_dir_setting("runs", "directory holding run directories")
    name: str | None = _run_dir_setting(None, "run name (default: a timestamp); the run lives in RUN_ROOT/NAME")
    resume: bool = _run_dir_setting(False, f"continue RUN_ROOT/NAME from {CHECKPOINTS}/{LAST}, with its saved settings "
                                    "unless overridden")
    auto_resume: bool = _run_dir_setting(False, f"resume RUN_ROOT/NAME when it has {CHECKPOINTS}/{LAST}, else start it "
                                         "(for jobs that are requeued)")
    overwrite: bool = _run_dir_setting(False, "replace an existing non-empty run directory")
    init_from: str | None = setting(None, help="start this new run from the Network weights of another run: "
                                    "RUN_DIR[:best|last|CHECKPOINT] (default best; the whole Network, or the modules "
                                    "Socket.init_from_modules names), with a fresh optimizer, schedule and loop",
                                    group="run directory")
    break_lock: bool = _run_dir_setting(False, "take over the run's lock (RUN_ROOT/.NAME.lock) from a scorch-train on "
                                        "another host that is gone (one on this host is checked, and taken over "
                                        "when gone, without it)")
    backend: str = _dist_setting("auto", "auto: horovod under mpirun and horovodrun when Horovod is importable and "
                                "built for the device (SCORCH_BACKEND=torch|horovod overrides); torch.distributed "
                                "otherwise", choices=BACKENDS)
    device: str = _dist_setting("auto", "auto: one GPU per local rank when CUDA is available", choices=DEVICES)
    strategy: str = _dist_setting("auto", "how the model is placed on the ranks: auto (every rank holds it: DDP, or "
                                  "Horovod's optimizer under Horovod), ddp, fsdp (parameters, gradients and optimizer "
                                  "state sharded over all ranks: FSDP2) or hsdp (sharded within each node, replicated "
                                  "over the nodes); fsdp, hsdp and ddp run on torch.distributed (see docs/sharding.md)",
                                  choices=STRATEGIES)
    activation_checkpointing: bool = _dist_setting(False, "with --strategy fsdp/hsdp: recompute each shard unit's "
                                                   "activations in the backward pass instead of keeping them (less "
                                                   "memory, about a third more compute)")
    amp: str = setting("off", help="automatic mixed precision", choices=AMP_MODES, trajectory=True)
    compile: bool = setting(False, help="torch.compile the Network (inductor: a C++ compiler on the CPU, Triton on "
                            "CUDA); each batch shape compiles once, the first steps take the compile time; checkpoints "
                            "keep the Network's own state_dict keys", trajectory=True)
    accumulate: int = setting(1, help="micro-batches per optimizer step (gradient accumulation)", at_least=1,
                              trajectory=True)
    clip_grad: float | None = setting(None, help="clip the gradient norm of the trainable parameters to this",
                                      more_than=0, trajectory=True)
    monitor: str | None = setting(None, help=f"metric for {BEST} and early stopping, e.g. valid/accuracy",
                                  default_text="valid/main when the model has a metric main, else valid/loss")
    monitor_mode: str = setting("auto", help="auto: min for losses/errors, max otherwise", choices=MONITOR_MODES)
    patience: int | None = setting(None, help="stop after this many epochs without improvement of --monitor",
                                   at_least=1)
    keep_checkpoints: int = setting(1, help="keep this many newest checkpoints (a resume falls back to the newest "
                                    "good one)", group="run directory", at_least=1)
    nan_policy: str = setting("stop", help="on a NaN/inf loss: stop (naming epoch and step), or skip that optimizer "
                              f"step and count it in {HISTORY}", choices=NAN_POLICIES)
    ema: float | None = setting(None, help="keep an exponential moving average of the Network's weights with this "
                                "decay (e.g. 0.999), updated after each optimizer step, saved in every checkpoint; "
                                "validation, best, scorch-test, load_run and scorch-export use it (docs: README, "
                                "Weight averaging)", more_than=0, less_than=1)
    ema_eval: str = setting("ema", help="with --ema: validate (and choose best by) the averaged weights (ema) or the "
                            "raw ones (raw)", choices=EMA_EVAL)
    test: bool = setting(False, help=f"when training ends, evaluate {BEST} on the test split (what scorch-test RUN_DIR "
                         f"does): RUN_DIR/{EVAL}/test-best.json", invocation=True, sweepable=False)
    find_unused_parameters: bool = setting(False, help="some trainable parameters get no gradient in some steps (a "
                                           "branch, an auxiliary head): DistributedDataParallel then looks for them "
                                           "in every step (slower; found automatically when the first batch shows it)")
    progress: bool = setting(True, help="no progress bar", group="output", flag="--no-progress", invocation=True,
                             sweepable=False)
    debug: bool = setting(False, help="debug logging and tracebacks on errors", group="output", invocation=True,
                          sweepable=False)
    log_every: int | None = setting(None, help="every N optimizer steps, write the step's training loss and metrics "
                                    "(means over its samples on all ranks) and the learning rate to TensorBoard "
                                    "(tensorboard/steps/, x axis: the global step)", group="output", at_least=1)
    logger: str = setting("tensorboard,csv", help="where the run's numbers go: a comma-separated list of tensorboard, "
                          "csv (history.csv), mlflow, wandb (experiment trackers: docs/trackers.md) and module:Class "
                          "(a scorch.Logger subclass), or none", group="output")
    mlflow_uri: str | None = setting(None, help="with --logger mlflow: the tracking server's URI (default: "
                                     "MLFLOW_TRACKING_URI; on a resume, the server the run used)", group="output")
    mlflow_experiment: str | None = setting(None, help="with --logger mlflow: the experiment of a new run (default: "
                                            "MLFLOW_EXPERIMENT_NAME, else scorch)", group="output")
    wandb_project: str | None = setting(None, help="with --logger wandb: the project of a new run (default: "
                                        "WANDB_PROJECT, else scorch)", group="output")
    track_checkpoint: bool = setting(False, help=f"with --logger mlflow or wandb: also upload {CHECKPOINTS}/{BEST} "
                                     f"({LAST} when no epoch was best) to the tracker when the run ends",
                                     group="output")
    dist_timeout: float = _dist_setting(1800.0, "seconds a collective may wait for the other ranks", more_than=0,
                                       less_than=MAX_TIMEOUT_S)
    nproc_per_node: int = _launch_setting(1, "without a launcher: start this many ranks on this node (scorch's own "
                                          "launch)", at_least=1)
    nnodes: int = _launch_setting(1, "without a launcher: machines in the job; start scorch-train on each, with its "
                                  "--node-rank (world size: nnodes x nproc-per-node)", at_least=1)
    node_rank: int = _launch_setting(0, "with --nnodes: this machine's rank, 0 .. nnodes-1 (node 0 hosts the "
                                     "rendezvous)", at_least=0)
    master_addr: str = _launch_setting("127.0.0.1", "with --nnodes: node 0's address as the other nodes reach it")
    master_port: int | None = _launch_setting(None, "with --nnodes: a port open on node 0", at_least=1, less_than=65536,
                                              default_text="a free one on one node, 29500 on several")
    join_timeout: float = _dist_setting(600.0, "seconds to wait for every node (or rank) to join before ending with "
                                        "the list of those missing", more_than=0, less_than=MAX_TIMEOUT_S)
    max_restarts: int = _launch_setting(0, "with scorch's own launch: when a rank fails, restart every rank from the "
                                        "last checkpoint up to this many times", at_least=0)
    checkpoint_every: int | str | None = setting(
        None, help=f"besides each epoch's end, checkpoint every N optimizer steps, or every DURATION of wall time (90s, "
        f"30m, 2h, 1h30m: rank 0's clock, every rank saves at the same step); {LAST} is always the newest, "
        "--keep-checkpoints says how many step checkpoints stay", group="run directory")
    val_every: int | None = setting(None, help="validate every N optimizer steps (counted over the run) and at each "
                                    "epoch's end: a history row, TensorBoard points on a step axis and a checkpoint "
                                    f"per validation, {BEST} by --monitor over every validation; --patience counts "
                                    "validations", at_least=1)
    max_steps: int | None = setting(None, help="end training after this many optimizer steps in all (or at --epochs, "
                                    "whichever comes first): a validation, a checkpoint, status finished, exit 0; a "
                                    "later --resume with a larger value goes on", at_least=1)
    max_time: str | None = setting(None, help="stop this session after this much wall time (e.g. 23h50m; from the "
                                   "start of training, rank 0's clock) as a stop signal does: a checkpoint at the next "
                                   "step, exit 3, so a requeued job goes on", group="run directory", invocation=True)
    warmup_steps: int = setting(0, help="raise the learning rate linearly over the first N optimizer steps (step t <= N "
                                "trains at t/(N+1) of the rate), on top of any schedule", at_least=0, trajectory=True)
    schedule_by: str = setting("epoch", help="what lr_schedule counts: epoch (the rate is set at each epoch's start; "
                               "[[EPOCH, LR], ...]) or step (set before every optimizer step; [[STEP, LR], ...], "
                               "cosine and linear over --max-steps or the run's steps)", choices=SCHEDULE_UNITS,
                               trajectory=True)
    lr_schedule: Any = setting(None, trajectory=True)
    warmup_epochs: int = setting(0, at_least=0, trajectory=True)
    model_settings: dict[str, Any] = setting(factory=dict, trajectory=True)
    dataset_settings: dict[str, Any] = setting(factory=dict, trajectory=True)
    config: str | None = setting(None, help="YAML, JSON or TOML file of settings (any key below, and model:/dataset: "
                                 "sections)", group="settings", invocation=True, sweepable=False)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check_value(f.name, getattr(self, f.name))
        if self.auto_resume and self.overwrite:
            raise ScorchError("--auto-resume and --overwrite contradict each other: give one of them")
        if self.auto_resume and not self.name:
            raise ScorchError("--auto-resume needs --name: the run to continue is <run-root>/<name>")
        if self.resume and self.overwrite:
            raise ScorchError("--resume and --overwrite contradict each other: give one of them")
        if self.resume and not self.name:
            raise ScorchError("--resume needs --name: the run to continue is <run-root>/<name>")
        if self.name is not None:
            check_file_name(self.name, "--name")
        check_path(self.run_root, "--run-root")
        if self.init_from is not None:
            check_path(self.init_from, "--init-from")
        for what, text in (("--model", self.model), ("--dataset", self.dataset)):
            if not text:
                raise ScorchError(f"{what}: expected a file, got ''")
        if not self.master_addr or _control(self.master_addr) or " " in self.master_addr:
            raise ScorchError(f"--master-addr: expected a host name or address, got {self.master_addr!r}")
        if self.monitor is not None:
            split, _, metric = self.monitor.partition("/")
            if split not in ("train", "valid") or not metric or _control(metric):
                raise ScorchError(f"--monitor: expected train/NAME or valid/NAME, got {self.monitor!r}")
        if self.node_rank >= self.nnodes:
            raise ScorchError(f"--node-rank: {self.node_rank} must be below --nnodes {self.nnodes}")
        if self.backend == "horovod" and self.strategy != "auto":
            raise ScorchError(f"--strategy {self.strategy} runs on torch.distributed, not Horovod: pass --backend torch "
                              "(or leave --backend at auto), or leave --strategy at auto for Horovod's own")
        if self.amp == "fp16" and self.strategy in ("fsdp", "hsdp"):
            raise ScorchError(f"--amp fp16 with --strategy {self.strategy}: sharded training runs mixed precision in "
                              "bf16 (--amp bf16), without a gradient scaler")
        if self.activation_checkpointing and self.strategy not in ("fsdp", "hsdp"):
            raise ScorchError("--activation-checkpointing checkpoints the shard units of --strategy fsdp or hsdp; "
                              f"give one of them (--strategy is {self.strategy})")
        if self.ema is not None and self.strategy in ("fsdp", "hsdp"):
            raise ScorchError(f"--ema with --strategy {self.strategy}: the moving average is kept of whole weights, not "
                              "of shards; train with --strategy auto or ddp, or leave out --ema")
        if self.ema is None and self.ema_eval != "ema":
            raise ScorchError(f"--ema-eval {self.ema_eval}: chooses the weights of validation with --ema DECAY; give "
                              "--ema too, or leave out --ema-eval")
        check_lr_schedule(self.lr_schedule, self.schedule_by)
        every(self.checkpoint_every, "--checkpoint-every")
        if self.max_time is not None:
            duration(self.max_time, "--max-time")
        if self.warmup_epochs and (self.warmup_steps or self.schedule_by == "step"):
            raise ScorchError("--set warmup_epochs counts epochs; with --warmup-steps or --schedule-by step give the "
                              "warm-up in optimizer steps (--warmup-steps) instead")
        check_spec(self.logger)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def run_dir(self) -> str:
        if self.name is None:
            raise ValueError("run name not resolved yet")
        return os.path.join(self.run_root, self.name)

    def monitor_direction(self, monitor: str) -> str:
        """``min`` or ``max`` for ``monitor`` under this config's ``monitor_mode``."""
        return monitor_direction(monitor, self.monitor_mode)


def monitor_direction(monitor: str, mode: str = "auto") -> str:
    """``min`` or ``max``; ``auto`` is min for losses and errors, max otherwise."""
    if mode != "auto":
        return mode
    metric = monitor.split("/", 1)[-1].lower()
    return "min" if any(word in metric for word in ("loss", "err", "mse", "mae", "rmse", "nll", "perplexity")) else "max"


# ---- what the fields declare ----------------------------------------------------------------

@functools.cache
def settings() -> dict[str, Setting]:
    """Every field of TrainConfig with its :class:`Setting`, in field order."""
    return {f.name: f.metadata["setting"] for f in dataclasses.fields(TrainConfig)}


def flag(name: str) -> str:
    """How the user names field ``name`` on the command line: its flag, else ``--set NAME``."""
    s = settings()[name]
    if s.help is None:
        return f"--set {name}"
    return s.flag or "--" + name.replace("_", "-")


@functools.cache
def hints() -> dict[str, Any]:
    """Each field's type annotation."""
    return typing.get_type_hints(TrainConfig)


def _keys(**want: bool) -> tuple[str, ...]:
    return tuple(name for name, s in settings().items() if all(getattr(s, k) == v for k, v in want.items()))


INVOCATION_KEYS = _keys(invocation=True)
"""Settings that describe how this invocation runs, not what is trained: never taken from a saved run."""
TRAJECTORY_KEYS = _keys(trajectory=True)
"""Settings that change the trajectory of training; a resume with different values is warned about."""
NOT_SWEEPABLE = _keys(sweepable=False)
"""Settings a sweep decides itself for every run (and a report does not compare)."""


# ---- checking values ------------------------------------------------------------------------

def value_fits(value: Any, annotation: Any) -> bool:
    """Whether ``value`` has the type ``annotation`` says (ints count as floats, bools as neither)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(value_fits(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is Any:
        return True
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, dict):
        return isinstance(value, origin)
    return isinstance(value, annotation)


def type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "none"
    return str(getattr(annotation, "__name__", annotation))


def check_value(name: str, value: Any) -> None:
    """ScorchError naming the flag when ``value`` is not of field ``name``'s type or outside its range."""
    s, annotation = settings()[name], hints()[name]
    if not value_fits(value, annotation):
        raise ScorchError(f"{flag(name)}: expected {type_name(annotation)}, got {value!r}")
    if s.choices and value not in s.choices:
        raise ScorchError(f"{flag(name)}: {value!r} is not one of {', '.join(s.choices)}")
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    low, above, below = s.at_least, s.more_than, s.less_than
    if (isinstance(value, float) and not math.isfinite(value)) or (low is not None and value < low) \
            or (above is not None and value <= above) or (below is not None and value >= below):
        kind = "a finite number" if float in (annotation, *typing.get_args(annotation)) else "a whole number"
        raise ScorchError(f"{flag(name)}: expected {kind}{' ' + s.bounds() if s.bounds() else ''}, got {value!r}")


def _control(text: str) -> str | None:
    """The first control character (newline, NUL, escape ...) in ``text``, if any."""
    return next((ch for ch in text if unicodedata.category(ch) == "Cc"), None)


def check_path(path: str, what: str) -> None:
    """A directory path the file system accepts: non-empty, no control characters, no too-long part."""
    if not path:
        raise ScorchError(f"{what}: expected a directory, got '' (use . for the current one)")
    if _control(path):
        raise ScorchError(f"{what}: {path!r} holds a control character ({_control(path)!r}); expected a plain path")
    long = next((part for part in path.split(os.sep) if len(os.fsencode(part)) > MAX_NAME_BYTES), None)
    if long is not None:
        raise ScorchError(f"{what}: {long[:40]!r}... is longer than {MAX_NAME_BYTES} bytes, the most a file system takes")


def check_file_name(name: str, what: str) -> None:
    """A name usable as one directory entry: non-empty, no '/', not '.' or '..', no control characters
    (NUL, newline, ...), at most 255 bytes as the file system encodes it."""
    if not name or "/" in name or name in (".", ".."):
        raise ScorchError(f"{what}: {name!r} is not a valid directory name; expected a name without '/'")
    if _control(name):
        raise ScorchError(f"{what}: {name!r} holds a control character ({_control(name)!r}); expected a plain name")
    if len(os.fsencode(name)) > MAX_NAME_BYTES:
        raise ScorchError(f"{what}: {name[:40]!r}... is {len(os.fsencode(name))} bytes long; a file system takes at "
                          f"most {MAX_NAME_BYTES}")


def check_lr_schedule(schedule: Any, unit: str = "epoch") -> None:
    """None/"constant", "cosine", "linear", or [[EPOCH, LR], ...] with increasing epochs (LR until EPOCH,
    inclusive; STEP instead of EPOCH with ``unit`` step)."""
    if schedule is None or schedule in ("constant", "cosine", "linear"):
        return
    ok = isinstance(schedule, (list, tuple)) and len(schedule) > 0
    last = 0
    for pair in schedule if ok else []:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and _whole(pair[0]) and pair[0] > last
                and _real(pair[1]) and pair[1] > 0):
            ok = False
            break
        last = pair[0]
    if not ok:
        raise ScorchError(
            f"--set lr_schedule: {schedule!r} is not a schedule; expected \"cosine\", \"linear\", \"constant\" or "
            f"[[{unit.upper()}, LR], ...] with increasing {unit}s and finite LR > 0, e.g. \"[[3, 0.1], [100, 0.01]]\""
        )


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---- durations ------------------------------------------------------------------------------

_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([dhms])")


def duration(text: str, what: str) -> float:
    """Seconds of a wall time written as 90s, 30m, 2h, 1h30m, 1d12h (units d, h, m, s, largest first)."""
    parts = _DURATION.findall(text.strip()) if isinstance(text, str) else []
    order = [u for _, u in parts]
    if not parts or "".join(n + u for n, u in parts) != text.strip() or order != sorted(order, key="dhms".index) \
            or len(set(order)) != len(order):
        raise ScorchError(f"{what}: {text!r} is not a duration; expected e.g. 90s, 30m, 2h or 1h30m")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not 0 < seconds < MAX_TIMEOUT_S:
        raise ScorchError(f"{what}: {text!r} is not a duration above 0 s")
    return seconds


def every(value: int | str | None, what: str) -> tuple[int | None, float | None]:
    """``(steps, seconds)`` of a cadence given as N optimizer steps (a whole number, or its digits) or a
    wall time (:func:`duration`); ``(None, None)`` for None."""
    if value is None:
        return None, None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ScorchError(f"{what}: expected a whole number of steps >= 1 or a duration (30m), got {value!r}")
        return value, None
    return None, duration(str(value), what)
