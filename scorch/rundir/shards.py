"""The tensors of a sharded checkpoint: the model's and the optimizer's state written by every rank
with ``torch.distributed.checkpoint`` (DCP) into one directory, each rank its own shards, in
parallel; read back sharded on any number of ranks (DCP reshards), or whole in one process.

The directory holds DCP's ``.metadata`` and ``__R_0.distcp`` files, under the keys ``model`` (the
Network's state_dict, by the Network's own names) and ``optimizer`` (its state keyed by parameter
name, see :mod:`scorch.strategies.optim_state`); the rest of the checkpoint is a small file beside
them (:mod:`scorch.rundir.checkpoint`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ScorchError

METADATA = ".metadata"
# torch.distributed.checkpoint takes ~1 s to import: only where a sharded checkpoint is written or read.


def save(path: str | os.PathLike, model: dict[str, Any], optimizer: dict[str, Any]) -> None:
    """Every rank writes its shards of ``model`` and ``optimizer`` (state dicts of DTensors) into
    ``path``; collective. The coordinator writes ``.metadata`` last, after every rank's data."""
    import torch.distributed.checkpoint as dcp
    dcp.save({"model": model, "optimizer": optimizer}, checkpoint_id=str(path))


def load(path: str | os.PathLike, model: dict[str, Any], optimizer: dict[str, Any]) -> None:
    """Fill ``model`` and ``optimizer`` (this rank's sharded state dicts, of any world size) in place
    from ``path``; collective."""
    import torch.distributed.checkpoint as dcp
    dcp.load({"model": model, "optimizer": optimizer}, checkpoint_id=str(path))


def read_whole(path: str | os.PathLike, optimizer: bool = True) -> dict[str, Any]:
    """``{"model": ..., "optimizer": ...}`` whole, in this process alone (no collective): what
    scorch-test, load_run, an export (``optimizer=False``: the model alone) and a strategy that
    does not shard read."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.default_planner import _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict
    state: dict[str, Any] = {}
    try:
        planner = _EmptyStateDictLoadPlanner(keys=None if optimizer else {"model"})
        _load_state_dict(state, storage_reader=dcp.FileSystemReader(str(path)), planner=planner, no_dist=True)
    except Exception as exc:  # DCP wraps what went wrong (a missing or truncated shard) in its own exceptions
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ScorchError(f"checkpoint {path} is truncated or corrupt ({first[:300]})") from exc
    optim = state.get("optimizer")
    if isinstance(optim, dict):
        optim.setdefault("state", {})  # an optimizer without state (plain SGD) saved its groups alone
    return {"model": dict(state.get("model", {})), "optimizer": optim}


def shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """The shape of each tensor of the model's state in ``path`` (from the metadata alone)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata
    try:
        metadata = dcp.FileSystemReader(str(path)).read_metadata()
    except Exception as exc:
        raise ScorchError(f"checkpoint {path} is truncated or corrupt (its {METADATA}: {exc})") from exc
    return {key.split(".", 1)[1]: tuple(meta.size) for key, meta in metadata.state_dict_metadata.items()
            if key.startswith("model.") and isinstance(meta, TensorStorageMetadata)}


def group_keys(path: str | os.PathLike) -> list[set[str]]:
    """The keys of each of the optimizer's parameter groups in ``path`` (``lr``, ``initial_lr``, ...)."""
    import torch.distributed.checkpoint as dcp
    metadata = dcp.FileSystemReader(str(path)).read_metadata()
    groups: dict[int, set[str]] = {}
    for key in metadata.state_dict_metadata:
        parts = key.split(".")
        if len(parts) == 4 and parts[:2] == ["optimizer", "param_groups"] and parts[2].isdigit():
            groups.setdefault(int(parts[2]), set()).add(parts[3])
    return [groups[i] for i in sorted(groups)]


def complete(path: Path) -> bool:
    """Whether DCP finished writing ``path`` (its metadata is written last)."""
    return (path / METADATA).is_file()



def optimizer_state_names(path: str | os.PathLike) -> set[str]:
    """The names of the parameters the optimizer holds state of in ``path`` (from the metadata alone)."""
    import torch.distributed.checkpoint as dcp
    try:
        metadata = dcp.FileSystemReader(str(path)).read_metadata()
    except Exception as exc:
        raise ScorchError(f"checkpoint {path} is truncated or corrupt (its {METADATA}: {exc})") from exc
    prefix = "optimizer.state."
    return {key[len(prefix):].rpartition(".")[0] for key in metadata.state_dict_metadata if key.startswith(prefix)}
