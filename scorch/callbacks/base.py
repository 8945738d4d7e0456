"""``scorch.Callback``: the hooks of a run, and the list that fires them.

Every hook is called on every rank, at the same points and in this order::

    on_fit_start(run)                       once, after a resume has restored everything
    for each epoch:
        on_train_epoch_start(run)
        on_train_batch_end(run, batch)      after each micro-batch's backward (batch: BatchEnd)
        on_step_end(run)                    after each optimizer step (run.step counts it)
        on_validation_batch_end(run, batch) after each validation batch of this rank (ranks may
                                            have different numbers: no collectives here)
        on_validation_end(run, metrics)     the epoch's valid/... means ({} without a valid split)
        on_epoch_end(run, row)              the epoch's history row, written already
    on_save_checkpoint(run)                 before any checkpoint is written (epoch end or a stop)
    on_fit_end(run)                         training finished (not after a stop or a failure)
    on_exception(run, exc)                  what ended the run, when it did not finish (a stop
                                            signal is scorch.errors.Preempted)

Callbacks fire in list order: scorch's progress bar and visualisation, the model file's
(``Socket.callbacks()``, in its order), the ``--ema`` average (after them: it averages the weights
they leave), then the ``--log-every`` step log (so that a value a
callback logs in ``on_step_end`` is in its step), early stopping, and the checkpoint policy last,
so that the checkpoint written at the end of an epoch holds every callback's state after it.
``on_train_batch_end`` of a step's last micro-batch comes after the optimizer step, just before
``on_step_end``. A stop signal is acted on after ``on_step_end`` (a checkpoint then, with
``on_save_checkpoint``). Values given to ``run.log`` in ``on_epoch_end`` count toward the next
epoch.

A callback with state gives ``state_dict()``/``load_state_dict()``: the main rank's state is saved
in every checkpoint under the callback's :attr:`Callback.name` (its class name unless set) and
loaded on every rank on resume, so a resumed run continues with the state an uninterrupted run had
at that step. ``state_dict`` is called on every rank (it may use collectives).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ScorchError

log = logging.getLogger(__name__)

HOOKS = ("on_fit_start", "on_train_epoch_start", "on_train_batch_end", "on_step_end", "on_validation_batch_end",
         "on_validation_end", "on_epoch_end", "on_save_checkpoint", "on_fit_end", "on_exception")


@dataclass
class BatchEnd:
    """A micro-batch (training) or a batch (validation) that has just run on this rank: its
    ``samples`` (0 for a stand-in that counts nowhere), ``inputs``, ``preds``, ``targets``,
    ``loss`` (detached) and ``metrics`` (Socket.metrics; None where they were not computed)."""

    samples: int
    inputs: list[torch.Tensor]
    preds: list[torch.Tensor]
    targets: list[torch.Tensor]
    loss: torch.Tensor
    metrics: dict[str, Any] | None
    index: int = 0  # the batch's position in this rank's epoch (validation) or step (training)


class Callback:
    """Override the hooks you need; each gets the :class:`~scorch.training.run.Run` first."""

    name: str | None = None  # the key of this callback's state in a checkpoint (default: the class name)

    def on_fit_start(self, run: Any) -> None: ...
    def on_train_epoch_start(self, run: Any) -> None: ...
    def on_train_batch_end(self, run: Any, batch: BatchEnd) -> None: ...
    def on_step_end(self, run: Any) -> None: ...
    def on_validation_batch_end(self, run: Any, batch: BatchEnd) -> None: ...
    def on_validation_end(self, run: Any, metrics: dict[str, float]) -> None: ...
    def on_epoch_end(self, run: Any, row: dict[str, Any]) -> None: ...
    def on_save_checkpoint(self, run: Any) -> None: ...
    def on_fit_end(self, run: Any) -> None: ...
    def on_exception(self, run: Any, exc: BaseException) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def _overrides(callback: Callback, hook: str) -> bool:
    return getattr(type(callback), hook, None) is not getattr(Callback, hook) or hook in vars(callback)


def _has_state(callback: Callback) -> bool:
    return type(callback).state_dict is not Callback.state_dict


class Callbacks:
    """The run's callbacks in firing order. Each hook is a method of this object that calls only the
    callbacks that override it, so an unused hook costs one empty loop."""

    def __init__(self, callbacks: list[Callback], where: str = "Socket.callbacks()"):
        names: dict[str, Callback] = {}
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise ScorchError(f"{where} returned a {type(cb).__name__}, expected scorch.Callback instances")
            name = cb.name or type(cb).__name__
            if name in names:
                raise ScorchError(f"{where}: two callbacks are named {name!r} (their checkpoint state would clash); "
                                  "give one a name attribute of its own")
            names[name] = cb
        self.callbacks, self.by_name = list(callbacks), names
        self._firing = {hook: [getattr(cb, hook) for cb in callbacks if _overrides(cb, hook)] for hook in HOOKS}

    def wants(self, hook: str) -> bool:
        return bool(self._firing[hook])

    def fire(self, hook: str, *args: Any) -> None:
        for method in self._firing[hook]:
            method(*args)

    def on_fit_start(self, run: Any) -> None:
        self.fire("on_fit_start", run)

    def on_train_epoch_start(self, run: Any) -> None:
        self.fire("on_train_epoch_start", run)

    def on_step_end(self, run: Any) -> None:
        self.fire("on_step_end", run)

    def on_validation_end(self, run: Any, metrics: dict[str, float]) -> None:
        self.fire("on_validation_end", run, metrics)

    def on_epoch_end(self, run: Any, row: dict[str, Any]) -> None:
        self.fire("on_epoch_end", run, row)

    def on_save_checkpoint(self, run: Any) -> None:
        self.fire("on_save_checkpoint", run)

    def on_fit_end(self, run: Any) -> None:
        self.fire("on_fit_end", run)

    def on_exception(self, run: Any, exc: BaseException) -> None:
        """Every callback hears of it; one that fails here is logged, not raised over ``exc``."""
        for method in self._firing["on_exception"]:
            try:
                method(run, exc)
            except Exception as err:  # the error that ended the run is the one to report
                log.warning("%s.on_exception failed: %s: %s", type(getattr(method, "__self__", method)).__name__,
                            type(err).__name__, err)

    # --- state in checkpoints ----------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Every stateful callback's state by name (called on every rank)."""
        return {name: cb.state_dict() for name, cb in self.by_name.items() if _has_state(cb)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, saved in state.items():
            cb = self.by_name.get(name)
            if cb is None:
                log.warning("the checkpoint holds the state of a callback %r that this run does not have: not used", name)
                continue
            cb.load_state_dict(saved)
        missing = [n for n, cb in self.by_name.items() if _has_state(cb) and n not in state]
        if missing:
            log.info("callback(s) %s have no state in the checkpoint: they start afresh", ", ".join(missing))
