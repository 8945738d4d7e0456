"""``--init-from RUN_DIR[:best|last|CHECKPOINT]``: a new run whose Network starts from another run's
weights, with a fresh optimizer, schedule and loop state (phase 2 of a fine-tune, a new dataset).

The checkpoint is chosen as ``load_run`` and ``scorch-test`` choose (``best`` by default: best.pt,
or last.pt when no epoch was the best; ``last``; a file, as given or in RUN_DIR or its
checkpoints/), whole (``.pt``) or sharded (``.dcp``, read whole in each process). The whole Network
is loaded, strictly, unless the model file's Socket names the part: ``init_from_modules``, a list
of the Network's submodule names (``["backbone"]``) or modules, or a dict ``{"here": "there"}`` to
load the source's module ``there`` into this Network's ``here`` (an attribute, or a method
returning one of these). Each part loads strictly too: a key missing on either side or of another
shape is one line listing them (exit 2); the rest of the Network keeps its own initialisation.

It is read on every rank before the strategy places the model (the same weights on every rank,
sharded afterwards by fsdp/hsdp). A ``--resume`` of such a run continues from its own checkpoint
(``init_from`` stays recorded in config.json and meta.json).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import ScorchError
from ..rundir import checkpoint as ckpt
from ..rundir.layout import CHOICES, choose_checkpoint

log = logging.getLogger(__name__)

HOOK = "init_from_modules"
FLAG = "--init-from"
_SHOWN = 4  # keys named per kind of misfit


def split(spec: str) -> tuple[Path, str]:
    """``RUN_DIR[:best|last|CHECKPOINT]`` -> (run directory, which checkpoint); a directory whose own
    name holds ':' is taken whole."""
    if os.path.isdir(spec) or ":" not in spec:
        return Path(spec), "best"
    run, _, which = spec.rpartition(":")
    return Path(run), which or "best"


def whole_network(socket_cls: type) -> bool:
    """Whether ``--init-from`` loads the whole Network (the Socket class names no part), known before
    the Network is built (for :func:`scorch.loading`)."""
    return getattr(socket_cls, HOOK, None) is None


def parts(raw_socket: Any, network: torch.nn.Module, where: str) -> dict[str, str] | None:
    """``{this Network's module name: the source's}`` that Socket.init_from_modules names; None: the
    whole Network."""
    spec = getattr(raw_socket, HOOK, None)
    if callable(spec) and not isinstance(spec, torch.nn.Module):
        spec = spec()
    if spec is None:
        return None
    names = {id(m): n for n, m in network.named_modules() if n}
    expected = ("a list of the Network's submodule names (or modules), or a dict {name here: name in the source run}")

    def name_of(item: Any) -> str:
        if isinstance(item, torch.nn.Module):
            if id(item) not in names:
                raise ScorchError(f"{where} holds a {type(item).__name__} that is not a submodule of the Network; expected "
                                  f"{expected}")
            return names[id(item)]
        if not isinstance(item, str) or not item:
            raise ScorchError(f"{where} holds {item!r}; expected {expected}")
        return item

    if isinstance(spec, dict):
        chosen = {name_of(k): name_of(v) for k, v in spec.items()}
    elif isinstance(spec, (list, tuple, torch.nn.ModuleList)):
        chosen = {name_of(m): name_of(m) for m in spec}
    else:
        raise ScorchError(f"{where} is a {type(spec).__name__}; expected {expected}")
    if not chosen:
        raise ScorchError(f"{where} is empty; expected {expected} (or no {HOOK}: the whole Network)")
    known = set(names.values())
    unknown = next((n for n in chosen if n not in known), None)
    if unknown is not None:
        raise ScorchError(f"{where} names {unknown!r}, which is no submodule of the Network (it has "
                          f"{', '.join(sorted(n for n in known if '.' not in n)[:8])})")
    return chosen


def _under(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(prefix + ".")


def _list(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_SHOWN])
    return shown + (f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


def mapping(own: dict[str, Any], source: dict[str, Any], chosen: dict[str, str] | None) -> tuple[dict[str, str], list[str]]:
    """``({key here: key in the checkpoint}, misfits)``: what loads, and one phrase per kind of misfit
    (keys missing from the checkpoint, keys the checkpoint has that the part does not, shapes)."""
    pairs = {k: k for k in own} if chosen is None else {
        k: there + k[len(here):] for here, there in chosen.items() for k in own if _under(k, here)}
    offered = [k for k in source if chosen is None or any(_under(k, there) for there in chosen.values())]
    missing = [there for there in pairs.values() if there not in source]
    unexpected = [k for k in offered if k not in set(pairs.values())]
    shapes = [f"{here!r} {tuple(own[here].shape)} here, {tuple(source[there].shape)} in the checkpoint"
              for here, there in pairs.items() if there in source and tuple(own[here].shape) != tuple(source[there].shape)]
    misfits = []
    if missing:
        misfits.append(f"missing from the checkpoint: {_list(missing)}")
    if unexpected:
        misfits.append(f"in the checkpoint but not here: {_list(unexpected)}")
    if shapes:
        misfits.append(f"other shapes: {'; '.join(shapes[:_SHOWN])}" + (f" and {len(shapes) - _SHOWN} more"
                                                                        if len(shapes) > _SHOWN else ""))
    return pairs, misfits


def apply(spec: str, network: torch.nn.Module, raw_socket: Any, model: str) -> dict[str, Any]:
    """Load the weights ``spec`` names into ``network`` (every rank alike); what meta.json records."""
    run_dir, which = split(spec)
    if not run_dir.is_dir():
        raise ScorchError(f"{FLAG} {spec}: {run_dir} is not a directory; expected RUN_DIR[:{'|'.join(CHOICES)}|CHECKPOINT], "
                          "a run directory of scorch-train")
    chosen_file = choose_checkpoint(run_dir, which, FLAG)
    state = ckpt.load(chosen_file.path, optimizer=False)
    chosen = parts(raw_socket, network, f"{model}: Socket.{HOOK}")
    own = network.state_dict()
    pairs, misfits = mapping(own, state["model"], chosen)
    what = "Network" if chosen is None else f"Network's {', '.join(chosen)}"
    if misfits:
        hint = f"; name the part to load in Socket.{HOOK}" if chosen is None else ""
        raise ScorchError(f"{FLAG}: {chosen_file.path} does not fit {model}: {what} ({'; '.join(misfits)}){hint}")
    with torch.no_grad():
        weights = {here: state["model"][there] for here, there in pairs.items()}
        network.load_state_dict(weights, strict=chosen is None)
    log.info("%s: %s loaded from %s (epoch %s, step %s); optimizer, schedule and loop start afresh", FLAG, what,
             chosen_file.path, state["epoch"], state["step"])
    return {"run": str(run_dir.absolute()), "checkpoint": str(chosen_file.path.absolute()), "epoch": int(state["epoch"]),
            "step": int(state["step"]), "modules": None if chosen is None else chosen}
