"""``train(config)``: the whole run, from process group to the last checkpoint.

Rank facts are worked out once, here; rank-0-only side effects live in objects built on every
rank (RunDir, the loggers, the Saver). The run is a loop of named steps: train an epoch, validate
it, end it, and stop where a signal says so; everything optional hangs off the callbacks it fires
(:mod:`scorch.callbacks`: the progress bar, the step log, the visualisation, the model file's own, --ema,
early stopping, the checkpoint policy), the numbers go to the loggers (:mod:`scorch.loggers`), and
the strategy (:mod:`scorch.strategies`) places the model on the ranks.
"""
from __future__ import annotations

import contextlib
import logging
import math
import re
import time
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import torch

from .. import _atomic, data, distributed as dist, loggers as loggers_, strategies
from ..callbacks.base import Callback, Callbacks
from ..callbacks.checkpointing import Checkpointing, Saver
from ..callbacks.early_stopping import EarlyStopping
from ..callbacks.ema import EMA
from ..callbacks.progress import ProgressBar
from ..callbacks.steplog import StepLog
from ..callbacks.visualize import Visualize
from ..config import TrainConfig
from ..distributed.backends.base import Backend
from ..errors import Error, Failure, Preempted, ScorchError, TrainingError, on_every_rank
from ..evaluate.evaluation import Evaluation, test_after_training
from ..loggers import CSVLogger, Loggers, Resume
from ..rundir import checkpoint, moved, provenance
from ..rundir.directory import RunDir, default_name, prepare_target, session_meta
from ..rundir.lock import RunLock
from ..strategies import Strategy
from . import _malloc, compiling, custom_step, init_from, outcome, resume, schedule
from .build import Parts, autocast_factory, build_parts, check_scheduler, make_optimizer, make_scaler
from .cadence import Cadence
from .diagnostics import Diagnostics, is_diagnostic
from .loop import NanGuard, StepContext, evaluate, reduce_totals, train_epoch
from .preempt import StopSignal
from .run import TRAIN, VALID, Run
from .state import Cursor, LoopState, MetricTotals

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_dir: Path
    epochs_done: int
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float | None = None
    monitor: str = ""
    stopped_early: bool = False


def train(config: TrainConfig) -> RunResult:
    """Train as configured; every rank of the job calls this.

    Everything that can be checked is checked before the run directory changes: the user's
    files, the target directory, a resumed checkpoint, history.csv and meta.json. Problems found
    by rank 0 alone are broadcast, so every rank stops alike."""
    _malloc.tune()  # no page faults for what each step frees and allocates again (scorch/training/_malloc.py)
    backend = dist.init(*_backend_for(config))
    rank0 = backend.rank == 0
    if config.name is None:
        config = config.replace(name=dist.broadcast(default_name() if rank0 else None))

    parts = dist.each(lambda: build_parts(config, backend))  # checks the user's files: nothing is written before this
    run_dir = RunDir(parts.config.run_dir, rank0)
    lock = RunLock(run_dir.path, config.break_lock)  # one writer per run directory
    dist.decide(lock.acquire)
    try:
        return _locked(config, parts, run_dir)
    finally:
        if rank0:
            lock.abandon()


def _backend_for(config: TrainConfig) -> tuple[str, str, float, float, str | None]:
    """dist.init's arguments: --backend, where auto means torch.distributed when --strategy names one
    of its strategies."""
    if config.backend == "auto" and config.strategy != "auto":
        return "torch", config.device, config.dist_timeout, config.join_timeout, f"--strategy {config.strategy}"
    return config.backend, config.device, config.dist_timeout, config.join_timeout, None


def _locked(config: TrainConfig, parts: Parts, run_dir: RunDir) -> RunResult:
    dist.decide(lambda: prepare_target(run_dir.path, config.resume, config.overwrite, config.auto_resume))
    resumed = dist.each(lambda: checkpoint.CheckpointDir(run_dir.layout.checkpoint_dir).load_latest(whole=False)) if config.resume else None
    if resumed is not None:
        parts.given = config
        parts.config = dist.each(lambda: resume.adapt(config, resumed, parts.backend.world_size, parts.socket.has_optimizer,
                                                      parts.socket.has_scheduler, len(parts.train_set)))
    elif config.init_from is not None:  # before the strategy places the model: every rank loads the same weights
        parts.init_from = dist.each(lambda: init_from.apply(str(config.init_from), parts.network, parts.socket.raw,
                                                            config.model))
    strategy = dist.each(lambda: _strategy(parts))
    if strategy.sharded and parts.backend.device.type == "cpu":
        _malloc.for_sharding()
    clock = compiling.apply(parts.network) if config.compile else None  # in place: the state_dict keys stay the Network's
    model, optimizer = _setup(parts, strategy)
    state = dist.each(lambda: _state(parts, strategy, optimizer, resumed))
    dist.each(lambda: _check_one_sample_steps(parts, state.cursor))
    strategy.broadcast_training_state(parts.network, state.optimizer)
    callbacks, loggers = dist.each(lambda: _extensions(parts, run_dir))
    where = Resume(state.cursor.epoch, state.cursor.step) if resumed is not None else None
    dist.decide(lambda: loggers.check(run_dir.path, where))
    csv_rows = dist.decide(lambda: csv.rows if (csv := loggers.get(CSVLogger)) is not None else [])
    previous_meta = dist.decide(run_dir.read_meta) if resumed is not None else {}

    placements = dist.all_gather(dist.placement())  # every rank's host, node and local rank
    run_dir.create(overwrite=config.overwrite)
    run_dir.attach_log()
    try:
        session = _open(parts, run_dir, state, resumed, placements, previous_meta or {}, strategy, model, callbacks, loggers)
        session.rows, session.compiled = list(csv_rows or []), clock
        return _fit(session)
    except BaseException:
        run_dir.restore()  # an --overwrite that failed before its first checkpoint gives the old run back
        raise
    finally:
        run_dir.detach_log()


