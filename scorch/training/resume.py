"""A resumed run goes on as the same run: a setting given anew takes effect or is refused.

- The global batch (samples per optimizer step over all ranks) is kept on any world size: the
  per-rank batch and the gradient accumulation are fitted to it (said in the log), unless the
  user changed ``--accumulate``, which changes the global batch on purpose.
- ``--lr``, ``--weight-decay`` and ``--momentum`` given anew are written into the restored
  optimizer's parameter groups when scorch built the optimizer; with ``Socket.optimizer`` they
  are refused (they would be ignored), as is ``--lr`` with ``Socket.scheduler`` (it owns the
  rate) or a list ``lr_schedule`` (absolute rates), and another ``--optimizer`` (its state cannot
  carry over).
- A new ``--monitor`` restarts the best value and the early-stopping count (:func:`follow_monitor`).
- ``--seed`` and the dataset's settings change the epoch's order: refused in the middle of an
  epoch, taking effect from the next epoch otherwise.

Everything else (``clip_grad``, ``amp``, ``lr_schedule``, ``warmup_epochs``, model settings
whose weights still fit) simply takes effect.
"""
from __future__ import annotations

import logging
from typing import Any

import torch

from ..config import TrainConfig
from ..errors import ScorchError
from ..rundir import shards
from ..strategies import optim_state
from .state import LoopState

log = logging.getLogger(__name__)

OPTIMIZER_SETTINGS = ("lr", "weight_decay", "momentum")


def saved_global_batch(state: dict[str, Any]) -> int:
    """Samples per optimizer step of the run in ``state`` (older checkpoints: from its config)."""
    cursor = state.get("cursor") or {}
    if cursor.get("global_batch"):
        return int(cursor["global_batch"])
    saved = state.get("config", {})
    return int(saved.get("batch_size", 1)) * int(saved.get("accumulate", 1)) * max(1, len(state.get("rng", [None])))


def fit_global_batch(global_batch: int, world_size: int, batch_size: int, accumulate: int,
                     batch_given: bool) -> tuple[int, int]:
    """``(batch_size, accumulate)`` with ``batch_size * accumulate * world_size == global_batch``.

    Keeps ``batch_size`` and changes the accumulation where it can; otherwise (unless the batch
    size was given anew) the smallest accumulation whose per-rank batch is at most the old one."""
    if global_batch % world_size:
        raise ScorchError(f"--resume: the run's global batch is {global_batch} samples per step, which {world_size} "
                          "ranks cannot share equally; resume on a number of ranks that divides it")
    per_rank = global_batch // world_size
    if per_rank % batch_size == 0:
        return batch_size, per_rank // batch_size
    if batch_given:
        raise ScorchError(f"--batch-size {batch_size}: the run's global batch is {global_batch} samples per step, "
                          f"{per_rank} per rank on {world_size} rank(s); give a --batch-size that divides {per_rank}")
    for acc in range(1, per_rank + 1):
        if per_rank % acc == 0 and per_rank // acc <= batch_size:
            return per_rank // acc, acc
    return 1, per_rank  # pragma: no cover - acc == per_rank always fits


