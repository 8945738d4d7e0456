"""``train(config)``: the whole run, from process group to the last checkpoint.

Rank facts are worked out once, here; rank-0-only side effects live in objects
(RunDir, History, TensorBoard, Progress) that are built on every rank.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import checkpoint, data, distributed as dist, schedule
from .build import Parts, autocast_factory, build_parts, make_optimizer, make_scaler
from .config import TRAJECTORY_KEYS, TrainConfig
from .errors import Preempted, ScorchError, TrainingError
from .history import History
from .loop import NanGuard, StepContext, Totals, evaluate, train_epoch
from .preempt import StopSignal
from .progress import Progress
from .rundir import RunDir, check_target, session_meta
from .tb import TensorBoard

log = logging.getLogger(__name__)


@dataclass
class LoopState:
    """Saved in every checkpoint under ``loop``: what early stopping and best.pt need."""

    best: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    skipped_steps: int = 0

    def record(self, value: float, epoch: int, mode: str) -> bool:
        """Note this epoch's monitored value; True when it is the best so far."""
        improved = self.best is None or (value < self.best if mode == "min" else value > self.best)
        if improved:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        return improved


@dataclass
class RunResult:
    run_dir: Path
    epochs_done: int
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float | None = None
    monitor: str = ""
    stopped_early: bool = False


def default_name() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def train(config: TrainConfig) -> RunResult:
    """Train as configured; every rank of the job calls this."""
    backend = dist.init(config.backend, config.device, config.dist_timeout, config.join_timeout)
    rank0 = backend.rank == 0
    if config.name is None:
        config = config.replace(name=dist.broadcast(default_name() if rank0 else None))

    parts = build_parts(config, backend)  # checks the user's files: nothing is written before this
    config = parts.config  # with the files' declared settings resolved

    run_dir = RunDir(config.run_dir, rank0)
    verdict = dist.broadcast(check_target(run_dir.path, config.resume, config.overwrite, config.auto_resume) if rank0 else None)
    if verdict:
        raise ScorchError(verdict)
    resumed = checkpoint.CheckpointDir(run_dir.path / "checkpoints").load_latest() if config.resume else None

    placements = dist.all_gather(dist.placement())  # every rank's host, node and local rank
    run_dir.create(overwrite=config.overwrite)
    run_dir.attach_log()
    try:
        return _fit(config, parts, run_dir, resumed, placements)
    finally:
        run_dir.detach_log()