def _strategy(parts: Parts) -> Strategy:
    """How the model is placed: a custom step (Socket.training_step) averages its gradients itself."""
    config = parts.config
    if parts.socket.has_custom_step:
        custom_step.refuse_sharded(config.strategy, config.model)
        return custom_step.Replicated(parts.backend)
    return strategies.choose(parts.backend, config.strategy, parts.socket.shard_units(), config.amp == "bf16",
                             config.activation_checkpointing)


def _setup(parts: Parts, strategy: Strategy) -> tuple[torch.nn.Module, Any]:
    """The model placed by the strategy first, then the optimizer (the model file's or scorch's)
    built over its parameters; a problem with the optimizer stops every rank alike. A custom step:
    the Network as it is, and the Socket's optimizers."""
    config, socket = parts.config, parts.socket
    if socket.has_custom_step:
        optimizers = dist.each(lambda: custom_step.build(socket))
        log.info("custom step of %s: %s", config.model, optimizers.describe())
        return parts.network, optimizers
    find_unused = any(dist.all_gather(parts.unused_parameters or config.find_unused_parameters))
    if find_unused and strategy.sharded:
        raise on_every_rank(ScorchError(
            f"--strategy {strategy.name}: some trainable parameters of {config.model} get no gradient in a step (found in "
            "the first batch, or --find-unused-parameters), which fully_shard cannot reduce; keep such modules out of "
            "Socket.trainable_modules, or train with --strategy ddp"))
    def build_optimizer() -> torch.optim.Optimizer:
        socket.refresh_parameters()  # the placed model's (a sharded strategy's are new ones)
        return make_optimizer(config, socket)

    return strategy.setup(parts.network, lambda: dist.each(build_optimizer), socket.named_trainable_parameters,
                          config.accumulate, find_unused)


def _state(parts: Parts, strategy: Strategy, optimizer: Any,
           resumed: dict[str, Any] | None) -> checkpoint.TrainingState:
    """The optimizer's scheduler and the loop's state, restored from ``resumed`` and with the
    settings of this run applied; nothing is written."""
    config, backend, network, socket = parts.config, parts.backend, parts.network, parts.socket
    scaler: Any
    if isinstance(optimizer, custom_step.Optimizers):  # a custom step: each optimizer its scheduler and scaler
        scheduler: Any = optimizer.schedulers
        scaler = custom_step.Scalers(optimizer.names, lambda: make_scaler(config, backend.device))
        schedule.check_owner(config, scheduler is not None, "Socket.optimizers()")
    else:
        scheduler = socket.scheduler(optimizer)
        schedule.check_owner(config, scheduler is not None)
        check_scheduler(socket, scheduler, parts.monitor, parts.monitor_mode)
        socket.check_scheduler_interval(scheduler)
        scaler = make_scaler(config, backend.device)
    cursor = Cursor(global_batch=config.batch_size * config.accumulate * backend.world_size,
                    world_size=backend.world_size, length=len(parts.train_set))
    state = checkpoint.TrainingState(network, optimizer, scheduler, scaler, LoopState(), cursor)
    if resumed is not None:
        resume.check_optimizer_fits(optimizer, network, resumed, config)
        state.load_state_dict(resumed, f"{config.model}: Network", strategy)
        if not socket.has_optimizer:
            resume.apply_optimizer_settings(optimizer, config, resumed.get("config", {}))
        cursor.global_batch = config.batch_size * config.accumulate * backend.world_size
        cursor.world_size, cursor.length = backend.world_size, len(parts.train_set)
    resume.follow_monitor(state.loop, (resumed or {}).get("config", {}), parts.monitor, parts.monitor_mode)
    return state