def adapt(config: TrainConfig, state: dict[str, Any], world_size: int, custom_optimizer: bool,
          custom_scheduler: bool, train_length: int) -> TrainConfig:
    """``config`` made to continue the run saved in ``state`` on ``world_size`` ranks (or refused)."""
    saved = state.get("config", {})
    cursor = state.get("cursor") or {}
    mid_epoch = bool(cursor.get("samples") or cursor.get("trained"))
    changed = {k for k in saved if k in TrainConfig.__dataclass_fields__ and saved[k] != getattr(config, k)}
    if "optimizer" in changed and not custom_optimizer:
        raise ScorchError(f"--optimizer {config.optimizer}: the run was trained with {saved['optimizer']}, whose state "
                          "cannot carry over; resume with the same optimizer or start a new run")
    if custom_optimizer:
        given = [k for k in (*OPTIMIZER_SETTINGS, "optimizer") if k in changed]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise ScorchError(f"{flag}: {config.model} builds the optimizer in Socket.optimizer, so {flag} has no "
                              "effect; change it there (its restored state is used as saved)")
    if "lr" in changed and isinstance(config.lr_schedule, (list, tuple)) and not custom_optimizer:
        raise ScorchError("--lr: the run's lr_schedule gives absolute rates ([[AT, LR], ...]), so --lr has no effect "
                          "on it; change the rates with --set lr_schedule=... instead")
    if custom_scheduler and "lr" in changed and not custom_optimizer:
        raise ScorchError(f"--lr: {config.model} defines Socket.scheduler, which owns the learning rate of a "
                          "resumed run; change the rate there (or start a new run)")
    if mid_epoch and cursor.get("length") and int(cursor["length"]) != train_length:
        raise ScorchError(f"--resume: the training split has {train_length} samples, but the run stopped in the middle "
                          f"of an epoch of {int(cursor['length'])}; resume with the same data")
    if mid_epoch:
        for key in ("seed", "dataset_settings"):
            if key in changed:
                raise ScorchError(f"--resume: {key} changed in the middle of epoch {int(cursor.get('epoch', 0)) + 1}, "
                                  "which would change that epoch's order; resume with the saved value (it can change "
                                  "at an epoch boundary)")
    batch_size, accumulate = config.batch_size, config.accumulate
    old_global = saved_global_batch(state)
    if "accumulate" in changed:
        new_global = batch_size * accumulate * world_size
        if new_global != old_global:
            log.info("resume: --accumulate %d changes the global batch from %d to %d samples per step",
                     accumulate, old_global, new_global)
    else:
        batch_size, accumulate = fit_global_batch(old_global, world_size, batch_size, accumulate, "batch_size" in changed)
        if (batch_size, accumulate) != (config.batch_size, config.accumulate):
            log.info("resume on %d rank(s): --batch-size %d --accumulate %d keeps the global batch of %d samples per step",
                     world_size, batch_size, accumulate, old_global)
    described = sorted(changed & set(TRAJECTORY_DESCRIBED))
    if described:
        log.warning("resuming with changed settings (they take effect): %s",
                    ", ".join(f"{k} {saved[k]!r} -> {getattr(config, k)!r}" for k in described))
    return config.replace(batch_size=batch_size, accumulate=accumulate)


# Changes worth a line in the log when they take effect on resume.
TRAJECTORY_DESCRIBED = ("lr", "weight_decay", "momentum", "seed", "clip_grad", "amp", "lr_schedule",
                        "warmup_epochs", "warmup_steps", "schedule_by", "max_steps", "model_settings",
                        "dataset_settings", "socket_settings", "shared_settings", "accumulate", "batch_size")


def follow_monitor(loop: LoopState, saved: dict[str, Any], monitor: str, mode: str) -> None:
    """A run resumed with another --monitor (or --monitor-mode) ranks its validations by the new
    one: the best value and the early-stopping count of the old one start afresh (said in the log;
    best.pt is replaced at the next validation). ``saved``: the checkpoint's config, for a
    checkpoint that does not say what its loop state is of."""
    before: tuple[str, str] | None = (loop.monitor, loop.mode) if loop.monitor else None
    if before is None and saved.get("monitor") not in (None, monitor):  # an older checkpoint: its --monitor
        before = (str(saved["monitor"]), mode)
    if before is not None and before != (monitor, mode):
        log.warning("resume: the monitor is now %s (%s), was %s (%s): best (%s) and the early-stopping count start "
                    "afresh, and %s is replaced at the next validation", monitor, mode, before[0], before[1],
                    loop.best, "best.pt")
        loop.best, loop.best_epoch, loop.best_step, loop.bad_epochs = None, 0, 0, 0
    loop.monitor, loop.mode = monitor, mode


