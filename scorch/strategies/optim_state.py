"""An optimizer's state keyed by parameter number (``optimizer.state_dict()``, what a one-file
checkpoint holds) or by parameter name (what ``torch.distributed.checkpoint`` keeps for a sharded
one): the same state, so that either loads into any strategy."""
from __future__ import annotations

from typing import Any

import torch

from ..errors import ScorchError


def parameter_names(network: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The name in ``network`` of each parameter of ``optimizer``, in the order of its groups (the
    numbers ``optimizer.state_dict()`` gives them)."""
    names = {id(p): name for name, p in network.named_parameters()}
    out = []
    for group in optimizer.param_groups:
        for p in group["params"]:
            if id(p) not in names:
                raise ScorchError("the optimizer holds a parameter that is not the Network's (Socket.optimizer must be "
                                  "built over the params it is given)")
            out.append(names[id(p)])
    return out


def by_name(state: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """``optimizer.state_dict()`` (numbered) keyed by parameter name."""
    if is_by_name(state):
        return state
    return {"state": {names[int(i)]: s for i, s in state["state"].items()},
            "param_groups": [{**g, "params": [names[int(i)] for i in g["params"]]} for g in state["param_groups"]]}


def by_number(state: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """A state keyed by parameter name, numbered as ``optimizer.state_dict()`` numbers ``names``."""
    if not is_by_name(state):
        return state
    saved = [n for g in state["param_groups"] for n in g["params"]]
    if saved != names:
        extra = next((n for n in saved if n not in names), None)
        what = (f"parameter {extra!r} is in the checkpoint only" if extra is not None else
                f"parameter {next(n for n in names if n not in saved)!r} is in this optimizer only" if set(names) - set(saved)
                else "its parameter groups hold the parameters in another order")
        raise ScorchError(f"the checkpoint's optimizer state does not fit this optimizer: {what}")
    number = {name: i for i, name in enumerate(names)}
    return {"state": {number[n]: s for n, s in state["state"].items()},
            "param_groups": [{**g, "params": [number[n] for n in g["params"]]} for g in state["param_groups"]]}


def is_by_name(state: dict[str, Any]) -> bool:
    groups = state.get("param_groups") or []
    return any(isinstance(p, str) for g in groups for p in g.get("params", []))
