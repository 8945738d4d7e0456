"""``run``: what the user's code sees of the run while it trains, and ``run.log``.

Callbacks get it as their first argument; the Socket reaches it as ``self.run`` (set by scorch
before training; outside training, e.g. in ``load_run`` or ``scorch-test``, it is a detached run
whose :meth:`Run.log` records nothing). It is the same object on every rank, answering for its
own rank.

``run.log(name, value)`` records a scalar: per optimizer step in TensorBoard (``step/train/NAME``,
with ``--log-every``) and as the epoch's mean in history.csv and TensorBoard (``train/NAME``, or
``valid/NAME`` for values logged while validating). The mean is weighted and exact over ranks, like
the metrics: a value logged during a training micro-batch (in ``Socket.criterion``, say) or a
validation batch weighs as many samples as the batch holds (a stand-in batch of 0 samples is not
counted), any other value (a callback's ``on_step_end``) weighs 1 unless ``weight`` says otherwise;
the epoch's value is the sum of value x weight over every rank divided by the sum of the weights.
A value logged on every rank after the optimizer step (a gradient norm: the same on every rank)
is therefore the same on any world size.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import ScorchError

log = logging.getLogger(__name__)

TRAIN, VALID = "train", "valid"


class Scalars:
    """Weighted sums of the values of ``run.log``, per name: the epoch's, per phase, and the current
    optimizer step's (training only, kept only while ``--log-every`` logs that step). Tensors stay
    on their device (no sync per call); numbers are summed as floats."""

    def __init__(self) -> None:
        self.epoch: dict[str, dict[str, list[Any]]] = {TRAIN: {}, VALID: {}}
        self.step: dict[str, list[Any]] | None = None  # None: the current step is not logged

    @staticmethod
    def _add(sums: dict[str, list[Any]], name: str, value: Any, weight: float) -> None:
        entry = sums.get(name)
        if entry is None:
            sums[name] = [value * weight, weight]
        else:
            entry[0] = entry[0] + value * weight
            entry[1] += weight

    def add(self, phase: str, name: str, value: Any, weight: float) -> None:
        value = value.detach().reshape(()).to(torch.float64) if isinstance(value, torch.Tensor) else float(value)
        self._add(self.epoch[phase], name, value, weight)
        if phase == TRAIN and self.step is not None:
            self._add(self.step, name, value, weight)

    @staticmethod
    def _plain(sums: dict[str, list[Any]]) -> dict[str, tuple[float, float]]:
        return {name: (float(total), float(weight)) for name, (total, weight) in sums.items()}

    @staticmethod
    def reduce(backend: Any, sums: dict[str, list[Any]], prefix: str) -> dict[str, float]:
        """``prefix/NAME`` -> the weighted mean over every rank (collective: every rank calls it).
        Summed in rank order on every rank, so every rank gets the same bits."""
        totals: dict[str, list[float]] = {}
        for mine in backend.all_gather_object(Scalars._plain(sums)):
            for name, (total, weight) in mine.items():
                entry = totals.setdefault(name, [0.0, 0.0])
                entry[0] += total
                entry[1] += weight
        return {f"{prefix}/{name}": (total / weight if weight else math.nan) for name, (total, weight) in sorted(totals.items())}

    def epoch_means(self, backend: Any, phase: str) -> dict[str, float]:
        """The epoch's means of ``phase``, then its sums start again (collective)."""
        means = self.reduce(backend, self.epoch[phase], phase)
        self.epoch[phase] = {}
        return means

    def step_means(self, backend: Any) -> dict[str, float]:
        """The logged step's means (collective); the next step is not logged until :meth:`watch_step`."""
        sums, self.step = self.step or {}, None
        return self.reduce(backend, sums, TRAIN)

    def watch_step(self) -> None:
        self.step = {}

    def state_dict(self) -> dict[str, Any]:
        """The training epoch's sums (a mid-epoch checkpoint; validation is redone on a resume)."""
        return {name: [float(total), float(weight)] for name, (total, weight) in self.epoch[TRAIN].items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch[TRAIN] = {name: [float(total), float(weight)] for name, (total, weight) in state.items()}

    def absorb(self, states: list[dict[str, Any]]) -> None:
        """Take several (other ranks') sums into this one (a resume on another world size)."""
        for state in states:
            for name, (total, weight) in state.items():
                self._add(self.epoch[TRAIN], name, float(total) / weight if weight else 0.0, float(weight))


class Run:
    """The run as the user's code sees it. ``epoch``: the epoch being trained (from 1; the last one
    after training); ``step``: optimizer steps done so far; ``rank``, ``world_size``, ``is_main``
    (rank 0, the one that writes files); ``run_dir``: the run directory (write your own files there
    on the main rank); ``network``: the Network (unwrapped); ``optimizer``; ``config``: the run's
    TrainConfig; ``monitor``, ``loop`` (``best``, ``best_epoch``, ``bad_epochs`` of the monitored
    value) and ``improved`` (at the end of an epoch: it was the best so far). ``should_stop``: set
    by :meth:`stop` (honoured at the end of the epoch)."""

    def __init__(self, rank: int = 0, world_size: int = 1, run_dir: str | os.PathLike | None = None,
                 network: torch.nn.Module | None = None, optimizer: Any = None, config: Any = None,
                 backend: Any = None):
        self.rank, self.world_size = rank, world_size
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.network, self.optimizer, self.config, self.backend = network, optimizer, config, backend
        self.strategy: Any = None  # how the model is placed (scorch.strategies)
        self.params: list[torch.nn.Parameter] = []  # the trainable parameters
        self.epoch, self.step = 0, 0
        self.should_stop: str | None = None
        self.monitor = ""  # the monitored value (--monitor), e.g. valid/loss
        self.loop: Any = None  # its record: best, best_epoch, bad_epochs (scorch.training.state.LoopState)
        self.improved = False  # whether the epoch that just ended was the best so far
        self.plan: Any = None  # this rank's plan of the current training epoch (scorch.data.EpochPlan)
        self.scalars = Scalars()
        self.is_detached = backend is None  # outside training: log records nothing
        self._phase: str = TRAIN
        self._weight: float | None = None  # samples of the current batch, while one runs

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def detached(cls) -> Run:
        """A run outside training (load_run, scorch-test, scorch-check): ``log`` records nothing."""
        return cls()

    def log(self, name: str, value: float | torch.Tensor, weight: float | None = None) -> None:
        """Record scalar ``value`` under ``name`` (see the module's doc for how it is averaged)."""
        if self.is_detached:
            return
        if not isinstance(name, str) or not name or "/" in name or name != name.strip() or not name.isprintable():
            raise ScorchError(f"run.log: name {name!r} is not usable; expected a non-empty printable name without '/'")
        if isinstance(value, torch.Tensor) and value.numel() != 1:
            raise ScorchError(f"run.log({name!r}): a tensor of shape {tuple(value.shape)}; expected one number")
        w = weight if weight is not None else self._weight if self._weight is not None else 1.0
        if w:
            self.scalars.add(self._phase, name, value, float(w))

    def grad_norm(self) -> torch.Tensor:
        """The global norm of the trainable parameters' gradients (in ``on_step_end``: the step's,
        averaged over the ranks, unscaled and clipped), however the strategy places them."""
        if self.strategy is None:
            raise ScorchError("run.grad_norm: only while training")
        return self.strategy.grad_norm(self.params)

    def stop(self, reason: str) -> None:
        """Stop training at the end of this epoch (after its checkpoint). Decide from values that
        are the same on every rank (the epoch's metrics are), or every rank must call it alike."""
        self.should_stop = reason

    # --- set by the loop ---------------------------------------------------
    def batch(self, phase: str, samples: float | None) -> None:
        """A batch of ``samples`` samples of ``phase`` starts (None: no batch runs)."""
        self._phase, self._weight = phase, samples