def apply_optimizer_settings(optimizer: torch.optim.Optimizer, config: TrainConfig, saved: dict[str, Any]) -> None:
    """Write the --lr/--weight-decay/--momentum given anew into every parameter group of an optimizer
    scorch built (after its state was restored, so that the values given now are the ones that
    train). A rate set by a Socket.scheduler is its own: --lr is refused before this."""
    for group in optimizer.param_groups:
        if config.lr != saved.get("lr", config.lr):
            group["lr"] = group["initial_lr"] = config.lr
        if config.weight_decay != saved.get("weight_decay", config.weight_decay):
            group["weight_decay"] = config.weight_decay
        if "momentum" in group and config.momentum != saved.get("momentum", config.momentum):
            group["momentum"] = config.momentum


def check_optimizer_fits(optimizer: torch.optim.Optimizer, network: torch.nn.Module, state: dict[str, Any],
                         config: TrainConfig) -> None:
    """A resumed run's optimizer must hold the parameters the checkpoint's held, group by group: a
    changed trainable set (Socket.trainable_modules, requires_grad, Socket.optimizer's groups) is one
    line suggesting ``--init-from``, which starts a new run from the weights with a fresh optimizer.
    A sharded checkpoint's parameters are those its optimizer holds state of (its metadata)."""
    saved = state.get("optimizer")
    sharded = saved is None and bool(state.get("shards"))
    if sharded:  # a sharded checkpoint: the parameters its optimizer has state of
        held = shards.optimizer_state_names(state["shards"])
        names = optim_state.parameter_names(network, optimizer)
        saved = {"param_groups": [{"params": [n for n in names if n in held] + sorted(held - set(names))}]} if held else None
    if not isinstance(saved, dict) or not isinstance(saved.get("param_groups"), list):
        return
    mine = [len(group["params"]) for group in optimizer.param_groups]
    theirs = [len(group.get("params", [])) for group in saved["param_groups"]]
    detail = None
    if optim_state.is_by_name(saved):
        names = optim_state.parameter_names(network, optimizer)
        saved_names = [n for g in saved["param_groups"] for n in g["params"]]
        extra = next((n for n in saved_names if n not in names), None)
        new = next((n for n in names if n not in saved_names), None)
        if extra is not None or new is not None or (mine != theirs and not sharded):
            detail = (f"{extra!r} was trained and is not now" if extra is not None else
                      f"{new!r} is trained now and was not" if new is not None else "its groups differ")
    elif mine != theirs:
        detail = None if sum(mine) == sum(theirs) else (
            f"{abs(sum(mine) - sum(theirs))} parameter tensor(s) {'more' if sum(mine) > sum(theirs) else 'fewer'} now")
        detail = detail or "its groups differ"
    else:
        detail = _shape_misfit(optimizer, network, saved.get("state") or {})
    if detail is None:
        return
    raise ScorchError(f"--resume: the trainable set of {config.model} changed since the checkpoint ({detail}; parameters "
                      f"per optimizer group: {theirs} then, {mine} now), so its optimizer state cannot carry over; start "
                      f"a new run from its weights with a fresh optimizer: --name NEW --init-from {config.run_dir}"
                      " (or resume with the trainable set it was trained with)")


def _shape_misfit(optimizer: torch.optim.Optimizer, network: torch.nn.Module, saved: dict[Any, Any]) -> str | None:
    """The first parameter whose saved optimizer state (exp_avg, momentum_buffer) has another shape:
    as many parameters as before, but other ones."""
    names = {id(p): n for n, p in network.named_parameters()}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for i, p in enumerate(params):
        entry = saved.get(i, saved.get(str(i)))
        for value in (entry or {}).values() if isinstance(entry, dict) else ():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and tuple(value.shape) != tuple(p.shape):
                return (f"{names.get(id(p), f'parameter {i}')!r} has shape {tuple(p.shape)} now, its saved optimizer "
                        f"state {tuple(value.shape)}")
    return None