def _fit(config: TrainConfig, parts: Parts, run_dir: RunDir, resumed: dict[str, Any] | None, placements: list[dict[str, Any]]) -> RunResult:
    backend, device = parts.backend, parts.device
    rank0 = backend.rank == 0
    network, socket = parts.network, parts.socket
    # Wrap before anything holds the optimizer: Horovod's wrapper is a new optimizer built from the
    # param_groups, so state loaded into (or a scheduler attached to) the original would be lost.
    optimizer = backend.wrap_optimizer(make_optimizer(config, socket), socket.named_trainable_parameters(), config.accumulate)
    scheduler = socket.scheduler(optimizer)
    if scheduler is not None and config.lr_schedule not in (None, "constant"):
        raise ScorchError(f"--set lr_schedule: {config.model} defines Socket.scheduler too; use one of them")
    scaler = make_scaler(config, device)
    loop = LoopState()
    epoch_done, step = 0, 0
    if resumed is not None:
        epoch_done, step = _restore(config, resumed, network, optimizer, scheduler, scaler, loop, backend.rank)

    meta = _start_meta(run_dir, backend, placements, epoch_done if resumed is not None else None)
    run_dir.write_config(config.to_dict())
    run_dir.copy_sources(config.model, config.dataset)
    run_dir.write_meta(meta)

    model = backend.wrap_model(network) if backend.world_size > 1 else network
    backend.broadcast_training_state(network, optimizer)

    loader, valid_loader = _loaders(config, parts)
    autocast = autocast_factory(config, device)
    metrics_where = f"{config.model}: Socket.metrics"
    ctx = StepContext(backend, model, socket, optimizer, scaler, autocast, config.accumulate, config.clip_grad, parts.metric_names, metrics_where,
                      skip_nonfinite=config.nan_policy == "skip")
    history = History(run_dir.path / "history.csv", rank0, keep_until_epoch=epoch_done)
    tb = TensorBoard(run_dir.tensorboard, rank0, purge_step=epoch_done + 1 if resumed is not None else None)
    guard = NanGuard(lag=device.type == "cuda", skip=config.nan_policy == "skip")

    if resumed is not None:
        checkpoint.set_rng_state(resumed["rng"][backend.rank] if backend.rank < len(resumed["rng"]) else resumed["rng"][0])
        log.info("resumed %s at epoch %d, step %d", run_dir.path, epoch_done, step)
    log.info(
        "training %s on %s: %d rank(s), backend %s, %d train / %d valid samples, monitor %s (%s)",
        run_dir.path, device, backend.world_size, backend.name, len(parts.train_set),
        len(parts.valid_set) if parts.valid_set is not None else 0, parts.monitor, parts.monitor_mode,
    )
    saver = _Checkpointer(run_dir, config, backend, network, optimizer, scheduler, scaler, loop)
    partial = resumed.get("partial") if resumed is not None else None
    stopped_early = False
    status = "failed"
    try:
        with StopSignal() as stop:
            for epoch in range(epoch_done + 1, config.epochs + 1):
                start = time.perf_counter()
                if scheduler is None:
                    schedule.apply(optimizer, schedule.lr_at(epoch, config.lr, config.lr_schedule, config.warmup_epochs, config.epochs), config.lr)
                lr = optimizer.param_groups[0]["lr"]
                totals = Totals(parts.metric_names, device, metrics_where)
                start_batch = 0
                if partial is not None and partial["epoch"] == epoch:  # resuming mid-epoch
                    start_batch = partial["batches"]
                    totals.load(partial["totals"][backend.rank])
                data.set_epoch(loader, epoch, config.seed, backend.rank, skip_batches=start_batch)
                progress = Progress(rank0 and config.progress, len(loader), f"epoch {epoch}/{config.epochs}")
                try:
                    done = train_epoch(ctx, loader, epoch, step, totals, progress, guard, stop, start_batch)
                finally:
                    progress.close()
                step = done.step
                loop.skipped_steps += done.skipped
                if done.stopped:  # a stop signal mid-epoch: save where every rank got to
                    status = "preempted"
                    saver.save(epoch - 1, step, False, {
                        "epoch": epoch, "batches": done.batches, "totals": backend.all_gather_object(done.totals.state()),
                    })
                    # Nobody exits before rank 0 has written: a launcher ends the whole job
                    # when the first rank exits non-zero.
                    backend.barrier()
                    raise Preempted(f"stopped by {stop.received or 'a signal on another rank'} at epoch {epoch}, "
                                    f"step {step}; checkpoint written to {run_dir.last_checkpoint}; continue with --resume")
                train_means = done.totals.reduce(backend, "train")
                valid_means = {}
                if valid_loader is not None:
                    valid_means = evaluate(backend, network, socket, valid_loader, autocast, parts.metric_names, metrics_where)
                row: dict[str, Any] = {"epoch": epoch, "step": step, "lr": lr, "time": time.perf_counter() - start, **train_means, **valid_means}
                if config.nan_policy == "skip":
                    row["skipped_steps"] = loop.skipped_steps
                improved = loop.record(row[parts.monitor], epoch, parts.monitor_mode)
                _step_scheduler(scheduler, row[parts.monitor])
                history.append(row)
                tb.log_epoch(row)
                saver.save(epoch, step, improved)
                log.info("epoch %d/%d  %s  (%.1f s)", epoch, config.epochs, _summary(row), row["time"])
                epoch_done = epoch
                if epoch < config.epochs and stop.agreed(backend, step, force=True):
                    status = "preempted"
                    raise Preempted(f"stopped by {stop.received or 'a signal on another rank'} after epoch {epoch}; "
                                    f"checkpoint written to {run_dir.last_checkpoint}; continue with --resume")
                if config.patience is not None and loop.bad_epochs >= config.patience:
                    log.info("early stop: %s has not improved for %d epochs (best %.6g at epoch %d)", parts.monitor, loop.bad_epochs, loop.best, loop.best_epoch)
                    stopped_early = True
                    break
            status = "finished"
    finally:
        tb.close()
        meta["end_time"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        meta["status"] = status
        meta["epochs_done"] = epoch_done
        try:
            run_dir.write_meta(meta)
        except ScorchError as exc:  # do not hide the error that ended the run
            log.warning("%s", exc)
    return RunResult(run_dir.path, epoch_done, history.rows, loop.best, parts.monitor, stopped_early)


def _loaders(config: TrainConfig, parts: Parts) -> tuple[Any, Any]:
    """This rank's shuffled training shard, and its exact (unpadded) validation shard."""
    backend = parts.backend
    pin = parts.device.type == "cuda"
    where = f"{config.dataset}: DataSet.__getitem__ (mode={{!r}})"
    loader = data.train_loader(parts.train_set, config.batch_size, backend.rank, backend.world_size, config.seed,
                               config.workers, pin, where.format("train"))
    valid_loader = None
    if parts.valid_set is not None:
        valid_loader = data.eval_loader(parts.valid_set, config.batch_size, backend.rank, backend.world_size,
                                        config.workers, pin, where.format("valid"))
    return loader, valid_loader


def _start_meta(run_dir: RunDir, backend: Any, placements: list[dict[str, Any]], resumed_from: int | None) -> dict[str, Any]:
    """meta.json for this session; a resumed run keeps the list of its earlier sessions."""
    previous = run_dir.read_meta() if resumed_from is not None and backend.rank == 0 else {}
    meta = session_meta(backend.world_size, backend.name, str(backend.device), backend.launch.launcher, placements)
    meta["sessions"] = [*previous.get("sessions", []), {k: meta[k] for k in ("start_time", "world_size", "hostnames")}]
    meta["resumed_from_epoch"] = resumed_from
    return meta


def _summary(row: dict[str, Any]) -> str:
    return "  ".join(f"{k} {v:.4g}" for k, v in row.items() if "/" in k)


def _step_scheduler(scheduler: Any, monitored: float) -> None:
    if scheduler is None:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(monitored)
    else:
        scheduler.step()


class _Checkpointer:
    """Built on every rank: all ranks contribute their RNG state (a collective); rank 0 writes."""

    def __init__(self, run_dir: RunDir, config: TrainConfig, backend: Any, network: torch.nn.Module,
                 optimizer: Any, scheduler: Any, scaler: Any, loop: LoopState):
        self.dir = checkpoint.CheckpointDir(run_dir.path / "checkpoints", config.keep_checkpoints)
        self.config, self.backend, self.network = config, backend, network
        self.optimizer, self.scheduler, self.scaler, self.loop = optimizer, scheduler, scaler, loop

    def save(self, epoch: int, step: int, improved: bool, partial: dict[str, Any] | None = None) -> None:
        """``partial``: where a stopped epoch got to (its number, batches done, every rank's totals)."""
        rngs = self.backend.all_gather_object(checkpoint.rng_state())
        if self.backend.rank != 0:
            return
        weights = {k: v.detach().cpu() for k, v in self.network.state_dict().items()}
        bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:
            raise TrainingError(f"weights {', '.join(bad[:3])} are not finite at epoch {epoch}, step {step}; "
                                f"not writing a checkpoint (the last good one stays in {self.dir.dir})")
        loop = self.loop
        state = {
            "model": weights,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "epoch": epoch,
            "step": step,
            "rng": rngs,
            "config": self.config.to_dict(),
            "loop": {"best": loop.best, "best_epoch": loop.best_epoch, "bad_epochs": loop.bad_epochs,
                     "skipped_steps": loop.skipped_steps},
        }
        if partial is not None:
            state["partial"] = partial
        try:
            self.dir.write(state, step, improved)
        except OSError as exc:
            raise ScorchError(f"cannot write a checkpoint in {self.dir.dir}: {exc.strerror or exc}; "
                              "the last complete checkpoint is intact") from exc


def _restore(config: TrainConfig, state: dict[str, Any], network: torch.nn.Module, optimizer: Any, scheduler: Any,
             scaler: Any, loop: LoopState, rank: int) -> tuple[int, int]:
    saved = state.get("config", {})
    changed = [k for k in TRAJECTORY_KEYS if k in saved and saved[k] != getattr(config, k)]
    if changed and rank == 0:
        log.warning("resuming with changed settings: %s", ", ".join(f"{k} {saved[k]!r} -> {getattr(config, k)!r}" for k in changed))
    try:
        network.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise ScorchError(f"checkpoint does not fit {config.model}: Network ({str(exc).splitlines()[0]})") from exc
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    saved_loop = state.get("loop", {})
    loop.best, loop.best_epoch, loop.bad_epochs = saved_loop.get("best"), saved_loop.get("best_epoch", 0), saved_loop.get("bad_epochs", 0)
    loop.skipped_steps = saved_loop.get("skipped_steps", 0)
    return int(state["epoch"]), int(state["step"])
