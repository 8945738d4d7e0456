"""``--ema DECAY``: an exponential moving average of the Network's weights, as a built-in callback.

After every optimizer step that changed the weights, ``avg = decay * avg + (1 - decay) * w`` for
each trainable parameter and each floating buffer of the Network (one ``torch._foreach_lerp_``
over all of them). The average starts at the weights training starts from.

* **Once per optimizer step.** The update is in ``on_step_end``, which fires once per optimizer
  step (after the step's last micro-batch), never per micro-batch. A step the optimizer did not
  take (``--nan-policy skip`` refused its non-finite gradients, or the AMP scaler found an
  overflow) does not update the average: the optimizer's step post-hook marks the steps it took.
  :attr:`EMA.updates` counts the updates.
* **Buffers are averaged, not copied.** BatchNorm's running mean and variance are averaged like the
  parameters (as ``torch.optim.swa_utils.AveragedModel(use_buffers=True)`` and timm's ModelEma do):
  statistics that move with the averaged weights, at no extra pass over the data. Integer buffers
  (``num_batches_tracked``) and frozen parameters are not averaged: they keep their raw values.
* **Saved and restored.** The average and its update count are the callback's state, in every
  checkpoint (``callbacks["ema"]``: ``decay``, ``updates``, ``params``, ``buffers``, by the
  Network's names); a resume continues the same average. The parameters are replicated, so the
  average is the same on every rank and does not depend on the world size. (The raw weights stay
  the checkpoint's ``model``: a resume trains on from them, never from the average.)
* **Used for evaluation.** :meth:`EMA.swapped` puts the average into the Network for a block and the
  raw weights back after it, bitwise; validation and the choice of ``best`` run inside it unless
  ``--ema-eval raw``. :func:`load_averaged` is what scorch-test, ``load_run`` and scorch-export use.

Sharded strategies (``--strategy fsdp``/``hsdp``) are refused with ``--ema``: a shard's average
would need the sharded checkpoint to hold it (see docs). SWA is not built in: an equal-weight
average needs a pass over the training data to recompute BatchNorm statistics
(``torch.optim.swa_utils.update_bn``), and the EMA covers the common recipes.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ..errors import ScorchError
from .base import Callback

log = logging.getLogger(__name__)

NAME = "ema"  # the key of the average in a checkpoint's callbacks


def _averaged_tensors(network: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The trainable floating parameters and the saved floating buffers of ``network``, by name."""
    saved = set(network.state_dict().keys())
    params: dict[str, torch.Tensor] = {n: p for n, p in network.named_parameters() if p.requires_grad and p.is_floating_point()}
    buffers = {n: b for n, b in network.named_buffers() if b.is_floating_point() and n in saved}
    return params, buffers


class EMA(Callback):
    """The moving average of ``network``'s weights, updated after each step one of ``optimizers`` took."""

    name = NAME

    def __init__(self, network: torch.nn.Module, decay: float, optimizers: list[torch.optim.Optimizer]):
        if not 0.0 < decay < 1.0:
            raise ScorchError(f"--ema: expected a decay between 0 and 1 (exclusive), got {decay}")
        self.decay = decay
        params, buffers = _averaged_tensors(network)
        self.names = (list(params), list(buffers))
        self.live = [t.detach() for t in (*params.values(), *buffers.values())]
        with torch.no_grad():
            self.average = [t.clone() for t in self.live]
        self.updates = 0
        self._stepped = False
        self._hooks = [opt.register_step_post_hook(self._took_step) for opt in optimizers]

    def _took_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._stepped = True

    def on_step_end(self, run: Any) -> None:
        if not self._stepped:  # skipped: non-finite gradients, or an AMP overflow
            return
        self._stepped = False
        if self.live:
            with torch.no_grad():
                torch._foreach_lerp_(self.average, self.live, 1.0 - self.decay)
        self.updates += 1

    def on_fit_end(self, run: Any) -> None:
        self._remove_hooks()

    def on_exception(self, run: Any, exc: BaseException) -> None:
        self._remove_hooks()

    def _remove_hooks(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    @contextlib.contextmanager
    def swapped(self, after_swap: Callable[[], None] | None = None) -> Iterator[None]:
        """The averaged weights in the Network for the block (``after_swap`` runs once they are in:
        e.g. giving every rank rank 0's buffers), the raw ones back after it, bitwise."""
        if not self.live:
            yield
            return
        with torch.no_grad():
            raw = [t.clone() for t in self.live]
            torch._foreach_copy_(self.live, self.average)
        try:
            if after_swap is not None:
                after_swap()
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.live, raw)

    # --- state in checkpoints ----------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        n = len(self.names[0])
        tensors = [t.detach().to("cpu", copy=True) for t in self.average]
        return {"decay": self.decay, "updates": self.updates,
                "params": dict(zip(self.names[0], tensors[:n])), "buffers": dict(zip(self.names[1], tensors[n:]))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = [*state.get("params", {}), *state.get("buffers", {})]
        if list(state.get("params", {})) != self.names[0] or list(state.get("buffers", {})) != self.names[1]:
            mine = set(self.names[0]) | set(self.names[1])
            differ = sorted(mine.symmetric_difference(saved))[:3]
            raise ScorchError(f"--ema: the checkpoint's average is of other tensors than this Network's trainable weights "
                              f"({', '.join(differ) or 'another order'}); resume with the run's own model file, or "
                              "start a new run (--init-from)")
        tensors = [*state["params"].values(), *state["buffers"].values()]
        with torch.no_grad():
            for mine_t, saved_t in zip(self.average, tensors):
                if mine_t.shape != saved_t.shape:
                    raise ScorchError(f"--ema: the checkpoint's average has a tensor of shape {tuple(saved_t.shape)} "
                                      f"where this Network has {tuple(mine_t.shape)}")
                mine_t.copy_(saved_t)
        self.updates = int(state.get("updates", 0))
        if float(state.get("decay", self.decay)) != self.decay:
            log.info("--ema %g: the average so far was made with decay %g; it goes on with %g", self.decay,
                     float(state["decay"]), self.decay)


# --- readers of checkpoints: scorch-test, load_run, scorch-export ------------------------------

WEIGHTS = ("ema", "raw")  # what a reader of a checkpoint loads: the average when it holds one, or the raw weights


def averaged_state(state: dict[str, Any]) -> dict[str, Any] | None:
    """The average a checkpoint holds (``--ema``), or None."""
    saved = (state.get("callbacks") or {}).get(NAME)
    return saved if isinstance(saved, dict) and "params" in saved else None


def load_averaged(network: torch.nn.Module, state: dict[str, Any], weights: str, where: str) -> str:
    """After ``network.load_state_dict(state["model"])``: with ``weights="ema"`` put the checkpoint's
    average in (when it holds one). Returns what the Network holds: ``"ema"`` or ``"raw"``."""
    if weights not in WEIGHTS:
        raise ScorchError(f"{where}: weights={weights!r}; expected one of {', '.join(WEIGHTS)}")
    saved = averaged_state(state)
    if weights == "raw" or saved is None:
        return "raw"
    with torch.no_grad():
        for kind, get in (("params", network.get_parameter), ("buffers", network.get_buffer)):
            for name, tensor in saved[kind].items():
                try:
                    target = get(name)
                except AttributeError:
                    raise ScorchError(f"{where}: the checkpoint's average (--ema) holds {name!r}, which the Network "
                                      "does not have; pass --raw (weights='raw') for the raw weights") from None
                target.copy_(tensor)
    return "ema"