def _extensions(parts: Parts, run_dir: RunDir) -> tuple[list[Callback], Loggers]:
    """The model file's callbacks and the loggers (--logger, then the model file's), checked."""
    config, socket = parts.config, parts.socket
    chosen = loggers_.build(config.logger, config=config) + socket.loggers()
    return socket.callbacks(), Loggers(chosen, parts.backend.rank == 0)


@dataclass
class Session:
    """Everything a run holds while it trains."""

    config: TrainConfig
    parts: Parts
    run_dir: RunDir
    state: checkpoint.TrainingState
    ctx: StepContext
    loader: Any
    valid_loader: Any
    run: Run
    callbacks: Callbacks
    loggers: Loggers
    saver: Saver
    guard: NanGuard
    meta: dict[str, Any]
    saved_totals: list[dict[str, Any]] | None = None  # a resumed epoch's metric sums, one per saved rank
    saved_scalars: list[dict[str, Any]] | None = None  # and its run.log sums
    started: float = 0.0  # when the current epoch started (perf_counter)
    compiled: compiling.Clock | None = None  # --compile: what has been compiled so far
    cadence: Cadence = field(default_factory=Cadence)  # checkpoints, validations and the end inside epochs
    rates: schedule.StepRates | None = None  # the rate of every step (--schedule-by step, --warmup-steps)
    rows: list[dict[str, Any]] = field(default_factory=list)  # history: the resumed epochs', then this session's
    evaluated: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext  # the weights validation uses (--ema)
    diagnostics: Diagnostics | None = None  # the diag/ columns of each row and the session's last log line

    @property
    def backend(self) -> Backend:
        return self.parts.backend

    @property
    def cursor(self) -> Cursor:
        return self.state.cursor

    @property
    def loop(self) -> LoopState:
        return self.state.loop

    def totals(self) -> MetricTotals:
        return MetricTotals(self.parts.metric_names, self.backend.device, f"{self.config.model}: Socket.metrics")


def _open(parts: Parts, run_dir: RunDir, state: checkpoint.TrainingState, resumed: dict[str, Any] | None,
          placements: list[dict[str, Any]], previous_meta: dict[str, Any], strategy: Strategy, model: torch.nn.Module,
          user_callbacks: list[Callback], loggers: Loggers) -> Session:
    """Write the run's files, restore this rank's RNG, open the loggers, build the loaders and the
    callbacks."""
    config, backend, socket = parts.config, parts.backend, parts.socket
    cursor = state.cursor
    meta = _start_meta(backend, placements, previous_meta, cursor.epoch if resumed is not None else None)
    meta["strategy"] = strategy.name
    meta.update(moved.record(run_dir.path, config.dataset_path, previous_meta))  # for a run that moves
    provenance.record(meta, config.model, rank0=run_dir.rank0)  # git commit and versions (rank 0 writes meta.json)
    if parts.init_from is not None or previous_meta.get("init_from"):
        meta["init_from"] = parts.init_from or previous_meta.get("init_from")
    # what this session trained with, where a resume fitted it to the world size (config.json: as given)
    meta["sessions"][-1].update(batch_size=config.batch_size, accumulate=config.accumulate,
                                global_batch=config.batch_size * config.accumulate * backend.world_size)
    run_dir.write_config(parts.saved_settings.to_dict())
    run_dir.copy_sources(config.model, config.dataset)
    run_dir.write_meta(meta)
    run_dir.reserve()
    if resumed is not None:
        _restore_rng(resumed, config.seed, backend.rank)
        log.info("resumed %s at epoch %d, step %d (%d epochs completed)", run_dir.path, cursor.epoch + 1, cursor.step,
                 cursor.epoch)  # the words and numbering of "stopped by ... at epoch E, step S"
    loggers.bind(meta, previous_meta.get("trackers"), run_dir.write_meta)  # trackers keep their run id in meta.json
    loggers.open(run_dir.path, Resume(cursor.epoch, cursor.step) if resumed is not None else None, config.to_dict())

    run = Run(backend.rank, backend.world_size, run_dir.path, parts.network, state.optimizer, config, backend)
    run.step, run.epoch = cursor.step, cursor.epoch
    run.loop, run.monitor = state.loop, parts.monitor
    run.strategy, run.params = strategy, socket.trainable_params
    socket.attach(run)
    where = f"{config.model}: Socket.metrics"
    saver = Saver(checkpoint.CheckpointDir(run_dir.layout.checkpoint_dir, config.keep_checkpoints), run_dir,
                  parts.saved_settings, state, strategy, None)
    named = state.optimizer.optimizers if isinstance(state.optimizer, custom_step.Optimizers) else None
    ema = EMA(parts.network, config.ema, list(named.values()) if named else [state.optimizer]) if config.ema is not None else None
    callbacks = Callbacks([
        ProgressBar(config.progress),
        *([Visualize(socket, loggers)] if socket.has_visualize else []),
        *user_callbacks,
        *([ema] if ema is not None else []),
        *([StepLog(config.log_every, parts.metric_names, loggers, where)] if config.log_every else []),
        *([EarlyStopping(config.patience, "validations" if config.val_every else "epochs")]
          if config.patience is not None else []),
        Checkpointing(saver),
    ], f"{config.model}: Socket.callbacks()")
    saver.callbacks = callbacks
    if resumed is not None:
        callbacks.load_state_dict(resumed.get("callbacks") or {})
    rates = None
    if state.scheduler is None and schedule.per_step(config):
        rates = schedule.StepRates(state.optimizer, config, config.lr if not socket.has_optimizer else None,
                                   _total_steps(config, cursor, len(parts.train_set)))
    after_step = None
    if state.scheduler is not None and socket.scheduler_interval == "step":
        def after_step(step: int, scheduler: Any = state.scheduler) -> None:
            _step_scheduler(scheduler, math.nan)
    diagnostics = Diagnostics(backend.device)
    ctx = StepContext(backend, strategy, model, socket, state.optimizer, state.scaler, autocast_factory(config, backend.device),
                      config.clip_grad, skip_nonfinite=config.nan_policy == "skip", before_step=rates, after_step=after_step,
                      timer=diagnostics.timer)
    loader, valid_loader = _loaders(config, parts)
    log.info("training %s on %s: %d rank(s), backend %s (%s), strategy %s, amp %s, %s, %d train / %d valid samples, "
             "%d per step, monitor %s (%s)%s", run_dir.path, backend.device, backend.world_size, backend.name,
             backend.reason, strategy.name, config.amp, backend.threads, len(parts.train_set),
             len(parts.valid_set) if parts.valid_set is not None else 0, cursor.global_batch, parts.monitor,
             parts.monitor_mode, ", torch.compile (the first steps compile)" if config.compile else "")
    return Session(config, parts, run_dir, state, ctx, loader, valid_loader, run, callbacks, loggers, saver,
                   NanGuard(lag=backend.device.type == "cuda", skip=config.nan_policy == "skip"), meta,
                   resumed.get("totals") if resumed is not None else None,
                   resumed.get("scalars") if resumed is not None else None,
                   cadence=Cadence.of(config, backend.rank), rates=rates,
                   evaluated=_evaluated(ema, config, strategy, parts.network), diagnostics=diagnostics)


