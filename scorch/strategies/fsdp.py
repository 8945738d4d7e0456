"""Fully sharded data parallel: FSDP2 (``torch.distributed.fsdp.fully_shard``) over torch.distributed.

Each rank holds 1/N of every parameter, of its gradient and of the optimizer's state (``fsdp``),
or 1/N within its node and a replica on every node (``hsdp``: a 2-D device mesh, sharded over the
ranks of a node, replicated over the nodes). A shard unit's parameters are gathered for its forward
and backward and freed after; the gradients are reduce-scattered (averaged) at the last
micro-batch of an accumulation window. Units: each module ``Socket.shard_units()`` names, else
:func:`default_units`; the Network itself is the root unit (the parameters no unit holds).

Checkpoints are sharded: every rank writes its shards with torch.distributed.checkpoint, and they
load on any number of ranks, sharded or not (:mod:`scorch.rundir.shards`).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager as ContextManager
from typing import Any

import torch
from torch.distributed._composable import checkpoint
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
    set_state_dict,
)
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor

from ..errors import ScorchError
from ..rundir import shards
from . import optim_state
from .base import Strategy

FULL = StateDictOptions(full_state_dict=True)


def default_units(network: torch.nn.Module) -> list[torch.nn.Module]:
    """Each top-level child of the Network that holds parameters, and each repeated block: a module
    with parameters in a ModuleList or Sequential beside another of its class (a transformer's
    layers). Innermost first, as fully_shard needs them."""
    units: list[tuple[int, torch.nn.Module]] = []
    seen: set[int] = set()

    def add(module: torch.nn.Module, depth: int) -> None:
        if id(module) not in seen and any(True for _ in module.parameters()):
            seen.add(id(module))
            units.append((depth, module))

    def walk(module: torch.nn.Module, depth: int) -> None:
        children = list(module.children())
        if isinstance(module, (torch.nn.ModuleList, torch.nn.Sequential)):
            kinds = [type(c) for c in children]
            for child in children:
                if kinds.count(type(child)) > 1:
                    add(child, depth + 1)
        for child in children:
            walk(child, depth + 1)

    for child in network.children():
        add(child, 1)
    walk(network, 0)
    return [m for _, m in sorted(units, key=lambda u: -u[0])]


class FSDP(Strategy):
    """``fully_shard`` every unit, then the Network; the optimizer is built over the sharded
    parameters (DTensors), so its state is sharded alike."""

    name = "fsdp"
    sharded = True

    def __init__(self, backend: Any, units: list[torch.nn.Module] | None = None, bf16: bool = False,
                 activation_checkpointing: bool = False):
        super().__init__(backend)
        self.units, self.bf16, self.activation_checkpointing = units, bf16, activation_checkpointing

    def mesh(self) -> DeviceMesh:
        return init_device_mesh(self.backend.device.type, (self.backend.world_size,), mesh_dim_names=("shard",))

    # --- setup ------------------------------------------------------------
    def wrap_model(self, network: torch.nn.Module, find_unused: bool) -> torch.nn.Module:
        assert not find_unused, "refused before (scorch.training.trainer._setup)"
        for tensor in [*network.parameters(), *network.buffers()]:  # every rank shards the same (rank 0's) weights
            self.backend.broadcast_tensor(tensor.data)
        units = _innermost_first(network, self.units) if self.units is not None else default_units(network)
        if self.activation_checkpointing:
            _checkpoint_forwards(units)
        mesh = self.mesh()
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if self.bf16 else MixedPrecisionPolicy()
        for unit in units:
            fully_shard(unit, mesh=mesh, mp_policy=policy)
        fully_shard(network, mesh=mesh, mp_policy=policy)
        return network

    # --- one training step -----------------------------------------------
    @contextlib.contextmanager
    def _no_sync(self, model: torch.nn.Module) -> Iterator[None]:
        assert isinstance(model, FSDPModule), "FSDP.no_sync takes the model FSDP.setup returned"
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)

    def no_sync(self, model: torch.nn.Module) -> ContextManager[Any]:
        return self._no_sync(model)

    def clip_grad_norm(self, parameters: list[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
        return _whole(torch.nn.utils.clip_grad_norm_(parameters, max_norm))

    def grad_norm(self, parameters: list[torch.nn.Parameter]) -> torch.Tensor:
        return _whole(super().grad_norm(parameters))

    # --- evaluation --------------------------------------------------------
    def eval_model(self, network: torch.nn.Module) -> torch.nn.Module:
        """The sharded Network itself: each unit gathers its parameters for its forward and frees
        them after, as in training; the loop runs as many forward passes on every rank (a rank with
        fewer batches runs stand-ins), since each gathers from all ranks."""
        return network

    def broadcast_buffers(self, network: torch.nn.Module) -> None:
        for buffer in network.buffers():  # buffers are not sharded: each rank's BatchNorm saw its own batches
            self.backend.broadcast_tensor(buffer)

    # --- checkpoints -------------------------------------------------------
    def save_sharded(self, network: torch.nn.Module, optimizer: torch.optim.Optimizer, path: Any) -> list[str]:
        self.broadcast_buffers(network)  # DCP writes a replicated tensor from any one rank: make it rank 0's
        model, optim = get_state_dict(network, optimizer)
        bad = [k for k, v in model.items() if isinstance(v, torch.Tensor) and v.is_floating_point() and not _local_finite(v)]
        bad = sorted({k for names in self.backend.all_gather_object(bad) for k in names})
        if not bad:
            shards.save(path, model, optim)
        return bad

    def load_sharded(self, network: torch.nn.Module, optimizer: torch.optim.Optimizer, path: Any) -> None:
        # What DCP loads is what the state dicts to fill hold: a group setting the saved run had and
        # this optimizer has not yet (initial_lr, set by the first schedule) is given a place first.
        for group, keys in zip(optimizer.param_groups, shards.group_keys(path)):
            for key in keys - set(group):
                group[key] = None
        model, optim = get_state_dict(network, optimizer)
        shards.load(path, model, optim)
        set_state_dict(network, optimizer, model_state_dict=model, optim_state_dict=optim)

    def model_state_dict(self, network: torch.nn.Module) -> dict[str, torch.Tensor] | None:
        full = get_model_state_dict(network, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return {k: v for k, v in full.items() if isinstance(v, torch.Tensor)} if self.backend.rank == 0 else None

    def load_model_state_dict(self, network: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
        set_model_state_dict(network, dict(state), options=FULL)

    def load_optimizer_state_dict(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        assert self.network is not None, "FSDP.setup first"
        named = optim_state.by_name(state, optim_state.parameter_names(self.network, optimizer))
        for group, saved in zip(optimizer.param_groups, named["param_groups"]):
            for key, value in saved.items():
                group.setdefault(key, value)  # torch loads the settings this optimizer's groups have
        set_optimizer_state_dict(self.network, optimizer, named, options=FULL)


class HSDP(FSDP):
    """Sharded within a node, replicated over the nodes: the gradients are reduce-scattered among a
    node's ranks and all-reduced between the nodes (every node the same number of ranks)."""

    name = "hsdp"

    def mesh(self) -> DeviceMesh:
        per_node = self.backend.launch.local_world_size
        world = self.backend.world_size
        if per_node < 1 or world % per_node:
            raise ScorchError(f"--strategy hsdp: {world} ranks with {per_node} on this node; every node needs the same "
                              "number of ranks")
        return init_device_mesh(self.backend.device.type, (world // per_node, per_node), mesh_dim_names=("replicate", "shard"))


def _innermost_first(network: torch.nn.Module, units: list[torch.nn.Module]) -> list[torch.nn.Module]:
    """``units`` (the model file's, in any order) as fully_shard needs them: a module after those inside it."""
    depth = {id(m): name.count(".") + 1 for name, m in network.named_modules() if name}
    unique = list({id(u): u for u in units}.values())
    return sorted(unique, key=lambda u: -depth.get(id(u), 0))


def _whole(norm: torch.Tensor) -> torch.Tensor:
    return norm.full_tensor() if isinstance(norm, DTensor) else norm


def _local_finite(tensor: torch.Tensor) -> bool:
    local = tensor.to_local() if isinstance(tensor, DTensor) else tensor
    return local.numel() == 0 or bool(torch.isfinite(local).all())


def _checkpoint_forwards(units: list[torch.nn.Module]) -> None:
    """--activation-checkpointing: the forward of each unit that holds no other unit (a repeated
    block) keeps no activations; its backward recomputes them."""
    inner = [u for u in units if not any(v is not u and any(m is v for m in u.modules()) for v in units)]
    for unit in inner:
        checkpoint(unit)