def _evaluated(ema: EMA | None, config: TrainConfig, strategy: Strategy,
               network: torch.nn.Module) -> Callable[[], AbstractContextManager[None]]:
    """The weights validation runs with: --ema's average (every rank with rank 0's averaged buffers;
    the raw weights back after it, bitwise) unless --ema-eval raw."""
    if ema is None or config.ema_eval == "raw":
        return contextlib.nullcontext
    return lambda: ema.swapped(lambda: strategy.broadcast_buffers(network))


def _total_steps(config: TrainConfig, cursor: Cursor, length: int) -> int:
    """The optimizer steps of the whole run at this session's global batch (--max-steps, if fewer):
    what a by-step cosine or linear schedule spans."""
    per_epoch = -(-length // cursor.global_batch)
    left = 0 if cursor.trained else -(-(length - cursor.samples) // cursor.global_batch)
    total = cursor.step + left + max(0, config.epochs - cursor.epoch - 1) * per_epoch
    return min(total, config.max_steps) if config.max_steps is not None else total


def _restore_rng(resumed: dict[str, Any], seed: int, rank: int) -> None:
    """This rank's saved RNG states; a rank the saved run did not have is seeded afresh."""
    rngs = resumed.get("rng") or []
    if rank < len(rngs):
        checkpoint.set_rng_state(rngs[rank])
    else:
        data.reseed(data.batch_seed(seed, rank))
        log.info("rank %d has no saved RNG state (the run was saved by %d rank(s)): seeded afresh", rank, len(rngs))


def _check_one_sample_steps(parts: Parts, cursor: Cursor) -> None:
    """An epoch whose last optimizer step holds one sample cannot train a BatchNorm (PyTorch:
    "Expected more than 1 value per channel when training"): refused before training, naming what
    to change. (A short last step of two samples or more is planned so that no micro-batch holds
    one: :class:`scorch.data.EpochPlan`.)"""
    norms = _training_batchnorms(parts)
    if not norms:
        return
    length, global_batch = len(parts.train_set), cursor.global_batch
    for start, what in ((cursor.samples, "the rest of this epoch"), (0, "each epoch")):
        if start < length and (length - start) % global_batch == 1:
            raise ScorchError(
                f"{what} ends with an optimizer step of 1 sample ({length - start} samples, {global_batch} per step), "
                f"on which {parts.config.model}: {norms[0]} (BatchNorm, training) cannot train; change --batch-size "
                f"(or --accumulate, or the number of ranks) so that the last step holds 0 or at least 2 samples")


def _training_batchnorms(parts: Parts) -> list[str]:
    """The Network's BatchNorm layers that train (not in a frozen module), by name."""
    frozen = {id(m) for _, top in parts.socket.frozen_modules for m in top.modules()}
    return [name or "Network" for name, m in parts.network.named_modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and id(m) not in frozen]


def _nothing_to_do(s: Session) -> str | None:
    """Why a resumed run has nothing left to train (a repeated command line, a requeued job), or
    None. A run that early stopping ended is finished as one that ran all its epochs: with the same
    --patience its counter is still past it (a larger --patience trains on)."""
    config, cursor, loop = s.config, s.cursor, s.loop
    if cursor.validating:
        return None  # a validation to redo first
    if cursor.epoch >= config.epochs:
        return f"the run has finished its {config.epochs} epoch(s)"
    if s.cadence.done(cursor.step):
        return f"the run has reached --max-steps {s.cadence.max_steps}"
    if config.patience is not None and loop.bad_epochs >= config.patience:  # it stops at the validation that reaches it
        at = f"epoch {cursor.epoch + 1}, step {cursor.step}" if cursor.samples else f"epoch {cursor.epoch}"
        return (f"early stopping ended the run at {at} ({s.parts.monitor} has not improved for "
                f"{loop.bad_epochs} validation(s), --patience {config.patience}); give a larger --patience to train on")
    return None


def _fit(s: Session) -> RunResult:
    config, backend, cadence = s.config, s.backend, s.cadence
    status, stopped_early = "failed", False
    try:
        s.callbacks.on_fit_start(s.run)
        finished = _nothing_to_do(s)
        if finished is not None:
            log.info("nothing to do: %s", finished)
            stopped_early = finished.startswith("early stopping")
        with StopSignal(cadence) as stop:
            while (finished is None and s.cursor.epoch < config.epochs
                   and (not cadence.done(s.cursor.step) or s.cursor.validating)):
                epoch = s.cursor.epoch + 1
                totals, ended = _train(s, epoch, stop)
                if ended:  # --max-steps, or early stopping, at a validation in the epoch (saved)
                    stopped_early = s.run.should_stop is not None
                    break
                row = _validate(s, epoch, totals, stop)
                if _end_epoch(s, row):
                    stopped_early = True
                    break
                if epoch < config.epochs and not cadence.done(s.cursor.step) and stop.settle(backend):
                    raise Preempted(f"stopped by {stop.describe()} after epoch {epoch}; checkpoint written to "
                                    f"{s.run_dir.last_checkpoint}; continue with --resume")
            if cadence.done(s.cursor.step) and not stopped_early:
                log.info("--max-steps %d reached at epoch %d, step %d", cadence.max_steps, s.run.epoch, s.cursor.step)
            status = "finished"
        _log_diagnostics(s)
        s.callbacks.on_fit_end(s.run)
        if config.test:
            test_after_training(_test_setup(s), s.run_dir.path)
    except BaseException as exc:
        status = "preempted" if isinstance(exc, Preempted) else "failed"
        s.callbacks.on_exception(s.run, exc)
        _log_diagnostics(s)  # before the ending's line, which log.txt keeps last
        _record_ending(s, exc)
        raise
    finally:
        _finish_meta(s, status)
    return RunResult(s.run_dir.path, s.cursor.epoch, s.rows, s.loop.best, s.parts.monitor, stopped_early)


def _log_diagnostics(s: Session) -> None:
    """The session's diagnostics line (scorch/training/diagnostics.py), once it measured a step."""
    summary = s.diagnostics.summary() if s.diagnostics is not None else None
    if summary is not None:
        log.info("%s", summary)


def _train(s: Session, epoch: int, stop: StopSignal) -> tuple[MetricTotals, bool]:
    """Train epoch ``epoch`` (the rest of it, on a resume); a stop signal saves and raises Preempted.
    True with the sums when training ended inside the epoch (--max-steps, early stopping)."""
    s.started = time.perf_counter()
    config, backend, cursor = s.config, s.backend, s.cursor
    _set_lr(s, epoch)
    totals = s.totals()
    _take_saved_totals(s, totals)
    run = s.run
    run.epoch, run.step = epoch, cursor.step
    if cursor.trained:  # stopped during this epoch's validation
        return totals, False
    plan = data.EpochPlan(len(s.parts.train_set), cursor.global_batch, config.batch_size, backend.rank,
                          backend.world_size, config.seed, epoch, start=cursor.samples)
    skipped = s.loop.skipped_steps
    if cursor.validating and _act(s, epoch, plan, totals, stop, 0, 0, skipped, redo=True):
        return totals, True  # the validation a stop interrupted, done now: it ended training
    data.set_plan(s.loader, plan)
    s.parts.train_mode()
    run.plan = plan
    s.callbacks.on_train_epoch_start(run)

    def at_step(steps: int, skipped_now: int) -> bool:
        return _act(s, epoch, plan, totals, stop, steps, skipped_now, skipped)

    try:
        with compiling.failures(config.model, s.compiled is not None):
            epoch_of = custom_step.train_epoch if s.parts.socket.has_custom_step else train_epoch
            done = epoch_of(s.ctx, s.loader, plan, run, totals, s.callbacks, s.guard, at_step)
    except RuntimeError as exc:
        if "find_unused_parameters" not in str(exc):
            raise
        raise ScorchError(f"{config.model}: a trainable parameter got no gradient in a step of epoch {epoch} on rank "
                          f"{backend.rank} (a branch not taken?), which DistributedDataParallel cannot average; "
                          "pass --find-unused-parameters, or keep such modules out of Socket.trainable_modules") from exc
    cursor.step = done.step
    s.loop.skipped_steps = skipped + done.skipped
    if done.ended:
        return totals, True
    cursor.samples, cursor.trained = len(s.parts.train_set), True
    return totals, False


def _act(s: Session, epoch: int, plan: data.EpochPlan, totals: MetricTotals, stop: StopSignal, steps: int,
         skipped: int, skipped_before: int, redo: bool = False) -> bool:
    """At a step boundary inside an epoch (every rank, after ``steps`` steps of ``plan``): stop on an
    agreed signal or --max-time, validate (--val-every, --max-steps), checkpoint (those, and
    --checkpoint-every). True to end training here. ``redo``: the validation a stop interrupted at
    this step, on a resume (no poll: the step's agreement was made before the stop)."""
    cadence, run, cursor = s.cadence, s.run, s.cursor
    stopping = False if redo else stop.poll(s.backend, saves=True)
    step = run.step
    validate = redo or cadence.validates_at(step) or cadence.done(step)
    if not (stopping or validate or stop.save_due or cadence.checkpoints_at(step)):
        return False
    s.guard.flush()
    cursor.step, cursor.samples = step, plan.samples_after(steps)
    s.loop.skipped_steps = skipped_before + skipped
    if stopping:
        cursor.validating = validate  # the resumed run redoes this step's validation first
        _stop(s, totals, f"stopped by {stop.describe()} at epoch {epoch}, step {step}")
    improved = False
    if validate:
        cursor.validating = True  # a stop while validating saves this: the resumed run redoes it
        row = _validate(s, epoch, totals, stop)
        cursor.validating = False
        improved = bool(s.run.improved)
        _log_row(s, row, inside=True)
        totals.reset()
    s.saver.save(run, improved, totals)
    cadence.saved()
    return cadence.done(step) or run.should_stop is not None


def _stop(s: Session, totals: MetricTotals, what: str, then: str = "") -> NoReturn:
    """Save where every rank got to and raise Preempted; nobody leaves before rank 0 has written
    (a launcher ends the whole job when the first rank exits)."""
    s.saver.save(s.run, False, totals)
    s.backend.barrier()
    raise Preempted(f"{what}; checkpoint written to {s.run_dir.last_checkpoint}; continue with --resume{then}")


def _take_saved_totals(s: Session, totals: MetricTotals) -> None:
    """A resumed epoch starts from the metric sums saved with it: each rank its own when the world
    size is the same (so the sums are bitwise those of an uninterrupted run), else rank 0 all."""
    saved, s.saved_totals = s.saved_totals, None
    scalars, s.saved_scalars = s.saved_scalars, None
    if not saved:
        return
    if len(saved) == s.backend.world_size:
        totals.load_state_dict(saved[s.backend.rank])
        if scalars:
            s.run.scalars.load_state_dict(scalars[s.backend.rank])
    elif s.backend.rank == 0:
        totals.absorb(saved)
        if scalars:
            s.run.scalars.absorb(scalars)


def _validate(s: Session, epoch: int, totals: MetricTotals, stop: StopSignal) -> dict[str, Any]:
    """A history row: the train means since the last row, then the validation of the model that is
    checkpointed (every rank evaluates with rank 0's buffers), recorded against the best so far
    before ``on_validation_end``. A stop signal saves and raises Preempted; the resumed run redoes
    this validation."""
    backend, parts, config = s.backend, s.parts, s.config
    lr = s.state.optimizer.param_groups[0]["lr"]
    row: dict[str, Any] = {"epoch": epoch, "step": s.run.step, "lr": lr, **reduce_totals(backend, totals, "train")}
    diagnostics = s.diagnostics.gather() if s.diagnostics is not None else {}  # collective: the training since the last row
    means: dict[str, float] | None = {}
    if s.valid_loader is not None and parts.valid_set is not None:
        s.ctx.strategy.broadcast_buffers(parts.network)
        common = data.common_batches(len(parts.valid_set), config.batch_size, backend.world_size)
        most = data.most_batches(len(parts.valid_set), config.batch_size, backend.world_size)
        with compiling.failures(config.model, s.compiled is not None), s.evaluated():
            means = evaluate(backend, s.ctx.strategy.eval_model(parts.network), parts.socket, s.valid_loader,
                             s.ctx.autocast, s.totals(), stop, common, run=s.run, callbacks=s.callbacks,
                             keep_step=most if s.ctx.strategy.sharded else None)
        if means is None:
            s.run.batch(TRAIN, None)
            where = f"epoch {epoch}" if s.cursor.trained else f"epoch {epoch} at step {s.run.step}"
            _stop(s, totals, f"stopped by {stop.describe()} while validating {where}", " (it redoes the validation)")
    assert means is not None
    s.run.batch(VALID, None)
    row.update(means)
    _add_scalars(s, row)
    if config.nan_policy == "stop" and "valid/loss" in row and not math.isfinite(row["valid/loss"]):
        raise on_every_rank(TrainingError(f"valid/loss is {row['valid/loss']} at epoch {epoch}, step {s.run.step}; "
                                          "stopping without writing this checkpoint (--nan-policy skip would go on)"))
    s.run.improved = s.loop.record(row[parts.monitor], epoch, parts.monitor_mode, parts.monitor, s.run.step)
    s.callbacks.on_validation_end(s.run, means)
    row["time"] = time.perf_counter() - s.started
    s.started = time.perf_counter()
    row.update(diagnostics)
    if config.nan_policy == "skip":
        row["skipped_steps"] = s.loop.skipped_steps
    return row


def _add_scalars(s: Session, row: dict[str, Any]) -> None:
    """The means of the run.log values since the last row (train/NAME, valid/NAME: collective) into ``row``."""
    scalars = s.run.scalars
    values = {**scalars.epoch_means(s.backend, TRAIN), **scalars.epoch_means(s.backend, VALID)}
    s.run.batch(TRAIN, None)
    clash = next((k for k in values if k in row), None)
    if clash is not None:
        raise on_every_rank(ScorchError(f"run.log: {clash!r} is also a column of Socket.metrics (or the loss); give the "
                                        "logged value a name of its own"))
    row.update(values)


def _log_row(s: Session, row: dict[str, Any], inside: bool = False) -> None:
    """A history row to the loggers (and the log, for a validation ``inside`` an epoch: --val-every)."""
    s.rows.append(row)
    s.loggers.log_epoch(row)
    if inside:
        log.info("epoch %d/%d, step %d  %s  (%.1f s)", row["epoch"], s.config.epochs, row["step"], _summary(row),
                 row["time"])


def _end_epoch(s: Session, row: dict[str, Any]) -> bool:
    """Record the epoch (scheduler, history, TensorBoard, checkpoint); True to stop early."""
    config, parts, epoch = s.config, s.parts, row["epoch"]
    if parts.socket.scheduler_interval == "epoch":
        _step_scheduler(s.state.scheduler, row[parts.monitor])
    s.cursor.epoch, s.cursor.samples, s.cursor.trained = epoch, 0, False
    _log_row(s, row)
    s.callbacks.on_epoch_end(s.run, row)  # the checkpoint policy fires last
    s.cadence.saved()
    log.info("epoch %d/%d  %s  (%.1f s)", epoch, config.epochs, _summary(row), row["time"])
    _note_compile(s)
    if s.run.should_stop is not None:
        log.info("%s", s.run.should_stop)
        return True
    return False


def _set_lr(s: Session, epoch: int) -> None:
    """The epoch's learning rate from --lr/lr_schedule/warmup (unless Socket.scheduler owns it); with
    per-step rates (:class:`schedule.StepRates`), the rate of the epoch's next step."""
    if s.state.scheduler is None:
        config = s.config
        if s.rates is not None:
            s.rates.epoch = epoch
            s.rates(s.cursor.step + 1)
            return
        base = config.lr if not s.parts.socket.has_optimizer else None
        schedule.apply(s.state.optimizer, epoch, config.lr_schedule, config.warmup_epochs, config.epochs, base)


def _loaders(config: TrainConfig, parts: Parts) -> tuple[Any, Any]:
    """This rank's training loader (fed an EpochPlan per epoch), and its exact validation shard."""
    backend = parts.backend
    pin = parts.device.type == "cuda"
    where = f"{config.dataset}: DataSet.__getitem__ (mode={{!r}})"
    loader = data.train_loader(parts.train_set, config.workers, pin, where.format("train"), config.worker_start)
    valid_loader = None
    if parts.valid_set is not None:
        valid_loader = data.eval_loader(parts.valid_set, config.batch_size, backend.rank, backend.world_size,
                                        config.workers, pin, where.format("valid"), config.worker_start)
    return loader, valid_loader


def _start_meta(backend: Any, placements: list[dict[str, Any]], previous: dict[str, Any], resumed_from: int | None) -> dict[str, Any]:
    """meta.json for this session; a resumed run keeps the list of its earlier sessions."""
    meta = session_meta(backend.world_size, backend.name, str(backend.device), backend.launch.launcher, placements)
    sessions = [dict(s) for s in previous.get("sessions", [])]
    if previous.get("status") == "running" and sessions:
        # It never recorded its end, and its lock holder is gone (this session holds the lock): killed
        # (SIGKILL, out of memory, a node lost) while it ran.
        sessions[-1]["status"] = "killed"
        log.warning("the previous session of this run (started %s on %s) was killed: it never recorded its end",
                    sessions[-1].get("start_time", "?"), ", ".join(sessions[-1].get("hostnames", [])) or "?")
    meta["sessions"] = [*sessions, {k: meta[k] for k in ("start_time", "world_size", "hostnames")}]
    meta["resumed_from_epoch"] = resumed_from
    return meta


def _record_ending(s: Session, exc: BaseException) -> None:
    """What ended the run, for meta.json and log.txt (rank 0; another rank leaves rank 0 a note)."""
    rank = s.backend.rank
    if rank != 0:
        if not isinstance(exc, Preempted):
            outcome.leave_note(s.run_dir.path, exc, rank)
        return
    ended = outcome.ending(exc, rank)
    broken = outcome.broken_collective(exc)
    notes = outcome.collect_notes(s.run_dir.path, 3.0 if broken else 0.0)
    if notes and broken:  # another rank failed first; rank 0's own error is the consequence
        ended = {**notes[0], "then": {"rank": 0, "message": ended["message"]}}
    s.meta["ended_by"] = ended
    s.run_dir.note_in_log(f"ended on rank {ended['rank']} ({ended['host']}), exit code {ended['exit_code']}: "
                          f"{ended['message']}")


def _finish_meta(s: Session, status: str) -> None:
    s.meta.update(end_time=time.strftime("%Y-%m-%dT%H:%M:%S%z"), status=status, epochs_done=s.cursor.epoch)
    if s.meta.get("sessions"):
        s.meta["sessions"][-1].update(status=status, end_time=s.meta["end_time"], step=s.cursor.step)
    s.loggers.close()  # after the ending is in s.meta: a tracker uploads meta.json as it is written next
    try:
        s.run_dir.write_meta(s.meta)
    except Error as exc:  # do not hide the error that ended the run
        if not isinstance(exc, Failure) or _atomic.vanished(s.run_dir.path) is None:
            log.warning("%s", exc)  # (a run directory that was removed needs no second line)
    s.run_dir.end_session()


def _note_compile(s: Session) -> None:
    """--compile: the graphs compiled and the time it took, in the log (when it grew) and meta.json."""
    if s.compiled is None:
        return
    seen = s.meta.get("compile", {}).get("graphs")
    graphs, seconds = s.compiled.graphs(), s.compiled.seconds()
    s.meta["compile"] = {"graphs": graphs, "seconds": seconds}
    if graphs != seen:
        log.info("torch.compile: %d graph(s) compiled in %s so far", graphs,
                 "an unknown time" if seconds is None else f"{seconds:.1f} s")


def _summary(row: dict[str, Any]) -> str:
    return "  ".join(f"{k} {v:.4g}" for k, v in row.items() if "/" in k and not is_diagnostic(k))


def _step_scheduler(scheduler: Any, monitored: float) -> None:
    if scheduler is None:
        return
    if isinstance(scheduler, custom_step.Schedulers):
        scheduler.step(monitored)
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(monitored)
        return
    with warnings.catch_warnings():
        # A scheduler the model file built on its optimizer before Horovod wrapped it sees no call of
        # that instance's step() (the wrapper steps): the optimizer has stepped all the same.
        warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()` before `optimizer.step()`"))
        scheduler.step()


def _test_setup(s: Session) -> Evaluation:
    """--test: the run's Network and Socket on its test split."""
    parts, config = s.parts, s.config
    test_set = parts.dataset_file.build(parts.index, "test")
    network, socket = parts.network, parts.socket
    if s.ctx.strategy.sharded:  # the checkpoint is read whole, into a Network of its own on every rank
        network = parts.model_file.build_network(config.model_settings).to(parts.backend.device)
        socket = parts.model_file.build_socket(network, config.socket_settings)
    return Evaluation(parts.backend, network, socket, test_set, "test", config.model, config.dataset,
                      config.batch_size, config.workers, s.ctx.autocast)
